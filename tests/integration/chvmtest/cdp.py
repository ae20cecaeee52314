# SPDX-License-Identifier: Apache-2.0
"""Chrome DevTools (CDP) from the host: its HTTP endpoints, the node
clients of tests/integration/cdp_session.js, and a raw WebSocket client
that holds one connection across a standby and a restore."""
import base64
import json
import os
import select
import socket
import subprocess
import time
import urllib.request

from . import paths

# A command that wakes a VM from standby under TCG may take this long.
CMD_TIMEOUT = 600


def http(url, method="GET", timeout=10):
    """The JSON body of one DevTools HTTP request."""
    req = urllib.request.Request(url, method=method)
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


def get(url, timeout=CMD_TIMEOUT):
    """GET url's JSON body, waiting as long as a wake from standby may take
    (HTTPError on a status other than 2xx)."""
    return http(url, timeout=timeout)


def wait_cdp(base, deadline):
    """Waits until base's /json/version answers; returns it."""
    last = None
    while time.monotonic() < deadline:
        try:
            return http(base + "/json/version", timeout=5)
        except OSError as e:  # not up yet: the forwarder is not listening
            last = e
            time.sleep(0.5)
    raise AssertionError("CDP at %s did not answer: %s" % (base, last))


def ws_open(endpoint, timeout=30):
    """A WebSocket to the browser named by endpoint's /json/version, upgraded
    (101) and left idle: a socket holding one of the endpoint's client
    slots."""
    v = http(endpoint + "/json/version", timeout=timeout)
    hostport, path = v["webSocketDebuggerUrl"][5:].split("/", 1)
    h, p = hostport.rsplit(":", 1)
    s = socket.create_connection((h, int(p)), timeout=timeout)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(("GET /%s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
               % (path, hostport, key)).encode())
    head = b""
    while b"\r\n\r\n" not in head:
        b = s.recv(4096)
        assert b, "closed before the WebSocket answer: %r" % head
        head += b
    assert b" 101 " in head.split(b"\r\n", 1)[0], head
    return s


def without_token(endpoint):
    """endpoint (http://ADDR:PORT/TOKEN) without its token."""
    return endpoint.rsplit("/", 1)[0]


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


class Session:
    """tests/integration/cdp_session.js: one client (kind: "playwright" or
    "puppeteer", the npm packages) on one connection to endpoint, driven
    by line commands ("open", "eval EXPR", "shot PNG", "burst N",
    "version"); events it reports pile up in self.events."""

    def __init__(self, kind, endpoint):
        self.kind = kind
        self.events = []
        self.p = subprocess.Popen(["node", paths.CDP_SESSION_JS, kind, endpoint, str(CMD_TIMEOUT * 1000)],
                                  cwd=paths.ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        r = self.read(CMD_TIMEOUT)
        assert r.get("connected"), (kind, r, self.stderr())

    def stderr(self):
        if self.p.poll() is None:
            return ""
        return self.p.stderr.read()

    def read(self, timeout):
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.p.stdout], [], [], left)[0]:
                raise AssertionError("%s: no answer in %d s" % (self.kind, timeout))
            line = self.p.stdout.readline()
            if not line:
                raise AssertionError("%s client exited: %s" % (self.kind, self.stderr()))
            r = json.loads(line)
            if "event" in r:
                self.events.append(r["event"])
                continue
            return r

    def cmd(self, line, timeout=CMD_TIMEOUT):
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()
        r = self.read(timeout)
        assert "error" not in r, (self.kind, line, r)
        return r

    def close(self):
        if self.p.poll() is None:
            try:
                self.p.stdin.write("quit\n")
                self.p.stdin.flush()
                self.p.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.p.kill()
                self.p.wait()


def drive(endpoint, kind="playwright"):
    """A real client (kind) on endpoint opens a page and evaluates on it."""
    s = Session(kind, endpoint)
    try:
        s.cmd("open")
        assert s.cmd("eval 6*7")["value"] == 42
    finally:
        s.close()
