# SPDX-License-Identifier: Apache-2.0
"""chvm tap networking end to end, inside a network namespace this test
creates: `chvm run --net tap --netns NS` (QEMU/TCG on a persistent tap on
bridge chvm0, NAT table `ip chvm`), --publish as DNAT (a TCP port, and a
UDP range carrying an echo from the guest), and the key property
of a tap: a CDP WebSocket opened before `chvm standby` carries on after
`chvm restore` without reconnecting (with user-net it would have died with
the old QEMU).  The live view (--live-view) through the tap and its NAT: a
receiver in the namespace (playwright-core + Debian's chromium) decodes the
guest's display, before the standby and after the restore, and with
`--idle-standby` on, the viewer's session keeps the VM up.  `chvm rm`
removes tap, elements, table and bridge.
"""
import json
import os
import shutil
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import liveview  # noqa: E402
import test_chvm_qemu as base  # noqa: E402  (paths, skip reasons, helpers)

# A minimal CDP WebSocket client: one connection for its whole life.  It
# prints Browser.getVersion, waits for a line on stdin, then sends
# Target.getTargets on the same connection and prints the count.  argv:
# the DevTools HTTP endpoint, and the socket timeout in seconds (default 120).
WS_CLIENT = r'''
import base64, json, os, socket, struct, sys, urllib.request
timeout = float(sys.argv[2]) if len(sys.argv) > 2 else 120
v = json.loads(urllib.request.urlopen(sys.argv[1] + "/json/version", timeout=10).read())
hostport, path = v["webSocketDebuggerUrl"][5:].split("/", 1)
h, p = hostport.rsplit(":", 1)
s = socket.create_connection((h, int(p)), timeout=timeout)
key = base64.b64encode(os.urandom(16)).decode()
s.sendall(("GET /%s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (path, hostport, key)).encode())
f = s.makefile("rb")
assert b" 101 " in f.readline()
while f.readline() not in (b"\r\n", b""):
    pass
def send(obj):
    data, mask = json.dumps(obj).encode(), os.urandom(4)
    hdr = bytes([0x81]) + (bytes([0x80 | len(data)]) if len(data) < 126
                           else bytes([0x80 | 126]) + struct.pack(">H", len(data)))
    s.sendall(hdr + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))
def recv():
    while True:
        b0, b1 = f.read(2)
        n = b1 & 0x7f
        if n == 126:
            n = struct.unpack(">H", f.read(2))[0]
        elif n == 127:
            n = struct.unpack(">Q", f.read(8))[0]
        data = f.read(n)
        if b0 & 0x0f == 1:
            return json.loads(data)
def call(i, method):
    send({"id": i, "method": method})
    while True:
        m = recv()
        if m.get("id") == i:
            return m
print(call(1, "Browser.getVersion")["result"]["product"], flush=True)
sys.stdin.readline()
print(len(call(2, "Target.getTargets")["result"]["targetInfos"]), flush=True)
'''


def _missing():
    if base.MISSING:
        return base.MISSING
    if os.geteuid() != 0:
        return "root (ip netns, taps, nft)"
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            return tool
    if not base._initrd_has_agent():
        return "the agent in build/initrd.cpio.gz"
    if not os.path.exists("/dev/net/tun"):
        return "/dev/net/tun"
    return None


MISSING = _missing()
pytestmark = pytest.mark.skipif(MISSING is not None, reason="missing %s" % MISSING)


# A UDP client for inside the namespace: sends until the echo comes back.
UDP_CLIENT = r'''
import socket, sys, time
addr, payload = ("127.0.0.1", int(sys.argv[1])), sys.argv[2].encode()
deadline = time.monotonic() + 60
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(1.0)
while time.monotonic() < deadline:
    s.sendto(payload, addr)
    try:
        if s.recvfrom(4096)[0] == payload:
            print("echo", flush=True)
            break
    except socket.timeout:
        pass
'''


# Opens a page on the guest's browser through its DevTools (argv: the HTTP
# endpoint, the URL) and brings it to the front.
SHOW_PAGE = r'''
import json, sys, urllib.parse, urllib.request
base, url = sys.argv[1], sys.argv[2]
req = urllib.request.Request(base + "/json/new?" + url, method="PUT")
t = json.loads(urllib.request.urlopen(req, timeout=120).read())
urllib.request.urlopen(base + "/json/activate/" + t["id"], timeout=30).read()
'''


def in_ns(ns, *cmd, **kw):
    return subprocess.run(["ip", "netns", "exec", ns, *cmd], capture_output=True, text=True,
                          timeout=60, **kw)


@pytest.fixture(scope="module")
def ns():
    name = "chvm-itest-%d" % os.getpid()
    subprocess.run(["ip", "netns", "add", name], check=True)
    in_ns(name, "ip", "link", "set", "lo", "up")
    # A default route, as any host has: Chromium's WebRTC gathers no
    # candidate without one.  It leads nowhere (a veth pair whose other end
    # has no address; no dummy link: not every kernel has the module).
    for cmd in (["ip", "link", "add", "lv0", "type", "veth", "peer", "name", "lv1"],
                ["ip", "addr", "add", "192.0.2.1/24", "dev", "lv0"],
                ["ip", "link", "set", "lv1", "up"],
                ["ip", "link", "set", "lv0", "up"],
                ["ip", "route", "add", "default", "dev", "lv0"]):
        r = in_ns(name, *cmd)
        assert r.returncode == 0, (cmd, r.stderr)
    yield name
    subprocess.run(["ip", "netns", "del", name])


IDLE_S = 5


def test_tap_standby_restore_keeps_connection(tmp_path, ns):
    state = base.vmm_reachable(tmp_path) / "state"
    state.mkdir()
    if os.path.isdir(base.IMAGE_CACHE):
        os.symlink(base.IMAGE_CACHE, state / "images")
    env = dict(os.environ, CHVM_STATE_DIR=str(state))
    name = "tapvm"
    t0 = time.monotonic()
    try:
        out = json.loads(base.chvm(env, "run", "--name", name, "--net", "tap", "--netns", ns,
                                   "-p", "127.0.0.1:19222:9222",
                                   "-p", "15600-%d:%d-%d/udp" % (
                                       15600 + base.UDP_COUNT - 1, base.UDP_GUEST,
                                       base.UDP_GUEST + base.UDP_COUNT - 1),
                                   "--live-view", "--json",
                                   timeout=base.BOOT_TIMEOUT).stdout)
        print("\ntap boot to ready: %.1f s" % (time.monotonic() - t0))
        assert out["cdp"] == "http://10.213.0.2:9222", out
        # Nothing of it in the host's namespace.
        assert subprocess.run(["ip", "link", "show", "chvm0"], capture_output=True).returncode != 0
        links = in_ns(ns, "ip", "-o", "link", "show", "master", "chvm0").stdout
        assert "chvm-t2" in links
        # --publish is DNAT inside the namespace.
        r = in_ns(ns, sys.executable, "-c",
                  "import urllib.request;print(urllib.request.urlopen("
                  "'http://127.0.0.1:19222/json/version',timeout=10).read().decode())")
        assert "Browser" in r.stdout, r.stderr
        # The UDP range is one nft command: one map element per port.
        table = in_ns(ns, "nft", "list", "table", "ip", "chvm").stdout
        for k in range(base.UDP_COUNT):
            assert "%d : 10.213.0.2 . %d" % (15600 + k, base.UDP_GUEST + k) in table, table
        assert "%d : " % (15600 + base.UDP_COUNT) not in table, table
        cmd = base.GUEST_ECHO % {"udp": base.UDP_ECHO, "tcp": base.TCP_GUEST}
        agent = base.agent_argv(env, name)
        r = in_ns(ns, *agent, "exec", "--", "sh", "-c", cmd)
        assert r.returncode == 0, r.stderr
        t1 = time.monotonic()
        echo_host = 15600 + base.UDP_ECHO - base.UDP_GUEST
        r = in_ns(ns, sys.executable, "-c", UDP_CLIENT, str(echo_host), "chvm-tap-udp")
        assert r.stdout.strip() == "echo", (r.stdout, r.stderr)
        print("UDP echo through nft DNAT 127.0.0.1:%d -> 10.213.0.2:%d after %.2f s"
              % (echo_host, base.UDP_ECHO, time.monotonic() - t1))

        # The live view's range: DNAT to the same ports.
        lv = out["live_view"]
        lo = int(lv["udp"].split("-")[0])
        for k in range(101):
            assert "%d : 10.213.0.2 . %d" % (lo + k, lo + k) in table, table
        receiver = None
        if liveview.missing() is None:
            r = in_ns(ns, sys.executable, "-c", SHOW_PAGE, out["cdp"], base.LIVE_PAGE)
            assert r.returncode == 0, r.stderr
            receiver = liveview.Receiver(lv["url"], prefix=("ip", "netns", "exec", ns))
            w = receiver.watch(liveview.shot_path(tmp_path, "live-view-tap.png"))
            liveview.report("live view (tap, NAT in a namespace)", w)
            base.assert_shows_live_page(w)
            connects = w["connects"]
        client = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", WS_CLIENT,
                                   out["cdp"]], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        try:
            assert "Chrome" in client.stdout.readline()
            sb = json.loads(base.chvm(env, "standby", name, "--json", timeout=600).stdout)
            rs = json.loads(base.chvm(env, "restore", name, "--json", timeout=300).stdout)
            print("tap standby (ms): %s\ntap restore (ms): %s" % (sb["phases"], rs["phases"]))
            assert "tap" in rs["phases"]
            t1 = time.monotonic()
            client.stdin.write("again\n")
            client.stdin.flush()
            n = client.stdout.readline().strip()
            print("same WebSocket answered %.2f s after restore" % (time.monotonic() - t1))
            assert n.isdigit() and int(n) >= 1, (n, client.stderr.read())
            if receiver is not None:
                w = receiver.watch(liveview.shot_path(tmp_path, "live-view-tap-restored.png"))
                liveview.report("live view after restore (tap)", w)
                print("live view after restore (tap): %s" % (
                    "reconnected: new offer" if w["connects"] > connects
                    else "the same WebRTC session resumed"))
                base.assert_shows_live_page(w)
                # A live-view session counts as activity: idle standby on, no
                # CDP client on the endpoint, and the VM stays up while the
                # viewer watches; once it has gone, the VM stands by.
                base.chvm(env, "supervise", "--idle-standby", str(IDLE_S), name)
                t1 = time.monotonic()
                while time.monotonic() - t1 < 3 * IDLE_S:
                    assert base.ps_row(env, name)["status"] == "running", base.chvm(
                        env, "logs", "--source", "supervisor", name).stdout
                    time.sleep(0.5)
                st = json.loads(base.chvm(env, "inspect", "--json", name).stdout)[0]["supervisor"]
                assert st["idle_standbys"] == 0 and 0 <= st["live_view_ms"] < 1000 * IDLE_S, st
                receiver.close()
                receiver = None
                t1 = time.monotonic()
                while base.ps_row(env, name)["status"] != "standby":
                    assert time.monotonic() - t1 < 120, "no idle standby after the viewer " \
                        "left:\n" + base.chvm(env, "logs", "--source", "supervisor", name).stdout
                    time.sleep(0.5)
                print("live view: no idle standby (%d s) in %d s while a viewer watched; standby "
                      "%.1f s after it left" % (IDLE_S, 3 * IDLE_S, time.monotonic() - t1))
        finally:
            client.kill()
            client.wait()
            if receiver is not None:
                receiver.close()
    finally:
        base.chvm(env, "rm", "-f", name, check=False)
    assert not (state / "vms" / name).exists()
    left = in_ns(ns, "sh", "-c", "ip -o link show; nft list ruleset").stdout
    assert "chvm" not in left, left
