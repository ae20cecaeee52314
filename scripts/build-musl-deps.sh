#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Builds the static musl libraries the guest programs link (libevent,
# protobuf-c, libnl-3 + libnl-route-3) from Debian's source packages into
# PREFIX (default build/musl), plus PREFIX/kinc: symlinks to the kernel
# headers musl-gcc lacks.  Debian ships these libraries only as glibc builds.
# Each library is skipped when its archive is already installed; PREFIX/.done
# marks the whole set complete (the Makefile's guest targets depend on it).
set -euo pipefail
. "$(dirname "$0")/lib/need.sh"
need apt-get apt musl-gcc musl-tools autoreconf autoconf automake automake libtoolize libtool \
  make make flex flex bison bison dpkg-source dpkg-dev file file
need_done

prefix=${1:-build/musl}
mkdir -p "$prefix"
prefix=$(cd "$prefix" && pwd)
src=$prefix/src
jobs=${JOBS:-2}
mkdir -p "$src" "$prefix/include" "$prefix/lib"

log() { echo "build-musl-deps: $*" >&2; }

# musl-gcc's include path deliberately has no kernel headers; link in only
# these three trees so no glibc header can leak into a musl build.
mkdir -p "$prefix/kinc"
ln -sfn /usr/include/linux "$prefix/kinc/linux"
ln -sfn /usr/include/x86_64-linux-gnu/asm "$prefix/kinc/asm"
ln -sfn /usr/include/asm-generic "$prefix/kinc/asm-generic"

export CC="musl-gcc -static"
export CFLAGS="-O2 -g -fPIC -I$prefix/kinc"
export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
# Keep glibc's pkg-config files out of the musl world.
export PKG_CONFIG_LIBDIR=$prefix/lib/pkgconfig

# fetch SRCPKG: apt-get source into $src/SRCPKG, prints the unpacked dir.
fetch() {
  local pkg=$1 dir
  mkdir -p "$src/$pkg"
  dir=$(find "$src/$pkg" -mindepth 1 -maxdepth 1 -type d | head -n1)
  if [ -z "$dir" ]; then
    log "apt-get source $pkg"
    (cd "$src/$pkg" && apt-get -o APT::Sandbox::User=root source -q "$pkg" >&2)
    dir=$(find "$src/$pkg" -mindepth 1 -maxdepth 1 -type d | head -n1)
  fi
  [ -n "$dir" ] || { log "apt-get source $pkg gave no tree"; exit 1; }
  echo "$dir"
}

# build NAME ARCHIVE SRCPKG CONFIGURE-ARGS...: configure, make, make install.
build() {
  local name=$1 archive=$2 pkg=$3 dir t0
  shift 3
  if [ -f "$prefix/lib/$archive" ]; then
    log "$name: already built"
    return
  fi
  # Incomplete until the link test below passes.
  rm -f "$prefix/.done"
  dir=$(fetch "$pkg")
  t0=$SECONDS
  log "$name: building in $dir"
  (
    cd "$dir"
    # Debian's patches touch Makefile.am/configure.ac; regenerate as dh_autoreconf does.
    autoreconf -fi >"$src/$name.autoreconf.log" 2>&1 || { tail -30 "$src/$name.autoreconf.log" >&2; exit 1; }
    ./configure --prefix="$prefix" --disable-shared --enable-static "$@" >"$src/$name.configure.log" 2>&1 ||
      { tail -30 "$src/$name.configure.log" >&2; exit 1; }
    nice make -j"$jobs" >"$src/$name.make.log" 2>&1 || { tail -30 "$src/$name.make.log" >&2; exit 1; }
    make install >"$src/$name.install.log" 2>&1 || { tail -30 "$src/$name.install.log" >&2; exit 1; }
  )
  log "$name: done in $((SECONDS - t0)) s"
}

build libevent libevent_core.a libevent \
  --disable-openssl --disable-samples --disable-libevent-regress --disable-debug-mode
build protobuf-c libprotobuf-c.a protobuf-c --disable-protoc
build libnl3 libnl-route-3.a libnl3 --disable-cli --disable-debug --disable-pthreads

# Prove each library links into a static musl program.
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
cat >"$t/t.c" <<'C'
#include <event2/event.h>
#include <protobuf-c/protobuf-c.h>
#include <netlink/netlink.h>
#include <netlink/route/link.h>
#include <linux/vm_sockets.h>
#include <stdio.h>
int
main (void)
{
  struct event_base *b = event_base_new ();
  struct nl_sock *s = nl_socket_alloc ();
  struct rtnl_link *l = rtnl_link_alloc ();
  printf ("%s %s %d %d\n", event_get_version (), protobuf_c_version (),
          s != NULL, l != NULL);
  rtnl_link_put (l);
  nl_socket_free (s);
  event_base_free (b);
  return 0;
}
C
musl-gcc -static -I"$prefix/include" -I"$prefix/include/libnl3" -I"$prefix/kinc" -o "$t/t" "$t/t.c" \
  -L"$prefix/lib" -levent_core -lprotobuf-c -lnl-route-3 -lnl-3
file "$t/t" | grep -q 'statically linked' || { log "test program is not static"; exit 1; }
log "link test: $("$t/t")"
touch "$prefix/.done"
log "ready in $prefix"
