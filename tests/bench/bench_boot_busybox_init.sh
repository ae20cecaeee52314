#!/bin/busybox sh
# SPDX-License-Identifier: Apache-2.0
# The BusyBox baseline for tests/bench/bench_boot.py: the steps chvm-init
# takes, as a shell /init would do them (mounts, insmod in dependency order,
# disks by serial, overlay on tmpfs, network, switch_root, exec).
/stamp init
bb=/bin/busybox
$bb mount -t proc -o nosuid,nodev,noexec proc /proc
$bb mount -t sysfs -o nosuid,nodev,noexec sysfs /sys
$bb mount -t devtmpfs -o nosuid,mode=0755 devtmpfs /dev
$bb mkdir -p /dev/pts /dev/shm /sys/fs/cgroup
$bb mount -t devpts -o nosuid,noexec,gid=5,mode=0620 devpts /dev/pts
$bb mount -t tmpfs -o nosuid,nodev,mode=1777 shm /dev/shm
$bb mount -t tmpfs -o nosuid,nodev,mode=0755 tmpfs /run
$bb mount -t tmpfs -o nosuid,nodev,mode=1777 tmpfs /tmp
$bb mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 /sys/fs/cgroup
while read -r m; do $bb insmod "$m"; done </lib/modules/chvm.load

# A shell has no uevent socket: poll sysfs for the serials.
find_disk() {
  for d in /sys/block/vd*; do
    [ "$($bb cat "$d/serial" 2>/dev/null)" = "$1" ] && echo "/dev/${d##*/}" && return 0
  done
  return 1
}
until root=$(find_disk chvm-root) && cfg=$(find_disk chvm-config); do $bb usleep 5000; done
$bb head -c 4096 "$cfg" >/dev/null

$bb mkdir -p /run/chvm/lower /run/chvm/upper-fs /newroot
$bb mount -t ext4 -o ro,nodev "$root" /run/chvm/lower
$bb mount -t tmpfs -o nodev,mode=0755,size=50% tmpfs /run/chvm/upper-fs
$bb mkdir -p /run/chvm/upper-fs/upper /run/chvm/upper-fs/work
$bb mount -t overlay -o lowerdir=/run/chvm/lower,upperdir=/run/chvm/upper-fs/upper,workdir=/run/chvm/upper-fs/work overlay /newroot

until [ -e /sys/class/net/eth0 ]; do $bb usleep 5000; done
$bb ip link set lo up
$bb ip link set eth0 up
$bb ip addr add 10.0.2.15/24 dev eth0
$bb ip route add default via 10.0.2.2
$bb hostname bench
echo bench >/newroot/etc/hostname

for m in /dev /proc /sys /run /tmp; do
  $bb mkdir -p "/newroot$m"
  $bb mount --move "$m" "/newroot$m"
done
exec $bb switch_root /newroot /bin/stamp entry
