#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Builds the "KVM host" the CH suite boots under QEMU/TCG with -cpu max
# (emulated AMD SVM + nested paging; shared/docs/build-hosts.md):
#   OUT/vmlinuz, OUT/kver   Debian trixie's cloud kernel (6.12: its kvm_amd
#                           survives CH's userfaultfd restore; bookworm's 6.1
#                           panicked there)
#   OUT/initrd.gz           busybox, virtio_blk, /init: mounts the root disk
#                           (serial kvmhost-root) and switches to it
#   OUT/root/               a Debian 12 root with what chvm needs at run time
#                           on a real host, Debian's containerd and CNI plugins
#                           (the shim's suite), and the kernel's modules
# The test (tests/integration/chvmtest/kvmhost.py) adds kvmhost-init (PID 1),
# cmdserver.py (the command channel), chvm, CH and the images per run and
# makes the disk.  Cached by a hash of this folder: an unchanged
# recipe is not rebuilt.  Usage: tests/kvmhost/build.sh [OUT]  (root)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
. "$here/../../scripts/lib/need.sh"
need mmdebstrap mmdebstrap apt-get apt dpkg-deb dpkg depmod kmod cpio cpio \
  gzip gzip xz xz-utils busybox busybox-static
need_done
out=${1:-build/kvmhost}
mkdir -p "$out"
out=$(cd "$out" && pwd)

log() { echo "kvmhost-build: $*" >&2; }

recipe=$(cat "$here"/build.sh "$here"/initrd-init | sha256sum | cut -c1-16)
if [ "$(cat "$out/recipe" 2>/dev/null)" = "$recipe" ]; then
  log "up to date ($out, recipe $recipe)"
  exit 0
fi
rm -f "$out/recipe"
work=$(mktemp -d "$out/.build.XXXXXX")
trap 'rm -rf --one-file-system "$work"' EXIT
t0=$SECONDS

# 1. The kernel: apt with its own lists and cache, nothing of the host's.
apt_tx=(-o Dir::Etc::SourceList="$work/trixie.list" -o Dir::Etc::SourceParts=/dev/null
        -o Dir::State::Lists="$work/lists" -o Dir::Cache="$work/cache"
        -o Dir::State::status=/dev/null -o APT::Sandbox::User=root -q)
mkdir -p "$work/lists/partial" "$work/cache/archives/partial"
printf 'deb http://deb.debian.org/debian trixie main\ndeb http://deb.debian.org/debian-security trixie-security main\n' \
  >"$work/trixie.list"
apt-get "${apt_tx[@]}" update >/dev/null
pkg=$(apt-cache "${apt_tx[@]}" depends linux-image-cloud-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
[ -n "$pkg" ] || { log "cannot resolve trixie's linux-image-cloud-amd64"; exit 1; }
kver=${pkg#linux-image-}
log "kernel $pkg"
(cd "$work" && apt-get "${apt_tx[@]}" download "$pkg" >/dev/null)
dpkg-deb -x "$work/$pkg"_*.deb "$work/k"
# trixie is merged-/usr: its modules are under usr/lib.
mods=$(ls -d "$work/k/usr/lib/modules/$kver" "$work/k/lib/modules/$kver" 2>/dev/null | head -n1 || true)
[ -n "$mods" ] || { log "no modules for $kver in $pkg"; exit 1; }

# 2. The root: Debian 12 minbase and chvm's run-time needs.
log "mmdebstrap bookworm root"
nice mmdebstrap --variant=minbase --mode=root --format=directory \
  --include=libcurl4,libjson-c5,libprotobuf-c1,libevent-core-2.1-7,iproute2,nftables,kmod,python3,procps,e2fsprogs,curl,containerd,containernetworking-plugins \
  --aptopt='APT::Install-Recommends "false"' \
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
  bookworm "$work/root" \
  "deb http://deb.debian.org/debian bookworm main" \
  "deb http://deb.debian.org/debian-security bookworm-security main" >&2
mkdir -p "$work/root/lib/modules"
cp -a "$mods" "$work/root/lib/modules/"
depmod -b "$work/root" "$kver"
echo kvmhost >"$work/root/etc/hostname"

# 3. The initramfs: busybox and virtio_blk, enough to mount the root disk.
mkdir -p "$work/initrd"/{bin,dev,proc,sys,newroot}
cp /bin/busybox "$work/initrd/bin/busybox"
blk=$(find "$mods" -name 'virtio_blk.ko*')
case $blk in
  *.xz) xz -dc "$blk" >"$work/initrd/virtio_blk.ko" ;;
  *) cp "$blk" "$work/initrd/virtio_blk.ko" ;;
esac
install -m 0755 "$here/initrd-init" "$work/initrd/init"
(cd "$work/initrd" && find . | sort | cpio -o -H newc --quiet -R 0:0 | gzip -9) >"$work/initrd.gz"

rm -rf --one-file-system "$out/root"
mv "$work/root" "$out/root"
mv "$work/initrd.gz" "$out/initrd.gz"
cp "$work/k/boot/vmlinuz-$kver" "$out/vmlinuz"
echo "$kver" >"$out/kver"
echo "$recipe" >"$out/recipe"
log "ready in $((SECONDS - t0)) s: $out (kernel $kver, root $(du -sm "$out/root" | cut -f1) MiB)"
