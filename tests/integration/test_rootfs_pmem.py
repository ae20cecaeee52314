# SPDX-License-Identifier: Apache-2.0
"""The root filesystem as virtio-pmem with DAX (chvm run --rootfs-device pmem,
issue 24) on QEMU (TCG), against the same VM with the default virtio-blk root.

Each boots the stand-in image with 2 GiB to CDP, opens a page, stands by and
restores (the same page is there after).  With pmem the guest's lower root
is /dev/pmem0 mounted with DAX, so Chromium's binaries are read from the
host's page cache, never copied into guest RAM: the snapshot (QEMU's
migration stream, with x-ignore-shared keeping the pmem mapping out) holds
at most the guest's non-free memory at the quiesce plus SNAPSHOT_MARGIN
(pages the guest freed but did not zero: QEMU skips only zero pages), and
less than the blk VM's.  ps --json and inspect show the VMM's RSS and PSS.

An initramfs without the pmem modules falls back to the block device, with
exactly one console line saying so.
"""
import json
import os
import re
import subprocess
import sys
import time

import pytest

from chvmtest import cli, paths, prereq, vm as qemu_vm
from chvmtest.cdp import http, wait_cdp
from chvmtest.cli import BOOT_TIMEOUT, chvm

pytestmark = prereq.requires_chvm_qemu

MIB = 1 << 20
# What a pmem-root snapshot may hold beyond the guest's non-free memory at
# the quiesce: freed, not zeroed pages (the boot's, the page cache the
# quiesce dropped: its config files, fonts) and the devices' state.
SNAPSHOT_MARGIN = 64 * MIB
LOWER = "/run/chvm/lower"
FALLBACK = re.compile(r"WARN init\[1\]: root: .*(falling back|without DAX).*")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    if not qemu_vm.initrd_has_agent():
        pytest.skip("missing: the agent in the initramfs (the test reads the guest's mounts)")
    return cli.state_env(tmp_path_factory.mktemp("pmem"))


def guest_exec(env, name, *argv):
    p = subprocess.run(cli.agent_argv(env, name) + ["exec", "--", *argv], capture_output=True,
                       text=True, timeout=120, check=True)
    return p.stdout


def lower_mount(env, name):
    """The /proc/mounts fields of the guest's lower root."""
    mounts = [line.split() for line in guest_exec(env, name, "cat", "/proc/mounts").splitlines()]
    lower = [m for m in mounts if len(m) >= 4 and m[1] == LOWER]
    assert len(lower) == 1, mounts
    return lower[0]


def meminfo(env, name):
    text = guest_exec(env, name, "cat", "/proc/meminfo")
    return {k: int(v.split()[0]) << 10 for k, v in
            (line.split(":", 1) for line in text.splitlines() if ":" in line)}


def open_page(base, marker):
    target = http(base + "/json/new?" + marker, method="PUT")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if {t["id"]: t["url"] for t in http(base + "/json/list")}.get(target["id"]) == marker:
            return target["id"]
        time.sleep(0.2)
    raise AssertionError("the page %s did not open" % marker)


def assert_host_memory(env, name):
    """ps --json and inspect: the VMM's RSS and PSS, plausible."""
    row = [v for v in json.loads(chvm(env, "ps", "--json").stdout) if v["name"] == name][0]
    hm = cli.inspect(env, name)["host_memory"]
    for d in (row, hm):
        assert d["guest_ram"] == 2048 * MIB, d
        assert 0 < d["vmm_pss"] <= d["vmm_rss"], d
    table = chvm(env, "ps").stdout.splitlines()
    assert "HOST PSS" in table[0], table
    return hm


def cycle(env, device):
    """Boots with --rootfs-device device, checks the root mount, opens a
    page, stands by and restores; returns the figures."""
    name = "root-" + device
    t0 = time.monotonic()
    try:
        out = json.loads(chvm(env, "run", "--name", name, "--memory", "2G", "--cpus", "2",
                              "--rootfs-device", device, "--json", timeout=BOOT_TIMEOUT).stdout)
        wait_cdp(out["cdp"], time.monotonic() + BOOT_TIMEOUT)
        boot_s = time.monotonic() - t0
        lower = lower_mount(env, name)
        if device == "pmem":
            assert lower[0] == "/dev/pmem0" and "dax=always" in lower[3].split(","), lower
        else:
            assert lower[0].startswith("/dev/vd") and "dax" not in lower[3], lower
        assert cli.inspect(env, name)["spec"].get("rootfs_device", "blk") == device
        marker = "data:text/html,chvm-pmem-%s-%d" % (device, os.getpid())
        page = open_page(out["cdp"], marker)
        mem = meminfo(env, name)
        hm = assert_host_memory(env, name)
        sb = json.loads(chvm(env, "standby", name, "--json", timeout=600).stdout)
        rs = json.loads(chvm(env, "restore", name, "--json", timeout=300).stdout)
        wait_cdp(out["cdp"], time.monotonic() + 120)
        after = {t["id"]: t["url"] for t in http(out["cdp"] + "/json/list")}
        assert after.get(page) == marker, after
        assert lower_mount(env, name)[0] == lower[0]
        console = chvm(env, "logs", name).stdout
        assert not FALLBACK.search(console), FALLBACK.search(console).group(0)
    finally:
        chvm(env, "rm", "-f", name, check=False)
    return {"boot_s": boot_s, "snapshot": sb["snapshot_bytes"], "nonfree": sb["guest_nonfree"],
            "used": sb["guest_used"], "free": mem["MemFree"], "cached": mem["Cached"],
            "rss": hm["vmm_rss"], "pss": hm["vmm_pss"], "restore_ms": rs["total_ms"]}


def test_pmem_root_dax_snapshot_within_nonfree(env):
    res = {d: cycle(env, d) for d in ("pmem", "blk")}
    for d, r in res.items():
        print("\n%-4s boot to CDP %.1f s; before standby MemFree %d MiB, Cached %d MiB; "
              "VMM RSS %d MiB, PSS %d MiB; snapshot %d MiB (guest non-free %d MiB, used %d MiB "
              "at the quiesce); restore %.0f ms"
              % (d, r["boot_s"], r["free"] // MIB, r["cached"] // MIB, r["rss"] // MIB,
                 r["pss"] // MIB, r["snapshot"] // MIB, r["nonfree"] // MIB, r["used"] // MIB,
                 r["restore_ms"]), end="")
    pmem, blk = res["pmem"], res["blk"]
    assert pmem["snapshot"] <= pmem["nonfree"] + SNAPSHOT_MARGIN, res
    assert pmem["snapshot"] < blk["snapshot"], res


def test_without_pmem_modules_falls_back_to_the_disk(env, tmp_path):
    """An initramfs whose module list lacks nd_pmem and virtio_pmem: the
    guest says once why it uses the chvm-root disk, and boots from it."""
    cli.vmm_reachable(tmp_path)  # the VMM's uid reads the initramfs
    skel = tmp_path / "skel"
    subprocess.run(["cp", "-a", paths.INITRD_SKEL, str(skel)], check=True)
    listing = (skel / "modules.list").read_text()
    kept = [line for line in listing.splitlines() if "pmem" not in line]
    assert len(kept) < len(listing.splitlines()), "modules.list names no pmem module"
    (skel / "modules.list").write_text("\n".join(kept) + "\n")
    initrd = tmp_path / "initrd.cpio.gz"
    subprocess.run([sys.executable, paths.MKINITRD, "--skel", str(skel),
                    "--init", os.path.join(paths.BUILD, "bin", "chvm-init"),
                    "--agent", os.path.join(paths.BUILD, "bin", "chvm-agent"),
                    "--kernel", paths.KERNEL_DIR, "-o", str(initrd)],
                   check=True, capture_output=True)
    assert not [n for n in qemu_vm.initrd_members(str(initrd)) if "pmem" in n]
    name = "root-fallback"
    try:
        chvm(env, "run", "--name", name, "--rootfs-device", "pmem", "--initrd", str(initrd),
             "--no-wait", timeout=BOOT_TIMEOUT)
        deadline = time.monotonic() + BOOT_TIMEOUT
        console = ""
        while "phase exec" not in console and time.monotonic() < deadline:
            time.sleep(1)
            console = chvm(env, "logs", name).stdout
        assert "phase exec" in console, console
        lines = [line.strip() for line in console.splitlines() if "root:" in line]
        assert lines == ["WARN init[1]: root: no virtio_pmem driver in this kernel or initramfs; "
                         "falling back to the chvm-root disk"], lines
        assert lower_mount(env, name)[0].startswith("/dev/vd")
    finally:
        chvm(env, "rm", "-f", name, check=False)
