#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Prepares a fresh Debian 12 host for building and testing chvm: the Debian
# packages, the npm packages of package.json, and the static musl libraries
# (scripts/build-musl-deps.sh).  Safe to rerun: each step skips what is done.
# Installing packages needs root; as non-root that step only checks.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

PACKAGES=(
  # toolchains: host (glibc), guest (static musl), fuzzing (clang + libFuzzer)
  build-essential musl-tools clang libclang-rt-14-dev lld pkg-config autoconf automake libtool flex bison dpkg-dev file
  # host-tool libraries, protocol compiler, unit tests
  libcmocka-dev libcurl4-openssl-dev libjson-c-dev protobuf-c-compiler libprotobuf-c-dev libevent-dev
  # lint
  cppcheck clang-format clang-tools
  # guest kernel + initramfs
  kmod lz4 xz-utils zstd cpio busybox-static
  # images: build (mmdebstrap), OCI handling (skopeo, umoci), root filesystems
  mmdebstrap skopeo umoci e2fsprogs erofs-utils
  # VMs and integration tests
  qemu-system-x86 qemu-utils iproute2 nftables openssh-client openssh-server socat curl jq
  python3 python3-pytest chromium ca-certificates
  # the containerd shim's integration test (Debian's containerd and ctr;
  # CNI's bridge, host-local and loopback in /usr/lib/cni for its CRI pod)
  containerd containernetworking-plugins
  # make report: plots (Debian's matplotlib)
  python3-matplotlib
)

log() { echo "setup-deps: $*" >&2; }

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# Node: take Debian's nodejs/npm only when no node toolchain is on PATH
# (a host may carry another distribution of node whose npm is built in).
command -v npm >/dev/null || missing+=(nodejs npm)

# apt-get source (scripts/build-musl-deps.sh) needs the source indexes: the
# deb822 file of Debian 12's images, or else a one-line-style sources.list.
sources=/etc/apt/sources.list.d/debian.sources
[ -f "$sources" ] || sources=/etc/apt/sources.list
need_src=false
if [ -f "$sources" ] && ! grep -qE '^(Types:.*deb-src|deb-src )' "$sources"; then
  need_src=true
fi

if [ ${#missing[@]} -gt 0 ] || $need_src; then
  if [ "$(id -u)" != 0 ]; then
    log "missing packages (run as root to install): ${missing[*]}"
    $need_src && log "and $sources lacks deb-src (needed by apt-get source)"
    exit 1
  fi
  if $need_src; then
    log "adding deb-src to $sources"
    if [ "${sources##*.}" = sources ]; then
      sed -i 's/^Types: deb$/Types: deb deb-src/' "$sources"
    else
      sed -n 's/^deb \(.*\)/deb-src \1/p' "$sources" >>"$sources"
    fi
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing: ${missing[*]}"
    apt-get install -y -q --no-install-recommends "${missing[@]}"
  fi
else
  log "Debian packages: all present"
fi

# CDP clients for the integration tests (playwright-core, puppeteer-core); the browser they drive is Debian's
# /usr/bin/chromium (playwright's own downloads are not reachable).
# npm ci (exactly the lock file) starts by deleting node_modules, so only
# CI and first installs use it; a developer's rerun updates in place.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 PUPPETEER_SKIP_DOWNLOAD=1
if [ -f package-lock.json ] && { [ -n "${CI:-}" ] || [ ! -d node_modules ]; }; then
  npm ci --no-audit --no-fund --loglevel=error
else
  npm install --no-audit --no-fund --loglevel=error
fi

# crictl (the CRI pod test of the containerd shim): Debian 12 has no
# package, so it is built from the Go module proxy with the Go on PATH or
# /usr/local/go (about 90 s); skipped when a crictl is installed.
CRICTL_VERSION=v1.34.0
if command -v crictl >/dev/null; then
  log "crictl: $(command -v crictl) present"
elif [ "$(id -u)" != 0 ]; then
  log "crictl missing (run as root to build it into /usr/local/bin)"
else
  go=$(command -v go || echo /usr/local/go/bin/go)
  if [ -x "$go" ]; then
    log "building crictl $CRICTL_VERSION with $go into /usr/local/bin"
    GOBIN=/usr/local/bin "$go" install "sigs.k8s.io/cri-tools/cmd/crictl@$CRICTL_VERSION" \
      || log "crictl $CRICTL_VERSION did not build (the CRI pod test skips)"
  else
    log "crictl missing and no Go to build it (the CRI pod test skips)"
  fi
fi

scripts/build-musl-deps.sh build/musl
