#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Standby/restore benchmark of backend_ch with the real Cloud Hypervisor and
the micro guest (tests/micro-guest), next to this host's own disk and memory
bandwidth measured in the same run.

For each size the guest first writes one word into every 4 KiB page of that
much RAM (its memory is the size + 32 MiB, or --guest-mib), then, for each
--shared-memory setting (off: private anonymous memory, which CH snapshots
densely; on: a memfd, which v52+ snapshots sparsely):
  standby   = vm.pause + vm.snapshot into snapshot.tmp-X, renamed to snapshot
  restore   = new VMM + vm.restore + vm.resume, copy mode and (v52+) ondemand,
              with the snapshot in the page cache ("warm") and, for copy, also
              dropped from it with posix_fadvise(DONTNEED) ("cold")
  first count = restore start until the guest prints a new counter line
Host figures: sequential write (1 MiB blocks, fsync at the end), sequential
read with the file dropped from the page cache, and memcpy, each on
HOST_MIB MiB.

  bench_ch.py [--sizes 256,512,1024,2048,4096] [--guest-mib N] [--shared-memory off,on]
              [--dir DIR] [--json FILE]   (default build/test-results/bench-ch.json)
Needs cloud-hypervisor (PATH or $CLOUD_HYPERVISOR), /dev/kvm, and
build/tests/ch-driver + build/tests/micro-guest/micro.elf (make ch-bench)."""

import argparse
import json
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))  # chvmtest
from chvmtest import ch_micro  # noqa: E402
from chvmtest.ch_micro import Driver  # noqa: E402

# The host's bounds, measured as make report does (scripts/report/bandwidth.py).
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "scripts", "report"))
from bandwidth import measure as host_baselines  # noqa: E402

HOST_MIB = 1024
MARGIN_MIB = 32


def drop_cache(path):
    """Evicts one file from the page cache (only ours: other users of this
    shared host keep theirs)."""
    for name in ([path] if os.path.isfile(path) else
                 [os.path.join(path, n) for n in os.listdir(path)]):
        fd = os.open(name, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def first_count_after(d, before, t0, timeout):
    def new():
        text = d.serial()
        if text.startswith(before):
            text = text[len(before):]
        return ch_micro.COUNT_RE.search(text)
    ch_micro.wait_for(new, timeout, "a count line after restore")
    return (time.monotonic() - t0) * 1000


def run_size(workdir, mib, guest_mib, shared, restores, version_major, timeout):
    vmdir = os.path.join(workdir, "vm-%d" % mib)
    shutil.rmtree(vmdir, ignore_errors=True)
    guest_mib = guest_mib or mib + MARGIN_MIB
    res = {"touched_MiB": mib, "guest_MiB": guest_mib, "shared_memory": shared}
    d = Driver(vmdir, memory_mib=guest_mib, cmdline="touch_mib=%d" % mib, shared_memory=shared)
    try:
        t0 = time.monotonic()
        d.ok("start")
        ch_micro.wait_for(lambda: "touched" in d.serial(), timeout, "the guest to touch %d MiB" % mib)
        res["guest_touch_s"] = time.monotonic() - t0
        d.wait_count(1, timeout)
        if shared == "on":
            res["ram_allocated_bytes"] = int(d.ok("ram")["bytes"])
        t0 = time.monotonic()
        d.ok("pause")
        out = d.cmd("standby", timeout=timeout)
        if not out.startswith("ok"):
            raise RuntimeError("standby: " + out)
        kv = ch_micro.parse_kv(out)
        res["standby_ms"] = (time.monotonic() - t0) * 1000
        res["snapshot_ms"] = float(kv["ms"])
        res["snapshot_bytes"] = int(kv["bytes"])
        res["snapshot_alloc_bytes"] = int(kv["alloc"])
        res["snapshot_MBps"] = res["snapshot_bytes"] / 1e3 / res["snapshot_ms"]
        d.ok("shutdown")
        before = d.serial()
        snap = kv["path"]
        modes = [tuple(r.split("-")) for r in restores
                 if version_major >= 52 or not r.startswith("ondemand")]
        for mode, cache in modes:
            if cache == "cold":
                drop_cache(snap)
            d.ok("mode " + mode)
            t0 = time.monotonic()
            r = d.ok("restore " + snap, timeout=timeout)
            total = (time.monotonic() - t0) * 1000
            key = "restore_%s_%s" % (mode, cache)
            res[key + "_ms"] = total
            res[key + "_phases"] = {k: float(v) for k, v in r.items() if k not in ("pid", "mode")}
            if mode == "copy":
                res[key + "_MBps"] = res["snapshot_bytes"] / 1e3 / float(r["restore"])
            res[key + "_first_count_ms"] = first_count_after(d, before, t0, timeout)
            before = d.serial()
            d.ok("shutdown")
    finally:
        left = d.close()
        if left:
            print("warning: killed a leftover VMM %d" % left, file=sys.stderr)
    shutil.rmtree(vmdir, ignore_errors=True)
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="256,512,1024,2048,4096")
    ap.add_argument("--dir", default=os.path.join(ch_micro.ROOT, "build", "bench-ch"))
    ap.add_argument("--json", default=os.path.join(ch_micro.ROOT, "build", "test-results", "bench-ch.json"))
    ap.add_argument("--guest-mib", type=int, default=0, help="guest RAM (default: size + 32)")
    ap.add_argument("--shared-memory", default="off", help="off, on or off,on")
    ap.add_argument("--restores", default="copy-warm,copy-cold,ondemand-warm,ondemand-cold",
                    help="which restores to time (ondemand ones on v52+ only)")
    ap.add_argument("--timeout", type=float, default=180)
    a = ap.parse_args()
    why = ch_micro.missing_prerequisites(ch_micro.ch_binary())
    if why:
        print("SKIP bench_ch: " + why)
        return 0
    os.makedirs(a.dir, exist_ok=True)
    probe = Driver(os.path.join(a.dir, "probe"), memory_mib=64)
    out = probe.cmd("start")
    version = out.split("version=", 1)[1] if "version=" in out else "?"
    probe.close()
    if not out.startswith("ok"):
        print("SKIP bench_ch: cloud-hypervisor cannot start the micro guest: " + out)
        return 0
    m = __import__("re").search(r"v(\d+)\.", version)
    major = int(m.group(1)) if m else 0
    print("cloud-hypervisor: %s (%s)" % (version, ch_micro.ch_binary()))
    host = host_baselines(a.dir, HOST_MIB)
    print("host, %d MiB: sequential write+fsync %.0f MB/s, sequential read (cold) %.0f MB/s, memcpy %.0f MB/s"
          % (HOST_MIB, host["seq_write_MBps"], host["seq_read_cold_MBps"], host["memcpy_MBps"]))
    results = {"ch_version": version, "host": host, "sizes": []}
    for mib, shared in [(int(x), s) for x in a.sizes.split(",") for s in a.shared_memory.split(",")]:
        try:
            r = run_size(a.dir, mib, a.guest_mib, shared, a.restores.split(","), major, a.timeout)
        except (RuntimeError, TimeoutError, AssertionError) as e:
            msg = str(e)
            if "GetNestedState" in msg:
                print("SKIP bench_ch: this host's KVM lacks KVM_GET_NESTED_STATE (kvm_pvm), which "
                      "cloud-hypervisor v49+ needs to snapshot")
                return 0
            print("%5d MiB: FAILED: %s" % (mib, msg))
            results["sizes"].append({"touched_MiB": mib, "error": msg})
            continue
        results["sizes"].append(r)
        print("%5d MiB touched (guest %d MiB, shared memory %s, touch pass %.1f s): standby %.0f ms "
              "(snapshot %.0f ms, %.0f MB, %.0f MB allocated, %.0f MB/s)"
              % (mib, r["guest_MiB"], shared, r["guest_touch_s"], r["standby_ms"], r["snapshot_ms"],
                 r["snapshot_bytes"] / 1e6, r["snapshot_alloc_bytes"] / 1e6, r["snapshot_MBps"]))
        for k in sorted(k[:-3] for k in r if k.startswith("restore_") and k.endswith("_ms")
                        and not k.endswith("first_count_ms")):
            ph = r[k + "_phases"]
            # On-demand restore copies nothing up front: no bandwidth to show.
            bw = ("%6.0f MB/s" % r[k + "_MBps"]) if "copy" in k else "  (lazy)   "
            print("        %-22s %7.0f ms total (%s) = %s; first new count after %.0f ms"
                  % (k, r[k + "_ms"], ", ".join("%s %.0f" % kv for kv in ph.items()),
                     bw, r[k + "_first_count_ms"]))
    if a.json:
        os.makedirs(os.path.dirname(os.path.abspath(a.json)), exist_ok=True)
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
