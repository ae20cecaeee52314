# SPDX-License-Identifier: Apache-2.0
"""backend_ch with the real Cloud Hypervisor and the micro guest
(tests/micro-guest), driven by build/tests/ch-driver (the real backend code).

Needs cloud-hypervisor (PATH or $CLOUD_HYPERVISOR) and a /dev/kvm that runs
the micro guest; each test skips with one line saying what is missing.  On
this project's build hosts (software kvm_pvm) stock CH v49+ cannot snapshot:
KVM_GET_NESTED_STATE fails with EINVAL; the snapshot tests skip saying so."""

import os
import re
import shutil
import signal
import subprocess

import pytest

from chvmtest import ch_micro
from chvmtest.ch_micro import Driver

BOOT_TIMEOUT = 60


@pytest.fixture(scope="session", params=ch_micro.ch_binaries() or [None],
                ids=ch_micro.version_id)
def ch_env(request):
    """Environment naming one CH binary for the driver (each is tested)."""
    return {"CLOUD_HYPERVISOR": request.param or ""}


@pytest.fixture(scope="session")
def ch_ready(tmp_path_factory, ch_env):
    """Skips unless CH runs the micro guest here; returns the CH version major."""
    why = ch_micro.missing_prerequisites(ch_env["CLOUD_HYPERVISOR"])
    if why:
        pytest.skip(why)
    d = Driver(str(tmp_path_factory.mktemp("probe")), memory_mib=64, env=ch_env)
    try:
        out = d.cmd("start")
        if not out.startswith("ok"):
            pytest.skip("cloud-hypervisor cannot start the micro guest here: " + out)
        try:
            d.wait_count(2, BOOT_TIMEOUT)
        except TimeoutError:
            pytest.skip("/dev/kvm cannot run the micro guest (no serial output in %d s)" % BOOT_TIMEOUT)
        version = out.split("version=", 1)[1]
        assert d.cmd("shutdown") == "ok"
    finally:
        assert d.close() == 0, "the probe left a VMM behind"
    m = re.search(r"v?(\d+)\.", version)
    return int(m.group(1)) if m else 0


@pytest.fixture
def driver(tmp_path, ch_env):
    made = []

    def make(env=None, **kw):
        d = Driver(str(tmp_path / ("vm%d" % len(made))), env=dict(ch_env, **(env or {})), **kw)
        made.append(d)
        return d
    yield make
    leftovers = [d.close() for d in made]
    assert not any(leftovers), "a VMM was left running (pids %s)" % leftovers


def standby_or_skip(d):
    out = d.cmd("standby", timeout=120)
    if "GetNestedState" in out:
        pytest.skip("this host's KVM lacks KVM_GET_NESTED_STATE (kvm_pvm), which "
                    "cloud-hypervisor v49+ needs to snapshot")
    assert out.startswith("ok"), out
    return ch_micro.parse_kv(out)


def last_complete_count(text):
    counts = ch_micro.COUNT_RE.findall(text)
    return int(counts[-1]) if counts else None


@pytest.mark.parametrize("mode", ["copy", "ondemand"])
def test_counter_carries_on_after_restore(ch_ready, driver, mode):
    if mode == "ondemand" and ch_ready < 52:
        pytest.skip("on-demand restore needs cloud-hypervisor v52+ (this is v%d)" % ch_ready)
    d = driver(memory_mib=96, cmdline="touch_mib=32")
    assert d.ok("mode " + mode)["mode"] == mode
    first_pid = int(d.ok("start")["pid"])
    d.wait_count(5, BOOT_TIMEOUT)
    assert "touched 32 MiB" in d.serial()
    d.ok("pause")
    assert d.ok("info")["state"] == "Paused"
    before = d.serial()
    n = last_complete_count(before)
    assert n is not None and n >= 5

    snap = standby_or_skip(d)
    sdir = os.path.join(d.dir, "snapshot")
    assert snap["path"] == sdir
    for f in ("config.json", "state.json", "memory-ranges"):
        assert os.path.getsize(os.path.join(sdir, f)) > 0, f
    assert not [e for e in os.listdir(d.dir) if e.startswith("snapshot.tmp-")]
    # Private guest RAM: the snapshot holds all of it.
    assert int(snap["bytes"]) >= 96 << 20

    d.ok("shutdown")
    assert not ch_micro.alive(first_pid)

    r = d.ok("restore " + sdir, timeout=120)
    assert int(r["pid"]) != first_pid
    # The phases have the keys both backends report; the memory mode is its own field.
    assert r["mode"] == mode and "vmm-start" in r and "restore" in r and "resume" in r
    assert d.ok("info")["state"] == "Running"

    # CH reopens console.log (the serial port) for the restored VM; its first complete count
    # line must follow the last one before the pause (a partly printed line
    # may sit in between), not start again from 1.
    def new_counts():
        text = d.serial()
        if text.startswith(before):
            text = text[len(before):]
        c = ch_micro.COUNT_RE.findall(text)
        return [int(x) for x in c] if len(c) >= 3 else None
    after = ch_micro.wait_for(new_counts, BOOT_TIMEOUT, "count lines after restore")
    assert after[0] in (n + 1, n + 2), "counter went %d -> %d" % (n, after[0])
    assert after == list(range(after[0], after[0] + len(after)))
    assert "memcheck bad" not in d.serial()
    d.ok("shutdown")


def test_restore_refuses_interrupted_snapshot(ch_ready, driver):
    d = driver(memory_mib=256, cmdline="touch_mib=128")
    d.ok("start")
    d.wait_count(1, BOOT_TIMEOUT)
    d.ok("pause")
    pid = d.vmm_pid()
    killed = []

    def kill_vmm(kv):  # standby made its snapshot.tmp-XXXXXX: interrupt it
        os.kill(pid, signal.SIGKILL)
        killed.append(kv["tmp"])
    out = d.cmd("standby", timeout=60, on_progress=kill_vmm)
    assert killed, "standby printed no progress line"
    assert out.startswith("error"), out
    assert "is not running" in out or "vm.snapshot" in out, out
    tmp = killed[0]
    assert os.path.isdir(tmp) and os.path.basename(tmp).startswith("snapshot.tmp-")
    assert not os.path.exists(os.path.join(d.dir, "snapshot"))

    out = d.cmd("restore " + tmp)
    assert out.startswith("error") and "not a completed snapshot" in out, out
    out = d.cmd("restore " + os.path.join(d.dir, "snapshot"))
    assert out.startswith("error") and "incomplete" in out, out
    # A directory with the right name but without CH's state is refused too.
    os.makedirs(os.path.join(d.dir, "snapshot"))
    with open(os.path.join(d.dir, "snapshot", "config.json"), "w") as f:
        f.write("{}")
    out = d.cmd("restore " + os.path.join(d.dir, "snapshot"))
    assert out.startswith("error") and "state.json" in out, out
    # Refused before any VMM was started.
    assert d.vmm_pid() == pid and not ch_micro.alive(pid)


def test_vmm_killed_is_reported(ch_ready, driver):
    d = driver(memory_mib=64)
    d.ok("start")
    d.wait_count(1, BOOT_TIMEOUT)
    pid = d.vmm_pid()
    os.kill(pid, signal.SIGKILL)
    ch_micro.wait_for(lambda: not ch_micro.alive(pid), 10, "VMM %d to die" % pid)
    for call in ("pause", "resume"):
        out = d.cmd(call, timeout=15)
        assert out.startswith("error"), out
        assert "vm." + call in out and "(pid %d) is not running" % pid in out, out
    assert d.cmd("standby", timeout=15).startswith("error")
    assert d.cmd("shutdown", timeout=15) == "ok"  # nothing left to stop


def test_power_button_accepted_then_kill(ch_ready, driver):
    """vm.power-button (chvm stop's graceful request) is accepted.  The micro
    guest has no ACPI driver, so it never powers off: the VMM keeps running
    and the fallback (shutdown, then kill) still stops it."""
    d = driver(memory_mib=64)
    d.ok("start")
    d.wait_count(1, BOOT_TIMEOUT)
    pid = d.vmm_pid()
    assert d.cmd("powerdown") == "ok"
    assert ch_micro.alive(pid)
    assert d.ok("info")["state"] == "Running"
    d.ok("shutdown")
    assert not ch_micro.alive(pid)
    # A VMM that is gone makes the button an error naming it.
    out = d.cmd("powerdown", timeout=15)
    assert out.startswith("error") and "vm.power-button" in out, out


def test_failed_start_leaves_no_vmm(ch_ready, ch_env, tmp_path):
    # A kernel that does not exist: CH starts, then vm.create or vm.boot fails.
    vmdir = tmp_path / "bad"
    vmdir.mkdir()
    p = subprocess.run([ch_micro.DRIVER, "--dir", str(vmdir), "--kernel", "/nonexistent/kernel.elf",
                        "--memory-mib", "64"],
                       input="start\n", capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, **ch_env))
    assert p.stdout.startswith("error"), p.stdout
    assert "start VM" in p.stdout and ("vm.create" in p.stdout or "vm.boot" in p.stdout), p.stdout
    pid = int((vmdir / "vmm.pid").read_text())
    assert not ch_micro.alive(pid), "cloud-hypervisor %d outlived a failed start" % pid
    assert not (vmdir / "api.sock").exists()


def test_micro_guest_under_qemu(tmp_path):
    """The micro guest itself, without CH or KVM: QEMU boots PVH ELFs too."""
    qemu = shutil.which("qemu-system-x86_64")
    if not qemu:
        pytest.skip("qemu-system-x86_64 not installed")
    if not os.path.exists(ch_micro.MICRO_ELF):
        pytest.skip("%s missing (make micro-guest)" % ch_micro.MICRO_ELF)
    log = tmp_path / "serial.log"
    p = subprocess.Popen([qemu, "-accel", "tcg", "-m", "128", "-nodefaults", "-display", "none",
                          "-no-reboot", "-kernel", ch_micro.MICRO_ELF,
                          "-append", "touch_mib=16 spin=200000", "-serial", "file:%s" % log],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        def counts():
            text = log.read_text(errors="replace") if log.exists() else ""
            c = [int(x) for x in ch_micro.COUNT_RE.findall(text)]
            return (text, c) if len(c) >= 3 else None
        text, c = ch_micro.wait_for(counts, 60, "3 count lines from the micro guest under QEMU")
    finally:
        p.kill()
        p.wait()
    assert text.startswith("touched 16 MiB\ncount 1\n")
    assert c == list(range(1, len(c) + 1))
    assert "memcheck bad" not in text
