# SPDX-License-Identifier: Apache-2.0
"""The per-VM supervisor and its CDP endpoint, on the QEMU
backend with a tap inside a network namespace this test creates (a
connection through QEMU's user network ends with every standby, so idle
standby is refused there).  One VM for the module:

- /json/version through the endpoint names the endpoint and its token;
  `chvm cdp` prints its ws:// URL; ps and inspect show the supervisor.
- Without the token (as nobody, or as root), or with another, the endpoint
  answers 404 and wakes nothing.
- playwright-core and puppeteer-core (npm) connect to the endpoint, open a
  page, evaluate, screenshot; `chvm standby` and `chvm restore` in between;
  the same Browser/Page objects carry on, no reconnect, no error.
- A new connection, and a byte on an open WebSocket, wake a VM in standby.
- At most N clients (WebSockets holding slots); a failing restore is an HTTP 503 that says so.
- `--idle-standby 5` (set with `chvm supervise`): idle/wake cycles over one
  WebSocket (CHVM_CDP_CYCLES, default 3 here; tests/bench/bench_cdp_wake.py
  runs 50 and prints p50/p95), every answer right, no error.
- The supervisor killed with SIGKILL: the VM runs on, ps says the
  supervisor is gone, `chvm supervise` starts a new one.
"""
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error

import pytest

from chvmtest import cli, net, prereq
from chvmtest.cdp import Session, get, without_token, ws_open
from chvmtest.cli import BOOT_TIMEOUT, chvm

CYCLES = int(os.environ.get("CHVM_CDP_CYCLES", "3"))
IDLE_S = 5
MAX_CLIENTS = 4

pytestmark = prereq.requires(*prereq.CHVM_TAP, *prereq.CDP_CLIENTS)


@pytest.fixture(scope="module")
def vm(tmp_path_factory):
    """One VM for the module, on a tap in a namespace of its own, at most
    MAX_CLIENTS CDP clients on its endpoint."""
    with net.Netns(lo_up=True) as ns:
        env = cli.state_env(tmp_path_factory.mktemp("cdp"))
        name = "cdpvm"
        t0 = time.monotonic()
        try:
            out = json.loads(chvm(env, "run", "--name", name, "--net", "tap", "--netns", ns,
                                  "--memory", "2G", "--cdp-max-clients", str(MAX_CLIENTS),
                                  "--json", timeout=BOOT_TIMEOUT).stdout)
            print("\nboot to ready: %.1f s, endpoint %s" % (time.monotonic() - t0, out["endpoint"]))
            yield cli.Vm(name=name, env=env, ns=ns, endpoint=out["endpoint"], run=out,
                         dir=cli.vm_dir(env, name))
        finally:
            chvm(env, "rm", "-f", name, check=False)
    assert not os.path.exists(cli.vm_dir(env, name))


def test_endpoint_json_and_ps(vm):
    ep = vm["endpoint"]
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/[0-9a-f]{32}", ep), ep
    v = get(ep + "/json/version", 30)
    assert v["webSocketDebuggerUrl"].startswith("ws://%s/devtools/browser/" % ep[7:]), v
    targets = get(ep + "/json/list", 30)
    assert targets and all(t["webSocketDebuggerUrl"].startswith("ws://" + ep[7:])
                           for t in targets if "webSocketDebuggerUrl" in t), targets
    url = chvm(vm["env"], "cdp", vm["name"]).stdout.strip()
    assert url == v["webSocketDebuggerUrl"], (url, v)
    row = vm.row()
    assert row["status"] == "running" and row["supervisor"] == "running", row
    assert row["endpoint"] == without_token(ep)[7:] and row["supervisor_pid"] > 0, row
    assert chvm(vm["env"], "cdp", "--http", vm["name"]).stdout.strip() == ep
    st = vm.supervisor()
    assert st["state"] == "running" and st["health"] == "running", st
    # The guest's own DevTools answers only inside the namespace.
    assert st["upstream"] == "10.213.0.2:9222", st


def test_clients_keep_working_across_standby_restore(vm, tmp_path):
    ep = vm["endpoint"]
    ws = chvm(vm["env"], "cdp", vm["name"]).stdout.strip()
    sessions = [Session("playwright", ep), Session("puppeteer", ws)]
    try:
        for s in sessions:
            assert s.cmd("open")["title"].startswith("chvm-endpoint-")
            assert s.cmd("eval 6*7")["value"] == 42
            assert s.cmd("shot %s" % (tmp_path / (s.kind + "-1.png")))["bytes"] > 0
        sb = json.loads(chvm(vm["env"], "standby", vm["name"], "--json", timeout=600).stdout)
        assert vm.row()["status"] == "standby"
        rs = json.loads(chvm(vm["env"], "restore", vm["name"], "--json", timeout=600).stdout)
        print("\nstandby %s\nrestore %s" % (sb["phases"], rs["phases"]))
        for s in sessions:
            t = time.monotonic()
            assert s.cmd("eval document.title")["value"].startswith("chvm-endpoint-")
            print("%s: same page answered %.2f s after restore" % (s.kind, time.monotonic() - t))
            assert s.cmd("eval 6*7")["value"] == 42
            assert s.cmd("shot %s" % (tmp_path / (s.kind + "-2.png")))["bytes"] > 0
            assert s.cmd("version")["version"]
            assert s.events == [], (s.kind, s.events)
    finally:
        for s in sessions:
            s.close()


def test_new_connection_wakes_standby(vm):
    chvm(vm["env"], "standby", vm["name"], timeout=600)
    assert vm.row()["status"] == "standby"
    assert vm.supervisor()["state"] == "standby"
    t = time.monotonic()
    v = get(vm["endpoint"] + "/json/version")
    print("\n/json/version woke the VM in %.1f s" % (time.monotonic() - t))
    assert v["webSocketDebuggerUrl"].startswith("ws://%s/" % vm["endpoint"][7:]), v
    assert vm.row()["status"] == "running"
    logs = chvm(vm["env"], "logs", "--source", "supervisor", vm["name"]).stdout
    assert re.search(r"wake: a new client; restoring", logs), logs
    assert re.search(r"wake \d+: answered \d+ ms after the first byte \(restore \d+ ms", logs), logs


def test_byte_on_open_websocket_wakes_standby(vm):
    s = Session("puppeteer", vm["endpoint"])
    try:
        s.cmd("open")
        chvm(vm["env"], "standby", vm["name"], timeout=600)
        assert vm.row()["status"] == "standby"
        t = time.monotonic()
        # Ten commands at once: held while the VM wakes, none lost or reordered.
        assert s.cmd("burst 10")["values"] == [i * i for i in range(10)]
        print("\nbytes on the open WebSocket woke the VM: answered in %.1f s"
              % (time.monotonic() - t))
        assert vm.row()["status"] == "running" and s.events == []
    finally:
        s.close()


def test_endpoint_without_token_is_refused(vm):
    """As nobody and as root: no token, or another VM's, is a 404 before
    anything reaches the guest, and a VM in standby stays in standby."""
    bare, ep = without_token(vm["endpoint"]), vm["endpoint"]
    wrong = bare + "/" + ("0" * 32 if ep[-32:] != "0" * 32 else "1" * 32)
    probe = ("import sys, urllib.request, urllib.error\n"
             "try:\n    urllib.request.urlopen(sys.argv[1], timeout=30)\n    print(200)\n"
             "except urllib.error.HTTPError as e:\n    print(e.code)\n")
    chvm(vm["env"], "standby", vm["name"], timeout=600)
    wakes = vm.supervisor()["wakes"]
    try:
        for url in (bare + "/json/version", bare + "/json", wrong + "/json/version",
                    bare + "/devtools/browser"):
            p = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                                sys.executable, "-c", probe, url], capture_output=True, text=True,
                               timeout=60)
            assert p.stdout.strip() == "404", (url, p.stdout, p.stderr)
            with pytest.raises(urllib.error.HTTPError) as e:
                get(url, 30)
            assert e.value.code == 404 and "token" in e.value.read().decode()
        assert vm.row()["status"] == "standby" and vm.supervisor()["wakes"] == wakes
    finally:
        chvm(vm["env"], "restore", vm["name"], timeout=600)


def test_max_clients(vm):
    held = [ws_open(vm["endpoint"]) for _ in range(MAX_CLIENTS)]
    try:
        with pytest.raises(urllib.error.HTTPError) as e:
            get(vm["endpoint"] + "/json/version", 30)
        assert e.value.code == 503
        assert "too many CDP clients (at most %d)" % MAX_CLIENTS in e.value.read().decode()
    finally:
        for h in held:
            h.close()
    deadline = time.monotonic() + 30
    while vm.supervisor()["clients"] > 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert get(vm["endpoint"] + "/json/version", 30)["Browser"]


def test_idle_standby_cycles(vm):
    """--idle-standby 5: the VM stands by under an idle client and wakes on
    its next command over the same WebSocket, CYCLES times."""
    out = chvm(vm["env"], "supervise", "--idle-standby", str(IDLE_S), vm["name"]).stdout
    assert "idle standby %d s" % IDLE_S in out, out
    s = Session("playwright", vm["endpoint"])
    lat, errors = [], 0
    try:
        s.cmd("open")
        for i in range(CYCLES):
            t_idle = time.monotonic()
            vm.wait_status("standby", IDLE_S + 300)
            assert time.monotonic() - t_idle >= IDLE_S - 0.5
            t = time.monotonic()
            r = s.cmd("eval %d*3" % i)
            lat.append(time.monotonic() - t)
            if r.get("value") != i * 3:
                errors += 1
            print("cycle %d: answer after %.2f s" % (i + 1, lat[-1]))
        st = vm.supervisor()
        assert errors == 0 and s.events == [], (errors, s.events)
        assert st["wakes"] >= CYCLES and st["idle_standbys"] >= CYCLES, st
        lat.sort()
        print("wake latency over %d cycles (client): p50 %.2f s, p95 %.2f s; supervisor: "
              "p50 %d ms, p95 %d ms, restore %s ms" % (
                  CYCLES, lat[len(lat) // 2], lat[min(len(lat) - 1, int(0.95 * len(lat)))],
                  st["wake_p50_ms"], st["wake_p95_ms"], st["restore_ms"][-CYCLES:]))
    finally:
        s.close()
        chvm(vm["env"], "supervise", "--idle-standby", "0", vm["name"])
    if vm.row()["status"] == "standby":
        get(vm["endpoint"] + "/json/version")
    vm.wait_status("running", 60)


def test_failed_restore_is_http_503(vm):
    old = vm.row()["supervisor_pid"]
    os.kill(old, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while vm.row()["supervisor"] == "running" and time.monotonic() < deadline:
        time.sleep(0.1)
    # A supervisor whose `chvm restore` dies at its first step.
    env = dict(vm["env"], CHVM_FAULT="restore:tap")
    chvm(env, "supervise", vm["name"])
    try:
        chvm(vm["env"], "standby", vm["name"], timeout=600)
        with pytest.raises(urllib.error.HTTPError) as e:
            get(vm["endpoint"] + "/json/version")
        assert e.value.code == 503
        body = e.value.read().decode()
        assert "could not be restored" in body and "chvm restore exited" in body, body
        assert vm.row()["status"] == "standby"
    finally:
        os.kill(vm.row()["supervisor_pid"], signal.SIGTERM)
        deadline = time.monotonic() + 10
        while vm.row()["supervisor"] == "running" and time.monotonic() < deadline:
            time.sleep(0.1)
        chvm(vm["env"], "supervise", vm["name"])
    assert get(vm["endpoint"] + "/json/version")["Browser"]
    assert vm.row()["status"] == "running"


def test_supervisor_sigkill_and_takeover(vm):
    row = vm.row()
    assert row["status"] == "running" and row["supervisor"] == "running", row
    vmm = row["pid"]
    os.kill(row["supervisor_pid"], signal.SIGKILL)
    deadline = time.monotonic() + 10
    while vm.row()["supervisor"] != "gone" and time.monotonic() < deadline:
        time.sleep(0.1)
    row = vm.row()
    assert row["supervisor"] == "gone" and row["status"] == "running" and row["pid"] == vmm, row
    text = chvm(vm["env"], "ps").stdout
    assert re.search(r"cdpvm\s+running.*\sgone\s", text), text
    out = chvm(vm["env"], "supervise", vm["name"]).stdout
    assert "supervisor pid" in out
    row = vm.row()
    assert row["supervisor"] == "running" and row["supervisor_pid"] > 0, row
    assert get(vm["endpoint"] + "/json/version", 60)["Browser"]
