#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Idle standby and wake through the CDP endpoint: one VM on the
QEMU backend with a tap in a network namespace of its own, `--idle-standby
5`, one playwright-core client (npm) on the endpoint.  Each cycle: the
client stays idle until `chvm ps` shows standby, then evaluates on the same
page over the same WebSocket; the answer must be right.  Prints each cycle
and the wake latency (the client's send to answer, and the supervisor's
first byte in to first byte out) as p50/p95 with the part of it spent in
`chvm restore`, and the client-visible errors (must be 0).

Usage: bench_cdp_wake.py [CYCLES]   (default 50; about 20 s a cycle here)
Results also go to build/test-results/cdp-wake.json.
"""
import json
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))  # the chvmtest package
from chvmtest import cli, net, paths, prereq  # noqa: E402
from chvmtest.cdp import CMD_TIMEOUT, Session  # noqa: E402

IDLE_S = 5


def pct(v, p):
    s = sorted(v)
    return s[min(len(s) - 1, int(round(p * (len(s) - 1))))] if s else 0


def main():
    cycles = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1] else 50
    missing = prereq.missing(*prereq.CHVM_TAP, *prereq.CDP_CLIENTS)
    if missing:
        print("bench_cdp_wake: skipped: missing %s" % missing)
        return 0
    ns = net.Netns("chvm-bench-%d" % os.getpid(), lo_up=True)
    ns.create()
    tmp = tempfile.mkdtemp(prefix="chvm-bench-cdp-", dir="/var/tmp")
    env = cli.state_env(tmp)
    vm = cli.Vm(name="benchvm", env=env)
    client_ms, errors, rows = [], 0, []
    try:
        out = json.loads(cli.chvm(env, "run", "--name", vm["name"], "--net", "tap", "--netns", ns.name,
                                  "--memory", "2G", "--idle-standby", str(IDLE_S), "--json",
                                  timeout=cli.BOOT_TIMEOUT).stdout)
        s = Session("playwright", out["endpoint"])
        try:
            s.cmd("open")
            for i in range(cycles):
                t_idle = time.monotonic()
                vm.wait_status("standby", IDLE_S + 300)
                idle_s = time.monotonic() - t_idle
                t = time.monotonic()
                s.p.stdin.write("eval %d*7\n" % i)
                s.p.stdin.flush()
                r = s.read(CMD_TIMEOUT)
                ms = (time.monotonic() - t) * 1000
                ok = r.get("value") == i * 7 and "error" not in r
                errors += 0 if ok else 1
                client_ms.append(ms)
                rows.append({"cycle": i + 1, "idle_to_standby_s": idle_s, "answer_ms": ms, "ok": ok})
                print("cycle %2d: standby after %.1f s idle, answer %.0f ms%s"
                      % (i + 1, idle_s, ms, "" if ok else " WRONG: %s" % r), flush=True)
            st = vm.supervisor()
        finally:
            s.close()
        errors += len(s.events)
        wake, rest = st["wake_ms"][-cycles:], st["restore_ms"][-cycles:]
        share = [r / w for r, w in zip(rest, wake) if w > 0]
        res = {"cycles": cycles, "errors": errors, "events": s.events,
               "client_p50_ms": pct(client_ms, 0.5), "client_p95_ms": pct(client_ms, 0.95),
               "wake_p50_ms": pct(wake, 0.5), "wake_p95_ms": pct(wake, 0.95),
               "restore_p50_ms": pct(rest, 0.5), "restore_p95_ms": pct(rest, 0.95),
               "restore_share_p50": pct(share, 0.5), "rows": rows,
               "wake_ms": wake, "restore_ms": rest}  # per cycle, for make report
        print("\n%d idle/wake cycles, %d client-visible errors" % (cycles, errors))
        print("wake latency, client send -> answer: p50 %.0f ms, p95 %.0f ms"
              % (res["client_p50_ms"], res["client_p95_ms"]))
        print("wake latency, supervisor first byte in -> first byte out: p50 %d ms, p95 %d ms"
              % (res["wake_p50_ms"], res["wake_p95_ms"]))
        print("of it in chvm restore: p50 %d ms, p95 %d ms (p50 share %.0f%%)"
              % (res["restore_p50_ms"], res["restore_p95_ms"], 100 * res["restore_share_p50"]))
        os.makedirs(paths.TEST_RESULTS, exist_ok=True)
        with open(os.path.join(paths.TEST_RESULTS, "cdp-wake.json"), "w") as f:
            json.dump(res, f, indent=1)
        return 0 if errors == 0 else 1
    finally:
        cli.chvm(env, "rm", "-f", vm["name"], check=False)
        ns.delete()


if __name__ == "__main__":
    sys.exit(main())
