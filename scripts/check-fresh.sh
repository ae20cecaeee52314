#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Proves the README's two commands on a fresh Debian 12 root: a minimal
# bookworm (mmdebstrap minbase plus what a machine of the project's kind
# brings before anyone installs anything: gcc/make, git, python3), a clean
# `git archive` of REF (default HEAD) in /src, then `make setup` and
# `make test SUITES="$SUITES"` inside it, in a private mount and PID
# namespace (chroot, with /dev, /proc, /sys bound).  Any package that
# `make setup` forgets makes a step fail; the tools' own checks name it.
#   scripts/check-fresh.sh            (make check-fresh)
#   REF=branch SUITES="unit fuzz" FUZZ_SECONDS=5 scripts/check-fresh.sh
# The base root is cached as build/fresh/base-<hash>.tar (hash of this
# script); each run unpacks it afresh and removes it at the end.
set -euo pipefail

cd "$(dirname "$0")/.."
. scripts/lib/need.sh
need mmdebstrap mmdebstrap unshare util-linux chroot coreutils git git tar tar
need_done
if [ "$(id -u)" != 0 ]; then
  echo "check-fresh: must run as root (it makes a root filesystem and chroots into it)" >&2
  exit 1
fi

ref=${REF:-HEAD}
suites=${SUITES:-build static unit fuzz}
fuzz_seconds=${FUZZ_SECONDS:-5}
SUITE=bookworm
MIRRORS=(
  "deb http://deb.debian.org/debian $SUITE main"
  "deb http://deb.debian.org/debian $SUITE-updates main"
  "deb http://deb.debian.org/debian-security $SUITE-security main"
)
# The project kind's toolchains (gcc, g++, make, git, python3); no Node:
# make setup then takes Debian's nodejs and npm, the stricter path.
BASE=build-essential,git,python3,ca-certificates

log() { echo "check-fresh: $*" >&2; }

commit=$(git rev-parse --verify "$ref^{commit}") ||
  { log "no such commit: $ref"; exit 1; }
mkdir -p build/fresh
cache=build/fresh/base-$(sha256sum "$0" | cut -c1-12).tar
if [ ! -s "$cache" ]; then
  log "making the base root ($SUITE minbase + $BASE) into $cache"
  t0=$SECONDS
  nice mmdebstrap --variant=minbase --mode=root --format=tar --include="$BASE" \
    "$SUITE" "$cache.tmp" "${MIRRORS[@]}" >&2
  mv "$cache.tmp" "$cache"
  log "base root: $((SECONDS - t0)) s, $(du -m "$cache" | cut -f1) MiB"
fi

root=$(mktemp -d "$PWD/build/fresh/root.XXXXXX")
cleanup() { rm -rf --one-file-system "$root"; }
trap cleanup EXIT
tar -xf "$cache" -C "$root"
git archive --format=tar --prefix=src/ "$commit" | tar -xf - -C "$root"
cp /etc/resolv.conf "$root/etc/resolv.conf"
# A new machine here has the workplace's network trust: the local CA
# certificates (registries are reached through a TLS proxy) and the
# environment that points tools at the bundle.  Carry exactly that over.
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
  mkdir -p "$root/usr/local/share/ca-certificates"
  cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
  chroot "$root" update-ca-certificates >/dev/null
fi
trust_env=()
for v in NODE_EXTRA_CA_CERTS SSL_CERT_FILE SSL_CERT_DIR CURL_CA_BUNDLE REQUESTS_CA_BUNDLE PIP_CERT \
         GIT_SSL_CAINFO http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY; do
  [ -n "${!v:-}" ] && trust_env+=("$v=${!v}")
done
log "$(git log -1 --format='%h %s' "$commit") in $root/src"

# The inner shell runs as the CI does: as root, CI=true, a clean environment.
inner="cd /src && make setup && make test SUITES='$suites' FUZZ_SECONDS=$fuzz_seconds"
t0=$SECONDS
rc=0
unshare --mount --pid --fork --propagation private -- /bin/bash -euc '
  r=$1
  # The new root must be a mount point: `ip netns exec` remounts "/" as a
  # slave, which fails on a plain directory.
  mount --bind "$r" "$r"
  mount --rbind /dev "$r/dev"
  mount -t proc proc "$r/proc"
  mount --rbind /sys "$r/sys"
  mount -t tmpfs tmpfs "$r/tmp"
  mount -t tmpfs tmpfs "$r/run"
  inner=$2
  shift 2
  exec chroot "$r" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/root LANG=C.UTF-8 CI=true "$@" /bin/bash -c "$inner"
' check-fresh "$root" "$inner" "${trust_env[@]}" || rc=$?
log "make setup && make test SUITES=\"$suites\": exit $rc after $((SECONDS - t0)) s"
exit "$rc"
