# SPDX-License-Identifier: Apache-2.0
"""The supervisor's own logic, fast and without a VM: its "VMM" is a host
Chromium (/usr/bin/chromium, headless) and its standby/restore the stub
tests/integration/supervisor_stub.py (SIGSTOP/SIGCONT, through the test
seam CHVM_SUPERVISOR_EXEC).  The endpoint, the proxy and the clients
(playwright-core and puppeteer-core from npm) are real: idle standby with
an idle client, no standby while a command is outstanding, wake on a byte
and on a new connection, 50 idle/wake cycles with no error, a failed
restore as HTTP 503, max clients; the endpoint served by a worker of
nobody's, which a supervisor killed for a bad frame.  The real
standby/restore under a real VM are test_cdp_endpoint.py's.
"""
import ctypes
import errno
import http.client
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error

import pytest

from chvmtest import cli, paths, prereq
from chvmtest.cdp import Session, get, wait_cdp, without_token, ws_open
from chvmtest.cli import chvm
from chvmtest.net import free_port

CHROMIUM = shutil.which("chromium")
TOKEN = "0123456789abcdef" * 2  # the endpoint's capability in these records
CYCLES = 50

pytestmark = prereq.requires(prereq.chvm, prereq.chromium, *prereq.CDP_CLIENTS)


def write_record(d, dport, eport, pid):
    """vm.json of a running VM named after directory d whose "VMM" is pid and
    whose DevTools (guest port 9222) is published on 127.0.0.1:dport, with
    its endpoint on eport."""
    rec = {"version": 1, "name": d.name, "backend": "qemu", "image": "stub", "created": 1,
           "state": "running",
           "spec": {"cpus": 1, "memory_mib": 128, "kernel": "/none", "cdp_port": 9222,
                    "cdp_endpoint": "127.0.0.1:%d" % eport, "cdp_token": TOKEN,
                    "idle_standby": 0,
                    "cdp_max_clients": 3,
                    "publish": [{"host_addr": "127.0.0.1", "host_port": dport,
                                 "guest_port": 9222, "proto": "tcp"}]},
           "runtime": {"vmm_pid": pid, "api_socket": "", "vsock_socket": "",
                       "agent_host_port": 0, "version": ""}}
    (d / "vm.json").write_text(json.dumps(rec))


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    root = tmp_path_factory.mktemp("sup")
    d = root / "vms" / "fake"
    d.mkdir(parents=True)
    dport, eport = free_port(), free_port()
    chrome = subprocess.Popen([CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu",
                               "--remote-debugging-address=127.0.0.1",
                               "--remote-debugging-port=%d" % dport,
                               "--user-data-dir=%s" % (d / "profile"), "about:blank"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_cdp("http://127.0.0.1:%d" % dport, time.monotonic() + 60)
    write_record(d, dport, eport, chrome.pid)
    env = dict(os.environ, CHVM_STATE_DIR=str(root), CHVM_SUPERVISOR_EXEC=paths.SUPERVISOR_STUB)
    vm = cli.Vm(name="fake", env=env, dir=str(d), endpoint="http://127.0.0.1:%d/%s" % (eport, TOKEN),
                chrome=chrome)
    chvm(env, "supervise", "fake")
    try:
        yield vm
    finally:
        pid = vm.row()["supervisor_pid"]
        if pid:
            os.kill(pid, signal.SIGTERM)
        chrome.send_signal(signal.SIGCONT)
        chrome.kill()
        chrome.wait()


def hostport(vm):
    """The endpoint's host and port (as a string)."""
    return without_token(vm["endpoint"])[7:].rsplit(":", 1)


def set_idle(vm, s):
    chvm(vm["env"], "supervise", "--idle-standby", str(s), vm["name"])


def record_tap(vm):
    """Edits the record as a tap VM would have it (idle standby needs one)."""
    p = os.path.join(vm["dir"], "vm.json")
    rec = json.load(open(p))
    rec["spec"]["tap"] = "stub"
    with open(p + ".tmp", "w") as f:
        json.dump(rec, f)
    os.rename(p + ".tmp", p)


def test_idle_standby_waits_for_outstanding_command(fake):
    # supervise refuses idle standby without a tap; the record is edited
    # here as a tap VM would have it.
    with pytest.raises(AssertionError, match="needs a tap"):
        set_idle(fake, 1)
    record_tap(fake)
    set_idle(fake, 1)
    s = Session("puppeteer", fake["endpoint"])
    try:
        s.cmd("open")
        # A 3 s command: no standby while it runs, whatever the idle clock
        # (the connect itself may have woken it from one).
        before = fake.supervisor()["idle_standbys"]
        r = s.cmd("eval new Promise(r => setTimeout(() => r(7), 3000))")
        assert r["value"] == 7
        st = fake.supervisor()
        assert st["idle_standbys"] == before and st["state"] == "running", st
        fake.wait_status("standby", 30)
        assert fake.supervisor()["state"] == "standby"
        assert s.cmd("eval 2+2")["value"] == 4
        assert s.events == []
    finally:
        s.close()


def test_burst_while_in_standby_keeps_order(fake):
    """20 commands sent at once to a VM in standby: held, then all answered."""
    s = Session("playwright", fake["endpoint"])
    try:
        s.cmd("open")
        fake.wait_status("standby", 30)
        assert s.cmd("burst 20")["values"] == [i * i for i in range(20)]
        assert s.events == []
    finally:
        s.close()


def test_new_connection_wakes(fake):
    fake.wait_status("standby", 30)
    v = get(fake["endpoint"] + "/json/version", 60)
    assert v["webSocketDebuggerUrl"].startswith("ws://%s/" % fake["endpoint"][7:]), v


def test_cycles_playwright_and_puppeteer(fake):
    sessions = [Session("playwright", fake["endpoint"]),
                Session("puppeteer", fake["endpoint"])]
    errors, lat = 0, []
    try:
        for s in sessions:
            s.cmd("open")
        for i in range(CYCLES):
            fake.wait_status("standby", 30)
            s = sessions[i % 2]
            t = time.monotonic()
            r = s.cmd("eval %d+1" % i)
            lat.append(time.monotonic() - t)
            errors += r.get("value") != i + 1
        errors += sum(len(s.events) for s in sessions)
        st = fake.supervisor()
        lat.sort()
        print("\n%d stub cycles: %d errors, client p50 %.0f ms p95 %.0f ms; supervisor p50 %d "
              "ms p95 %d ms" % (CYCLES, errors, 1000 * lat[len(lat) // 2],
                                1000 * lat[int(0.95 * (len(lat) - 1))], st["wake_p50_ms"],
                                st["wake_p95_ms"]))
        assert errors == 0
        assert st["wake_failures"] == 0 and st["outstanding"] == 0, st
    finally:
        for s in sessions:
            s.close()


def restart_supervisor(vm, **env):
    """A new supervisor for vm, its children given env too."""
    pid = vm.row()["supervisor_pid"]
    assert pid > 0, vm.row()  # (os.kill(0) would end this test run's process group)
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while vm.row()["supervisor"] == "running" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert vm.row()["supervisor"] == "gone"
    chvm(dict(vm["env"], **env), "supervise", vm["name"])


def test_failed_restore_is_503(fake):
    fake.wait_status("standby", 30)
    restart_supervisor(fake, STUB_FAIL="restore")
    with pytest.raises(urllib.error.HTTPError) as e:
        get(fake["endpoint"] + "/json/version", 30)
    assert e.value.code == 503 and "could not be restored" in e.value.read().decode()
    os.kill(fake.row()["supervisor_pid"], signal.SIGKILL)
    deadline = time.monotonic() + 10
    while fake.row()["supervisor"] == "running" and time.monotonic() < deadline:
        time.sleep(0.05)
    chvm(fake["env"], "supervise", fake["name"])
    assert get(fake["endpoint"] + "/json/version", 30)["Browser"]


def test_restart_waits_for_the_old_listener(fake):
    """After a SIGKILL the old worker (killed with its parent) may hold the
    endpoint's port a moment longer: a new supervisor waits for the port
    (at most 5 s) instead of failing with it in use.  Here the test holds
    the port 1 s after the old supervisor is gone."""
    host, port = hostport(fake)
    os.kill(fake.row()["supervisor_pid"], signal.SIGKILL)
    hold = socket.socket()
    hold.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    deadline = time.monotonic() + 10
    while True:  # the old worker's listener gone: the port is ours
        try:
            hold.bind((host, int(port)))
            break
        except OSError:
            assert time.monotonic() < deadline, "the old supervisor kept the port"
            time.sleep(0.02)
    hold.listen(1)
    while fake.row()["supervisor"] == "running" and time.monotonic() < deadline:
        time.sleep(0.05)
    release = threading.Timer(1.0, hold.close)
    release.start()
    try:
        t0 = time.monotonic()
        chvm(fake["env"], "supervise", fake["name"])
        assert time.monotonic() - t0 >= 0.9
    finally:
        release.join()
    assert get(fake["endpoint"] + "/json/version", 30)["Browser"]


def test_max_clients(fake):
    """Three WebSockets hold the three client slots: a fourth client gets a
    503 while they are busy; once one has been idle 30 s, it gives its slot
    to a new client.  Connections without a request (no token shown) hold
    none: 40 of them lock nobody out."""
    set_idle(fake, 0)
    host, port = hostport(fake)
    bare = [socket.create_connection((host, int(port))) for _ in range(40)]
    held = []
    try:
        assert get(fake["endpoint"] + "/json/version", 10)["Browser"]
        t0 = time.monotonic()
        held = [ws_open(fake["endpoint"]) for _ in range(3)]
        with pytest.raises(urllib.error.HTTPError) as e:
            get(fake["endpoint"] + "/json/version", 10)
        assert e.value.code == 503
        assert "at most 3" in e.value.read().decode()
        time.sleep(max(0.0, 31 - (time.monotonic() - t0)))
        assert get(fake["endpoint"] + "/json/version", 10)["Browser"]
        held[0].settimeout(10)
        assert held[0].recv(1) == b"", "the idlest WebSocket was not closed"
    finally:
        for h in held + bare:
            h.close()


def test_run_refuses_bad_endpoint_options(tmp_path):
    """Refused before anything is made: idle standby on QEMU's user network
    (its connections end at every standby), bad --cdp values."""
    env = dict(os.environ, CHVM_STATE_DIR=str(tmp_path / "state"))
    for args, msg in ((["--backend", "qemu", "--idle-standby", "5"], "needs a tap"),
                      (["--cdp", "localhost:1"], "the address is not IPv4"),
                      (["--cdp", "127.0.0.1:70000"], "bad --cdp"),
                      (["--idle-standby", "x"], "bad --idle-standby"),
                      (["--cdp-max-clients", "0"], "bad --cdp-max-clients")):
        p = chvm(env, "run", "--name", "refused", *args, check=False)
        assert p.returncode != 0 and msg in p.stderr, (args, p.stderr)
    assert not (tmp_path / "state" / "vms" / "refused").exists()


def test_rebound_host_is_refused(fake):
    """A Host that is neither an IP literal nor localhost (a page whose DNS
    name was rebound to the endpoint) gets what DevTools itself answers."""
    host, port = hostport(fake)
    for h, want in (("evil.example:" + port, 403), ("localhost:" + port, 200)):
        c = http.client.HTTPConnection(host, int(port), timeout=30)
        c.request("GET", "/%s/json/version" % TOKEN, headers={"Host": h})
        r = c.getresponse()
        body = r.read().decode()
        c.close()
        assert r.status == want, (h, r.status, body)
        if want == 403:
            assert "not an IP address or localhost" in body, body


def test_slow_head_is_cut_at_the_deadline(fake):
    """A client that sends its request head one byte every 5 s (never 30 s
    quiet) gets a 408 once 30 s have passed since it connected: it cannot
    hold a client slot for longer."""
    host, port = hostport(fake)
    head = b"GET /json/version HTTP/1.1\r\nHost: 127.0.0.1\r\n"  # never ends
    s = socket.create_connection((host, int(port)), timeout=60)
    try:
        t0 = time.monotonic()
        s.settimeout(5)
        answer = b""
        for b in head:
            if time.monotonic() - t0 > 45:
                break
            try:
                s.sendall(bytes([b]))
                answer = s.recv(4096)
            except socket.timeout:
                continue
            except ConnectionError:
                break
            if answer:
                break
        took = time.monotonic() - t0
        assert answer.startswith(b"HTTP/1.1 408"), (answer, took)
        assert 29 <= took <= 40, took
    finally:
        s.close()


def test_foreign_host_and_bare_connection_wake_nothing(fake):
    """In standby, a request with a rebound Host (a web page's fetch) gets
    its 403 without a restore, and a connection that sends nothing wakes
    nothing: only a request the endpoint serves wakes the VM."""
    host, port = hostport(fake)
    record_tap(fake)
    set_idle(fake, 1)
    fake.wait_status("standby", 30)
    wakes = fake.supervisor()["wakes"]
    bare = socket.create_connection((host, int(port)), timeout=5)
    try:
        c = http.client.HTTPConnection(host, int(port), timeout=30)
        c.request("GET", "/%s/json/version" % TOKEN, headers={"Host": "evil.example:" + port})
        r = c.getresponse()
        r.read()
        c.close()
        assert r.status == 403
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            st = fake.supervisor()
            assert st["wakes"] == wakes and st["state"] == "standby", st
            time.sleep(0.2)
    finally:
        bare.close()
    assert get(fake["endpoint"] + "/json/version", 60)["Browser"]
    assert fake.supervisor()["wakes"] == wakes + 1
    set_idle(fake, 0)


def test_connections_without_token_keep_no_vm_awake(fake):
    """Requests without the token (404s) and a head that trickles in, every
    0.3 s, are no activity: idle standby comes as if nobody were there."""
    host, port = hostport(fake)
    record_tap(fake)
    set_idle(fake, 2)
    if fake.row()["status"] == "standby":
        get(fake["endpoint"] + "/json/version", 60)
    trickle = socket.create_connection((host, int(port)), timeout=5)
    try:
        deadline = time.monotonic() + 25
        while fake.row()["status"] != "standby":
            assert time.monotonic() < deadline, fake.supervisor()
            c = http.client.HTTPConnection(host, int(port), timeout=10)
            c.request("GET", "/json/version")
            r = c.getresponse()
            r.read()
            c.close()
            assert r.status == 404
            trickle.sendall(b"G")
            time.sleep(0.3)
    finally:
        trickle.close()
        # Woken before any locked chvm command: one while in standby would
        # end the double's "VMM" (as a leftover's).
        assert get(fake["endpoint"] + "/json/version", 60)["Browser"]
        set_idle(fake, 0)


def test_failed_idle_standby_serves_who_came(fake):
    """A client that comes while an idle standby runs, which then fails,
    is served once the VM runs on."""
    restart_supervisor(fake, STUB_FAIL="standby", STUB_FAIL_AFTER_S="3")
    record_tap(fake)
    set_idle(fake, 1)
    try:
        deadline = time.monotonic() + 30
        while fake.supervisor()["state"] != "standing-by":
            assert time.monotonic() < deadline, fake.supervisor()
            time.sleep(0.05)
        assert get(fake["endpoint"] + "/json/version", 20)["Browser"]
        log = chvm(fake["env"], "logs", "--source", "supervisor", fake["name"]).stdout
        assert "idle standby failed" in log, log
    finally:
        set_idle(fake, 0)
    restart_supervisor(fake)


def test_restore_that_cannot_start_is_503(fake):
    """The restore cannot even be started (no such program): the waiting
    request gets a 503, the supervisor lives on and serves once it can."""
    # No locked chvm command while in standby: it would stop the double's
    # "VMM" (a real one is gone by then), so idle standby stays on.
    record_tap(fake)
    set_idle(fake, 1)
    fake.wait_status("standby", 30)
    restart_supervisor(fake, CHVM_SUPERVISOR_EXEC="/nonexistent/chvm")
    with pytest.raises(urllib.error.HTTPError) as e:
        get(fake["endpoint"] + "/json/version", 30)
    assert e.value.code == 503 and "could not be restored" in e.value.read().decode()
    assert fake.row()["supervisor"] == "running"
    restart_supervisor(fake)
    assert get(fake["endpoint"] + "/json/version", 30)["Browser"]


# A guest's DevTools that sends clients elsewhere: /json/version names
# another host (another VM's endpoint, say) as its WebSocket.
HOSTILE_DEVTOOLS = r"""
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b'{"Browser": "x", "webSocketDebuggerUrl": "ws://127.0.0.1:1/devtools/browser/x"}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


def test_guest_json_naming_another_host_is_refused(tmp_path):
    """The endpoint never hands a client a /json answer that points it at a
    host other than the endpoint itself: the answer is refused with a 502."""
    d = tmp_path / "vms" / "hostile"
    d.mkdir(parents=True)
    dport, eport = free_port(), free_port()
    # Its command line names the VM dir, as a VMM's does (its sockets).
    srv = subprocess.Popen([sys.executable, "-c", HOSTILE_DEVTOOLS, str(dport), str(d)])
    write_record(d, dport, eport, srv.pid)
    env = dict(os.environ, CHVM_STATE_DIR=str(tmp_path))
    vm = cli.Vm(name="hostile", env=env)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", dport), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the hostile DevTools did not listen"
                time.sleep(0.1)
        chvm(env, "supervise", "hostile")
        with pytest.raises(urllib.error.HTTPError) as e:
            get("http://127.0.0.1:%d/%s/json/version" % (eport, TOKEN), 20)
        assert e.value.code == 502 and "another host" in e.value.read().decode()
    finally:
        pid = vm.row()["supervisor_pid"]
        if pid:
            os.kill(pid, signal.SIGTERM)
        srv.kill()
        srv.wait()


FIXED_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def proc_environ(pid):
    with open("/proc/%d/environ" % pid, "rb") as f:
        return dict(kv.decode().split("=", 1) for kv in f.read().split(b"\0") if kv)


def children(pid):
    """The pids whose parent is pid."""
    out = []
    for d in os.listdir("/proc"):
        try:
            with open("/proc/%s/stat" % d) as f:
                if d.isdigit() and int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(d))
        except (OSError, ValueError, IndexError):
            pass
    return out


def test_supervisor_environment_is_fixed(tmp_path):
    """The product chvm's supervisor gets a fixed PATH and the settings its
    VM's record holds, never its starter's environment: a CHVM_SUPERVISOR_EXEC
    and a PATH with planted programs (nft, ip, chvm, the VMMs) run nothing
    on its automatic standby, and its environment is exactly that."""
    d = tmp_path / "vms" / "envvm"
    d.mkdir(parents=True)
    marks, plant = tmp_path / "marks", tmp_path / "bin"
    plant.mkdir()
    for prog in ("hook", "nft", "ip", "chvm", "qemu-system-x86_64", "cloud-hypervisor"):
        (plant / prog).write_text("#!/bin/sh\necho \"%s $*\" >> %s\n" % (prog, marks))
        (plant / prog).chmod(0o755)
    dport, eport = free_port(), free_port()
    # The "VMM": its command line names the VM dir, as a VMM's does.
    vmm = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", str(d)])
    write_record(d, dport, eport, vmm.pid)
    p = d / "vm.json"
    rec = json.loads(p.read_text())
    rec["spec"].update(tap="stub", idle_standby=1, cdp_token="0" * 32,
                       vmm_env={"CHVM_CH_SECCOMP": "log"})
    p.write_text(json.dumps(rec))
    quiet = dict(os.environ, CHVM_STATE_DIR=str(tmp_path))
    env = dict(quiet, CHVM_SUPERVISOR_EXEC=str(plant / "hook"), CHVM_CH_LANDLOCK="0",
               PATH="%s:%s" % (plant, os.environ["PATH"]),
               CLOUD_HYPERVISOR=str(plant / "cloud-hypervisor"),
               CHVM_QEMU=str(plant / "qemu-system-x86_64"))
    vm = cli.Vm(name="envvm", env=quiet)
    try:
        # The product binary itself (cli.chvm would take the hooks build).
        r = subprocess.run([paths.CHVM, "supervise", "envvm"], env=env, capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        sup = vm.row()["supervisor_pid"]
        assert proc_environ(sup) == {"PATH": FIXED_PATH}
        # Its idle standby: the real `chvm standby` (which waits for the
        # guest's agent a minute here), with PATH and the record's settings
        # alone; no planted program runs.
        deadline = time.monotonic() + 30
        while True:
            assert not marks.exists(), marks.read_text()
            try:
                # Not its worker (nobody's, the endpoint's): its standby.
                kid = [k for k in children(sup) if proc_status(k)["Uid"][0] == "0"][0]
                got, exe = proc_environ(kid), os.readlink("/proc/%d/exe" % kid)
                break
            except (IndexError, OSError):
                assert time.monotonic() < deadline, "no idle standby"
                time.sleep(0.05)
        assert exe == os.path.realpath(paths.CHVM)
        assert got == {"PATH": FIXED_PATH, "CHVM_CH_SECCOMP": "log"}, got
        time.sleep(1)
        assert not marks.exists(), marks.read_text()
    finally:
        vmm.kill()
        vmm.wait()
        pid = vm.row()["supervisor_pid"]
        if pid:
            os.kill(pid, signal.SIGTERM)


@prereq.requires(*prereq.CHVM_QEMU)
def test_run_holds_endpoint_while_guest_boots(tmp_path):
    """`chvm run` binds the endpoint before the VMM starts and hands it to
    the supervisor: while the guest boots (QEMU, minutes under TCG) and no
    supervisor runs yet, no one else can bind its port."""
    # A bare name: run records where its PATH found it (spec.vmm_env).
    env = cli.state_env(tmp_path, CHVM_QEMU="qemu-system-x86_64")
    name, port = "bootvm", free_port()
    run = subprocess.Popen([paths.CHVM, "run", "--backend", "qemu", "--name", name, "--memory",
                            "1G", "--cdp", "127.0.0.1:%d" % port, "--timeout", "600"],
                           env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while cli.ps(env).get(name, {}).get("status") != "running":
            assert run.poll() is None, run.communicate()
            assert time.monotonic() < deadline, "the VM did not start"
            time.sleep(0.2)
        assert not os.path.exists(os.path.join(cli.vm_dir(env, name), "supervisor.pid"))
        s = socket.socket()
        try:
            with pytest.raises(OSError) as e:
                s.bind(("127.0.0.1", port))
            assert e.value.errno == errno.EADDRINUSE
        finally:
            s.close()
        assert run.poll() is None, "run no longer waits for the guest"
        # (CI's CHVM_CH_SECCOMP=log is recorded beside it.)
        assert cli.inspect(env, name)["spec"]["vmm_env"]["CHVM_QEMU"] == os.path.realpath(
            shutil.which("qemu-system-x86_64"))
    finally:
        chvm(env, "rm", "-f", name, check=False)
        run.kill()
        run.communicate()


def socket_owners(port, state):
    """The pids holding a TCP socket of local port port in state (as
    /proc/net/tcp writes it: 0A listening, 01 established)."""
    inodes = set()
    with open("/proc/net/tcp") as f:
        for line in f.read().splitlines()[1:]:
            col = line.split()
            if int(col[1].split(":")[1], 16) == port and col[3] == state:
                inodes.add("socket:[%s]" % col[9])
    pids = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fds = os.listdir("/proc/%s/fd" % pid)
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink("/proc/%s/fd/%s" % (pid, fd)) in inodes:
                    pids.add(int(pid))
            except OSError:
                pass
    return pids


def proc_status(pid):
    with open("/proc/%d/status" % pid) as f:
        return {k: v.split() for k, _, v in (line.partition(":") for line in f)}


def worker_of(vm):
    """The process that serves vm's endpoint: it holds the listener, and
    its parent is the supervisor."""
    sup = vm.row()["supervisor_pid"]
    assert sup > 0, vm.row()
    owners = socket_owners(int(hostport(vm)[1]), "0A")
    assert owners and sup not in owners, (sup, owners)
    assert len(owners) == 1, owners
    (pid,) = owners
    assert int(proc_status(pid)["PPid"][0]) == sup
    return sup, pid


def test_endpoint_is_served_unprivileged(fake):
    """Who parses the clients' and the guest's bytes is not root: the
    listener and every client's connection are held by a process of
    nobody's, no group, no capability, NoNewPrivs, not dumpable (its /proc
    files stay root's: no process of nobody's reads its memory, the token)."""
    sup, pid = worker_of(fake)
    port = int(hostport(fake)[1])
    ws = ws_open(fake["endpoint"])
    try:
        assert socket_owners(port, "01") == {pid}
    finally:
        ws.close()
    st = proc_status(pid)
    assert st["Uid"] == ["65534"] * 4 and st["Gid"] == ["65534"] * 4, st
    assert st["Groups"] == [] and st["NoNewPrivs"] == ["1"], st
    assert int(st["CapEff"][0], 16) == 0 and int(st["CapPrm"][0], 16) == 0, st
    assert os.stat("/proc/%d/mem" % pid).st_uid == 0, "the worker is dumpable"


SYS_pidfd_getfd = 438  # x86_64 and aarch64 alike


def test_bad_frame_from_worker_ends_supervisor(fake):
    """A worker that sends its parent a frame of no known type (as one
    taken over by a client or the guest might) is killed, and the
    supervisor exits saying why; a new one serves again."""
    sup, pid = worker_of(fake)
    libc = ctypes.CDLL(None, use_errno=True)
    pidfd = os.pidfd_open(pid)
    try:
        fd = libc.syscall(SYS_pidfd_getfd, pidfd, 4, 0)  # WORKER_MSG_FD
        assert fd >= 0, os.strerror(ctypes.get_errno())
    finally:
        os.close(pidfd)
    with socket.socket(fileno=fd) as chan:
        assert chan.type == socket.SOCK_SEQPACKET
        chan.send(struct.pack("=II", 999, 0) + bytes(256))
    deadline = time.monotonic() + 10
    while fake.row()["supervisor"] == "running" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert fake.row()["supervisor"] == "gone"
    assert not os.path.exists("/proc/%d/status" % pid) or \
        proc_status(pid)["State"][0] in ("Z", "X")
    log = chvm(fake["env"], "logs", "--source", "supervisor", fake["name"]).stdout
    assert "the proxy process sent a bad frame (a frame of unknown type 999): killed" in log, log
    assert "exiting: the proxy process broke the protocol" in log, log
    chvm(fake["env"], "supervise", fake["name"])
    assert get(fake["endpoint"] + "/json/version", 30)["Browser"]
