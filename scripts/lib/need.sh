# SPDX-License-Identifier: Apache-2.0
# Sourced by the project's scripts: each checks, before it does anything,
# that the tools it calls are there, and names the Debian package of each
# one that is not (`make setup` installs them all).
#   need TOOL PACKAGE [TOOL PACKAGE ...]   a command on PATH
#   need_file PATH PACKAGE                 a file (a library, a runtime)
#   need_py MODULE PACKAGE                 a python3 module
#   need_done                              exits 1 when anything was missing
# The caller's name prefixes each line: "build-standin: mmdebstrap not found: ...".
_need_missing=0
_need_miss() { # WHAT PACKAGE
  echo "${0##*/}: $1 not found: install the Debian package $2 (make setup does)" >&2
  _need_missing=1
}
need() {
  while [ $# -ge 2 ]; do
    command -v "$1" >/dev/null 2>&1 || _need_miss "$1" "$2"
    shift 2
  done
}
need_file() {
  [ -e "$1" ] || _need_miss "$1" "$2"
}
need_py() {
  python3 -c "import $1" 2>/dev/null || _need_miss "python3 module $1" "$2"
}
need_done() {
  [ "$_need_missing" = 0 ] || exit 1
}
