#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Imports the stand-in image with our own `chvm image import` and links the
# result to stable paths the tests use:
#   OUT/rootfs.ext4, OUT/image.json -> STATE/images/<id>/...
# Usage: import-standin.sh CHVM STATE OUT   (OUT holds the OCI layout oci/)
set -euo pipefail
. "$(dirname "$0")/lib/need.sh"
need mkfs.ext4 e2fsprogs mkfs.erofs erofs-utils umoci umoci skopeo skopeo
need_done

chvm=$1 state=$2 out=$3
mkdir -p "$state"
state=$(cd "$state" && pwd)
out=$(cd "$out" && pwd)

t0=$(date +%s%N)
id=$("$chvm" --state-dir "$state" image import "oci:$out/oci:latest")
t1=$(date +%s%N)
ln -sfn "$state/images/$id/rootfs.ext4" "$out/rootfs.ext4"
ln -sfn "$state/images/$id/image.json" "$out/image.json"
echo "$id" >"$out/id"
ms=$(((t1 - t0) / 1000000))
printf 'import-standin: %s (%d.%03d s) -> %s\n' "${id:0:12}" $((ms / 1000)) $((ms % 1000)) "$out/rootfs.ext4" >&2
