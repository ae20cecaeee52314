#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# host-tool/'s folders are layered (docs/DESIGN.md, "The map"): a file may
# include headers of its own folder and of folders below it, never above,
# and names each host-tool header with its folder ("state/vmstate.h").
# Prints every include that breaks this and exits 1; run by `make lint`.
set -euo pipefail
cd "$(dirname "$0")/.."

# Bottom to top; folders on one line are peers and may not include each other.
LAYERS=(
  "sys"
  "cdp agent image"
  "vmm"
  "state"
  "net"
  "vm"
  "supervisor"
  "cli"
)
declare -A rank
for i in "${!LAYERS[@]}"; do
  for d in ${LAYERS[$i]}; do rank[$d]=$i; done
done

bad=0
for d in host-tool/*/; do
  d=${d%/}; d=${d#host-tool/}
  [ -n "${rank[$d]+x}" ] || { echo "check-layers: host-tool/$d is in no layer (add it to $0)"; bad=1; }
done
for f in host-tool/*.[ch]; do
  [ -e "$f" ] && { echo "check-layers: $f: every file lives in a folder of a layer"; bad=1; }
done

while IFS=: read -r file line inc; do
  from=${file#host-tool/}; from=${from%%/*}
  inc=${inc#*\"}; inc=${inc%\"*}
  if [[ $inc != */* ]]; then
    # a header of common/ or generated code, or one named without its folder
    if [ -e "host-tool/$from/$inc" ] || compgen -G "host-tool/*/$inc" >/dev/null; then
      echo "$file:$line: \"$inc\": name the folder (\"<folder>/$inc\")"; bad=1
    fi
    continue
  fi
  to=${inc%%/*}
  [ -n "${rank[$to]+x}" ] || { echo "$file:$line: \"$inc\": unknown folder"; bad=1; continue; }
  if [ "$to" != "$from" ] && [ "${rank[$to]}" -ge "${rank[$from]}" ]; then
    echo "$file:$line: $from/ includes \"$inc\", which is not below it"; bad=1
  fi
done < <(grep -n '^#include "' host-tool/*/*.[ch] | sed 's/^\([^:]*\):\([0-9]*\):/\1:\2:/')

[ "$bad" = 0 ] && echo "check-layers: host-tool/ includes point only down"
exit "$bad"
