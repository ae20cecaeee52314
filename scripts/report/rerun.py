#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Reruns the benchmarks and copies their fresh JSON results
(build/test-results/*.json) into docs/report/data/, each wrapped with the
date, the commit, the host kind and the command that reproduces it
(data.py).  `make report REPORT_RERUN=1` runs it before the report.

  rerun.py [--only NAME,...]   the benchmarks below (REPORT_BENCHES), in order
  rerun.py --hw                `make bench-hw`: on a host with hardware KVM and
                               cloud-hypervisor, the ones that run there, to hw-*.json

Every one that boots a VM runs under `flock /tmp/chvm-vmtests.lock` (one
VM test at a time on a shared machine).  A benchmark that skips (a
prerequisite missing: it says which) writes no result, and what one that
fails (exits non-zero) wrote is not copied: its committed file stays and
the summary says so.  Each copied file records the minutes its run took
(took_min); the report's result-file table adds them up into how long a
full rerun takes on this project's 2-core host."""
import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from data import ESTIMATE_MIN, MEASURED  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(HERE))
RESULTS = os.path.join(ROOT, "build", "test-results")
DATA = os.path.join(ROOT, "docs", "report", "data")
LOCK = "/tmp/chvm-vmtests.lock"
CH_TOOLS = os.path.join(os.path.dirname(ROOT), "shared", "tools", "cloud-hypervisor")


def kvm_kind():
    if os.path.exists("/sys/module/kvm_pvm"):
        return "kvm-pvm"
    if os.path.exists("/dev/kvm") and any(os.path.exists("/sys/module/" + m) for m in ("kvm_intel", "kvm_amd")):
        return "hardware"
    return None


def micro_host():
    return "hardware-kvm" if kvm_kind() == "hardware" else "kvm-pvm-micro"


def qemu_or_ch_host():
    # chvm's --backend auto picks CH where KVM runs guests.
    return "hardware-kvm" if kvm_kind() == "hardware" else "qemu-tcg"


# name (data file), make target, result file, host kind, title, boots a VM
BENCHES = [
    ("bench-agent", "bench-agent", "bench-agent.json", lambda: "host",
     "The guest agent's Forward (splice) against a direct TCP connection, on loopback", False),
    ("bench-boot", "bench-boot", "bench-boot.json", lambda: "qemu-tcg",
     "Boot under QEMU/TCG: chvm-init's phases and a BusyBox /init doing the same steps", True),
    ("bench-ch", "ch-bench", "bench-ch.json", micro_host,
     "Standby and restore of the micro guest with the real CH, per touched size, beside the host's bandwidth", True),
    ("cdp-wake", "bench-cdp-wake", "cdp-wake.json", qemu_or_ch_host,
     "CDP endpoint wake latency over idle/wake cycles (tap)", True),
    ("kvmhost", "test-kvmhost", "kvmhost.json", lambda: "nested",
     "chvm with each CH build and the Chromium stand-in inside the KVM host: every phase", True),
    ("bench-snapshot", "bench-snapshot", "bench-snapshot.json", lambda: "nested",
     "What a snapshot holds per guest RAM setting: CH v53.0 inside the KVM host", True),
    ("bench-fork", "bench-fork", "bench-fork.json", micro_host,
     "Templates and a VM's own restore, micro guest: clones cow and copy, copy restore against the "
     "memory file mapped again, 10 clones", False),  # bench_fork.py takes the lock itself
    ("fork-kvmhost", "bench-fork-kvmhost", "fork-kvmhost.json", lambda: "nested",
     "VMs from a template of the Chromium stand-in, at once: CH inside the KVM host", True),
    ("pmem-kvmhost", "bench-pmem-kvmhost", "pmem-kvmhost.json", lambda: "nested",
     "The root as virtio-pmem with DAX against a blk root: CH inside the KVM host", True),
    ("density", "bench-density", "bench-density.json", qemu_or_ch_host,
     "Density: 10 Chromium VMs at once, blk root then pmem root: VMM PSS, host memory, snapshots", True),
    ("density-kvmhost", "bench-density-kvmhost", "density-kvmhost.json", lambda: "nested",
     "Density with CH inside the KVM host: as many Chromium VMs as it holds at once, blk root then pmem root", True),
    ("webrtc-qemu", "bench-webrtc", "webrtc-qemu.json", lambda: "qemu-tcg",  # the tests' -accel tcg
     "WebRTC live view of the stand-in (QEMU backend): first frame, frame rate, bitrate, before the "
     "standby and after the restore", True),
    ("soak-qemu", "soak", "soak-qemu.json", qemu_or_ch_host,
     "Standby/restore soak with a counter file and a CDP client", True),
    ("soak-kvmhost", "soak-kvmhost", "soak-kvmhost.json", lambda: "nested",
     "Standby/restore soak, CH inside the KVM host", True),
]
HW_BENCHES = {"bench-ch": "hw-bench-ch", "cdp-wake": "hw-cdp-wake", "soak-qemu": "hw-soak"}


def commit():
    try:
        c = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                           text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    # diff-index reads the index, never writes it.
    dirty = subprocess.run(["git", "-C", ROOT, "diff-index", "--quiet", "HEAD", "--"],
                           capture_output=True).returncode != 0
    return c + ("+changes" if dirty else "")


def wrap(name, results, host, title, command, took_min):
    return {"benchmark": name, "title": title, "date": datetime.date.today().isoformat(), "commit": commit(),
            "host": host, "command": command, "transcribed": False,
            "source": "measured by `%s` (scripts/report/rerun.py)" % command, "took_min": round(took_min, 1),
            "results": results}


def write(out, doc):
    tmp = out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    os.replace(tmp, out)
    print("rerun: wrote %s" % os.path.relpath(out), flush=True)


def ch_env(hw):
    """CH for ch-bench: $CLOUD_HYPERVISOR or PATH; on kvm_pvm without
    either, the v48.0 build of ../shared/tools (v49+ cannot snapshot there)."""
    env = dict(os.environ)
    if env.get("CLOUD_HYPERVISOR") or shutil.which("cloud-hypervisor") or hw:
        return env
    v48 = os.path.join(CH_TOOLS, "v48.0", "cloud-hypervisor")
    if os.path.exists(v48):
        env["CLOUD_HYPERVISOR"] = v48
        env.setdefault("CHVM_CH_SECCOMP", "log")  # a source build; upstream's releases need nothing
        print("rerun: ch-bench with %s (CHVM_CH_SECCOMP=log)" % v48, flush=True)
    return env


def run_bandwidth(out_name, data, results):
    t0 = time.monotonic()
    tmp = os.path.join(results, "host-bandwidth.json")
    os.makedirs(results, exist_ok=True)
    subprocess.run([sys.executable, os.path.join(HERE, "bandwidth.py"), "--json", tmp], check=True)
    with open(tmp) as f:
        r = json.load(f)
    host = "hardware-kvm" if out_name.startswith("hw-") else "host"
    write(os.path.join(data, out_name + ".json"),
          wrap(out_name, r, host, "The host's disk write, cold disk read and memcpy bandwidth",
               MEASURED["host-bandwidth"], (time.monotonic() - t0) / 60))
    return time.monotonic() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="", help="comma- or space-separated names: " +
                    " ".join(b[0] for b in BENCHES))
    ap.add_argument("--hw", action="store_true")
    ap.add_argument("--data", default=DATA, help="where the results go (docs/report/data)")
    ap.add_argument("--results", default=RESULTS, help="where the benchmarks write theirs (build/test-results)")
    ap.add_argument("--make", default="make", help="the make to run the targets with")
    a = ap.parse_args()
    benches = BENCHES
    if a.hw:
        if kvm_kind() != "hardware":
            print("bench-hw: this host has no hardware KVM (/dev/kvm from kvm_intel or kvm_amd%s); run it on one"
                  % ("; this one has kvm_pvm, a software KVM" if kvm_kind() == "kvm-pvm" else ""), file=sys.stderr)
            return 2
        if not (os.environ.get("CLOUD_HYPERVISOR") or shutil.which("cloud-hypervisor")):
            print("bench-hw: cloud-hypervisor not found (PATH or $CLOUD_HYPERVISOR): install upstream's release "
                  "binary", file=sys.stderr)
            return 2
        benches = [b for b in BENCHES if b[0] in HW_BENCHES]
    only = [n for n in a.only.replace(",", " ").split() if n]
    unknown = [n for n in only if n not in [b[0] for b in BENCHES] + ["host-bandwidth"]]
    if unknown:
        print("rerun: unknown benchmark %s (known: host-bandwidth %s)" % (
            ", ".join(unknown), " ".join(b[0] for b in BENCHES)), file=sys.stderr)
        return 2
    if only:
        benches = [b for b in benches if b[0] in only]
    if benches and not a.hw:
        print("rerun: %s; about %s minutes here" % (", ".join(b[0] for b in benches),
                                                    " + ".join(ESTIMATE_MIN[b[0]] for b in benches)), flush=True)
    summary = []
    if not only or "host-bandwidth" in only:
        s = run_bandwidth("hw-host-bandwidth" if a.hw else "host-bandwidth", a.data, a.results)
        summary.append("host-bandwidth: %.0f s, written" % s)
    for name, target, result, host, title, vm in benches:
        out_name = HW_BENCHES[name] if a.hw else name
        src = os.path.join(a.results, result)
        if os.path.exists(src):
            os.unlink(src)  # a skip must not pass the last run's file off as new
        cmd = [a.make, target]
        if vm:
            cmd = ["flock", LOCK] + cmd
        print("\nrerun: %s: %s" % (name, " ".join(cmd)), flush=True)
        t0 = time.monotonic()
        rc = subprocess.run(cmd, cwd=ROOT, env=ch_env(a.hw) if name == "bench-ch" else None).returncode
        took = (time.monotonic() - t0) / 60
        if rc != 0 or not os.path.exists(src):
            # A failed run may have written what it had measured so far: no
            # part of a run stands in for a whole one.
            summary.append("%s: %.1f min, exit %d, %s (skipped or failed: see its output); "
                           "%s left as it was" % (name, took, rc, "no result copied" if rc else "no result written",
                                                  os.path.join(a.data, out_name + ".json")))
            continue
        with open(src) as f:
            text = f.read()
        try:
            results = json.loads(text.strip().splitlines()[-1] if name == "bench-agent" else text)
        except (ValueError, IndexError) as e:
            summary.append("%s: %.1f min, exit %d, %s is not JSON (%s): not copied" % (name, took, rc, src, e))
            continue
        command = "make " + target
        write(os.path.join(a.data, out_name + ".json"), wrap(out_name, results, host(), title, command, took))
        summary.append("%s: %.1f min, exit %d, written" % (name, took, rc))
    print("\nrerun summary:\n  " + "\n  ".join(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
