# SPDX-License-Identifier: Apache-2.0
"""chvm end to end with the QEMU backend (TCG): one boot for the whole file.

run boots the stand-in image with --live-view; ps shows it; CDP answers
through the printed address; --publish of a UDP port range and a TCP port
carries a UDP echo and a TCP echo served in the guest (started through the
agent); the live view (the stand-in's WebRTC sender streaming the guest's
display, neko's ports 8080/tcp and a 101-port UDP range) reaches a real
receiver on the host (playwright-core + Debian's chromium) through QEMU's
user network, shows the page CDP opened, and again after standby/restore; the
forwards chvm made for itself (DevTools, agent) refuse `nobody` and take root,
while its guard lives exactly as long as the QEMU that forwards; a
page opened before standby is there after restore with the same target id
and URL (same browser); pause stops the guest and resume lets it go on;
rm leaves no process or file behind.  Bad inputs
fail with one line and leave nothing behind.

When the initramfs has no agent (/sbin/chvm-agent), the same boot is driven
without it: run --no-wait, standby --no-quiesce, restore --no-agent, and the
test waits for CDP itself.
"""
import json
import os
import re
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from chvmtest import cli, liveview, prereq, vm as qemu_vm
from chvmtest.cdp import http, wait_cdp
from chvmtest.cli import BOOT_TIMEOUT, chvm
from chvmtest.liveview import assert_shows_live_page
from chvmtest.net import (GUEST_ECHO, TCP_GUEST, UDP_COUNT, UDP_ECHO, UDP_GUEST, free_ports,
                          port_free, tcp_echo, udp_echo)

pytestmark = prereq.requires_chvm_qemu


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """A state dir of this module's own, the stand-in image linked in."""
    return cli.state_env(tmp_path_factory.mktemp("qemu"))


@pytest.fixture(scope="module")
def vm(env):
    agent = qemu_vm.initrd_has_agent()
    name = "itest"
    t0 = time.monotonic()
    udp_host = free_ports(socket.SOCK_DGRAM, UDP_COUNT)
    tcp_host = free_ports(socket.SOCK_STREAM, 1)
    args = ["run", "--name", name, "--memory", "2G", "--cpus", "2", "--json",
            "-p", "%d-%d:%d-%d/udp" % (udp_host, udp_host + UDP_COUNT - 1,
                                       UDP_GUEST, UDP_GUEST + UDP_COUNT - 1),
            "-p", "%d:%d" % (tcp_host, TCP_GUEST), "--live-view"]
    if not agent:
        args.append("--no-wait")
    try:
        p = chvm(env, *args, timeout=BOOT_TIMEOUT)
    except BaseException:
        chvm(env, "rm", "-f", name, check=False)
        raise
    out = json.loads(p.stdout)
    base = out["cdp"]
    version = wait_cdp(base, time.monotonic() + BOOT_TIMEOUT)
    boot_s = time.monotonic() - t0
    print("\nboot to CDP: %.1f s (agent: %s)" % (boot_s, agent))
    info = {"name": name, "cdp": base, "pid": out["pid"], "agent": agent, "version": version,
            "boot_s": boot_s, "state": env["CHVM_STATE_DIR"], "udp_host": udp_host,
            "tcp_host": tcp_host, "live_view": out.get("live_view"),
            "endpoint": out["endpoint"]}
    yield info
    chvm(env, "rm", "-f", name, check=False)


def test_run_ps_inspect(env, vm):
    ps = json.loads(chvm(env, "ps", "--json").stdout)
    mine = [v for v in ps if v["name"] == vm["name"]]
    assert len(mine) == 1 and mine[0]["status"] == "running", ps
    assert mine[0]["backend"] == "qemu"
    insp = cli.inspect(env, vm["name"])
    assert insp["status"] == "running"
    assert insp["cdp"] == vm["cdp"]
    assert insp["runtime"]["vmm_pid"] == vm["pid"]
    assert vm["cdp"].startswith("http://127.0.0.1:")
    assert "Chrome" in vm["version"]["Browser"]
    # The QEMU process is ours and named after the VM dir.
    with open("/proc/%d/cmdline" % vm["pid"], "rb") as f:
        assert os.path.join(vm["state"], "vms", vm["name"]).encode() in f.read()
    uid = cli.assert_vmm_unprivileged(vm["pid"], os.path.join(vm["state"], "vms", vm["name"]))
    assert insp["spec"]["vmm_uid"] == uid, insp["spec"]
    logs = chvm(env, "logs", vm["name"]).stdout
    assert "phase exec" in logs


def test_endpoint_reaches_guest_from_unprivileged_worker(env, vm):
    """The CDP endpoint on QEMU's user network: the supervisor's worker
    (nobody) reaches the guest's DevTools, whose forward takes root's
    sockets alone, on a socket its root parent dialled; answers name the
    endpoint."""
    v = http(vm["endpoint"] + "/json/version", timeout=60)
    assert "Chrome" in v["Browser"], v
    assert v["webSocketDebuggerUrl"].startswith(
        vm["endpoint"].replace("http://", "ws://") + "/devtools/browser/"), v


def test_bad_inputs(env, vm):
    vms = os.path.join(env["CHVM_STATE_DIR"], "vms")
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    port = busy.getsockname()[1]
    ubusy = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    ubusy.bind(("127.0.0.1", free_ports(socket.SOCK_DGRAM, 3) + 1))
    uport = ubusy.getsockname()[1]
    cases = [
        (["run", "--name", "bad1", "/nonexistent/image"], "image"),
        (["run", "--name", "bad2", "--memory", "2X"], "bad memory size"),
        (["run", "--name", vm["name"]], "already exists"),
        (["run", "--name", "bad3", "-p", "%d:9222" % port], "already in use"),
        (["run", "--name", "bad4", "--kernel", "/nonexistent/vmlinuz"], "kernel not found"),
        (["run", "--name", "bad/5"], "invalid VM name"),
        (["run", "--name", "bad6", "-p", "1:2:3:4"], "--publish"),
        (["run", "--name", "bad7", "--env", "NOEQUALS"], "--env"),
        (["run", "--name", "bad8", "-p", "56100-56000/udp"], "reversed"),
        (["run", "--name", "bad9", "-p", "56000-56100:56000-56099/udp"], "differ in length"),
        (["run", "--name", "bad10", "-p", "65535-65536/udp"], "bad host port range"),
        (["run", "--name", "bad11", "-p", "0-3:1-4"], "bad host port range"),
        (["run", "--name", "bad12", "-p", "30000-30010/udp", "-p", "30010:1/udp"],
         "host port given twice"),
        (["run", "--name", "bad14", "-p", "20000-21100/udp"], "at most 1024"),
        # One taken port inside a range refuses the whole run.
        (["run", "--name", "bad13", "-p", "%d-%d:1-3/udp" % (uport - 1, uport + 1)],
         "already in use"),
    ]
    try:
        for args, want in cases:
            before = set(os.listdir(vms))
            p = chvm(env, *args, check=False)
            assert p.returncode != 0, args
            lines = p.stderr.strip().splitlines()
            assert len(lines) == 1 and want in lines[0], (args, p.stderr)
            assert set(os.listdir(vms)) == before, args
    finally:
        busy.close()
        ubusy.close()
    # The VMM's uid cannot bind a privileged host port (chvm, root, could):
    # the error carries QEMU's own reason from vmm.log, and nothing is left.
    with open("/proc/sys/net/ipv4/ip_unprivileged_port_start") as f:
        unprivileged = int(f.read())
    low = next((q for q in range(unprivileged - 1, 0, -1) if port_free(q)), None)
    if low is not None:
        before = set(os.listdir(vms))
        p = chvm(env, "run", "--name", "bad15", "--no-wait", "-p", "127.0.0.1:%d:9222" % low,
                 check=False)
        assert p.returncode == 1, p.stderr
        last = p.stderr.strip().splitlines()[-1]
        assert "vmm.log: " in last and "Could not set up host forwarding rule" in last, p.stderr
        assert set(os.listdir(vms)) == before
    # Only the one VM's QEMU runs.
    assert subprocess.run(["pgrep", "-f", os.path.join(vms, "bad")]).returncode == 1
    p = chvm(env, "restore", vm["name"], check=False)
    assert p.returncode == 1 and "nothing to restore" in p.stderr


def test_publish_udp_range_and_tcp(env, vm):
    """The live view's shape: a UDP range and a TCP port published, served
    by echo servers in the guest, reached on 127.0.0.1."""
    insp = cli.inspect(env, vm["name"])
    # One record for the range, not one per port.
    pub = sorted(insp["spec"]["publish"], key=lambda p: p["host_port"])
    assert {"host_addr": "127.0.0.1", "host_port": vm["udp_host"], "guest_port": UDP_GUEST,
            "proto": "udp", "count": UDP_COUNT} in pub, pub
    assert {"host_addr": "127.0.0.1", "host_port": vm["tcp_host"], "guest_port": TCP_GUEST,
            "proto": "tcp"} in pub, pub
    with open("/proc/%d/cmdline" % vm["pid"], "rb") as f:
        cmdline = f.read().decode()
    for k in range(UDP_COUNT):
        assert "hostfwd=udp:127.0.0.1:%d-:%d" % (vm["udp_host"] + k, UDP_GUEST + k) in cmdline
    if not vm["agent"]:
        pytest.skip("no agent in build/initrd.cpio.gz to start the guest's echo servers")
    echo_host = vm["udp_host"] + UDP_ECHO - UDP_GUEST
    cmd = GUEST_ECHO % {"udp": UDP_ECHO, "tcp": TCP_GUEST}
    p = subprocess.run(cli.agent_argv(env, vm["name"]) + ["exec", "--", "sh", "-c", cmd],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    deadline = time.monotonic() + 60
    t0 = time.monotonic()
    payload = b"chvm-udp-%d" % os.getpid()
    udp_echo(("127.0.0.1", echo_host), payload, deadline)
    print("\nUDP echo 127.0.0.1:%d -> guest :%d after %.2f s"
          % (echo_host, UDP_ECHO, time.monotonic() - t0))
    tcp_echo(("127.0.0.1", vm["tcp_host"]), b"chvm-tcp\n", deadline)
    print("TCP echo 127.0.0.1:%d -> guest :%d" % (vm["tcp_host"], TCP_GUEST))


HOOKS = "/etc/chvm/hooks.d"
# The live view's network path here, as make bench-webrtc names it.
USER_NET = "QEMU user-net (hostfwd 8080 + 101 UDP ports)"


def guest_sh(env, vm, cmd):
    """cmd by sh in the guest through the agent; its stdout."""
    p = subprocess.run(cli.agent_argv(env, vm["name"]) + ["exec", "--", "sh", "-c", cmd],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, (cmd, p.stdout, p.stderr)
    return p.stdout


NOBODY = ("setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups")
CONNECT = ("import socket, sys\n"
           "try:\n"
           "    socket.create_connection(('127.0.0.1', int(sys.argv[1])), 10).close()\n"
           "except ConnectionRefusedError:\n"
           "    sys.exit(3)\n")


def connects(port, as_nobody):
    """Whether a TCP connection to 127.0.0.1:port is taken (False: refused)."""
    argv = [*(NOBODY if as_nobody else ()), "/usr/bin/python3", "-c", CONNECT, str(port)]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert p.returncode in (0, 3), p.stderr
    return p.returncode == 0


def fwd_guard(vm):
    """The nft table guarding the forwards chvm made for itself (named after
    the VM dir's device and inode), and whether it exists."""
    if "fwd_table" not in vm:
        st = os.stat(os.path.join(vm["state"], "vms", vm["name"]))
        vm["fwd_table"] = "chvm_fwd_%x_%x" % (st.st_dev, st.st_ino)
    p = subprocess.run(["nft", "list", "table", "ip", vm["fwd_table"]], capture_output=True)
    return vm["fwd_table"], p.returncode == 0


def test_own_forwards_root_only(env, vm):
    """The forwards chvm made for itself (the DevTools port it published,
    the agent's) refuse other local users' connections and take root's;
    what the user published (-p) and the live view stay open to all."""
    insp = cli.inspect(env, vm["name"])
    cdp_port = int(vm["cdp"].rsplit(":", 1)[1])
    assert {"host_addr": "127.0.0.1", "host_port": cdp_port, "guest_port": 9222, "proto": "tcp",
            "root_only": True} in insp["spec"]["publish"], insp["spec"]["publish"]
    own = {"DevTools": cdp_port}
    if vm["agent"]:
        own["agent"] = insp["runtime"]["agent_host_port"]
    for what, port in own.items():
        assert not connects(port, as_nobody=True), "nobody reached the %s forward" % what
        assert connects(port, as_nobody=False), "root did not reach the %s forward" % what
    assert connects(vm["tcp_host"], as_nobody=True), "the user's -p is no longer open"
    live = int(re.search(r":(\d+)/", vm["live_view"]["url"]).group(1))
    assert connects(live, as_nobody=True), "the live view's signalling is no longer open"
    assert fwd_guard(vm)[1], fwd_guard(vm)


@pytest.fixture(scope="module")
def receiver(vm):
    """The host's viewer of the live view, open across standby/restore."""
    why = liveview.missing()
    if why:
        pytest.skip("missing %s for the live view's receiver" % why)
    r = liveview.Receiver(vm["live_view"]["url"])
    yield r
    r.close()


def show_live_page(vm):
    """Brings the guest's page of LIVE_RGB to the front (opened once, by CDP)."""
    if "live_target" not in vm:
        vm["live_target"] = http(vm["cdp"] + "/json/new?" + liveview.LIVE_PAGE, method="PUT")["id"]
    # Pages other tests opened (in windows of their own, which may stay on
    # top whatever tab is activated) are closed first; the sender stays.
    for t in http(vm["cdp"] + "/json/list"):
        if t.get("type") == "page" and t["id"] != vm["live_target"] and "sender" not in t["url"]:
            with urllib.request.urlopen(vm["cdp"] + "/json/close/" + t["id"], timeout=30):
                pass
    req = urllib.request.Request(vm["cdp"] + "/json/activate/" + vm["live_target"])
    with urllib.request.urlopen(req, timeout=30) as r:
        assert r.status == 200


def test_live_view(env, vm, receiver, tmp_path):
    """The live view through QEMU's user network: --live-view published
    8080 and a UDP range with the same ports on both sides, told the guest
    NEKO_WEBRTC_NAT1TO1=127.0.0.1; a receiver on the host decodes the
    guest's display, with the page CDP brought to the front on it."""
    lv = vm["live_view"]
    # The URL carries the VM's token (128 bits, hex).
    m = re.fullmatch(r"http://127\.0\.0\.1:(\d+)/\?token=([0-9a-f]{32})", lv["url"])
    assert m, lv
    lo, hi = (int(x) for x in lv["udp"].split("-"))
    # Below Linux's ephemeral range (32768-60999) and Kubernetes' NodePorts.
    assert hi - lo == 100 and 25000 <= lo and hi <= 29999, lv
    insp = cli.inspect(env, vm["name"])
    pub = insp["spec"]["publish"]
    assert {"host_addr": "127.0.0.1", "host_port": lo, "guest_port": lo, "proto": "udp",
            "count": 101} in pub, pub
    assert {"host_addr": "127.0.0.1", "host_port": int(m.group(1)),
            "guest_port": 8080, "proto": "tcp"} in pub, pub
    show_live_page(vm)
    r = receiver.watch(liveview.shot_path(tmp_path, "live-view-user-net.png"))
    liveview.report("\nlive view (user-net)", r)
    liveview.record(USER_NET, r)
    print("viewer page opened in %.2f s" % (receiver.opened["opened_ms"] / 1000))
    assert_shows_live_page(r)
    vm["live_connects"] = r["connects"]


def test_standby_restore_same_browser(env, vm):
    base = vm["cdp"]
    marker = "data:text/html,chvm-standby-%d" % os.getpid()
    target = http(base + "/json/new?" + marker, method="PUT")
    # The new tab starts at about:blank and navigates on its own time.
    deadline = time.monotonic() + 60
    while True:
        before = {t["id"]: t["url"] for t in http(base + "/json/list")}
        if before.get(target["id"]) == marker or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert before.get(target["id"]) == marker, before
    if vm["agent"]:
        # The image's hooks (/etc/chvm/hooks.d, made here in the guest's
        # overlay): a failing quiesce hook fails the standby cleanly, the VM
        # runs on; then a logging one sees quiesce and, after restore, thaw.
        guest_sh(env, vm, "mkdir -p %s && printf '#!/bin/sh\\necho \"$1\" >>/run/hooks.log\\n' "
                 ">%s/10-log && printf '#!/bin/sh\\necho no >&2; exit 4\\n' >%s/20-fail && "
                 "chmod 755 %s/*" % ((HOOKS,) * 4))
        p = chvm(env, "standby", vm["name"], check=False, timeout=600)
        assert p.returncode == 1 and "hook 20-fail quiesce: exited with status 4" in p.stderr, \
            p.stderr
        assert cli.ps_row(env, vm["name"])["status"] == "running"
        assert http(base + "/json/version")["Browser"]
        guest_sh(env, vm, "rm %s/20-fail" % HOOKS)

    args = ["standby", vm["name"], "--json"]
    if not vm["agent"]:
        args.insert(1, "--no-quiesce")
    sb = json.loads(chvm(env, *args, timeout=600).stdout)
    print("\nstandby phases (ms): %s total %.0f" % (sb["phases"], sb["total_ms"]))
    assert "snapshot" in sb["phases"]
    if vm["agent"]:
        assert "quiesce" in sb["phases"]
    d = os.path.join(env["CHVM_STATE_DIR"], "vms", vm["name"])
    assert os.path.isfile(os.path.join(d, "snapshot", "memory"))
    assert not [f for f in os.listdir(d) if f.startswith("snapshot.tmp-")]
    ps = json.loads(chvm(env, "ps", "-a", "--json").stdout)
    assert [v["status"] for v in ps if v["name"] == vm["name"]] == ["standby"]
    assert not os.path.exists("/proc/%d" % vm["pid"]) or \
        vm["state"].encode() not in open("/proc/%d/cmdline" % vm["pid"], "rb").read()
    # A second standby has nothing to snapshot.
    assert chvm(env, "standby", vm["name"], check=False).returncode == 1
    # The forwards went with QEMU, and so did their guard.
    assert not fwd_guard(vm)[1], fwd_guard(vm)

    args = ["restore", vm["name"], "--json"]
    if not vm["agent"]:
        args.insert(1, "--no-agent")
    t0 = time.monotonic()
    rs = json.loads(chvm(env, *args, timeout=300).stdout)
    vm["restored_at"] = time.time()
    # user-net connections died with the old QEMU: reconnect.
    version = wait_cdp(base, time.monotonic() + 120)
    print("restore phases (ms): %s total %.0f; CDP after %.1f s"
          % (rs["phases"], rs["total_ms"], time.monotonic() - t0))
    assert "restore" in rs["phases"]
    if vm["agent"]:
        assert "thaw" in rs["phases"] and "ready" in rs["phases"]
    assert version["webSocketDebuggerUrl"] == vm["version"]["webSocketDebuggerUrl"]
    after = {t["id"]: t["url"] for t in http(base + "/json/list")}
    assert after.get(target["id"]) == marker, after
    if vm["agent"]:
        # The new QEMU forwards the range again (from vm.json) to the echo
        # server that the snapshot kept running.
        udp_echo(("127.0.0.1", vm["udp_host"] + UDP_ECHO - UDP_GUEST), b"after restore",
                 time.monotonic() + 60)
    ps = json.loads(chvm(env, "ps", "--json").stdout)
    mine = [v for v in ps if v["name"] == vm["name"]]
    assert [v["status"] for v in mine] == ["running"]
    assert not os.path.exists(os.path.join(d, "snapshot"))
    if vm["agent"]:
        assert guest_sh(env, vm, "cat /run/hooks.log").split() == ["quiesce", "quiesce", "thaw"]
        guest_sh(env, vm, "rm -r %s /run/hooks.log" % HOOKS)
    # The new QEMU read the snapshot its predecessor wrote, as the same uid.
    insp = cli.inspect(env, vm["name"])
    assert cli.assert_vmm_unprivileged(mine[0]["pid"], d) == insp["spec"]["vmm_uid"]
    # Its forwards are guarded again.
    assert fwd_guard(vm)[1], fwd_guard(vm)
    assert not connects(int(base.rsplit(":", 1)[1]), as_nobody=True)


def test_live_view_after_restore(vm, receiver, tmp_path):
    """The same viewer page gets the guest's display again after standby
    and restore: says whether its WebRTC session came back or it made a new
    offer, and how long after the restore it was connected."""
    if "restored_at" not in vm or "live_connects" not in vm:
        pytest.skip("needs test_live_view and test_standby_restore_same_browser")
    show_live_page(vm)
    r = receiver.watch_live(liveview.shot_path(tmp_path, "live-view-user-net-restored.png"),
                            time.monotonic() + 120)
    liveview.report("live view after restore (user-net)", r)
    liveview.record(USER_NET, r, restored_connects=vm["live_connects"])
    print("live view after restore: the current screen came %.1f s after asking"
          % r["live_after_s"])
    again = [t for t in r["connected_at"] if t / 1000 >= vm["restored_at"]]
    how = ("reconnected: new offer (%d offers in all)" % r["connects"]
           if r["connects"] > vm["live_connects"] else "the same WebRTC session resumed")
    print("live view after restore: %s; connected %s after restore"
          % (how, "%.2f s" % (again[0] / 1000 - vm["restored_at"]) if again else "throughout"))
    assert_shows_live_page(r)


def test_exec(env, vm):
    """chvm exec NAME -- CMD: the command in the guest through the agent the
    record names, output streamed, its exit status as chvm's; --env,
    --stdin, --workdir, --json; a missing VM, a missing working directory
    or no command is refused."""
    if not vm["agent"]:
        pytest.skip("no agent in build/initrd.cpio.gz")
    p = chvm(env, "exec", vm["name"], "--", "sh", "-c", "echo out; echo err >&2; exit 3",
             check=False)
    assert (p.returncode, p.stdout, p.stderr) == (3, "out\n", "err\n"), p
    p = chvm(env, "exec", "-e", "X=in the guest", "--stdin", vm["name"], "sh", "-c",
             'echo "$X"; tr a-z A-Z', input="hello", check=False)
    assert (p.returncode, p.stdout) == (0, "in the guest\nHELLO"), p
    j = json.loads(chvm(env, "--json", "exec", vm["name"], "--", "cat", "/proc/sys/kernel/hostname")
                   .stdout)
    assert j["code"] == 0 and j["signal"] == 0 and j["stdout"].strip(), j
    p = chvm(env, "exec", "-w", "/proc/self", vm["name"], "pwd", check=False)
    assert (p.returncode, p.stdout) == (0, "/proc/self\n") or p.stdout.startswith("/proc/"), p
    p = chvm(env, "exec", "--workdir", "/nonexistent", vm["name"], "pwd", check=False)
    assert p.returncode == 1 and "working directory /nonexistent" in p.stderr, p.stderr
    p = chvm(env, "exec", "no-such-vm", "--", "true", check=False)
    assert p.returncode == 1 and "no-such-vm" in p.stderr, p.stderr
    p = chvm(env, "exec", vm["name"], check=False)
    assert p.returncode == 2 and "Usage: chvm exec" in p.stderr, p.stderr


def no_answer(url, within_s):
    """Whether a GET of url gets no answer within within_s (a paused
    guest's DevTools: QEMU's user network takes the connection, the guest
    never answers)."""
    try:
        urllib.request.urlopen(url, timeout=within_s).read()
    except (TimeoutError, socket.timeout):
        return True
    except urllib.error.URLError as e:
        return isinstance(e.reason, (TimeoutError, socket.timeout))
    return False


def test_pause_resume(env, vm):
    """chvm pause stops the guest's vCPUs where they are: ps --json (QMP)
    and inspect say paused, DevTools answers nothing (directly, and through
    the supervisor's endpoint, which does not resume it), exec is refused;
    chvm resume lets it go on and the same requests answer.  A second pause,
    a resume of a running VM and a missing VM fail with one line."""
    name = vm["name"]
    p = chvm(env, "resume", name, check=False)
    assert (p.returncode, p.stderr) == (
        1, "chvm resume: VM '%s' is running, not paused\n" % name), p
    p = chvm(env, "pause", "no-such-vm", check=False)
    assert p.returncode == 1 and p.stderr.startswith("chvm pause: ") and "no-such-vm" in p.stderr \
        and p.stderr.count("\n") == 1, p.stderr
    assert json.loads(chvm(env, "--json", "pause", name).stdout) == [
        {"name": name, "state": "paused"}]
    try:
        assert cli.ps_row(env, name)["status"] == "paused"
        assert cli.inspect(env, name)["status"] == "paused"
        p = chvm(env, "pause", name, check=False)
        assert (p.returncode, p.stderr) == (
            1, "chvm pause: VM '%s' is paused, not running\n" % name), p
        if vm["agent"]:
            p = chvm(env, "exec", name, "--", "true", check=False)
            assert p.returncode == 1 and "is paused, not running" in p.stderr, p.stderr
        assert no_answer(vm["cdp"] + "/json/version", 5)
        assert no_answer(vm["endpoint"] + "/json/version", 5)
        # A client of the endpoint is no wake: the VM stays paused.
        assert cli.ps_row(env, name)["status"] == "paused"
        assert cli.supervisor_status(env, name)["health"] == "running"
    finally:
        p = chvm(env, "resume", name, check=False)
    assert (p.returncode, p.stdout) == (0, "%s: running\n" % name), p
    assert cli.ps_row(env, name)["status"] == "running"
    assert "Chrome" in http(vm["cdp"] + "/json/version", timeout=60)["Browser"]
    assert "Chrome" in http(vm["endpoint"] + "/json/version", timeout=60)["Browser"]
    if vm["agent"]:
        assert chvm(env, "exec", name, "--", "true", check=False).returncode == 0


def test_stop_powers_off_gracefully(env, vm):
    """stop presses the power button: init stops the entrypoint (SIGTERM),
    powers off, and QEMU exits by itself before the deadline."""
    d = os.path.join(env["CHVM_STATE_DIR"], "vms", vm["name"])
    p = chvm(env, "rm", vm["name"], check=False)
    assert p.returncode == 1 and "rm -f" in p.stderr
    # TCG on two shared cores: Chromium may need a while; the guest itself
    # kills whatever is left 8 s after the button.
    t0 = time.monotonic()
    out = json.loads(chvm(env, "stop", "--time", "60", vm["name"], "--json",
                          timeout=120).stdout)
    print("\nchvm stop: %.1f s (power button to QEMU exit %.0f ms)"
          % (time.monotonic() - t0, out[0]["ms"]))
    assert len(out) == 1 and out[0]["name"] == vm["name"], out
    assert out[0]["was"] == "running" and out[0]["graceful"] is True, out
    assert out[0]["ms"] < 60000
    assert subprocess.run(["pgrep", "-f", d]).returncode == 1
    logs = chvm(env, "logs", vm["name"]).stdout
    m = re.search(r"INFO init\[1\]: power button: stopping the entrypoint\r?\n"
                  r"(.*\n)*INFO init\[1\]: entrypoint exited status (\d+)\r?\n"
                  r"(.*\n)*INFO init\[1\]: poweroff", logs)
    assert m, logs[-3000:]
    print("guest after the button:\n" + logs[m.start():m.end()])
    # The stand-in's entrypoint exits 143 on SIGTERM.  Under TCG on a busy
    # host Chromium may outlast init's 8 s grace; then init kills it (137)
    # and still powers off by itself.
    assert m.group(2) == "143" or (m.group(2) == "137" and
                                   "killing every process" in logs), m.group(0)
    ps = json.loads(chvm(env, "ps", "-a", "--json").stdout)
    assert [v["status"] for v in ps if v["name"] == vm["name"]] == ["stopped"]
    # QEMU exited by itself: its forwards' guard is gone all the same.
    assert not fwd_guard(vm)[1], fwd_guard(vm)
    # Nothing left to stop: reported, not an error.
    again = json.loads(chvm(env, "stop", vm["name"], "--json").stdout)
    assert again == [{"name": vm["name"], "was": "stopped", "graceful": False,
                      "ms": 0, "snapshot_discarded": False}], again


def test_rm_leaves_nothing(env, vm):
    d = os.path.join(env["CHVM_STATE_DIR"], "vms", vm["name"])
    table, _ = fwd_guard(vm)
    chvm(env, "rm", vm["name"])  # stopped: no -f needed
    assert not os.path.exists(d)
    assert subprocess.run(["nft", "list", "table", "ip", table],
                          capture_output=True).returncode != 0
    assert subprocess.run(["pgrep", "-f", d]).returncode == 1
    p = chvm(env, "rm", vm["name"], check=False)
    assert p.returncode == 1 and "no such VM" in p.stderr
