#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The standby/restore soak: CYCLES standby/restore cycles of one VM with
`--overlay disk` on a tap, while

  - a guest process appends a counter line (1, 2, 3, ...) to a file on the
    overlay disk once a second, and
  - a CDP client (playwright-core, tests/soak/cdp_ticker.js) evaluates an
    expression in the browser's page once a second, over one connection
    through the tap for the whole soak.

After each restore the whole counter file is read back through the agent:
every line written before the standby must be there, and the lines must be
1..N with no gap or repeat.  Every evaluation must answer, with the right
value.  Printed at the end (and kept in build/test-results/soak-WHERE.json):
cycles, counter lines checked, lines lost, CDP evaluations and errors, the
standby and restore times and how long the open CDP connection took to
answer after each restore (p50/p95/max).  Exit 1 on any lost line or CDP
error, 2 when a prerequisite is missing.

  soak.py qemu [CYCLES]     QEMU backend on this host, tap in a network
                            namespace the soak makes (make soak)
  soak.py kvmhost [CYCLES]  CH inside the KVM host (tests/integration/
                            chvmtest/kvmhost.py), CHVM_SOAK_CH=v48.0 and
                            CHVM_SOAK_MEMORY=1G by default
                            (make soak-kvmhost)

CYCLES defaults to 100 (CHVM_SOAK_CYCLES).
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))  # the chvmtest package
from chvmtest import cli, kvmhost, net, paths, prereq  # noqa: E402

TICKER = os.path.join(HERE, "cdp_ticker.js")
RESULTS = paths.TEST_RESULTS
COUNTER = "/var/lib/chvm-soak/counter"
# Detached from the agent's exec (its pipes closed, so the exec ends at once).
START_COUNTER = ("mkdir -p %s && setsid -f sh -c 'i=0; while :; do i=$((i+1)); echo $i >> %s; "
                 "sleep 1; done' </dev/null >/dev/null 2>&1" % (os.path.dirname(COUNTER), COUNTER))
CDP = 9222


def log(msg):
    print("soak: " + msg, flush=True)


class QemuTarget:
    """The QEMU backend here, on a tap in a namespace made for the soak."""
    name = "soak"
    memory = "2G"

    def __init__(self):
        self.netns = net.Netns("chvm-soak-%d" % os.getpid(), lo_up=True)
        self.ns = self.netns.name
        self.tmp = tempfile.mkdtemp(prefix="chvm-soak-")
        self.env = cli.state_env(self.tmp)
        self.agent_cmd = None

    @staticmethod
    def missing():
        return prereq.missing(*prereq.CHVM_QEMU, prereq.root)

    def setup(self):
        self.netns.create()
        self.chvm("run", "--name", self.name, "--net", "tap", "--netns", self.ns,
                  "--overlay", "disk", "--memory", self.memory, "--cpus", "2",
                  "-p", "127.0.0.1:%d:%d" % (CDP, CDP), timeout=cli.BOOT_TIMEOUT)
        self.agent_cmd = ["ip", "netns", "exec", self.ns] + cli.agent_argv(self.env, self.name)

    def chvm(self, *args, timeout=600):
        return cli.chvm(self.env, *args, timeout=timeout).stdout

    def agent_sh(self, script):
        p = subprocess.run(self.agent_cmd + ["exec", "--", "sh", "-c", script], capture_output=True,
                           text=True, timeout=120)
        if p.returncode != 0:
            raise AssertionError("agent exec %r: rc=%d %s" % (script, p.returncode, p.stderr))
        return p.stdout

    def ticker(self):
        return ["ip", "netns", "exec", self.ns, "node", TICKER, "http://127.0.0.1:%d" % CDP]

    def teardown(self):
        cli.chvm(self.env, "rm", "-f", self.name, check=False)
        self.netns.delete()
        subprocess.run(["rm", "-rf", self.tmp])


class KvmhostTarget:
    """CH with a real Linux guest, inside the KVM host."""
    name = "soak"
    state = "/var/lib/chvm"

    def __init__(self):
        self.version = os.environ.get("CHVM_SOAK_CH", "v48.0")
        self.env = {"CLOUD_HYPERVISOR": "/opt/cloud-hypervisor/%s/cloud-hypervisor" % self.version}
        if int(self.version.lstrip("v").split(".")[0]) < 49:
            self.env["CHVM_CH_SECCOMP"] = "log"  # see the tools' README
        self.memory = os.environ.get("CHVM_SOAK_MEMORY", "1G")
        self.h = None
        self.run_dir = tempfile.mkdtemp(prefix="chvm-soak-kvmhost-")

    def missing(self):
        m = kvmhost.missing_prerequisites()
        if m:
            return m
        if self.version not in kvmhost.ch_versions():
            return "CH %s in %s" % (self.version, kvmhost.CH_TOOLS)
        return None

    def setup(self):
        kvmhost.build_base()
        disk, _ = kvmhost.make_disk(self.run_dir)
        self.h = kvmhost.KvmHost(self.run_dir, forwards=[CDP])
        self.h.boot(disk)
        self.chvm("run", "--backend", "ch", "--name", self.name, "--memory", self.memory, "--cpus", "1",
                  "--overlay", "disk", "-e", "CHROMIUM_FLAGS=--no-zygote",
                  "-p", "10.0.2.15:%d:%d" % (CDP, CDP), "--timeout", "840", timeout=900)

    def chvm(self, *args, timeout=900):
        return self.h.run(["chvm", *args], timeout=timeout, env=self.env)["out"]

    def agent_sh(self, script):
        return self.h.run(["chvm", "agent", "--socket", "%s/vms/%s/vsock.sock" % (self.state, self.name),
                           "--port", "1024", "--timeout", "120000", "exec", "--", "sh", "-c", script],
                          timeout=150)["out"]

    def ticker(self):
        return ["node", TICKER, "http://127.0.0.1:%d" % self.h.port[CDP], "600000"]

    def teardown(self):
        if self.h is not None:
            if self.h.sock is not None:
                self.h.run(["chvm", "rm", "-f", self.name], timeout=120, check=False)
            self.h.shutdown()
        subprocess.run(["rm", "-rf", self.run_dir])


class Ticker:
    """The CDP client's lines, each stamped with this process's clock."""

    def __init__(self, argv):
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.ok = 0
        self.errors = []
        self.last_ok = 0.0
        self.stopping = False
        self.cv = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            try:
                ev = json.loads(line)
            except ValueError:
                ev = {"i": -1, "ok": False, "error": "bad line: " + line.strip()}
            with self.cv:
                if ev.get("ok"):
                    if ev.get("i", 0) > 0:
                        self.ok += 1
                    self.last_ok = time.monotonic()
                else:
                    self.errors.append(ev)
                    log("CDP error: %s" % ev)
                self.cv.notify_all()
        with self.cv:
            # Its end is an error unless stop() asked for it.
            if (self.proc.poll() is None or self.proc.wait() != 0) and not self.stopping:
                self.errors.append({"i": -1, "ok": False, "error": "client exited: %s"
                                    % self.proc.stderr.read()[-2000:]})
            self.cv.notify_all()

    def wait_ok_after(self, t, timeout):
        """Seconds from t to the first answer after it."""
        deadline = time.monotonic() + timeout
        with self.cv:
            while self.last_ok <= t:
                if self.proc.poll() is not None:
                    raise AssertionError("the CDP client ended: %s" % self.errors[-1:])
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("no CDP answer %d s after the restore" % timeout)
                self.cv.wait(left)
            return self.last_ok - t

    def stop(self):
        with self.cv:
            self.stopping = True
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def counter_lines(t):
    out = t.agent_sh("cat %s" % COUNTER)
    return [int(x) for x in out.split()]


def last_counter(t):
    out = t.agent_sh("tail -n 1 %s" % COUNTER).strip()
    return int(out) if out else 0


def summary(xs):
    if not xs:
        return {}
    s = sorted(xs)
    return {"p50": round(statistics.median(s), 2), "p95": round(s[min(len(s) - 1, int(len(s) * 0.95))], 2),
            "max": round(s[-1], 2), "n": len(s)}


def ps_status(t):
    ps = json.loads(t.chvm("ps", "-a", "--json"))
    return [v.get("status") for v in ps if v.get("name") == t.name]


def soak(t, cycles, where):
    # What the report labels the run with (scripts/report/figures.py).
    figures = {"where": where, "memory": t.memory, "ch_version": getattr(t, "version", None),
               "cycles_planned": cycles, "cycles": 0, "lines_checked": 0,
               "lines_lost": 0, "bad_sequence": 0, "cdp_evaluations": 0, "cdp_errors": 0,
               "standby_s": [], "restore_s": [], "cdp_resume_s": []}
    t0 = time.monotonic()
    t.setup()
    figures["boot_s"] = round(time.monotonic() - t0, 1)
    log("%s: VM ready after %.1f s" % (where, figures["boot_s"]))
    t.agent_sh(START_COUNTER)
    log("counter on %s" % t.agent_sh("df -P %s | tail -n 1" % os.path.dirname(COUNTER)).strip())
    ticker = Ticker(t.ticker())
    ticker.wait_ok_after(0, 900)
    after = 0
    try:
        for c in range(1, cycles + 1):
            # Let the counter and the client both move on since the restore.
            deadline = time.monotonic() + 300
            while last_counter(t) < after + 2:
                if time.monotonic() > deadline:
                    raise AssertionError("cycle %d: the counter stopped at %d" % (c, after))
                time.sleep(0.5)
            ticker.wait_ok_after(time.monotonic() - 0.5, 300)
            before = last_counter(t)
            s0 = time.monotonic()
            sb = json.loads(t.chvm("standby", "--timeout", "300", t.name, "--json"))
            s1 = time.monotonic()
            status = ps_status(t)
            assert status == ["standby"], status
            rs = json.loads(t.chvm("restore", t.name, "--timeout", "840", "--json"))
            s2 = time.monotonic()
            status = ps_status(t)
            assert status == ["running"], status
            lines = counter_lines(t)
            seen = set(lines)
            lost = [k for k in range(1, before + 1) if k not in seen]
            bad = lines != list(range(1, len(lines) + 1))
            resume = ticker.wait_ok_after(s2, 600)
            figures["cycles"] = c
            figures["lines_checked"] += before
            figures["lines_lost"] += len(lost)
            figures["bad_sequence"] += int(bad)
            figures["standby_s"].append(s1 - s0)
            figures["restore_s"].append(s2 - s1)
            figures["cdp_resume_s"].append(resume)
            after = len(lines)
            figures["counter_final"] = after
            log("cycle %d/%d: standby %.1f s (%s), restore %.1f s (%s), counter %d before, %d after, "
                "lost %d%s, CDP answered %.2f s after restore, %d evaluations, %d errors"
                % (c, cycles, s1 - s0, sb.get("phases"), s2 - s1, rs.get("phases"), before,
                   len(lines), len(lost), " (lines not 1..N)" if bad else "", resume, ticker.ok,
                   len(ticker.errors)))
            if lost or bad or ticker.errors:
                break
    finally:
        ticker.stop()
        figures["cdp_evaluations"] = ticker.ok
        figures["cdp_errors"] = len(ticker.errors)
        figures["cdp_error_samples"] = ticker.errors[:5]
        for k in ("standby_s", "restore_s", "cdp_resume_s"):
            figures[k + "_cycles"] = [round(x, 3) for x in figures[k]]  # per cycle, for make report
            figures[k] = summary(figures[k])
        figures["wall_s"] = round(time.monotonic() - t0, 1)
        os.makedirs(RESULTS, exist_ok=True)
        path = os.path.join(RESULTS, "soak-%s.json" % where)
        with open(path, "w") as f:
            json.dump(figures, f, indent=1)
        log("%s: %d/%d cycles, %d counter lines checked (summed over the cycles), %d lost, %d not in sequence, "
            "%d CDP evaluations, %d CDP errors (%s)"
            % (where, figures["cycles"], cycles, figures["lines_checked"], figures["lines_lost"],
               figures["bad_sequence"], figures["cdp_evaluations"], figures["cdp_errors"], path))
        log("standby %s; restore %s; CDP answer after restore %s (seconds)"
            % (figures["standby_s"], figures["restore_s"], figures["cdp_resume_s"]))
    return figures


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in ("qemu", "kvmhost"):
        sys.exit("usage: soak.py qemu|kvmhost [CYCLES]")
    where = sys.argv[1]
    cycles = int(sys.argv[2] if len(sys.argv) > 2 else os.environ.get("CHVM_SOAK_CYCLES", "100"))
    t = QemuTarget() if where == "qemu" else KvmhostTarget()
    missing = t.missing()
    if missing:
        print("soak: skipped: missing %s" % missing)
        sys.exit(2)
    try:
        f = soak(t, cycles, where)
    except BaseException:
        # The guest's console (init, agent) says what it saw; the VM goes
        # with the teardown.
        try:
            log("the VM's console, last lines:\n" + "\n".join(
                t.chvm("logs", t.name, timeout=120).splitlines()[-80:]))
        except Exception as e:  # noqa: BLE001  (a dead host has no logs)
            log("no console: %s" % e)
        raise
    finally:
        t.teardown()
    ok = (f["cycles"] == cycles and f["lines_lost"] == 0 and f["bad_sequence"] == 0
          and f["cdp_errors"] == 0)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
