# SPDX-License-Identifier: Apache-2.0
"""The supervisor's own logic, fast and without a VM: its "VMM" is a host
Chromium (/usr/bin/chromium, headless) and its standby/restore the stub
tests/integration/supervisor_stub.py (SIGSTOP/SIGCONT, through the test
seam CHVM_SUPERVISOR_EXEC).  The endpoint, the proxy and the clients
(playwright-core and puppeteer-core from npm) are real: idle standby with
an idle client, no standby while a command is outstanding, wake on a byte
and on a new connection, 50 idle/wake cycles with no error, a failed
restore as HTTP 503, max clients.  The real standby/restore under a real VM
are test_cdp_endpoint.py's.
"""
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error

import pytest

from chvmtest import cli, paths, prereq
from chvmtest.cdp import Session, get, wait_cdp
from chvmtest.cli import chvm
from chvmtest.net import free_port

CHROMIUM = shutil.which("chromium")
CYCLES = 50

pytestmark = prereq.requires(prereq.chvm, prereq.chromium, *prereq.CDP_CLIENTS)


def write_record(d, dport, eport, pid):
    """vm.json of a running VM named after directory d whose "VMM" is pid and
    whose DevTools (guest port 9222) is published on 127.0.0.1:dport, with
    its endpoint on eport."""
    rec = {"version": 1, "name": d.name, "backend": "qemu", "image": "stub", "created": 1,
           "state": "running",
           "spec": {"cpus": 1, "memory_mib": 128, "kernel": "/none", "cdp_port": 9222,
                    "cdp_endpoint": "127.0.0.1:%d" % eport, "idle_standby": 0,
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
    vm = cli.Vm(name="fake", env=env, dir=str(d), endpoint="http://127.0.0.1:%d" % eport,
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
    os.kill(vm.row()["supervisor_pid"], signal.SIGTERM)
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


def test_max_clients(fake):
    set_idle(fake, 0)
    host, port = fake["endpoint"][7:].rsplit(":", 1)
    held = [socket.create_connection((host, int(port))) for _ in range(3)]
    try:
        with pytest.raises(urllib.error.HTTPError) as e:
            get(fake["endpoint"] + "/json/version", 10)
        assert e.value.code == 503
        assert "at most 3" in e.value.read().decode()
    finally:
        for h in held:
            h.close()


def test_run_refuses_bad_endpoint_options(tmp_path):
    """Refused before anything is made: idle standby on QEMU's user network
    (its connections end at every standby), bad --cdp values."""
    env = dict(os.environ, CHVM_STATE_DIR=str(tmp_path / "state"))
    for args, msg in ((["--backend", "qemu", "--idle-standby", "5"], "needs a tap"),
                      (["--cdp", "localhost:1"], "bad --cdp address"),
                      (["--cdp", "127.0.0.1:70000"], "bad --cdp"),
                      (["--idle-standby", "x"], "bad --idle-standby"),
                      (["--cdp-max-clients", "0"], "bad --cdp-max-clients")):
        p = chvm(env, "run", "--name", "refused", *args, check=False)
        assert p.returncode != 0 and msg in p.stderr, (args, p.stderr)
    assert not (tmp_path / "state" / "vms" / "refused").exists()


def test_rebound_host_is_refused(fake):
    """A Host that is neither an IP literal nor localhost (a page whose DNS
    name was rebound to the endpoint) gets what DevTools itself answers."""
    host, port = fake["endpoint"][7:].rsplit(":", 1)
    for h, want in (("evil.example:" + port, 403), ("localhost:" + port, 200)):
        c = http.client.HTTPConnection(host, int(port), timeout=30)
        c.request("GET", "/json/version", headers={"Host": h})
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
    host, port = fake["endpoint"][7:].rsplit(":", 1)
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
    host, port = fake["endpoint"][7:].rsplit(":", 1)
    record_tap(fake)
    set_idle(fake, 1)
    fake.wait_status("standby", 30)
    wakes = fake.supervisor()["wakes"]
    bare = socket.create_connection((host, int(port)), timeout=5)
    try:
        c = http.client.HTTPConnection(host, int(port), timeout=30)
        c.request("GET", "/json/version", headers={"Host": "evil.example:" + port})
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
            get("http://127.0.0.1:%d/json/version" % eport, 20)
        assert e.value.code == 502 and "another host" in e.value.read().decode()
    finally:
        pid = vm.row()["supervisor_pid"]
        if pid:
            os.kill(pid, signal.SIGTERM)
        srv.kill()
        srv.wait()
