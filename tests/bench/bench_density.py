#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""make bench-density: how many Chromium VMs fit a host, and what the
virtio-pmem root (chvm run --rootfs-device pmem, issue 24) saves there.

N VMs (--count, `make bench-density DENSITY_N=...`, default 10) of the
embedded stand-in image with 2 GiB guest RAM, started at once (one `chvm
run --json` each, in parallel) on the QEMU backend here, Cloud
Hypervisor on a host with hardware KVM and cloud-hypervisor (--backend),
one pass with every root a virtio-blk disk, then one with
every root virtio-pmem (DAX: the guest reads Chromium's files from the
host's page cache, shared by every VM of the image).  Each VM, once it
answers CDP, loads a page in its open tab with playwright-core
(tests/integration/cdp_client.js, left open).  Once all N have, per VM: the
VMM's PSS and RSS (chvm ps --json), and the host's MemAvailable and MemFree
against before the pass; then each VM is stood by in turn (chvm standby
--json: the snapshot's allocated bytes, the guest's non-free memory at the
quiesce) and all are removed before the next pass.  PSS splits a shared
page among the processes mapping it, so the difference of the PSS sums is
what the shared root image's page cache saves.  The VMs boot from a
private copy of the imported stand-in image (--shared-image: the shared
build/state/images), so that no other VM of the image shares its pages.

Prints a table per pass and the pmem-vs-blk line; writes
build/test-results/bench-density.json.  No timed assertions.  It lowers N
to what the host's MemAvailable holds (about 1.7 GiB a QEMU/TCG VM) and
the disk the snapshots; it skips with one line (exit 0, no JSON) when a
prerequisite is missing.  Every VM is stopped and removed at the end, also
on a failure or Ctrl-C.  Run it alone, under the tests' lock:

  flock /tmp/chvm-vmtests.lock make bench-density [DENSITY_N=10] [DENSITY_BACKEND=auto|qemu|ch]
  bench_density.py [--count N] [--backend auto|qemu|ch] [--devices blk,pmem] [--timeout S]
                   [--shared-image]

Under QEMU/TCG on this project's two cores 2 VMs at once answered CDP
after 34 s and loaded the page in 30 s, both passes 3 minutes; 10 VMs take
about 15-30 minutes (not measured yet)."""

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))  # the chvmtest package
from chvmtest import cli, net, paths, prereq  # noqa: E402

MIB = 1 << 20
GIB = 1 << 30
# Host memory a QEMU/TCG VM of the stand-in (2 GiB) takes after loading a
# page: the N=2 run here lowered MemAvailable by 1.65 GiB a VM with a blk
# root (VMM RSS 1.6-1.7 GiB), 1.05 GiB with pmem.
PER_VM = int(1.7 * GIB)
RESERVE = 1 * GIB  # left to the host besides
RESULT = os.path.join(paths.TEST_RESULTS, "bench-density.json")
PAGE_TIMEOUT_S = 900


def private_image(env):
    """The stand-in image `make images` imported, copied into env's state
    dir: the pmem pass's page cache is then mapped by this pass's VMs alone
    (PSS splits a page among every process mapping it, another test's VMs
    of the shared build/state/images included), and a Cloud Hypervisor VM
    of the shared image elsewhere (its whole-file OFD lock) cannot stop
    QEMU from opening it.  Returns the MiB copied."""
    with open(os.path.join(paths.STANDIN, "id")) as f:
        image_id = f.read().strip()
    src = os.path.join(paths.IMAGE_CACHE, image_id)
    dst = os.path.join(env["CHVM_STATE_DIR"], "images", image_id)
    os.makedirs(dst)
    for name in os.listdir(src):
        subprocess.run(["cp", "--sparse=always", os.path.join(src, name), os.path.join(dst, name)],
                       check=True)
    return sum(os.stat(os.path.join(dst, n)).st_blocks * 512 for n in os.listdir(dst)) >> 20


def parse_meminfo(text):
    """/proc/meminfo's text in bytes (test_density_kvmhost.py reads the KVM host's)."""
    out = {}
    for line in text.splitlines():
        k, v = line.split(":", 1)
        out[k] = int(v.split()[0]) << 10
    return out


def meminfo():
    """This host's /proc/meminfo in bytes."""
    with open("/proc/meminfo") as f:
        return parse_meminfo(f.read())


def memory_bytes(s):
    units = {"K": 1 << 10, "M": MIB, "G": GIB}
    return int(s[:-1]) * units[s[-1].upper()] if s[-1].upper() in units else int(s)


def fit(count, guest_ram, state_dir):
    """count lowered to what host memory and the snapshots' disk hold; the
    reasons, one line each."""
    why = []
    avail = meminfo()["MemAvailable"]
    by_mem = max(0, (avail - RESERVE) // PER_VM)
    if by_mem < count:
        why.append("host MemAvailable %d MiB holds %d VMs at ~%.1f GiB each (+%d MiB spare)"
                   % (avail >> 20, by_mem, PER_VM / GIB, RESERVE >> 20))
        count = by_mem
    free = shutil.disk_usage(state_dir).free
    by_disk = max(0, (free - RESERVE) // guest_ram)
    if by_disk < count:
        why.append("%s has %d MiB free: %d snapshots of %d MiB guests"
                   % (state_dir, free >> 20, by_disk, guest_ram >> 20))
        count = by_disk
    return int(count), why


class Pass:
    """One pass: N VMs with one root device, started at once."""

    def __init__(self, env, tmp, device, args, netns):
        self.env, self.tmp, self.device, self.args, self.netns = env, tmp, device, args, netns
        self.names = ["dens-%s-%d" % (device, i) for i in range(args.count)]
        self.procs = {}  # name -> Popen still running (chvm run or the page client)
        self.vms = {n: {"name": n} for n in self.names}

    def out(self, name, what):
        return os.path.join(self.tmp, "%s.%s" % (name, what))

    def spawn(self, name, what, argv):
        with open(self.out(name, what + ".out"), "w") as so, \
                open(self.out(name, what + ".err"), "w") as se:
            self.procs[name] = (what, subprocess.Popen(argv, stdout=so, stderr=se, env=self.env,
                                                       stdin=subprocess.DEVNULL), time.monotonic())

    def run_argv(self, name):
        argv = [cli.CHVM, "run", "--name", name, "--memory", self.args.memory,
                "--rootfs-device", self.device, "--backend", self.args.backend,
                "--timeout", str(self.args.timeout), "--json"]
        if self.netns:
            argv += ["--netns", self.netns]
        return argv

    def finished(self, name, what, rc, t0):
        """A chvm run or a page client ended: record it, start what follows."""
        vm = self.vms[name]
        took = time.monotonic() - t0
        with open(self.out(name, what + ".out")) as f:
            text = f.read()
        if rc != 0:
            with open(self.out(name, what + ".err")) as f:
                err = f.read().strip()
            raise RuntimeError("%s: %s exited %d after %.0f s: %s"
                               % (name, what, rc, took, err[-800:]))
        j = json.loads(text.strip().splitlines()[-1])
        if what == "run":
            vm.update(boot_s=took, ready_ms=j.get("ready_ms"), pid=j["pid"], endpoint=j["endpoint"])
            print("  %s: CDP after %.1f s (chvm: %.1f s)"
                  % (name, took, (j.get("ready_ms") or 0) / 1000), file=sys.stderr, flush=True)
            self.spawn(name, "page", ["node", paths.CDP_CLIENT_JS, j["endpoint"],
                                      str(PAGE_TIMEOUT_S * 1000), self.out(name, "png")])
        else:
            if j.get("title") != j.get("expected"):
                raise RuntimeError("%s: the page's title is %r, not %r"
                                   % (name, j.get("title"), j.get("expected")))
            vm.update(page_s=took, connect_ms=j.get("connect_ms"), browser=j.get("version"))
            print("  %s: page loaded in %.1f s" % (name, took), file=sys.stderr, flush=True)

    def start_and_load(self):
        """Starts every VM at once; each loads a page once it answers CDP."""
        for name in self.names:
            self.spawn(name, "run", self.run_argv(name))
        deadline = time.monotonic() + self.args.timeout + PAGE_TIMEOUT_S + 120
        while self.procs:
            if time.monotonic() > deadline:
                raise RuntimeError("still running after the deadline: %s" % ", ".join(
                    "%s (%s)" % (n, w) for n, (w, _, _) in sorted(self.procs.items())))
            for name, (what, p, t0) in list(self.procs.items()):
                if p.poll() is not None:
                    del self.procs[name]
                    self.finished(name, what, p.returncode, t0)
            time.sleep(0.5)  # a poll interval, not a wait for something

    def measure(self):
        rows = {v["name"]: v for v in json.loads(cli.chvm(self.env, "ps", "--json").stdout)}
        for name in self.names:
            r = rows[name]
            self.vms[name].update(vmm_pss=r["vmm_pss"], vmm_rss=r["vmm_rss"], guest_ram=r["guest_ram"])

    def standby_all(self):
        for name in self.names:
            t = time.monotonic()
            sb = json.loads(cli.chvm(self.env, "standby", name, "--json", timeout=1800).stdout)
            self.vms[name].update(standby_s=time.monotonic() - t,
                                  snapshot_allocated=sb.get("snapshot_allocated"),
                                  snapshot_bytes=sb.get("snapshot_bytes"),
                                  guest_nonfree=sb.get("guest_nonfree"),
                                  guest_used=sb.get("guest_used"))
            print("  %s: standby %.1f s, snapshot %s MiB allocated"
                  % (name, self.vms[name]["standby_s"], mib(sb.get("snapshot_allocated"))),
                  file=sys.stderr, flush=True)

    def kill_children(self):
        for _, p, _ in self.procs.values():
            if p.poll() is None:
                p.terminate()
        for _, p, _ in self.procs.values():
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.procs.clear()

    def run(self):
        print("pass %s: %d VMs at once" % (self.device, len(self.names)), file=sys.stderr, flush=True)
        before = meminfo()
        try:
            self.start_and_load()
            after = meminfo()
            self.measure()
            self.standby_all()
        finally:
            self.kill_children()
            remove_all(self.env)
        return summarize(self.device, [self.vms[n] for n in self.names], before, after)


def mib(b):
    return None if b is None else round(b / MIB, 1)


def stats(values):
    v = [x for x in values if x is not None]
    if not v:
        return {"min": None, "median": None, "max": None, "sum": None}
    return {"min": min(v), "median": statistics.median(v), "max": max(v), "sum": sum(v)}


def summarize(device, vms, before, after):
    ram = vms[0]["guest_ram"]
    snap = [v["snapshot_allocated"] for v in vms]
    return {
        "device": device, "count": len(vms), "guest_ram": ram,
        "pss": stats([v["vmm_pss"] for v in vms]), "rss": stats([v["vmm_rss"] for v in vms]),
        "mem_available_before": before["MemAvailable"], "mem_available_after": after["MemAvailable"],
        "mem_available_drop": before["MemAvailable"] - after["MemAvailable"],
        "mem_free_before": before["MemFree"], "mem_free_after": after["MemFree"],
        "mem_free_drop": before["MemFree"] - after["MemFree"],
        "snapshot_allocated": stats(snap),
        "snapshot_pct_of_guest_ram": (100.0 * statistics.median([s for s in snap if s is not None]) / ram
                                      if any(s is not None for s in snap) else None),
        "guest_nonfree": stats([v.get("guest_nonfree") for v in vms]),
        "boot_to_cdp_s": stats([v["boot_s"] for v in vms]),
        "page_s": stats([v["page_s"] for v in vms]),
        "standby_s": stats([v["standby_s"] for v in vms]),
        "vms": vms,
    }


def remove_all(env):
    """chvm rm -f every VM of the bench's state dir."""
    try:
        names = list(cli.ps(env))
    except (AssertionError, OSError, ValueError, subprocess.TimeoutExpired) as e:
        print("bench-density: chvm ps -a failed: %s" % e, file=sys.stderr)
        return
    if names:
        r = cli.chvm(env, "rm", "-f", *names, check=False, timeout=600)
        if r.returncode != 0:
            print("bench-density: chvm rm -f %s: %s" % (" ".join(names), r.stderr.strip()),
                  file=sys.stderr)


def table(passes):
    lines = ["| root | N | VMM PSS min / median / max | PSS sum | VMM RSS median | host MemAvailable drop "
             "(MemFree) | snapshot per VM, median (% of guest RAM) | guest non-free at quiesce, median "
             "| boot to CDP median / max | page load median |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for p in passes.values():
        pss, snap, boot = p["pss"], p["snapshot_allocated"], p["boot_to_cdp_s"]
        nonfree = p["guest_nonfree"]["median"]
        lines.append("| %s | %d | %.0f / %.0f / %.0f MiB | %.0f MiB | %.0f MiB | %.0f MiB (%.0f) "
                     "| %s MiB (%s) | %s | %.1f / %.1f s | %.1f s |" % (
                         p["device"], p["count"], pss["min"] / MIB, pss["median"] / MIB, pss["max"] / MIB,
                         pss["sum"] / MIB, p["rss"]["median"] / MIB, p["mem_available_drop"] / MIB,
                         p["mem_free_drop"] / MIB,
                         "%.0f" % (snap["median"] / MIB) if snap["median"] is not None else "?",
                         "%.1f%%" % p["snapshot_pct_of_guest_ram"]
                         if p["snapshot_pct_of_guest_ram"] is not None else "?",
                         "%.0f MiB" % (nonfree / MIB) if nonfree is not None else "?",
                         boot["median"], boot["max"], p["page_s"]["median"]))
    return "\n".join(lines)


def pmem_against_blk(passes):
    """What the shared root image's page cache saves (the blk pass's PSS sum
    less the pmem pass's) and the line that says so; (None, None) without
    both passes.  tests/integration/test_density_kvmhost.py prints it too."""
    if "blk" not in passes or "pmem" not in passes:
        return None, None
    blk, pmem = passes["blk"], passes["pmem"]
    saved = blk["pss"]["sum"] - pmem["pss"]["sum"]
    snap = [p["snapshot_allocated"]["median"] for p in (pmem, blk)]
    return saved, ("pmem against blk: the shared root image's page cache saves %.0f MiB host memory over "
                   "%d VMs (VMMs' PSS sum %.0f against %.0f MiB; %.0f MiB a VM); host MemAvailable drop "
                   "%.0f against %.0f MiB; snapshot median %s against %s MiB"
                   % (saved / MIB, pmem["count"], pmem["pss"]["sum"] / MIB, blk["pss"]["sum"] / MIB,
                      saved / MIB / pmem["count"], pmem["mem_available_drop"] / MIB,
                      blk["mem_available_drop"] / MIB,
                      *("%.0f" % (s / MIB) if s is not None else "?" for s in snap)))


def write_json(doc, path=RESULT):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    os.replace(tmp, path)


def standin_imported():
    """The stand-in's id (build/images/standin/id) imported in build/state/images."""
    idf = os.path.join(paths.STANDIN, "id")
    if os.path.exists(idf):
        with open(idf) as f:
            if os.path.isdir(os.path.join(paths.IMAGE_CACHE, f.read().strip())):
                return None
    return "the stand-in image imported in build/state/images (make images)"


def hardware_kvm():
    """/dev/kvm from kvm_intel or kvm_amd (not this project's kvm_pvm, whose
    guests chvm runs with QEMU here), as scripts/report/rerun.py decides."""
    return os.path.exists("/dev/kvm") and not os.path.exists("/sys/module/kvm_pvm") and any(
        os.path.exists("/sys/module/" + m) for m in ("kvm_intel", "kvm_amd"))


def on_sigterm(signum, frame):
    raise KeyboardInterrupt("SIGTERM")


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=int(os.environ.get("DENSITY_N") or 10),
                    help="VMs at once per pass (default $DENSITY_N or 10)")
    ap.add_argument("--backend", choices=("auto", "qemu", "ch"), default="auto",
                    help="auto (default): ch on hardware KVM with cloud-hypervisor installed, else qemu")
    ap.add_argument("--memory", default="2G", help="guest RAM of each VM (default 2G)")
    ap.add_argument("--devices", default="blk,pmem", help="root devices, one pass each, in order")
    ap.add_argument("--timeout", type=int, default=1800,
                    help="chvm run --timeout: seconds each VM may take to answer CDP (default 1800)")
    ap.add_argument("--shared-image", action="store_true",
                    help="use build/state/images as it is, not a private copy of the image")
    args = ap.parse_args()
    if args.backend == "auto":
        args.backend = "ch" if hardware_kvm() and not prereq.cloud_hypervisor() else "qemu"
    devices = [d for d in args.devices.split(",") if d]
    needs = (prereq.CHVM_CH if args.backend == "ch" else prereq.CHVM_QEMU) + (prereq.node, prereq.playwright)
    if not args.shared_image:
        needs += (standin_imported,)
    missing = prereq.missing(*needs)
    if missing:
        print("bench-density: skipped: missing %s" % missing)
        return 0
    if args.backend == "ch" and prereq.cloud_hypervisor():
        print("bench-density: skipped: missing %s" % prereq.cloud_hypervisor())
        return 0
    signal.signal(signal.SIGTERM, on_sigterm)
    requested = args.count
    tmp = tempfile.mkdtemp(prefix="chvm-bench-density-", dir="/var/tmp")
    ns = None
    try:
        args.count, why = fit(requested, memory_bytes(args.memory), tmp)
        for w in why:
            print("bench-density: %s: N lowered from %d to %d" % (w, requested, args.count))
        if args.count < 1:
            print("bench-density: skipped: this host has room for no VM")
            return 0
        env = cli.state_env(tmp, image_cache=args.shared_image)
        if not args.shared_image:
            print("bench-density: copied the stand-in image into the state dir (%d MiB)" % private_image(env),
                  file=sys.stderr, flush=True)
        if args.backend == "ch":
            ns = net.Netns("chvm-dens-%d" % os.getpid())
            ns.create()
        t0 = time.monotonic()
        passes = {}
        for d in devices:
            passes[d] = Pass(env, tmp, d, args, ns.name if ns else None).run()
        wall = time.monotonic() - t0
    finally:
        if ns:
            ns.delete()
        shutil.rmtree(tmp, ignore_errors=True)
    print("%s backend, the stand-in image, %s guest RAM, N VMs started at once, a page loaded in each"
          % (args.backend, args.memory))
    print(table(passes))
    for p in passes.values():
        for v in p["vms"]:
            v.pop("endpoint", None)  # its token: nothing to keep
    doc = {"backend": args.backend, "memory": args.memory, "requested": requested, "count": args.count,
           "lowered_because": why, "private_image": not args.shared_image, "wall_s": wall,
           "passes": passes}
    saved, line = pmem_against_blk(passes)
    if line:
        doc["pmem_pss_saved"] = saved
        print(line)
    print("wall %.0f s; results in %s" % (wall, paths.rel(RESULT)))
    write_json(doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
