#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Builds the stand-in Chromium image (docs: chromium-images.md "Stand-in
# image") from Debian packages: mmdebstrap -> one rootfs tar -> an OCI image
# layout OUT/oci tagged `latest` (umoci), plus OUT/docker-archive.tar (skopeo).
# Cached by a hash of the recipe (this script, the entry point and the live
# view in standin/, the package list): an unchanged recipe is not rebuilt.
set -euo pipefail
. "$(dirname "$0")/lib/need.sh"
need mmdebstrap mmdebstrap umoci umoci skopeo skopeo sha256sum coreutils
need_done

out=${1:-build/images/standin}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)

SUITE=bookworm
MIRRORS=(
  "deb http://deb.debian.org/debian $SUITE main"
  "deb http://deb.debian.org/debian $SUITE-updates main"
  "deb http://deb.debian.org/debian-security $SUITE-security main"
)
# python3: the live view's signalling server (standin/live), in neko's place.
PACKAGES=chromium,xvfb,openssh-server,iproute2,socat,fonts-liberation,ca-certificates,dbus-x11,procps,python3
ENTRYPOINT=$here/standin/standin-entrypoint
LIVE=$here/standin/live
ENV=(
  PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
  DISPLAY_NUM=1 WIDTH=1280 HEIGHT=800 CHROMIUM_FLAGS=
)

log() { echo "build-standin: $*" >&2; }

recipe=$( { cat "$0" "$ENTRYPOINT" "$LIVE"/*; } | sha256sum | cut -d' ' -f1)
if [ -f "$out/recipe.sha256" ] && [ "$(cat "$out/recipe.sha256")" = "$recipe" ] &&
   [ -f "$out/oci/index.json" ] && [ -f "$out/docker-archive.tar" ]; then
  log "up to date ($out, recipe ${recipe:0:12})"
  exit 0
fi

work=$(mktemp -d "$out/.build.XXXXXX")
trap 'rm -rf "$work"' EXIT
rm -f "$out/recipe.sha256"

t0=$SECONDS
log "mmdebstrap $SUITE + $PACKAGES"
# Docs, man pages and locales are not needed in a browser VM; apt lists and
# caches are dropped (mmdebstrap's cleanup), and so are the ssh host keys the
# openssh-server postinst generates: every VM must get its own.
nice mmdebstrap --variant=minbase --mode=root --format=tar \
  --include="$PACKAGES" \
  --aptopt='APT::Install-Recommends "false"' \
  --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  --dpkgopt='path-include=/usr/share/locale/locale.alias' \
  --dpkgopt='path-exclude=/usr/share/info/*' \
  --customize-hook="install -m 0755 '$ENTRYPOINT' \"\$1/usr/local/bin/standin-entrypoint\"" \
  --customize-hook="install -m 0755 '$LIVE/standin-live' \"\$1/usr/local/bin/standin-live\"" \
  --customize-hook="install -D -m 0644 -t \"\$1/usr/local/share/standin-live\" '$LIVE/viewer.html' '$LIVE/sender.html'" \
  --customize-hook='rm -f "$1"/etc/ssh/ssh_host_*' \
  --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/* "$1"/var/cache/debconf/*-old "$1"/var/log/*.log "$1"/var/log/apt/*' \
  --customize-hook='test -x "$1"/usr/bin/chromium && test -x "$1"/usr/bin/Xvfb && test -x "$1"/usr/bin/socat && test -x "$1"/usr/bin/python3' \
  "$SUITE" "$work/rootfs.tar" "${MIRRORS[@]}" >&2
log "mmdebstrap: $((SECONDS - t0)) s, tar $(du -m "$work/rootfs.tar" | cut -f1) MiB"

t1=$SECONDS
cd "$work"
umoci init --layout oci
umoci new --image oci:latest
umoci raw add-layer --image oci:latest rootfs.tar
cfg=(--config.entrypoint /usr/local/bin/standin-entrypoint --config.workingdir / --config.user root
     --author chvm --os linux --architecture amd64 --clear=config.cmd)
for e in "${ENV[@]}"; do cfg+=(--config.env "$e"); done
umoci config --image oci:latest "${cfg[@]}"
umoci gc --layout oci
skopeo copy --quiet oci:oci:latest docker-archive:docker-archive.tar:chvm/standin:latest
log "OCI + docker archive: $((SECONDS - t1)) s"
cd - >/dev/null

rm -rf "$out/oci" "$out/docker-archive.tar"
mv "$work/oci" "$out/oci"
mv "$work/docker-archive.tar" "$out/docker-archive.tar"
echo "$recipe" >"$out/recipe.sha256"
log "ready: $out/oci ($(du -sm "$out/oci" | cut -f1) MiB), $out/docker-archive.tar"
