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
import subprocess
import sys
import time

import pytest

from chvmtest import cli, liveview, net, prereq
from chvmtest.cdp import WS_CLIENT
from chvmtest.cli import BOOT_TIMEOUT, chvm
from chvmtest.net import GUEST_ECHO, TCP_GUEST, UDP_COUNT, UDP_ECHO, UDP_GUEST, in_ns

pytestmark = prereq.requires_tap


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


@pytest.fixture(scope="module")
def ns():
    """A namespace with loopback up and a default route (see net.Netns)."""
    with net.Netns(lo_up=True, default_route=True) as name:
        yield name


IDLE_S = 5
# The live view's network path here, as make bench-webrtc names it.
TAP_PATH = "tap in a namespace, nft DNAT"


def test_tap_standby_restore_keeps_connection(tmp_path, state_env, ns):
    env = state_env
    name = "tapvm"
    t0 = time.monotonic()
    try:
        out = json.loads(chvm(env, "run", "--name", name, "--net", "tap", "--netns", ns,
                              "-p", "127.0.0.1:19222:9222",
                              "-p", "15600-%d:%d-%d/udp" % (
                                  15600 + UDP_COUNT - 1, UDP_GUEST,
                                  UDP_GUEST + UDP_COUNT - 1),
                              "--live-view", "--json",
                              timeout=BOOT_TIMEOUT).stdout)
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
        for k in range(UDP_COUNT):
            assert "%d : 10.213.0.2 . %d" % (15600 + k, UDP_GUEST + k) in table, table
        assert "%d : " % (15600 + UDP_COUNT) not in table, table
        cmd = GUEST_ECHO % {"udp": UDP_ECHO, "tcp": TCP_GUEST}
        agent = cli.agent_argv(env, name)
        r = in_ns(ns, *agent, "exec", "--", "sh", "-c", cmd)
        assert r.returncode == 0, r.stderr
        t1 = time.monotonic()
        echo_host = 15600 + UDP_ECHO - UDP_GUEST
        r = in_ns(ns, sys.executable, "-c", UDP_CLIENT, str(echo_host), "chvm-tap-udp")
        assert r.stdout.strip() == "echo", (r.stdout, r.stderr)
        print("UDP echo through nft DNAT 127.0.0.1:%d -> 10.213.0.2:%d after %.2f s"
              % (echo_host, UDP_ECHO, time.monotonic() - t1))

        # The live view's range: DNAT to the same ports.
        lv = out["live_view"]
        lo = int(lv["udp"].split("-")[0])
        for k in range(101):
            assert "%d : 10.213.0.2 . %d" % (lo + k, lo + k) in table, table
        receiver = None
        if liveview.missing() is None:
            r = in_ns(ns, sys.executable, "-c", SHOW_PAGE, out["cdp"], liveview.LIVE_PAGE)
            assert r.returncode == 0, r.stderr
            receiver = liveview.Receiver(lv["url"], prefix=("ip", "netns", "exec", ns))
            w = receiver.watch(liveview.shot_path(tmp_path, "live-view-tap.png"))
            liveview.report("live view (tap, NAT in a namespace)", w)
            liveview.record(TAP_PATH, w)
            liveview.assert_shows_live_page(w)
            connects = w["connects"]
        client = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", WS_CLIENT,
                                   out["cdp"]], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        try:
            assert "Chrome" in client.stdout.readline()
            sb = json.loads(chvm(env, "standby", name, "--json", timeout=600).stdout)
            rs = json.loads(chvm(env, "restore", name, "--json", timeout=300).stdout)
            print("tap standby (ms): %s\ntap restore (ms): %s" % (sb["phases"], rs["phases"]))
            assert "tap" in rs["phases"]
            t1 = time.monotonic()
            client.stdin.write("again\n")
            client.stdin.flush()
            n = client.stdout.readline().strip()
            print("same WebSocket answered %.2f s after restore" % (time.monotonic() - t1))
            assert n.isdigit() and int(n) >= 1, (n, client.stderr.read())
            if receiver is not None:
                w = receiver.watch_live(
                    liveview.shot_path(tmp_path, "live-view-tap-restored.png"),
                    time.monotonic() + 120)
                liveview.report("live view after restore (tap)", w)
                liveview.record(TAP_PATH, w, restored_connects=connects)
                print("live view after restore (tap): the current screen came %.1f s after "
                      "asking" % w["live_after_s"])
                print("live view after restore (tap): %s" % (
                    "reconnected: new offer" if w["connects"] > connects
                    else "the same WebRTC session resumed"))
                liveview.assert_shows_live_page(w)
                # A live-view session counts as activity: idle standby on, no
                # CDP client on the endpoint, and the VM stays up while the
                # viewer watches; once it has gone, the VM stands by.
                chvm(env, "supervise", "--idle-standby", str(IDLE_S), name)
                t1 = time.monotonic()
                while time.monotonic() - t1 < 3 * IDLE_S:
                    assert cli.ps_row(env, name)["status"] == "running", chvm(
                        env, "logs", "--source", "supervisor", name).stdout
                    time.sleep(0.5)
                st = cli.supervisor_status(env, name)
                assert st["idle_standbys"] == 0 and 0 <= st["live_view_ms"] < 1000 * IDLE_S, st
                receiver.close()
                receiver = None
                t1 = time.monotonic()
                while cli.ps_row(env, name)["status"] != "standby":
                    assert time.monotonic() - t1 < 120, "no idle standby after the viewer " \
                        "left:\n" + chvm(env, "logs", "--source", "supervisor", name).stdout
                    time.sleep(0.5)
                print("live view: no idle standby (%d s) in %d s while a viewer watched; standby "
                      "%.1f s after it left" % (IDLE_S, 3 * IDLE_S, time.monotonic() - t1))
        finally:
            client.kill()
            client.wait()
            if receiver is not None:
                receiver.close()
    finally:
        chvm(env, "rm", "-f", name, check=False)
    assert not os.path.exists(cli.vm_dir(env, name))
    left = in_ns(ns, "sh", "-c", "ip -o link show; nft list ruleset").stdout
    assert "chvm" not in left, left
