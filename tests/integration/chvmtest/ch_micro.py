# SPDX-License-Identifier: Apache-2.0
"""Runs the micro guest (tests/micro-guest) under the real Cloud Hypervisor
through build/tests/ch-driver, which links the real backend_ch.c.  Shared
by tests/integration/test_ch.py, the `ch` fixture (conftest.py) and
tests/bench/bench_ch.py (which also runs it inside the KVM host: standard
library only).

The guest prints "count N" lines on its serial port (DIR/console.log) with
the counter kept in guest RAM; "touched N MiB" once it wrote N MiB."""

import os
import re
import select
import shutil
import signal
import subprocess
import time

from . import paths

ROOT = paths.ROOT
DRIVER = os.environ.get("CH_DRIVER", paths.CH_DRIVER)
MICRO_ELF = os.environ.get("MICRO_ELF", paths.MICRO_ELF)
COUNT_RE = re.compile(r"^count (\d+)$", re.M)


def ch_binary():
    """The CH binary chvm would use: $CLOUD_HYPERVISOR, else PATH's."""
    return os.environ.get("CLOUD_HYPERVISOR") or shutil.which("cloud-hypervisor")


def ch_binaries():
    """The CH binaries to test: the one chvm would use, then any listed in
    $CHVM_TEST_CH_EXTRA (colon-separated paths, e.g. a v48 beside a v53)."""
    found = [ch_binary()] + os.environ.get("CHVM_TEST_CH_EXTRA", "").split(":")
    out = []
    for b in found:
        if b and os.path.realpath(b) not in [os.path.realpath(o) for o in out]:
            out.append(b)
    return out


def major(binary):
    """The major version of a CH binary (53 for v53.0), 0 if unknown."""
    m = re.match(r"v(\d+)\.", version_id(binary))
    return int(m.group(1)) if m else 0


def version_id(binary):
    """'v53.0' for a CH binary (a test id), or 'none'."""
    if not binary:
        return "none"
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10).stdout
    except OSError:
        return "unrunnable"
    m = re.search(r"v\d+\.\d+", out)
    return m.group(0) if m else "unknown"


def missing_prerequisites(binary):
    """One line naming what is missing to run CH with the micro guest, or None."""
    if not binary:
        return "cloud-hypervisor not on PATH (or $CLOUD_HYPERVISOR)"
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "/dev/kvm missing or not accessible"
    for path, target in ((DRIVER, "ch-driver"), (MICRO_ELF, "micro-guest")):
        if not os.path.exists(path):
            return "%s missing (make %s)" % (path, target)
    return None


def wait_for(pred, timeout, what):
    """Polls pred() until it returns a true value or timeout seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise TimeoutError("timed out after %.0f s waiting for %s" % (timeout, what))
        time.sleep(0.05)


def parse_kv(line):
    """'ok a=1 b=x' -> {'a': '1', 'b': 'x'}."""
    return dict(w.split("=", 1) for w in line.split()[1:] if "=" in w)


class Driver:
    """One ch-driver process: a VM directory, a spec, line commands."""

    def __init__(self, vmdir, memory_mib=64, cmdline="", env=None, shared_memory="auto"):
        self.dir = vmdir
        os.makedirs(vmdir, exist_ok=True)
        e = dict(os.environ)
        e.update(env or {})
        self.proc = subprocess.Popen(
            [DRIVER, "--dir", vmdir, "--kernel", MICRO_ELF, "--memory-mib", str(memory_mib),
             "--cmdline", cmdline, "--shared-memory", shared_memory],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, env=e)
        self.buf = b""
        self.progress = []

    def _readline(self, deadline, what):
        # Our own buffer: select() on a buffered text pipe misses lines
        # already read into Python's buffer.
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.proc.stdout], [], [], left)[0]:
                raise TimeoutError("ch-driver gave no answer to %r in time" % what)
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                raise RuntimeError("ch-driver exited during %r: %s" % (what, self.proc.stderr.read()))
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode(errors="replace")

    def cmd(self, line, timeout=60, on_progress=None):
        """Sends one command; returns the 'ok ...' or 'error ...' answer."""
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        deadline = time.monotonic() + timeout
        while True:
            out = self._readline(deadline, line)
            if out.startswith("progress "):
                self.progress.append(out)
                if on_progress:
                    on_progress(parse_kv(out))
                continue
            return out

    def ok(self, line, timeout=60):
        out = self.cmd(line, timeout)
        if not out.startswith("ok"):
            raise AssertionError("%s: %s" % (line, out))
        return parse_kv(out)

    def serial(self):
        try:
            with open(os.path.join(self.dir, "console.log"), errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def counts(self, text=None):
        return [int(m) for m in COUNT_RE.findall(self.serial() if text is None else text)]

    def wait_count(self, n, timeout=60):
        return wait_for(lambda: any(c >= n for c in self.counts()), timeout, "count %d on serial" % n)

    def vmm_pid(self):
        try:
            with open(os.path.join(self.dir, "vmm.pid")) as f:
                return int(f.read())
        except (FileNotFoundError, ValueError):
            return 0

    def close(self, timeout=30):
        """Ends the driver (it shuts a running VMM down) and kills any VMM
        left, so no test leaves an orphan; returns the VMM pid it had to kill."""
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout)
        except (subprocess.TimeoutExpired, BrokenPipeError):
            self.proc.kill()
            self.proc.wait()
        pid = self.vmm_pid()
        if pid and alive(pid):
            os.kill(pid, signal.SIGKILL)
            return pid
        return 0


def alive(pid):
    """Whether pid is a live process (not a zombie)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False
