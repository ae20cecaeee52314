#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The host's bounds for standby and restore, measured the way
tests/bench/bench_ch.py does beside its runs: sequential write of MiB
(1 MiB blocks, fsync at the end), sequential read of it after dropping it
from the page cache (posix_fadvise on this file only), and memcpy.

  bandwidth.py [--mib 512] [--dir build] [--json FILE]

Prints one line; --json writes {"seq_write_MBps", "seq_read_cold_MBps",
"memcpy_MBps", "mib", "dir"} (MB = 10^6 bytes).  A few seconds."""
import argparse
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def measure(directory, mib):
    path = os.path.join(directory, "bandwidth-probe.%d.bin" % os.getpid())
    block = bytes(range(256)) * 4096  # 1 MiB, not all zero
    try:
        t0 = time.monotonic()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            for _ in range(mib):
                os.write(fd, block)
            os.fsync(fd)
        finally:
            os.close(fd)
        write_s = time.monotonic() - t0
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            t0 = time.monotonic()
            while os.read(fd, 1 << 20):
                pass
        finally:
            os.close(fd)
        read_s = time.monotonic() - t0
    finally:
        if os.path.exists(path):
            os.unlink(path)
    src = bytearray(block * 256)  # 256 MiB
    dst = bytearray(len(src))
    rounds = max(1, mib // 256)
    t0 = time.monotonic()
    for _ in range(rounds):
        dst[:] = src
    copy_s = time.monotonic() - t0
    mb = mib * 1.048576
    return {"seq_write_MBps": round(mb / write_s, 1), "seq_read_cold_MBps": round(mb / read_s, 1),
            "memcpy_MBps": round(rounds * 256 * 1.048576 / copy_s, 1), "mib": mib,
            "dir": os.path.abspath(directory)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mib", type=int, default=512)
    ap.add_argument("--dir", default=os.path.join(ROOT, "build"))
    ap.add_argument("--json")
    a = ap.parse_args()
    os.makedirs(a.dir, exist_ok=True)
    r = measure(a.dir, a.mib)
    print("host, %d MiB in %s: sequential write+fsync %.0f MB/s, sequential read (cold) %.0f MB/s, memcpy %.0f MB/s"
          % (a.mib, r["dir"], r["seq_write_MBps"], r["seq_read_cold_MBps"], r["memcpy_MBps"]))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(r, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
