# SPDX-License-Identifier: Apache-2.0
"""A KVM host for the CH suite: a QEMU/TCG VM with `-cpu max` (emulated AMD
SVM with nested paging), Debian trixie's cloud kernel with kvm_amd, and a
Debian 12 root holding chvm, the CH builds of ../shared/tools and the
kernel, initramfs and stand-in image chvm boots (tests/kvmhost/build.sh).
Its /dev/kvm is a real KVM: CH runs real Linux guests there.

The outer test drives it over a virtio-serial command channel
(tests/kvmhost/cmdserver.py) and reaches its guests' ports through QEMU
user-net forwards on 127.0.0.1.  Its disk is made per run and attached
with snapshot=on, so a reboot starts from the same state.  A dead KVM host
(its console shows a kernel panic or oops, or QEMU exits) raises
HostDied at once with the console line, whatever the test was waiting for.
"""

import ctypes
import itertools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time

from . import paths
from .net import free_port

ROOT = paths.ROOT
BUILD = paths.BUILD
OUT = os.path.join(BUILD, "kvmhost")
CH_TOOLS = paths.CH_TOOLS
QEMU = shutil.which("qemu-system-x86_64")
MEMORY = os.environ.get("CHVM_KVMHOST_MEMORY", "6G")
# One vCPU: with two, the KVM host's kernel oopsed ("Oops: int3", its
# int3-based code patching racing the other vCPU under QEMU's multi-threaded
# TCG) in most boots, at boot or when KVM first ran a vCPU.
CPUS = os.environ.get("CHVM_KVMHOST_CPUS", "1")
DISK_SIZE = "24G"
MICRO_ELF = paths.MICRO_ELF
DEATH_RE = re.compile(r"Kernel panic|Oops:|BUG: |general protection fault|"
                      r"watchdog: BUG: soft lockup")


class HostDied(Exception):
    """The KVM host's kernel died or its QEMU exited."""


def ch_versions():
    """The CH builds in ../shared/tools/cloud-hypervisor, newest first."""
    if not os.path.isdir(CH_TOOLS):
        return []
    found = [d for d in os.listdir(CH_TOOLS)
             if os.access(os.path.join(CH_TOOLS, d, "cloud-hypervisor"), os.X_OK)]
    return sorted(found, key=lambda v: [int(x) for x in re.findall(r"\d+", v)], reverse=True)


def missing_prerequisites():
    """One line naming what the KVM host suite needs and is missing, or None."""
    if not ch_versions():
        return "no CH builds in %s (../shared/tools/cloud-hypervisor)" % CH_TOOLS
    if os.geteuid() != 0:
        return "root (mmdebstrap, mkfs.ext4 -d of a root tree)"
    for tool, pkg in (("qemu-system-x86_64", "qemu-system-x86"), ("mmdebstrap", "mmdebstrap"),
                      ("mkfs.ext4", "e2fsprogs")):
        if shutil.which(tool) is None:
            return "%s (Debian package %s)" % (tool, pkg)
    needs = [os.path.join(BUILD, "bin", "chvm"), os.path.join(BUILD, "initrd.cpio.gz"), MICRO_ELF,
             os.path.join(BUILD, "kernel", "vmlinuz"),
             os.path.join(BUILD, "images", "standin", "id")]
    missing = [p for p in needs if not os.path.exists(p)]
    if missing:
        return "missing: %s (make setup; make all initrd test-prereqs)" % ", ".join(missing)
    return None


def die_with_parent():
    """In the child before exec: SIGKILL when the test process dies, so that
    an interrupted suite leaves no KVM host running."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def log(msg):
    print("kvmhost: " + msg, flush=True)


def build_base():
    """tests/kvmhost/build.sh (cached)."""
    t0 = time.monotonic()
    subprocess.run([os.path.join(ROOT, "tests", "kvmhost", "build.sh"), OUT], check=True)
    log("base root ready in %.1f s" % (time.monotonic() - t0))


def make_disk(run_dir, extra=()):
    """The run's root disk: the base root, PID 1 and the command server,
    chvm installed as `make install`
    lays it out (kernel, initramfs, stand-in OCI layout), the stand-in
    already imported into /var/lib/chvm, and each CH build under
    /opt/cloud-hypervisor/<version>.  Hard links where it can."""
    t0 = time.monotonic()
    tree = os.path.join(run_dir, "root")
    subprocess.run(["cp", "-al", os.path.join(OUT, "root"), tree], check=True)
    subprocess.run(["make", "-s", "-C", ROOT, "install", "DESTDIR=" + tree, "PREFIX=/usr/local"],
                   check=True, stdout=subprocess.DEVNULL)
    here = os.path.join(ROOT, "tests", "kvmhost")
    shutil.copy(os.path.join(here, "kvmhost-init"), os.path.join(tree, "sbin/kvmhost-init"))
    os.makedirs(os.path.join(tree, "usr/local/lib/kvmhost"), exist_ok=True)
    shutil.copy(os.path.join(here, "cmdserver.py"), os.path.join(tree, "usr/local/lib/kvmhost"))
    shutil.copy(MICRO_ELF, os.path.join(tree, "usr/local/lib/kvmhost/micro.elf"))
    # kvmhost-init runs it at boot: the VMM user, and /dev/kvm for its group.
    shutil.copy(os.path.join(ROOT, "scripts", "vmm-user.sh"), os.path.join(tree, "usr/local/lib/kvmhost"))
    with open(os.path.join(BUILD, "images", "standin", "id")) as f:
        image_id = f.read().strip()
    images = os.path.join(tree, "var/lib/chvm/images")
    os.makedirs(images, exist_ok=True)
    subprocess.run(["cp", "-al", os.path.join(BUILD, "state", "images", image_id),
                    os.path.join(images, image_id)], check=True)
    for v in ch_versions():
        dst = os.path.join(tree, "opt/cloud-hypervisor", v)
        os.makedirs(dst, exist_ok=True)
        for b in ("cloud-hypervisor", "ch-remote"):
            if os.path.exists(os.path.join(CH_TOOLS, v, b)):
                shutil.copy(os.path.join(CH_TOOLS, v, b), dst)
    # extra: (path in this tree, path in the KVM host's root), e.g. the
    # micro guest's benchmark.
    for src, dst in extra:
        dst = os.path.join(tree, dst.lstrip("/"))  # never this host's own path
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copy(os.path.join(ROOT, src), dst)
    disk = os.path.join(run_dir, "root.ext4")
    subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "kvmhost", "-E", "root_owner=0:0",
                    "-d", tree, disk, DISK_SIZE], check=True)
    shutil.rmtree(tree)
    log("disk ready in %.1f s (%s)" % (time.monotonic() - t0, image_id[:12]))
    return disk, image_id


class KvmHost:
    def __init__(self, run_dir, forwards):
        """forwards: guest ports of the KVM host to reach from here; each gets
        a free 127.0.0.1 port (self.port[guest_port])."""
        self.dir = run_dir
        self.port = {g: free_port() for g in forwards}
        self.console_path = os.path.join(run_dir, "console.log")
        self.proc = None
        self.sock = None
        self.ids = itertools.count(1)
        self.replies = {}
        self.cv = threading.Condition()
        self.reader = None
        self.boots = 0

    # ---- life cycle ------------------------------------------------------
    def command(self, disk):
        fwd = ",".join("hostfwd=tcp:127.0.0.1:%d-10.0.2.15:%d" % (h, g) for g, h in self.port.items())
        return [QEMU, "-accel", "tcg,thread=multi", "-cpu", "max", "-smp", CPUS, "-m", MEMORY,
                "-nodefaults", "-no-reboot", "-display", "none", "-monitor", "none",
                "-kernel", os.path.join(OUT, "vmlinuz"), "-initrd", os.path.join(OUT, "initrd.gz"),
                "-append", "console=ttyS0 panic=-1 quiet",
                "-serial", "file:" + self.console_path,
                "-drive", "file=%s,if=none,id=root,format=raw,snapshot=on,cache=unsafe" % disk,
                "-device", "virtio-blk-pci,drive=root,serial=kvmhost-root",
                "-netdev", "user,id=n0,net=10.0.2.0/24" + ("," + fwd if fwd else ""),
                "-device", "virtio-net-pci,netdev=n0",
                "-device", "virtio-serial-pci",
                "-chardev", "socket,id=cmd,path=%s,server=on,wait=off" % self.cmd_path,
                "-device", "virtserialport,chardev=cmd,name=kvmhost.cmd"]

    @property
    def cmd_path(self):
        return os.path.join(self.dir, "cmd.sock")

    def boot(self, disk, attempts=3, timeout=240):
        """Boots until "kvmhost: ready" with kvm=yes; a boot whose kernel
        dies is retried, at most `attempts` boots in all (each counted)."""
        for attempt in range(1, attempts + 1):
            try:
                self._boot_once(disk, timeout)
                return
            except HostDied as e:
                log("boot %d/%d failed: %s" % (attempt, attempts, e))
                self.shutdown()
                if attempt == attempts:
                    raise

    def _boot_once(self, disk, timeout):
        self.boots += 1
        for p in (self.console_path, self.cmd_path):
            if os.path.exists(p):
                os.unlink(p)
        open(self.console_path, "w").close()
        t0 = time.monotonic()
        # QEMU puts the snapshot=on overlay in TMPDIR: keep it in the run dir.
        self.proc = subprocess.Popen(self.command(disk), stdin=subprocess.DEVNULL,
                                     preexec_fn=die_with_parent,
                                     stdout=subprocess.DEVNULL,
                                     stderr=open(os.path.join(self.dir, "qemu.log"), "w"),
                                     env=dict(os.environ, TMPDIR=self.dir))
        deadline = time.monotonic() + timeout
        while not os.path.exists(self.cmd_path):
            self.check_alive()
            if time.monotonic() > deadline:
                raise HostDied("QEMU made no command socket in %d s" % timeout)
            time.sleep(0.05)
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(self.cmd_path)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        # The whole line: the console file may end in the middle of it.
        m = self.wait_console(r"kvmhost: ready [^\r\n]*[\r\n]", deadline - time.monotonic())
        line = m.group(0).strip()
        log("boot %d: %s after %.1f s" % (self.boots, line, time.monotonic() - t0))
        if "kvm=yes" not in line:
            raise AssertionError("the KVM host has no /dev/kvm: " + line)
        self.warm_up()

    def warm_up(self):
        """Runs the micro guest under CH for a moment.  The KVM host's kernel
        patches its code (int3-based text_poke) when KVM first runs a vCPU;
        under QEMU's multi-threaded TCG that has oopsed ("Oops: int3" in
        kvm_arch_vcpu_ioctl_run) about one boot in three.  Here it costs a
        reboot; during a test it would cost the test's guest."""
        version = ch_versions()[0]
        seccomp = " --seccomp log" if int(re.findall(r"\d+", version)[0]) < 49 else ""
        r = self.sh(
            "d=$(mktemp -d); /opt/cloud-hypervisor/%s/cloud-hypervisor%s "
            "--kernel /usr/local/lib/kvmhost/micro.elf --cpus boot=1 --memory size=64M "
            "--serial file=$d/serial --console off >$d/vmm.log 2>&1 & pid=$!; "
            "for i in $(seq 600); do grep -q count $d/serial 2>/dev/null && break; "
            "kill -0 $pid 2>/dev/null || break; sleep 0.1; done; "
            "grep -q count $d/serial; ok=$?; kill $pid; wait $pid; cat $d/vmm.log; exit $ok"
            % (version, seccomp), timeout=120, check=False)
        self.check_alive()
        if r["rc"] != 0:
            raise AssertionError("KVM host: the micro guest did not run under CH %s: %s"
                                 % (version, r["out"][-1000:]))
        log("warm-up: the micro guest ran under CH %s (%d ms)" % (version, r["ms"]))

    def shutdown(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    # ---- console -----------------------------------------------------------
    def console(self):
        with open(self.console_path, errors="replace") as f:
            return f.read()

    def check_alive(self):
        """Raises HostDied when the KVM host's kernel died or QEMU exited."""
        text = self.console()
        m = DEATH_RE.search(text)
        if m:
            start = text.rfind("\n", 0, m.start()) + 1
            end = text.find("\n", m.end())
            raise HostDied("KVM host kernel died: " + text[start:end if end > 0 else None].strip())
        if self.proc is None or self.proc.poll() is not None:
            rc = None if self.proc is None else self.proc.returncode
            raise HostDied("KVM host QEMU exited (%s); console tail: %s"
                           % (rc, text[-300:].strip()))

    def wait_console(self, regex, timeout):
        deadline = time.monotonic() + timeout
        pat = re.compile(regex)
        while True:
            m = pat.search(self.console())
            if m:
                return m
            self.check_alive()
            if time.monotonic() > deadline:
                raise AssertionError("no %r on the KVM host console in %d s" % (regex, timeout))
            time.sleep(0.2)

    # ---- commands ----------------------------------------------------------
    def _read(self):
        f = self.sock.makefile("rb")
        for line in f:
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            with self.cv:
                self.replies[msg.get("id")] = msg
                self.cv.notify_all()

    def run(self, argv, timeout=600, env=None, check=True):
        """Runs argv in the KVM host; returns the reply (rc, out, err, ms).
        check: AssertionError naming the command when rc != 0."""
        i = next(self.ids)
        req = {"id": i, "argv": [str(a) for a in argv], "timeout": timeout, "env": env or {}}
        self.sock.sendall((json.dumps(req) + "\n").encode())
        deadline = time.monotonic() + timeout + 30
        with self.cv:
            while i not in self.replies:
                self.cv.wait(0.5)
                self.check_alive()
                if time.monotonic() > deadline:
                    raise AssertionError("KVM host: no answer to %s in %d s" % (argv, timeout))
            r = self.replies.pop(i)
        if check and r["rc"] != 0:
            raise AssertionError("KVM host: %s exited %s after %d ms\nstdout: %s\nstderr: %s"
                                 % (" ".join(req["argv"]), r["rc"], r["ms"], r["out"][-3000:],
                                    r["err"][-3000:]))
        return r

    def sh(self, script, timeout=600, check=True):
        return self.run(["/bin/bash", "-c", script], timeout=timeout, check=check)
