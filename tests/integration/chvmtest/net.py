# SPDX-License-Identifier: Apache-2.0
"""Host ports, network namespaces, and UDP/TCP echo clients."""
import os
import socket
import subprocess
import time
import uuid

# Published ports of the live view's shape (a 101-port UDP range and a TCP
# port) beside the live view itself, which has neko's 8080 and 56000-56100.
UDP_GUEST = 57000
UDP_COUNT = 101
UDP_ECHO = UDP_GUEST + UDP_COUNT - 1  # the range's last port
TCP_GUEST = 8081
# Echo servers in the guest (run through the agent), left running detached
# from the agent's exec (its pipes closed so the exec ends at once).
GUEST_ECHO = ("setsid -f socat UDP-RECVFROM:%(udp)d,fork EXEC:cat </dev/null >/dev/null 2>&1; "
              "setsid -f socat TCP-LISTEN:%(tcp)d,fork,reuseaddr EXEC:cat "
              "</dev/null >/dev/null 2>&1")


def free_port():
    """A TCP port free on 127.0.0.1 (bound and released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_free(port, kind=socket.SOCK_STREAM):
    """Whether port can be bound on 127.0.0.1 now."""
    with socket.socket(socket.AF_INET, kind) as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def free_ports(kind, count):
    """count consecutive ports free on 127.0.0.1 (bound and released)."""
    for _ in range(200):
        first = 20000 + int.from_bytes(os.urandom(2), "big") % 20000
        socks = []
        try:
            for port in range(first, first + count):
                s = socket.socket(socket.AF_INET, kind)
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return first
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise AssertionError("no %d free consecutive ports" % count)


def udp_echo(addr, payload, deadline):
    """Sends payload to addr until the same bytes come back."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(1.0)
        while time.monotonic() < deadline:
            s.sendto(payload, addr)
            try:
                data, _ = s.recvfrom(4096)
            except socket.timeout:  # the guest's listener is not up yet
                continue
            if data == payload:
                return
        raise AssertionError("no UDP echo from %s:%d" % addr)


def tcp_echo(addr, payload, deadline):
    """Sends payload to addr until it comes back.  QEMU's user-net accepts
    on the host before the guest listens, so a closed connection just means
    "not yet"."""
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(addr, timeout=5) as s:
                s.sendall(payload)
                s.shutdown(socket.SHUT_WR)
                data = b""
                while len(data) < len(payload):
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    data += chunk
        except OSError:
            data = b""
        if data == payload:
            return
        time.sleep(0.2)
    raise AssertionError("no TCP echo from %s:%d" % addr)


def in_ns(ns, *cmd, **kw):
    """Runs cmd in network namespace ns (`ip netns exec`), output captured."""
    return subprocess.run(["ip", "netns", "exec", ns, *cmd], capture_output=True, text=True,
                          timeout=60, **kw)


def ns_links(ns):
    """The link names in network namespace ns."""
    out = subprocess.run(["ip", "-netns", ns, "-o", "link"], capture_output=True, text=True,
                         check=True).stdout
    return [line.split(":")[1].strip().split("@")[0] for line in out.splitlines()]


class Netns:
    """A network namespace made for a test (`with Netns(...) as name`).

    lo_up: loopback up (what a client inside needs for 127.0.0.1);
    default_route: a default route, as any host has (Chromium's WebRTC
    gathers no candidate without one), leading nowhere: a veth pair whose
    other end has no address (no dummy link: not every kernel has the
    module)."""

    def __init__(self, name=None, lo_up=False, default_route=False):
        self.name = name or "chvmt-" + uuid.uuid4().hex[:8]
        self.lo_up = lo_up
        self.default_route = default_route

    def create(self):
        """Makes the namespace; returns its name."""
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        try:
            cmds = []
            if self.lo_up:
                cmds.append(["ip", "link", "set", "lo", "up"])
            if self.default_route:
                cmds += [["ip", "link", "add", "lv0", "type", "veth", "peer", "name", "lv1"],
                         ["ip", "addr", "add", "192.0.2.1/24", "dev", "lv0"],
                         ["ip", "link", "set", "lv1", "up"],
                         ["ip", "link", "set", "lv0", "up"],
                         ["ip", "route", "add", "default", "dev", "lv0"]]
            for cmd in cmds:
                r = in_ns(self.name, *cmd)
                assert r.returncode == 0, (cmd, r.stderr)
        except BaseException:
            self.delete()
            raise
        return self.name

    def delete(self):
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)

    def __enter__(self):
        return self.create()

    def __exit__(self, *exc):
        self.delete()
