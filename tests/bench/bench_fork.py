#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""make bench-fork: VMs from a template (chvm template create, chvm run
--from) against a copy restore of the same guest, with the micro guest
(micro-touchN.elf: it writes N MiB of guest RAM at boot, then prints
"count N" lines) under this host's own KVM and Cloud Hypervisor v48 (the
first of $CHVM_TEST_CH_EXTRA, $CLOUD_HYPERVISOR or PATH that runs).

For each size (MiB the guest wrote; guest RAM 256 MiB more):
  template    chvm template create: boot, settle, snapshot, seal (s)
  cow         chvm run --from: a clone mapping the template's memory
              copy-on-write, command to VM running (ms), its VMM's PSS
  copy        chvm run --from --memory copy: the clone copies the memory
              file first (ms)
  own copy    chvm standby + chvm restore of the same guest booted plainly
              (copy: CH reads memory-ranges; the baseline)
  own file    the same guest booted with --memory-file: standby flushes the
              file, restore maps it again in place ("file")
              for both: standby and restore (ms), command to the guest's
              first count after it, the VMM's PSS and RSS 0-60 s after
and for the first size 10 clones at once (--count 10): the sum of their
VMMs' PSS against 10 x guest RAM and the template's memory, and the host's
MemAvailable before and after.  No timed assertions: it prints a table.
Every VM boots under flock /tmp/chvm-vmtests.lock (the tests' lock)."""

import argparse
import fcntl
import json
import os
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))  # the chvmtest package
from chvmtest import ch_micro, cli, net  # noqa: E402

LOCK = "/tmp/chvm-vmtests.lock"
SIZES = (512, 2048, 4096)


def ch_v48():
    for b in ch_micro.ch_binaries():
        if b and ch_micro.major(b) == 48:
            return b
    return None


def chvm(env, *args, timeout=900):
    t = time.monotonic()
    p = subprocess.run([cli.CHVM, *args], env=env, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError("chvm %s: %s" % (" ".join(args), p.stderr.strip()[-600:]))
    return p, (time.monotonic() - t) * 1000


def kb_field(path, key):
    with open(path) as f:
        for line in f:
            m = re.match(r"^%s:\s+(\d+) kB" % key, line)
            if m:
                return int(m.group(1)) << 10
    return 0


def pss(pid):
    return kb_field("/proc/%d/smaps_rollup" % pid, "Pss")


def avail():
    return kb_field("/proc/meminfo", "MemAvailable")


def elf(size):
    return os.path.join(os.path.dirname(ch_micro.MICRO_ELF), "micro-touch%d.elf" % size)


def wait_counting(env, name, timeout=120):
    log = os.path.join(cli.vm_dir(env, name), "console.log")

    def counted():
        try:
            with open(log, errors="replace") as f:
                return ch_micro.COUNT_RE.search(f.read())
        except FileNotFoundError:
            return None
    ch_micro.wait_for(counted, timeout, "count lines of " + name)


def one_size(env, ns, size, row):
    ram = "%dM" % (size + 256)
    tname = "t%d" % size
    p, ms = chvm(env, "--json", "template", "create", tname, "--backend", "ch", "--netns", ns,
                 "--memory", ram, "--kernel", elf(size), "--no-wait", "--no-quiesce",
                 "--settle-timeout", "600")
    made = json.loads(p.stdout)
    row.update(template_s=ms / 1000, template_mib=made["memory_bytes"] >> 20)
    for mode in ("cow", "copy"):
        name = "%s-%d" % (mode, size)
        p, ms = chvm(env, "--json", "run", "--from", tname, "--name", name, "--memory", mode,
                     "--no-agent")
        j = json.loads(p.stdout)
        wait_counting(env, name)
        row[mode + "_ms"] = ms
        row[mode + "_restore_ms"] = j["restore"]["phases"].get("restore", 0)
        row[mode + "_pss_mib"] = pss(j["pid"]) >> 20
        # What the clone has to itself on the host: its copy of the memory
        # file (page cache and disk), none with cow.
        own = os.path.join(cli.vm_dir(env, name), "memory")
        row[mode + "_own_mib"] = (os.stat(own).st_blocks * 512 >> 20) if os.path.exists(own) else 0
        chvm(env, "rm", "-f", name)
    # The baseline: the same guest booted plainly, stood by, copy-restored;
    # and booted with --memory-file, whose own restore maps that file again.
    for mode, extra in (("copy", ()), ("file", ("--memory-file",))):
        own_restore(env, ns, size, mode, extra, row)
    return tname


def rss(pid):
    return kb_field("/proc/%d/status" % pid, "VmRSS")


def own_restore(env, ns, size, mode, extra, row):
    """Standby and restore of one VM of size: the restore's times, command
    to the guest's first count after it, and its VMM's PSS and RSS over the
    60 s after (the snapshot or file warm in the page cache either way)."""
    name = "%s-%d" % (mode, size)
    log = os.path.join(cli.vm_dir(env, name), "console.log")
    chvm(env, "run", "--backend", "ch", "--netns", ns, "--memory", "%dM" % (size + 256),
         "--kernel", elf(size), "--no-wait", "--name", name, *extra)
    ch_micro.wait_for(lambda: "touched" in open(log, errors="replace").read(), 600, "touch")
    wait_counting(env, name)
    p, ms = chvm(env, "--json", "standby", "--no-quiesce", name)
    key = "own_" + mode
    row[key + "_standby_ms"] = ms
    with open(log, errors="replace") as f:
        seen = len(f.read())
    t0 = time.monotonic()
    p, ms = chvm(env, "--json", "restore", "--no-agent", name)
    j = json.loads(p.stdout)
    assert j["memory_restore"] == mode, j

    def counted_after():
        with open(log, errors="replace") as f:
            return ch_micro.COUNT_RE.search(f.read()[seen:])
    ch_micro.wait_for(counted_after, 120, "a count of %s after its restore" % name)
    row.update({key + "_ms": ms, key + "_phase_ms": j["phases"].get("restore", 0),
                key + "_count_ms": (time.monotonic() - t0) * 1000})
    pid = cli.ps(env)[name]["pid"]
    for at in (0, 10, 30, 60):
        ch_micro.wait_for(lambda: time.monotonic() - t0 >= at, at + 5, "%d s" % at)
        row["%s_pss_mib_%ds" % (key, at)] = pss(pid) >> 20
        row["%s_rss_mib_%ds" % (key, at)] = rss(pid) >> 20
    chvm(env, "rm", "-f", name)


def fan_out(env, tname, size, out):
    before = avail()
    p, ms = chvm(env, "--json", "run", "--from", tname, "--count", "10", "--name", "f",
                 "--no-agent")
    clones = json.loads(p.stdout)
    for c in clones:
        wait_counting(env, c["name"])
    total = sum(pss(c["pid"]) for c in clones)
    out.update(count=len(clones), all_ms=ms, pss_mib=total >> 20,
               ram_mib=10 * (size + 256), avail_drop_mib=(before - avail()) >> 20,
               memory=sorted({c["memory"] for c in clones}))
    chvm(env, "rm", "-f", *[c["name"] for c in clones])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default=",".join(map(str, SIZES)))
    ap.add_argument("--json", default=os.path.join(HERE, "..", "..", "build", "test-results",
                                                   "bench-fork.json"))
    args = ap.parse_args()
    ch = ch_v48()
    if ch is None:
        print("bench-fork: skipped: no cloud-hypervisor v48 (set CHVM_TEST_CH_EXTRA)")
        return 0
    sizes = [int(s) for s in args.sizes.split(",")]
    rows, fan = [], {}
    with tempfile.TemporaryDirectory(prefix="bench-fork-") as tmp, open(LOCK, "w") as lk, \
            net.Netns() as ns:
        fcntl.flock(lk, fcntl.LOCK_EX)
        env = cli.state_env(tmp, CLOUD_HYPERVISOR=ch,
                            CHVM_CH_SECCOMP=os.environ.get("CHVM_CH_SECCOMP", "log"))
        for i, size in enumerate(sizes):
            row = {"size": size}
            tname = one_size(env, ns, size, row)
            if i == 0:
                fan_out(env, tname, size, fan)
            chvm(env, "template", "rm", tname)
            rows.append(row)
            print(json.dumps(row), file=sys.stderr)
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json + ".tmp", "w") as f:
        json.dump({"ch": ch_micro.version_id(ch), "sizes": rows, "fan_out": fan}, f, indent=1)
    os.replace(args.json + ".tmp", args.json)
    print("cloud-hypervisor %s, micro guest, this host's KVM (kvm_pvm)" % ch_micro.version_id(ch))
    print("| guest wrote | template create | clone cow: run to running (restore) | PSS + own "
          "| clone copy: run (restore) | PSS + own |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print("| %d MiB | %.1f s | %.0f ms (%.0f) | %d + %d MiB | %.0f ms (%.0f) | %d + %d MiB |"
              % (r["size"], r["template_s"], r["cow_ms"], r["cow_restore_ms"], r["cow_pss_mib"],
                 r["cow_own_mib"], r["copy_ms"], r["copy_restore_ms"], r["copy_pss_mib"],
                 r["copy_own_mib"]))
    print("\nA VM's own standby and restore: copy (memory-ranges) against --memory-file (the file "
          "mapped again, in place); VMM PSS / RSS MiB at 0, 10, 30, 60 s after the restore")
    print("| guest wrote | mode | standby | restore (CH phase) | to first count | PSS 0/10/30/60 s "
          "| RSS 0/10/30/60 s |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        for mode in ("copy", "file"):
            k = "own_" + mode
            print("| %d MiB | %s | %.0f ms | %.0f ms (%.0f) | %.0f ms | %s | %s |"
                  % (r["size"], mode, r[k + "_standby_ms"], r[k + "_ms"], r[k + "_phase_ms"],
                     r[k + "_count_ms"],
                     " / ".join(str(r["%s_pss_mib_%ds" % (k, a)]) for a in (0, 10, 30, 60)),
                     " / ".join(str(r["%s_rss_mib_%ds" % (k, a)]) for a in (0, 10, 30, 60))))
    if fan:
        print("10 clones of the %d MiB template at once (--count 10): %.0f ms for all, memory %s, "
              "VMMs' PSS %d MiB in all against 10 x guest RAM %d MiB; host MemAvailable %d MiB "
              "lower" % (sizes[0], fan["all_ms"], "/".join(fan["memory"]), fan["pss_mib"],
                         fan["ram_mib"], fan["avail_drop_mib"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
