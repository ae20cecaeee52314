#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Fetches Debian's cloud kernel (the versioned package the metapackage
# linux-image-cloud-amd64 depends on) and lays it out under OUT (default
# build/kernel): vmlinuz (bzImage), vmlinux (ELF with the PVH note, for Cloud
# Hypervisor), modules -> the lib/modules/<ver> tree, version.
# Cached: does nothing when OUT/version names the package apt would pick.
set -euo pipefail
. "$(dirname "$0")/lib/need.sh"
need apt-cache apt apt-get apt dpkg-deb dpkg python3 python3 readelf binutils depmod kmod \
  lz4 lz4 xz xz-utils zstd zstd
need_done

out=${1:-build/kernel}
mkdir -p "$out"
out=$(cd "$out" && pwd)
here=$(cd "$(dirname "$0")" && pwd)

pkg=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
[ -n "$pkg" ] || { echo "fetch-kernel: cannot resolve linux-image-cloud-amd64 (apt-get update?)" >&2; exit 1; }
kver=${pkg#linux-image-}

if [ -f "$out/version" ] && [ "$(cat "$out/version")" = "$kver" ] &&
   [ -s "$out/vmlinuz" ] && [ -s "$out/vmlinux" ] && [ -d "$out/modules/kernel" ]; then
  echo "fetch-kernel: $kver already in $out"
  exit 0
fi

work=$(mktemp -d "$out/.fetch.XXXXXX")
trap 'rm -rf "$work"' EXIT
echo "fetch-kernel: downloading $pkg" >&2
# The sandbox user _apt cannot write into our private temp dir.
(cd "$work" && apt-get -o APT::Sandbox::User=root download "$pkg" >/dev/null)
rm -rf "$out/pkg"
mkdir -p "$out/pkg"
dpkg-deb -x "$work"/"$pkg"_*.deb "$out/pkg"

[ -f "$out/pkg/boot/vmlinuz-$kver" ] || { echo "fetch-kernel: no boot/vmlinuz-$kver in $pkg" >&2; exit 1; }
[ -d "$out/pkg/lib/modules/$kver" ] || { echo "fetch-kernel: no lib/modules/$kver in $pkg" >&2; exit 1; }
cp "$out/pkg/boot/vmlinuz-$kver" "$work/vmlinuz"
"$here/extract-vmlinux.py" "$work/vmlinuz" "$work/vmlinux"
# Cloud Hypervisor enters the ELF through the Xen PVH note (type 0x12).
if ! readelf -n "$work/vmlinux" | grep -q 'Xen.*0x00000012'; then
  echo "fetch-kernel: vmlinux has no PVH (XEN_ELFNOTE_PHYS32_ENTRY) note" >&2
  exit 1
fi
# Debian generates modules.dep in postinst, which dpkg-deb -x does not run;
# tools such as modprobe -d need it.
depmod -b "$out/pkg" "$kver"
mv "$work/vmlinuz" "$out/vmlinuz"
mv "$work/vmlinux" "$out/vmlinux"
ln -sfn "pkg/lib/modules/$kver" "$out/modules"
# version last: it marks the tree complete.
echo "$kver" > "$out/version"
echo "fetch-kernel: $kver ready in $out"
