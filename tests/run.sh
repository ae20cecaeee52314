#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Runs every test suite and ends with one line: "N passed, N failed, N skipped".
#   build        make all initrd test-prereqs (1 test)
#   static       make check-static (guest binaries are static)
#   unit         builds and runs each tests/unit/test_*.c (cmocka, TAP), one count per case
#   fuzz         builds and runs each tests/fuzz/fuzz_*.c for FUZZ_SECONDS (default 20) on its
#                corpus (one count each)
#   integration  python3 -m pytest tests/integration -rs (junit XML counts), but for:
#   kvmhost      tests/integration/test_kvmhost.py on its own: chvm with each CH build of
#                ../shared/tools inside a KVM host under QEMU (skips with one line without them)
# SUITES picks some ("unit fuzz"); exit status 1 when anything failed.
set -uo pipefail

cd "$(dirname "$0")/.."
SUITES=${SUITES:-build static unit fuzz integration kvmhost}
FUZZ_SECONDS=${FUZZ_SECONDS:-20}
UNIT_TIMEOUT=${UNIT_TIMEOUT:-120}
res=build/test-results
mkdir -p "$res"

# What the chosen suites call, each named with its Debian package.
. scripts/lib/need.sh
need make make cc gcc timeout coreutils
want() { [[ " $SUITES " == *" $1 "* ]]; }
want unit && need_file /usr/include/cmocka.h libcmocka-dev
if want fuzz; then
  need clang clang
  # clang links libFuzzer from its resource dir; Debian ships it apart from clang.
  command -v clang >/dev/null &&
    need_file "$(clang -print-resource-dir)/lib/linux/libclang_rt.fuzzer-x86_64.a" libclang-rt-14-dev
fi
if want integration || want kvmhost; then
  need python3 python3
  command -v python3 >/dev/null && need_py pytest python3-pytest
fi
need_done

passed=0 failed=0 skipped=0
failures=()

ok() { passed=$((passed + 1)); echo "PASS $1"; }
ko() { failed=$((failed + 1)); failures+=("$1"); echo "FAIL $1${2:+: $2}"; }
banner() { echo; echo "==== $1 ($(date -u +%H:%M:%S))"; }

if want build; then
  banner build
  if nice make -j2 all initrd test-prereqs >"$res/build.log" 2>&1; then ok "make all initrd test-prereqs"
  else tail -20 "$res/build.log"; ko "make all initrd test-prereqs" "see $res/build.log"; fi
fi

# -k: one broken test must not hide the others; each one that did not build
# counts as a failure below.
build_tests() {
  nice make -k -j2 "$1" >"$res/build-$1.log" 2>&1 || grep -E 'error|Error' "$res/build-$1.log" | head -20
}

if want static; then
  banner static
  if make -s check-static >"$res/static.log" 2>&1; then ok "check-static"
  else cat "$res/static.log"; ko "check-static"; fi
fi

if want unit; then
  banner unit
  build_tests unit-tests
  for src in tests/unit/test_*.c; do
    [ -e "$src" ] || continue
    name=$(basename "$src" .c)
    bin=build/tests/unit/$name
    # make -q: a binary that is not up to date did not build this time.
    if [ ! -x "$bin" ] || ! make -q "$bin" 2>/dev/null; then
      ko "$name" "did not build"
      continue
    fi
    log=$res/unit-$name.log
    CMOCKA_MESSAGE_OUTPUT=tap ASAN_OPTIONS=detect_leaks=1 timeout "$UNIT_TIMEOUT" "$bin" >"$log" 2>&1
    rc=$?
    plan=$(sed -n 's/^1\.\.\([0-9]*\).*/\1/p' "$log" | head -n1)
    # cmocka's TAP marks a skipped case "not ok N # SKIP".
    s=$(grep -cE '^(not )?ok [0-9]+.*# ?SKIP' "$log")
    p=$(grep -E '^ok [0-9]+' "$log" | grep -cvE '# ?SKIP')
    f=$(grep -E '^not ok [0-9]+' "$log" | grep -cvE '# ?SKIP')
    # A crash (sanitizer report, timeout) loses the remaining cases.
    lost=$(( ${plan:-0} - p - s - f ))
    [ "$lost" -gt 0 ] && f=$((f + lost))
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
    passed=$((passed + p)) skipped=$((skipped + s)) failed=$((failed + f))
    if [ "$f" -gt 0 ]; then
      failures+=("$name")
      echo "FAIL $name: $p passed, $f failed (exit $rc)"
      grep -E '^not ok|ERROR|error:|Sanitizer' "$log" | head -20
    else
      echo "PASS $name: $p passed$([ "$s" -gt 0 ] && echo ", $s skipped")"
    fi
  done
fi

if want fuzz; then
  banner "fuzz (${FUZZ_SECONDS} s each)"
  build_tests fuzz-targets
  for src in tests/fuzz/fuzz_*.c; do
    [ -e "$src" ] || continue
    name=$(basename "$src" .c)
    short=${name#fuzz_}
    bin=build/tests/fuzz/$name
    if [ ! -x "$bin" ] || ! make -q "$bin" 2>/dev/null; then
      ko "$name" "did not build"
      continue
    fi
    seeds=tests/fuzz/corpus/$short
    work=tests/fuzz/corpus-run/$short
    mkdir -p "$work" "$res/fuzz-$short"
    args=("$work")
    [ -d "$seeds" ] && args+=("$seeds")
    log=$res/fuzz-$short.log
    if nice "$bin" -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 \
         -artifact_prefix="$res/fuzz-$short/" -print_final_stats=1 "${args[@]}" >"$log" 2>&1; then
      ok "$name ($(grep -o 'Done [0-9]* runs' "$log" | tail -1))"
    else
      tail -30 "$log"
      ko "$name" "crash input in $res/fuzz-$short/"
    fi
  done
fi

# One pytest process per suite; its junit XML gives the counts.
pytest_suite() {
  local name=$1 xml=$res/pytest-$1.xml rc t f e s
  shift
  banner "$name"
  rm -f "$xml"
  python3 -m pytest "$@" -rs -v --junitxml="$xml" -p no:cacheprovider
  rc=$?
  if [ -f "$xml" ]; then
    read -r t f e s < <(python3 - "$xml" <<'PY'
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
tot = [sum(int(x.get(k, 0)) for x in suites) for k in ("tests", "failures", "errors", "skipped")]
print(*tot)
PY
    )
    passed=$((passed + t - f - e - s)) failed=$((failed + f + e)) skipped=$((skipped + s))
    [ $((f + e)) -gt 0 ] && failures+=("$name ($((f + e)))")
  elif [ "$rc" -ne 5 ]; then # 5: no tests collected
    ko "$name" "pytest exit $rc, no report"
  fi
}

want integration && pytest_suite integration tests/integration --ignore=tests/integration/test_kvmhost.py
# Alone, with nothing else running: nested emulation is slow and its
# guests' timing suffers from any other load.
want kvmhost && pytest_suite kvmhost --durations=0 tests/integration/test_kvmhost.py

echo
[ ${#failures[@]} -gt 0 ] && echo "failed: ${failures[*]}"
echo "$passed passed, $failed failed, $skipped skipped" | tee "$res/summary"
[ "$failed" -eq 0 ]
