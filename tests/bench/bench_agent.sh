#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Starts an agent (host build, --test-mode) on 127.0.0.1 and runs bench_agent
# against it.  Usage: bench_agent.sh AGENT_BIN BENCH_BIN [MiB] [ROUNDS]
# Its closing JSON line also goes to build/test-results/bench-agent.json
# (or $CHVM_BENCH_JSON).
set -euo pipefail
agent=${1:?agent binary}; bench=${2:?bench binary}; shift 2
dir=$(mktemp -d)
trap 'kill "$apid" 2>/dev/null; wait "$apid" 2>/dev/null; rm -rf "$dir"' EXIT
token=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
echo "$token" > "$dir/token"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkfifo "$dir/log"
"$agent" --tcp-port "$port" --tcp-bind 127.0.0.1 --token-file "$dir/token" --test-mode 2>"$dir/log" &
apid=$!
# Wait for the agent's "listening" line (bounded), then drain its log.
exec 3<"$dir/log"
while IFS= read -r -t 10 line <&3; do
  [[ $line == *"listening on tcp"* ]] && break
done
cat <&3 >/dev/null &
json=${CHVM_BENCH_JSON:-$(cd "$(dirname "$0")/../.." && pwd)/build/test-results/bench-agent.json}
"$bench" "127.0.0.1:$port" "$token" "$@" | tee "$dir/out"
mkdir -p "$(dirname "$json")"
tail -n 1 "$dir/out" >"$json"
