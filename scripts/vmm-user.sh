#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Makes what chvm needs to run each VMM as a uid of its own (idempotent; run
# as root; `make install` runs it):
#   - the system user chvm-vmm (no home, no login shell),
#   - its uid range in /etc/subuid and /etc/subgid: each VM's VMM gets one
#     uid (and the same gid) of it,
#   - /dev/kvm root:kvm 0660 and /dev/net/tun 0666, as Debian's udev rules
#     make them (hosts without udev have them root-only),
#   - /dev/userfaultfd root:kvm 0660 (and a udev rule keeping it so).
set -eu
user=${CHVM_VMM_USER:-chvm-vmm}
first=${CHVM_VMM_UID_FIRST:-1900000000}
count=${CHVM_VMM_UID_COUNT:-65536}
last=$((first + count - 1))

die() { echo "vmm-user.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root"
getent group kvm >/dev/null || groupadd --system kvm
if ! getent passwd "$user" >/dev/null; then
  useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin \
    --user-group "$user"
  echo "vmm-user.sh: created the system user $user"
fi
touch /etc/subuid /etc/subgid
if ! grep -q "^$user:" /etc/subuid; then
  usermod --add-subuids "$first-$last" "$user"
  echo "vmm-user.sh: VMM uids $first-$last (/etc/subuid)"
fi
grep -q "^$user:" /etc/subgid || usermod --add-subgids "$first-$last" "$user"
if [ -c /dev/kvm ] && [ "$(stat -c %G /dev/kvm)" = root ]; then
  chgrp kvm /dev/kvm && chmod 0660 /dev/kvm
  echo "vmm-user.sh: /dev/kvm is now root:kvm 0660"
fi
# CH's ondemand restore (v52+) opens /dev/userfaultfd (root-only by default)
# to handle the guest's faults; the VMMs reach it through the kvm group, at
# every boot by a udev rule.
if [ -d /etc/udev/rules.d ] || [ -d /run/udev ]; then
  mkdir -p /etc/udev/rules.d
  printf '%s\n' '# chvm (scripts/vmm-user.sh): the VMMs restore on demand through it' \
    'KERNEL=="userfaultfd", GROUP="kvm", MODE="0660"' >/etc/udev/rules.d/60-chvm-userfaultfd.rules
fi
if [ -c /dev/userfaultfd ] && [ "$(stat -c %G /dev/userfaultfd)" != kvm ]; then
  chgrp kvm /dev/userfaultfd && chmod 0660 /dev/userfaultfd
  echo "vmm-user.sh: /dev/userfaultfd is now root:kvm 0660"
fi
if [ -c /dev/net/tun ] && [ "$(stat -c %a /dev/net/tun)" != 666 ]; then
  chmod 0666 /dev/net/tun
  echo "vmm-user.sh: /dev/net/tun is now 0666"
fi
