# SPDX-License-Identifier: Apache-2.0
"""The guest agent in a real VM (fixture `guest` of conftest.py: the stand-in
Chromium image under QEMU/TCG, agent on TCP 1025 with a token), driven
through `chvm agent` like a user would: WaitReady against CDP seen from
outside, Health, Quiesce/Thaw, setting the clock, Exec, and a real CDP
session (playwright-core) through Forward."""

import json
import os
import re
import secrets
import select
import shutil
import subprocess
import time
import types
import urllib.request

import pytest

from chvmtest import paths, prereq, vm

ROOT = paths.ROOT
CHVM = paths.CHVM
CDP_CLIENT = paths.CDP_CLIENT_JS
PLAYWRIGHT = os.path.join(paths.NODE_MODULES, "playwright-core")
READY_MS = 240000  # Chromium under TCG on a loaded 2-core host
AGENT_LISTENING = r"chvm-agent\[\d+\]: listening on tcp"


@pytest.fixture(scope="module")
def g(request):
    why = prereq.missing(prereq.chvm)
    if why:
        pytest.skip("missing " + why)
    guest = request.getfixturevalue("guest")  # booted only once chvm is there
    # No wait for the agent: init starts the entrypoint ("phase exec", which
    # the guest fixture waited for) only once the agent listens (--ready-fd);
    # test_agent_listens_before_exec checks that.
    return guest


def agent(g, *args, timeout=60, input=None, check=True):
    """Runs `chvm --json agent ... ARGS` and returns its parsed JSON line."""
    cmd = [CHVM, "--json", "agent", "--tcp", "127.0.0.1:%d" % g.agent_port,
           "--token", g.token, "--timeout", "30000"] + list(args)
    p = subprocess.run(cmd, capture_output=True, timeout=timeout, input=input)
    if check:
        assert p.returncode == 0, "%s: rc %d: %s" % (" ".join(args), p.returncode,
                                                     p.stderr.decode(errors="replace"))
        return json.loads(p.stdout)
    return p


def cdp_version(port, timeout=10):
    with urllib.request.urlopen("http://127.0.0.1:%d/json/version" % port,
                                timeout=timeout) as r:
        assert r.status == 200
        return json.loads(r.read())


@pytest.fixture(scope="module")
def ready(g):
    """WaitReady once for the module; the first test checks it closely."""
    return agent(g, "ready", "--timeout", str(READY_MS), timeout=READY_MS / 1000 + 30)


def test_wait_ready_returns_once_cdp_answers(g, ready):
    # Right after WaitReady, CDP answers from outside on the first try and
    # names the same browser the agent saw inside.
    v = cdp_version(g.cdp_port)
    print("FIGURE WaitReady:", ready)
    assert ready["browser"] and ready["browser"] == v["Browser"]
    assert ready["ready_after_ms"] <= READY_MS
    # Once ready, a second WaitReady answers at once.
    again = agent(g, "ready", "--timeout", "5000")
    assert again["ready_after_ms"] < 2000
    assert again["browser"] == ready["browser"]


def test_wrong_token_refused(g):
    p = subprocess.run([CHVM, "agent", "--tcp", "127.0.0.1:%d" % g.agent_port,
                        "--token", "0" * 64, "ping"], capture_output=True, timeout=60)
    assert p.returncode == 1
    assert b"UNAUTHENTICATED" in p.stderr


def test_health_plausible(g, ready):
    h = agent(g, "health")
    print("FIGURE Health:", h)
    total = h["mem_total_kb"]
    # The guest's RAM as the kernel reports it, not the host's.
    with open("/proc/meminfo") as f:
        host_total = int(re.search(r"MemTotal:\s+(\d+)", f.read()).group(1))
    assert 256 * 1024 < total < host_total
    assert 16 * 1024 < h["mem_available_kb"] < total
    assert h["uptime_s"] > 1
    assert h["load1"] >= 0
    assert h["chrome_pid"] > 1, h
    assert h["chrome_state"] not in ("absent", "zombie", "dead")
    assert h["cdp_answer_ms"] >= 0, h
    assert h["frozen"] is False
    # Cross-check MemAvailable with the guest's own /proc/meminfo via Exec.
    out = agent(g, "exec", "--", "cat", "/proc/meminfo")
    avail = int(re.search(r"MemAvailable:\s+(\d+)", out["stdout"]).group(1))
    assert abs(avail - h["mem_available_kb"]) < total // 4


def test_quiesce_then_thaw_keeps_cdp(g, ready):
    q = agent(g, "quiesce", "--timeout", "20000", "--drop-caches", "--compact")
    print("FIGURE Quiesce (Chromium guest):", q)
    assert q["frozen_count"] >= 0  # overlay-on-tmpfs root: often 0
    if q["frozen_count"] > 0:
        # While frozen only Ping/Health/Thaw pass.
        p = agent(g, "exec", "--", "true", check=False)
        assert p.returncode == 1 and b"FROZEN" in p.stderr
        assert agent(g, "health")["frozen"] is True
    t = agent(g, "thaw")
    assert t["thawed_count"] >= q["frozen_count"]
    assert t["announced"] is True  # eth0 has 10.0.2.15: a gratuitous ARP went out
    assert agent(g, "health")["frozen"] is False
    assert cdp_version(g.cdp_port)["Browser"] == ready["browser"]
    assert agent(g, "exec", "--", "true")["code"] == 0


def guest_time(g):
    out = agent(g, "exec", "--", "date", "+%s")
    assert out["code"] == 0
    return int(out["stdout"].strip())


def rtc_time(g):
    """The guest RTC in seconds since the epoch (UTC), None without an RTC."""
    out = agent(g, "exec", "--", "cat", "/sys/class/rtc/rtc0/since_epoch")
    return int(out["stdout"].strip()) if out["code"] == 0 else None


def test_thaw_sets_guest_clock(g):
    rtc_before = rtc_time(g)
    before = guest_time(g)
    host_before = time.time()
    t = agent(g, "thaw", "--time", "+3600")
    step_s = t["clock_step_ns"] / 1e9
    after = guest_time(g)
    t0 = time.monotonic()
    rtc_after = rtc_time(g)
    rtc_read_s = time.monotonic() - t0
    elapsed = time.time() - host_before
    print("FIGURE Thaw +3600: step %.3f s, guest date moved %d s, RTC moved %s s"
          % (step_s, after - before,
             "-" if rtc_before is None else rtc_after - rtc_before))
    try:
        # The step is host time + 1 h minus the guest's time, so it is 1 h
        # plus however far the guest clock was off; `date` moves accordingly.
        assert 3600 - 120 < step_s < 3600 + 120, step_s
        assert abs((after - before) - step_s) <= elapsed + 2, (before, after, step_s)
        # The RTC (QEMU's CMOS clock) follows the system clock; a VM without
        # one is no error, and the reply says the RTC was left alone.
        assert t["rtc_set"] == (rtc_before is not None), (t, rtc_before)
        if rtc_before is not None:
            assert abs(rtc_after - after) <= rtc_read_s + 2, (rtc_after, after)
    finally:
        back = agent(g, "thaw", "--time", "now")
        assert back["clock_step_ns"] / 1e9 < -3500
    assert back["rtc_set"] == (rtc_before is not None), back
    assert abs(guest_time(g) - time.time()) < 120
    if rtc_before is not None:
        assert abs(rtc_time(g) - time.time()) < 120


def test_exec_output_and_exit_code(g):
    out = agent(g, "exec", "--", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert out == {"code": 3, "signal": 0, "stdout": "out\n", "stderr": "err\n"}
    out = agent(g, "exec", "--stdin", "--", "tr", "a-z", "A-Z", input=b"hello agent")
    assert out["code"] == 0 and out["stdout"] == "HELLO AGENT"
    out = agent(g, "exec", "--env", "X=in the guest", "--", "sh", "-c", 'echo "$X"')
    assert out["stdout"] == "in the guest\n"
    out = agent(g, "exec", "--", "sh", "-c", "kill -KILL $$")
    assert out["signal"] == 9 and out["code"] == 137
    p = agent(g, "exec", "--", "/no/such/program", check=False)
    assert p.returncode == 1 and b"NOT_FOUND" in p.stderr
    # Plain (non-JSON) mode exits with the command's status.
    p = subprocess.run([CHVM, "agent", "--tcp", "127.0.0.1:%d" % g.agent_port, "--token",
                        g.token, "exec", "--", "sh", "-c", "exit 42"],
                       capture_output=True, timeout=60)
    assert p.returncode == 42


def test_forward_carries_cdp_session(g, ready):
    if shutil.which("node") is None:
        pytest.skip("missing node (apt-get install nodejs)")
    if not os.path.isdir(PLAYWRIGHT):
        pytest.skip("missing node_modules/playwright-core (npm install at the repo root)")
    fwd = subprocess.Popen([CHVM, "agent", "--tcp", "127.0.0.1:%d" % g.agent_port,
                            "--token", g.token, "forward", "9222", "--listen",
                            "127.0.0.1:0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        r, _, _ = select.select([fwd.stdout], [], [], 30)
        assert r, "chvm agent forward printed nothing"
        line = fwd.stdout.readline().decode()
        m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
        assert m, line
        port = int(m.group(1))
        # Plain HTTP through the forward first: the same browser as outside.
        assert cdp_version(port)["Browser"] == ready["browser"]
        p = subprocess.run(["node", CDP_CLIENT, "http://127.0.0.1:%d" % port, "120000"],
                           capture_output=True, timeout=180, cwd=ROOT)
        assert p.returncode == 0, p.stderr.decode(errors="replace")
        res = json.loads(p.stdout.decode().strip().splitlines()[-1])
        print("FIGURE Forward CDP session:", res)
        assert res["title"] == res["expected"]
        assert res["text"] == "forwarded"
    finally:
        fwd.terminate()
        fwd.wait(10)


# ---- a real FIFREEZE: overlay=disk puts the upper layer on an ext4 disk ------

@pytest.fixture(scope="module")
def disk_guest(tmp_path_factory):
    """A small BusyBox guest (no browser) whose overlay upper layer is an ext4
    disk, the one writable filesystem Quiesce must freeze."""
    why = vm.missing_prerequisites(rootfs=None)
    if why:
        pytest.skip("guest VM: " + why)
    if not (os.access(CHVM, os.X_OK) and os.path.exists("/bin/busybox")
            and shutil.which("mkfs.ext4")):
        pytest.skip("missing: build/bin/chvm, /bin/busybox (busybox-static) or mkfs.ext4")
    d = tmp_path_factory.mktemp("diskguest")
    root = d / "root"
    for sub in ("bin", "etc", "root", "tmp", "proc", "sys", "dev", "run"):
        (root / sub).mkdir(parents=True)
    shutil.copy("/bin/busybox", root / "bin" / "busybox")
    for applet in ("sh", "true", "sleep", "cat", "date", "sync", "echo"):
        (root / "bin" / applet).symlink_to("busybox")
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\n")
    rootfs, upper = d / "rootfs.ext4", d / "upper.ext4"
    subprocess.run(["mkfs.ext4", "-q", "-L", "chvm-root", "-d", str(root), str(rootfs),
                    "16M"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["mkfs.ext4", "-q", str(upper), "32M"], check=True,
                   stdout=subprocess.DEVNULL)
    token = secrets.token_hex(32)
    cfg = {"hostname": "chvm-freeze", "entrypoint": ["/bin/sleep", "3600"],
           "overlay": "disk", "net.address": vm.GUEST_ADDRESS,
           "net.gateway": vm.GUEST_GATEWAY, "agent.tcp_port": vm.AGENT_TCP_PORT,
           "agent.token": token}
    machine = vm.VM(str(d), cfg, rootfs=str(rootfs), memory=512,
                    disks=[(str(upper), "chvm-upper", False)], name="freeze").start()
    try:
        machine.wait_console(r"phase exec$", 180)
        yield types.SimpleNamespace(agent_port=machine.agent_port, token=token, vm=machine)
    finally:
        machine.stop()


def hold_quiesce(g, *args):
    """`chvm agent quiesce --hold`: frozen until its stdin closes."""
    p = subprocess.Popen([CHVM, "--json", "agent", "--tcp", "127.0.0.1:%d" % g.agent_port,
                          "--token", g.token, "--timeout", "30000", "quiesce", "--hold"]
                         + list(args), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    r, _, _ = select.select([p.stdout], [], [], 60)
    assert r, "quiesce printed nothing"
    line = p.stdout.readline()
    assert line, p.stderr.read().decode(errors="replace")
    return p, json.loads(line)


def test_agent_listens_before_exec(disk_guest):
    # The first test on a fresh guest: it connects right after "phase exec",
    # without waiting for the agent's log line.  init waited for the agent's
    # ready byte, so the agent listened before init went on to exec.
    g = disk_guest
    assert agent(g, "ping", timeout=30) is not None
    console = g.vm.console()
    listening = re.search(AGENT_LISTENING, console)
    assert listening, console
    assert listening.start() < console.index("phase exec"), console
    assert "WARN init[1]: agent:" not in console, console


def test_quiesce_freezes_upper_disk(disk_guest):
    g = disk_guest
    p, q = hold_quiesce(g, "--timeout", "60000")
    try:
        assert q["frozen_count"] >= 1, q
        print("FIGURE Quiesce (upper disk guest):", q)
        h = agent(g, "health")
        assert h["frozen"] is True
        refused = agent(g, "exec", "--", "true", check=False)
        assert refused.returncode == 1 and b"FROZEN" in refused.stderr
    finally:
        out, err = p.communicate(b"", timeout=60)
    t = json.loads(out.decode().strip().splitlines()[-1])
    assert t["thawed_count"] >= q["frozen_count"], (t, err)
    assert agent(g, "health")["frozen"] is False
    # Writes to the upper disk go through again.
    w = agent(g, "exec", "--", "sh", "-c", "echo thawed > /probe && sync && cat /probe")
    assert w["code"] == 0 and w["stdout"] == "thawed\n"


def test_quiesce_auto_thaws(disk_guest):
    g = disk_guest
    # Deadline: frozen for 2 s, then the agent thaws by itself.
    p, q = hold_quiesce(g, "--timeout", "2000")
    try:
        assert q["frozen_count"] >= 1
        deadline = time.monotonic() + 60
        while agent(g, "health")["frozen"]:
            assert time.monotonic() < deadline, "no auto-thaw after the deadline"
            time.sleep(0.5)  # polling the guest's state, bounded by the deadline
    finally:
        out, _ = p.communicate(b"", timeout=60)
    assert json.loads(out.decode().strip().splitlines()[-1])["thawed_count"] == 0
    # Connection drop: without --hold the freeze ends with the command.
    q = agent(g, "quiesce", "--timeout", "60000")
    assert q["frozen_count"] >= 1
    assert agent(g, "health")["frozen"] is False
    assert agent(g, "exec", "--", "true")["code"] == 0


def test_shutdown_powers_off(disk_guest):
    # Last test of the module: the guest goes away.
    out = agent(disk_guest, "shutdown")
    assert out == {"shutdown": "poweroff"}
    assert disk_guest.vm.wait_exit(60) is not None
    # The agent asks init (SIGPWR), which stops the entrypoint (sleep dies of
    # SIGTERM) and powers off the usual way.
    console = disk_guest.vm.console()
    assert re.search(r"INFO init\[1\]: SIGPWR: stopping the entrypoint\n(.*\n)*"
                     r"INFO init\[1\]: entrypoint exited status 143\n(.*\n)*"
                     r"INFO init\[1\]: poweroff", console), console
