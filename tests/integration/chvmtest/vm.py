# SPDX-License-Identifier: Apache-2.0
"""Boots chvm guests directly under QEMU (TCG), without chvm, for the
integration tests and the boot benchmark: config disks, QEMU command lines,
console log watching.

The guest gets the disks of docs/DESIGN.md as virtio-blk with serials, a
user-mode network with 127.0.0.1 host forwards for CDP (9222), SSH (22) and
the agent's TCP port (1025), and its serial console in a log file."""

import gzip
import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.request

from . import paths
from .net import free_port

ROOT = paths.ROOT
BUILD = paths.BUILD
KERNEL = paths.KERNEL
INITRD = paths.INITRD
STANDIN_ROOTFS = paths.STANDIN_ROOTFS
STANDIN_IMAGE_JSON = paths.STANDIN_IMAGE_JSON
QEMU = shutil.which("qemu-system-x86_64")

CONFIG_HEADER = "# chvm-config 1"
# QEMU user networking: the guest is 10.0.2.15, gateway 10.0.2.2, DNS 10.0.2.3.
GUEST_ADDRESS = "10.0.2.15/24"
GUEST_GATEWAY = "10.0.2.2"
GUEST_DNS = "10.0.2.3"
AGENT_TCP_PORT = 1025
CMDLINE = "console=ttyS0 quiet panic=-1 rdinit=/init"

PHASE_RE = re.compile(r"INFO init\[1\]: \[(\d+\.\d+)\] phase (\w+)")


def missing_prerequisites(rootfs=STANDIN_ROOTFS):
    """One line naming what a boot needs and is missing, or None."""
    needs = [(QEMU, "qemu-system-x86_64 (apt-get install qemu-system-x86)"),
             (os.path.exists(KERNEL), KERNEL + " (make kernel)"),
             (os.path.exists(INITRD), INITRD + " (make initrd)")]
    if rootfs is not None:
        needs.append((os.path.exists(rootfs), "%s (make images)" % rootfs))
    missing = [what for have, what in needs if not have]
    return ("missing: " + ", ".join(missing)) if missing else None


def initrd_members(path=INITRD):
    """The entry names of a gzip'd newc cpio archive (an initramfs), as
    `cpio -it` lists them: no leading slash."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    names, off = [], 0
    while off + 110 <= len(data) and data[off:off + 6] in (b"070701", b"070702"):
        namesize = int(data[off + 94:off + 102], 16)
        filesize = int(data[off + 54:off + 62], 16)
        name = data[off + 110:off + 110 + namesize - 1].decode()
        if name == "TRAILER!!!":
            break
        names.append(name)
        off = (off + 110 + namesize + 3) & ~3
        off = (off + filesize + 3) & ~3
    return names


def initrd_has_agent(path=INITRD):
    """Whether the initramfs carries the guest agent (/sbin/chvm-agent)."""
    return "sbin/chvm-agent" in initrd_members(path)


def config_text(cfg):
    """The config disk text for a dict: a list value repeats its key."""
    lines = [CONFIG_HEADER]
    for key, value in cfg.items():
        for v in value if isinstance(value, (list, tuple)) else [value]:
            lines.append("%s=%s" % (key, v))
    return "\n".join(lines) + "\n"


def write_config_disk(path, cfg):
    """Writes a config disk from a dict (or raw text, for bad-input tests):
    the text padded with NUL bytes to a multiple of 4096."""
    data = (cfg if isinstance(cfg, str) else config_text(cfg)).encode()
    data += b"\0" * (-len(data) % 4096 if data else 4096)
    with open(path, "wb") as f:
        f.write(data)


def image_config(path=STANDIN_IMAGE_JSON):
    """The OCI exec fields of an imported image (image.json)."""
    with open(path) as f:
        img = json.load(f)
    return {k: img.get(k) or ([] if k in ("Env", "Entrypoint", "Cmd") else "")
            for k in ("Env", "Entrypoint", "Cmd", "WorkingDir", "User")}


def config_from_image(img, **extra):
    """A config dict carrying the image's exec fields, then extra keys
    (use a list for repeated keys; key names with '.' as '__')."""
    cfg = {"env": list(img["Env"]), "entrypoint": list(img["Entrypoint"]),
           "cmd": list(img["Cmd"])}
    if img["WorkingDir"]:
        cfg["workdir"] = img["WorkingDir"]
    if img["User"]:
        cfg["user"] = img["User"]
    for k, v in extra.items():
        k = k.replace("__", ".")
        if k == "env":
            cfg["env"] = cfg["env"] + list(v)
        else:
            cfg[k] = v
    return cfg


class VM:
    """One QEMU guest.  config: dict or raw text (None: no config disk);
    rootfs: None for no root disk; disks: more (path, serial, readonly);
    serials=False leaves every disk without a serial (label fallback)."""

    def __init__(self, workdir, config, rootfs=STANDIN_ROOTFS, initrd=INITRD,
                 kernel=KERNEL, memory=2048, smp=2, cmdline=CMDLINE,
                 forward=True, disks=(), serials=True, name="guest",
                 qmp=False):
        self.workdir = workdir
        self.config = config if isinstance(config, dict) else None
        self.raw_config = config
        self.rootfs = rootfs
        self.initrd = initrd
        self.kernel = kernel
        self.memory = memory
        self.smp = smp
        self.cmdline = cmdline
        self.forward = forward
        self.name = name
        self.extra_disks = list(disks)  # (path, serial, readonly)
        self.serials = serials
        self.console_path = os.path.join(workdir, name + "-console.log")
        # A QMP monitor socket (qmp=True), for power button presses.
        self.qmp_path = os.path.join(workdir, name + "-qmp.sock") if qmp else None
        self.config_path = os.path.join(workdir, name + "-config.img")
        self.proc = None
        self.cdp_port = self.ssh_port = self.agent_port = None
        self._raw = b""

    def command(self):
        cmd = [QEMU, "-accel", "tcg,thread=multi", "-m", str(self.memory),
               "-smp", str(self.smp), "-nographic", "-no-reboot",
               "-monitor", "none", "-serial", "file:" + self.console_path,
               "-kernel", self.kernel, "-initrd", self.initrd,
               "-append", self.cmdline, "-device", "virtio-rng-pci"]
        if self.qmp_path:
            cmd += ["-qmp", "unix:%s,server=on,wait=off" % self.qmp_path]
        disks = []
        if self.rootfs is not None:
            disks.append((self.rootfs, "chvm-root"))
        if self.raw_config is not None:
            disks.append((self.config_path, "chvm-config"))
        disks = [(p, s, True) for p, s in disks] + self.extra_disks
        for i, (path, serial, ro) in enumerate(disks):
            cmd += ["-drive", "file=%s,if=none,id=d%d,format=raw,readonly=%s"
                    % (path, i, "on" if ro else "off"),
                    "-device", "virtio-blk-pci,drive=d%d" % i
                    + (",serial=" + serial if self.serials else "")]
        netdev = "user,id=n0"
        if self.forward:
            netdev += "".join(",hostfwd=tcp:127.0.0.1:%d-:%d" % (h, g) for h, g in
                              ((self.cdp_port, 9222), (self.ssh_port, 22),
                               (self.agent_port, AGENT_TCP_PORT)))
        cmd += ["-netdev", netdev, "-device", "virtio-net-pci,netdev=n0"]
        return cmd

    def start(self):
        if self.forward:
            self.cdp_port, self.ssh_port, self.agent_port = (
                free_port(), free_port(), free_port())
        if self.raw_config is not None:
            write_config_disk(self.config_path, self.raw_config)
        open(self.console_path, "w").close()
        self.started = time.monotonic()
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL,
                                     stderr=open(os.path.join(
                                         self.workdir, self.name + "-qemu.err"),
                                         "w"))
        return self

    def console(self):
        """Everything the guest printed so far."""
        # Bytes, not text: a text-mode read turns CRLF into LF (and bad bytes
        # into U+FFFD), so its length is no file offset; kept raw, a read
        # that ends mid-line is continued at the right place by the next.
        with open(self.console_path, "rb") as f:
            f.seek(len(self._raw))
            self._raw += f.read()
        text = self._raw.decode(errors="replace")
        return text.replace("\r\n", "\n").replace("\r", "\n")

    def wait_console(self, regex, timeout):
        """Waits until the console matches regex; returns the match.  Raises
        AssertionError with the console tail on timeout or QEMU exit."""
        pattern = re.compile(regex, re.M)
        deadline = time.monotonic() + timeout
        while True:
            m = pattern.search(self.console())
            if m:
                return m
            if self.proc.poll() is not None:
                m = pattern.search(self.console())
                if m:
                    return m
                raise AssertionError("QEMU exited (%s) before /%s/; console:\n%s"
                                     % (self.proc.returncode, regex,
                                        self.tail()))
            if time.monotonic() > deadline:
                raise AssertionError("no /%s/ on the console after %ss:\n%s"
                                     % (regex, timeout, self.tail()))
            time.sleep(0.1)

    def wait_exit(self, timeout):
        """Waits for QEMU to exit (the guest powered off); returns its exit
        code.  Raises AssertionError if it is still running after timeout."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError("guest still running after %ss:\n%s"
                                 % (timeout, self.tail()))

    def qmp(self, command, timeout=30):
        """Runs one QMP command (e.g. "system_powerdown") on a fresh
        connection; returns its "return" value, raises on a QMP error."""
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(timeout)
            s.connect(self.qmp_path)
            f = s.makefile("rw")

            def answer():
                while True:
                    msg = json.loads(f.readline())
                    if "return" in msg or "error" in msg:
                        return msg
            json.loads(f.readline())  # the greeting
            for cmd in ("qmp_capabilities", command):
                f.write(json.dumps({"execute": cmd}) + "\n")
                f.flush()
                msg = answer()
                if "error" in msg:
                    raise AssertionError("QMP %s: %s" % (cmd, msg["error"]))
            return msg["return"]

    def tail(self, n=40):
        return "\n".join(self.console().splitlines()[-n:])

    def phases(self):
        """{phase name: CLOCK_BOOTTIME seconds} from init's console lines."""
        return {m.group(2): float(m.group(1))
                for m in PHASE_RE.finditer(self.console())}

    def http_get(self, path, port, timeout):
        """GETs http://127.0.0.1:port/path until it answers or timeout."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("QEMU exited; console:\n" + self.tail())
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path),
                                            timeout=5) as r:
                    return r.read()
            except OSError as e:
                last = e
                time.sleep(0.5)
        raise AssertionError("GET %s on port %d: %s; console:\n%s"
                             % (path, port, last, self.tail()))

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
