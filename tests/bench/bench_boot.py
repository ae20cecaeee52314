#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Boot benchmark: the same QEMU/TCG VM (kernel, disks, config) booted with
chvm-init and with a BusyBox /init script doing the same steps
(bench_boot_busybox_init.sh).  Prints, for each, the time from the kernel's
hand-off to /init until the entrypoint runs, both read from CLOCK_BOOTTIME
on the console, and their ratio.  The figures also go to
build/test-results/bench-boot.json (or --json FILE).

Usage: python3 tests/bench/bench_boot.py [--runs N] [--json FILE]"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))  # the chvmtest package
from chvmtest import vm  # noqa: E402

BUSYBOX = "/bin/busybox"
TIMEOUT = 120


def build_stamp(out):
    subprocess.run(["musl-gcc", "-static", "-O2", "-o", out,
                    os.path.join(HERE, "bench_boot_stamp.c")], check=True)


def build_rootfs(d, stamp):
    root = os.path.join(d, "root")
    for sub in ("bin", "etc", "root", "tmp", "proc", "sys", "dev", "run"):
        os.makedirs(os.path.join(root, sub))
    shutil.copy(BUSYBOX, os.path.join(root, "bin", "busybox"))
    shutil.copy(stamp, os.path.join(root, "bin", "stamp"))
    os.symlink("busybox", os.path.join(root, "bin", "sh"))
    with open(os.path.join(root, "etc", "passwd"), "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\n")
    with open(os.path.join(root, "etc", "group"), "w") as f:
        f.write("root:x:0:\n")
    image = os.path.join(d, "rootfs.ext4")
    subprocess.run(["mkfs.ext4", "-q", "-L", "chvm-root", "-d", root, image,
                    "16M"], check=True, stdout=subprocess.DEVNULL)
    return image


def build_busybox_initrd(d, stamp):
    out = os.path.join(d, "busybox-initrd.cpio.gz")
    subprocess.run([sys.executable,
                    os.path.join(vm.ROOT, "guest-init", "mkinitrd.py"),
                    "--skel", os.path.join(vm.ROOT, "initrd-skel"),
                    "--init", os.path.join(HERE, "bench_boot_busybox_init.sh"),
                    "--extra", BUSYBOX + ":bin/busybox",
                    "--extra", stamp + ":stamp",
                    "--kernel", os.path.join(vm.BUILD, "kernel"),
                    "-o", out], check=True, stdout=subprocess.DEVNULL)
    return out


def boot(d, name, initrd, rootfs, config):
    machine = vm.VM(d, config, rootfs=rootfs, initrd=initrd, memory=1024,
                    forward=False, name=name).start()
    try:
        m = machine.wait_console(r"BENCH entry (\d+\.\d+)", TIMEOUT)
        entry = float(m.group(1))
        machine.wait_exit(TIMEOUT)
        console = machine.console()
    finally:
        machine.stop()
    phases = machine.phases()
    if "start" in phases:
        start = phases["start"]
    else:
        start = float(re.search(r"BENCH init (\d+\.\d+)", console).group(1))
    return {"start": start, "entry": entry, "handoff": entry - start,
            "phases": phases}


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--json", default=os.path.join(vm.BUILD, "test-results", "bench-boot.json"))
    a = ap.parse_args()
    why = vm.missing_prerequisites(rootfs=None)
    for tool, pkg in ((BUSYBOX, "busybox-static"), ("musl-gcc", "musl-tools"),
                      ("mkfs.ext4", "e2fsprogs")):
        if not shutil.which(tool):
            why = (why + ", " if why else "missing: ") + tool + " (" + pkg + ")"
    if why:
        print("bench_boot: skipped, " + why)
        return 0

    config = {"hostname": "bench", "entrypoint": ["/bin/stamp"],
              "cmd": ["entry"], "net.address": vm.GUEST_ADDRESS,
              "net.gateway": vm.GUEST_GATEWAY}
    with tempfile.TemporaryDirectory(prefix="bench-boot-") as d:
        stamp = os.path.join(d, "stamp")
        build_stamp(stamp)
        rootfs = build_rootfs(d, stamp)
        busybox_initrd = build_busybox_initrd(d, stamp)
        results = {"chvm-init": [], "busybox": []}
        for i in range(a.runs):
            results["chvm-init"].append(boot(d, "chvm%d" % i, vm.INITRD,
                                             rootfs, config))
            results["busybox"].append(boot(d, "busybox%d" % i,
                                           busybox_initrd, rootfs, config))

    # TCG on a shared host is noisy: the minimum is the least disturbed run.
    best = {}
    for name, runs in results.items():
        hand = [r["handoff"] for r in runs]
        best[name] = min(hand)
        print("%-9s hand-off from /init to entrypoint: min %.3f s, median %.3f s"
              " (runs: %s; /init started at %s s)"
              % (name, best[name], statistics.median(hand),
                 " ".join("%.3f" % h for h in hand),
                 " ".join("%.3f" % r["start"] for r in runs)))
    p = results["chvm-init"][-1]["phases"]
    names = [n for n in ("start", "modules", "disks", "config", "overlay",
                         "network", "agent", "exec") if n in p]
    print("chvm-init phases (last run, s from kernel start): "
          + ", ".join("%s %.3f" % (n, p[n]) for n in names))
    print("ratio busybox/chvm-init (min): %.2f"
          % (best["busybox"] / best["chvm-init"]))
    os.makedirs(os.path.dirname(os.path.abspath(a.json)), exist_ok=True)
    with open(a.json, "w") as f:
        json.dump({"runs": results, "min_handoff_s": best,
                   "ratio_busybox_chvm_init": best["busybox"] / best["chvm-init"]}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
