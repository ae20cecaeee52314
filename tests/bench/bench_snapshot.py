#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""What a snapshot holds and costs, per guest RAM setting: Cloud Hypervisor
v53.0 with a real Linux guest inside the KVM host (tests/integration/
chvmtest/kvmhost.py), in one run, one row per combination:

  micro guest, 2 GiB RAM, touching a known amount (tests/bench/bench_ch.py
  in the KVM host): private vs shared memory -> snapshot bytes allocated,
  standby and copy-restore time: CH's own cost per touched byte.

  the Chromium stand-in, 2 GiB, after playwright-core loaded a page:
    default memory (private, no balloon)             standby, copy restore
    --shared-memory on                               standby, copy restore
    --shared-memory on --free-page-reporting on
        standby --no-reclaim                         copy restore
        + quiesce (drop caches, compact, settle)     copy restore
        + quiesce                                    ondemand restore
  -> snapshot bytes allocated / guest RAM, what the guest used at the
     quiesce, standby time, restore time to CDP answering, the same target
     (id and URL) after restore, the VMM's resident memory after restore
     and 30 s later (v53's ondemand restore fills the rest in behind).

  bench_snapshot.py [--version v53.0] [--memory 2G] [--rows micro,chromium]
                    [--json FILE]
Prints the figures and the table of docs/FINDINGS.md; no assertions on time.
Needs what the KVM host suite needs (root, QEMU, mmdebstrap, the built
tree); says what is missing and exits 0 otherwise."""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))  # the chvmtest package
from chvmtest import kvmhost, paths  # noqa: E402

CDP = 9222
STATE = "/var/lib/chvm"
CH_DIR = "/opt/cloud-hypervisor"
CDP_CLIENT = paths.CDP_CLIENT_JS
# As in test_kvmhost.py: one vCPU and no zygote under nested emulation.
GUEST_ARGS = ["--cpus", "1", "-e", "CHROMIUM_FLAGS=--no-zygote"]
BOOT_S = 900
# The micro guest's benchmark, laid out in the KVM host as in this tree.
MICRO_FILES = [(p, "opt/chvm-tests/" + p) for p in (
    "tests/bench/bench_ch.py", "tests/integration/chvmtest/__init__.py",
    "tests/integration/chvmtest/paths.py", "tests/integration/chvmtest/ch_micro.py",
    "scripts/report/bandwidth.py",  # bench_ch.py's host bounds
    "build/tests/ch-driver", "build/tests/micro-guest/micro.elf")]
CHROMIUM_ROWS = [
    ("default memory", ["--shared-memory", "off", "--free-page-reporting", "off"],
     [("", [], "copy")]),
    ("shared=on", ["--shared-memory", "on", "--free-page-reporting", "off"],
     [("", [], "copy")]),
    ("shared=on + free page reporting", ["--shared-memory", "on", "--free-page-reporting", "on"],
     [(", --no-reclaim", ["--no-reclaim"], "copy"), (" + quiesce", [], "copy"),
      (" + quiesce", [], "ondemand")]),
]


def mib(n):
    return "%.0f" % (n / 1048576.0)


class Bench:
    def __init__(self, h, version, memory):
        self.h = h
        self.version = version
        self.memory = memory
        self.env = {"CLOUD_HYPERVISOR": "%s/%s/cloud-hypervisor" % (CH_DIR, version)}
        if int(version.lstrip("v").split(".")[0]) < 49:
            self.env["CHVM_CH_SECCOMP"] = "log"
        self.endpoint = "http://127.0.0.1:%d" % h.port[CDP]

    def chvm_json(self, *args, timeout=BOOT_S):
        r = self.h.run(["chvm", *args, "--json"], timeout=timeout, env=self.env)
        return json.loads(r["out"])

    def targets(self):
        with urllib.request.urlopen(self.endpoint + "/json/list", timeout=120) as r:
            return {t["id"]: t["url"] for t in json.loads(r.read()) if t.get("type") == "page"}

    def vmm_rss(self, name):
        """The VMM's resident memory: anonymous + shared (the memfd), bytes."""
        ps = json.loads(self.h.run(["chvm", "ps", "--json"], env=self.env)["out"])
        pid = [v["pid"] for v in ps if v.get("name") == name][0]
        st = self.h.sh("grep -E '^(RssAnon|RssShmem):' /proc/%d/status" % pid)["out"]
        return sum(int(line.split()[1]) for line in st.splitlines()) * 1024

    def micro(self):
        """bench_ch.py in the KVM host: 2 GiB guests touching 256 and 1024 MiB."""
        out = os.path.join("/tmp", "micro.json")
        r = self.h.run(["python3", "/opt/chvm-tests/tests/bench/bench_ch.py", "--sizes", "256,1024",
                        "--guest-mib", "2048", "--shared-memory", "off,on", "--restores",
                        "copy-warm", "--dir", "/var/tmp/bench-ch", "--json", out, "--timeout", "900"],
                       timeout=3600, env=self.env)
        print(r["out"], flush=True)
        return json.loads(self.h.run(["cat", out])["out"])

    def chromium(self, label, run_args, steps):
        name = "bench%d" % int(time.monotonic())
        rows = []
        t0 = time.monotonic()
        run = self.chvm_json("run", "--backend", "ch", "--name", name, "--memory", self.memory,
                             "-p", "10.0.2.15:%d:%d" % (CDP, CDP), "--timeout", str(BOOT_S - 60),
                             *GUEST_ARGS, *run_args)
        print("\n%s: run in %.0f s: %s" % (label, time.monotonic() - t0, run), flush=True)
        try:
            with tempfile.TemporaryDirectory() as d:
                r = subprocess.run(["node", CDP_CLIENT, self.endpoint, "600000",
                                    os.path.join(d, "page.png")],
                                   capture_output=True, text=True, timeout=BOOT_S)
            if r.returncode != 0:
                raise RuntimeError("playwright: " + r.stderr[-2000:])
            page = json.loads(r.stdout)
            print("page loaded: %s" % page, flush=True)
            for suffix, sb_args, mode in steps:
                sb = self.chvm_json("standby", *sb_args, name)
                print("standby%s: %s" % (suffix, sb), flush=True)
                rs = self.chvm_json("restore", "--memory-restore", mode, "--timeout",
                                    str(BOOT_S - 60), name)
                print("restore %s: %s" % (mode, rs), flush=True)
                rss0 = self.vmm_rss(name)
                same = self.targets().get(page["target_id"]) == page["url"]
                time.sleep(30)  # a figure 30 s on: v53's background fill of an ondemand restore
                rss30 = self.vmm_rss(name)
                rows.append({"row": label + suffix, "restore": mode, "standby": sb, "restore_out": rs,
                             "same_target": same, "vmm_rss_after": rss0, "vmm_rss_30s": rss30})
                print("same target %s; VMM resident %s MiB after restore, %s MiB 30 s later"
                      % (same, mib(rss0), mib(rss30)), flush=True)
        finally:
            self.h.run(["chvm", "rm", "-f", name], env=self.env, timeout=300, check=False)
        return rows


def table(rows):
    lines = ["| combination | restore | snapshot allocated / guest RAM | guest used at quiesce | "
             "standby | restore to CDP | same target | VMM resident after restore / 30 s on |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        sb, rs = r["standby"], r["restore_out"]
        used = sb.get("guest_used")
        lines.append("| %s | %s | %s / %s MiB (%.0f%%) | %s | %.1f s | %.1f s | %s | %s / %s MiB |" % (
            r["row"], r["restore"], mib(sb["snapshot_allocated"]), mib(sb["guest_ram"]),
            100.0 * sb["snapshot_allocated"] / sb["guest_ram"],
            (mib(used) + " MiB") if used else "-", sb["total_ms"] / 1000.0,
            rs.get("cdp_ready_ms", rs["total_ms"]) / 1000.0, "yes" if r["same_target"] else "NO",
            mib(r["vmm_rss_after"]), mib(r["vmm_rss_30s"])))
    return "\n".join(lines)


def micro_table(m):
    lines = ["| touched | memory | snapshot allocated | standby | copy restore |", "|---|---|---|---|---|"]
    for s in m.get("sizes", []):
        if "error" in s:
            lines.append("| %s MiB | %s | failed: %s | | |" % (s["touched_MiB"], s.get("shared_memory"),
                                                         s["error"][:80]))
            continue
        lines.append("| %d MiB of %d | %s | %s MiB | %.1f s | %.1f s |" % (
            s["touched_MiB"], s["guest_MiB"], "shared" if s["shared_memory"] == "on" else "private",
            mib(s["snapshot_alloc_bytes"]), s["standby_ms"] / 1000.0,
            s.get("restore_copy_warm_ms", 0) / 1000.0))
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--version", default="v53.0")
    ap.add_argument("--memory", default="2G")
    ap.add_argument("--rows", default="micro,chromium")
    ap.add_argument("--json", default=os.path.join(kvmhost.BUILD, "test-results",
                                                   "bench-snapshot.json"))
    a = ap.parse_args()
    why = kvmhost.missing_prerequisites()
    if why is None and a.version not in kvmhost.ch_versions():
        why = "no CH %s in %s" % (a.version, kvmhost.CH_TOOLS)
    if why:
        print("SKIP bench_snapshot: " + why)
        return 0
    kvmhost.build_base()
    run_dir = tempfile.mkdtemp(prefix="bench-snapshot-", dir="/var/tmp")
    disk, _ = kvmhost.make_disk(run_dir, extra=MICRO_FILES)
    h = kvmhost.KvmHost(run_dir, forwards=[CDP])
    h.boot(disk)
    b = Bench(h, a.version, a.memory)
    results = {"version": a.version, "memory": a.memory, "kvmhost_memory": kvmhost.MEMORY}
    try:
        if "micro" in a.rows:
            results["micro"] = b.micro()
        if "chromium" in a.rows:
            results["chromium"] = []
            for label, run_args, steps in CHROMIUM_ROWS:
                results["chromium"] += b.chromium(label, run_args, steps)
    finally:
        h.shutdown()
        os.makedirs(os.path.dirname(a.json), exist_ok=True)
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)
        print("\nfigures: " + a.json)
    if "micro" in results:
        print("\nmicro guest, CH %s inside the KVM host:\n%s" % (a.version, micro_table(results["micro"])))
    if results.get("chromium"):
        print("\nChromium stand-in, %s, CH %s inside the KVM host:\n%s"
              % (a.memory, a.version, table(results["chromium"])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
