#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Re-derives the .proto files of this folder from Debian 12's packages (see
# README.md here): containerd's from golang-github-containerd-containerd-dev,
# google.rpc.Status from golang-github-gogo-googleapis-dev, cgroups v2
# Metrics from golang-github-containerd-cgroups-dev, the well-known types
# from libprotobuf-dev.  The only change made to them: gogoproto's
# imports (weak, or plain in metrics.proto) and options, and containerd's
# fieldpath plugin's, are dropped, since they change nothing on the wire and protoc-c would
# otherwise need gogo.proto and descriptor.proto compiled in.
# ttrpc/ttrpc.proto is not imported: ttrpc 1.1.1 declares its messages in
# Go only (types.go); it is transcribed by hand, see README.md.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
G=/usr/share/gocode/src
C=github.com/containerd/containerd
files=(
  "$G/$C/runtime/v2/task/shim.proto:$C/runtime/v2/task/shim.proto"
  "$G/$C/api/types/mount.proto:$C/api/types/mount.proto"
  "$G/$C/api/types/task/task.proto:$C/api/types/task/task.proto"
  "$G/$C/api/events/task.proto:$C/api/events/task.proto"
  "$G/$C/api/services/ttrpc/events/v1/events.proto:$C/api/services/ttrpc/events/v1/events.proto"
  "$G/github.com/gogo/googleapis/google/rpc/status.proto:google/rpc/status.proto"
  "$G/github.com/containerd/cgroups/v2/stats/metrics.proto:github.com/containerd/cgroups/v2/stats/metrics.proto"
  "/usr/include/google/protobuf/any.proto:google/protobuf/any.proto"
  "/usr/include/google/protobuf/empty.proto:google/protobuf/empty.proto"
  "/usr/include/google/protobuf/timestamp.proto:google/protobuf/timestamp.proto"
)
for f in "${files[@]}"; do
  src=${f%%:*} dst=$here/${f#*:}
  mkdir -p "$(dirname "$dst")"
  sed -E -e '/^\s*import (weak )?"gogoproto\//d' -e '/^\s*import weak /d' \
    -e '/^\s*option \((gogoproto|containerd\.plugin)\./d' \
    -e 's/ \[\(gogoproto\.[^]]*\]//' "$src" >"$dst"
done
