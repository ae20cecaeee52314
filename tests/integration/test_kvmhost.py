# SPDX-License-Identifier: Apache-2.0
"""chvm with the real Cloud Hypervisor and a real Linux guest: inside the
KVM host (chvmtest/kvmhost.py: QEMU/TCG -cpu max, nested SVM, a
real /dev/kvm), `chvm run --backend ch` boots the stand-in Chromium image
on a tap with the agent on vsock, for each CH build of
../shared/tools/cloud-hypervisor (one guest per build, booted once):

  run -> ps running -> agent WaitReady over vsock -> playwright-core from
  this host (through QEMU's forward and chvm's --publish DNAT) navigates a
  page and takes a screenshot -> a CDP WebSocket opened now -> standby ->
  restore (copy) -> the same target id and URL, the same WebSocket answers,
  the agent answers again over vsock -> (v52+) standby -> restore
  (ondemand, userfaultfd) -> the same checks -> stop (power button) -> rm
  leaves no process, tap, nft table or file.  With the oldest build (every
  build in the full plan) also the supervisor's CDP endpoint: a client on
  it, a standby, a new connection that wakes the VM, the first client's
  page answering on its same WebSocket.

That is the full plan (CHVM_KVMHOST_FULL=1, make test-kvmhost).  The
default plan (make test, CI) fits 15 minutes on two cores: playwright and
the ondemand restore with the newest build; the copy restore, with the
browser's first tab as the page, with the older ones.

Each phase time chvm prints (--json) and the snapshot's size against guest
RAM are printed and kept in build/test-results/kvmhost.json (the figures
of docs/FINDINGS.md).  Skips with one line when the CH builds, root, QEMU
or the built tree are missing.  Nested software emulation sets the
absolute speed; what is real is every CH path (vsock, tap, snapshot,
restore, userfaultfd).
"""
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from chvmtest import kvmhost, paths
from chvmtest.cdp import WS_CLIENT, Session

# On wherever its prerequisites are (CI has them); CHVM_TEST_KVMHOST=0 turns
# it off.  tests/run.sh runs it as a suite of its own, with nothing else.
MISSING = ("off: CHVM_TEST_KVMHOST=0" if os.environ.get("CHVM_TEST_KVMHOST") == "0"
           else kvmhost.missing_prerequisites())
pytestmark = pytest.mark.skipif(MISSING is not None, reason="KVM host suite: %s" % MISSING)

# CHVM_KVMHOST_VERSIONS="v53.0 v48.0" picks builds; default: all of them.
VERSIONS = [v for v in kvmhost.ch_versions()
            if v in os.environ.get("CHVM_KVMHOST_VERSIONS", v).split()]
# The full plan (CHVM_KVMHOST_FULL=1, make test-kvmhost): every step for
# every build, about 18 minutes on two cores.  The default plan fits CI's 15:
# playwright and the ondemand restore with the newest build, the copy
# restore with the others (v53's copy restore alone takes minutes here).
FULL = os.environ.get("CHVM_KVMHOST_FULL") == "1"
GUEST_MEMORY = os.environ.get("CHVM_KVMHOST_GUEST_MEMORY", "1G")
# One vCPU: with two, the nested guest triple-faulted during Chromium's
# start (QEMU's emulated SVM under multi-threaded TCG).  --no-zygote: the
# zygote's fixed ping deadline is missed under nested emulation, and then
# no tab gets a renderer.  Neither is needed on real hardware.
GUEST_ARGS = ["--cpus", "1", "-e", "CHROMIUM_FLAGS=--no-zygote"]
CDP = 9222
# The VM's CDP endpoint (its supervisor's listener) on the KVM host's own
# address, forwarded by QEMU like CDP.
ENDPOINT = 9444
# The endpoint step (wake on connect with CH): CHVM_KVMHOST_CDP=0 leaves it out.
CDP_STEP = os.environ.get("CHVM_KVMHOST_CDP") != "0"
# Clones from a template of the stand-in (issue 23), with the newest build:
# CHVM_KVMHOST_CLONES of them at once (full plan 3, default plan none,
# make bench-fork-kvmhost 10), their endpoints on CLONE_PORT.. forwarded.
CLONES = int(os.environ.get("CHVM_KVMHOST_CLONES", "3" if FULL else "0"))
CLONE_PORT = 9450
# The root as virtio-pmem with DAX (issue 24), newest build: full plan, or
# CHVM_KVMHOST_PMEM=1 (make bench-pmem-kvmhost).
PMEM = os.environ.get("CHVM_KVMHOST_PMEM", "1" if FULL else "0") == "1"
# A VM's own restore from its --memory-file (issue 23), newest build:
# full plan, or CHVM_KVMHOST_MEMFILE=1 (make bench-fork-kvmhost).
MEMFILE = os.environ.get("CHVM_KVMHOST_MEMFILE", "1" if FULL else "0") == "1"
# Nested emulation: Chromium's start took 56-94 s, an ondemand restore's
# first CDP answer 157 s (shared/docs/build-hosts.md).
BOOT_S = 900
CDP_CLIENT = paths.CDP_CLIENT_JS
# make bench-fork-kvmhost names its own (fork-kvmhost.json).
RESULTS = os.environ.get("CHVM_KVMHOST_RESULTS",
                         os.path.join(kvmhost.BUILD, "test-results", "kvmhost.json"))
CH_DIR = "/opt/cloud-hypervisor"
STATE = "/var/lib/chvm"
FIGURES = {}


def major(version):
    return int(version.lstrip("v").split(".")[0])


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    kvmhost.build_base()
    run_dir = str(tmp_path_factory.mktemp("kvmhost"))
    disk, _ = kvmhost.make_disk(run_dir)
    h = kvmhost.KvmHost(run_dir, forwards=[CDP, ENDPOINT, *range(CLONE_PORT, CLONE_PORT + CLONES)])
    h.disk = disk
    h.boot(disk)
    FIGURES["kvmhost"] = {"kernel": h.sh("uname -r").get("out").strip(), "memory": kvmhost.MEMORY,
                          "boots": h.boots}
    yield h
    h.shutdown()
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "w") as f:
        json.dump(FIGURES, f, indent=1)
    print("\nkvmhost figures: %s" % RESULTS)


class Guest:
    """One VM of one CH build inside the KVM host, and what the steps learnt."""

    def __init__(self, h, version):
        self.h = h
        self.version = version
        self.name = "b" + version.replace(".", "-")
        self.env = {"CLOUD_HYPERVISOR": "%s/%s/cloud-hypervisor" % (CH_DIR, version)}
        if major(version) < 49:
            # Built from source with today's toolchain (see the tools' README).
            self.env["CHVM_CH_SECCOMP"] = "log"
        self.figures = FIGURES.setdefault(version, {})
        self.failed = None
        self.page = None

    def chvm(self, *args, timeout=BOOT_S, env=None, check=True):
        return self.h.run(["chvm", *args], timeout=timeout, env=dict(self.env, **(env or {})),
                          check=check)

    def chvm_json(self, *args, **kw):
        r = self.chvm(*args, "--json", **kw)
        return json.loads(r["out"])

    @property
    def endpoint(self):
        return "http://127.0.0.1:%d" % self.h.port[CDP]

    def targets(self):
        with urllib.request.urlopen(self.endpoint + "/json/list", timeout=60) as r:
            return {t["id"]: t["url"] for t in json.loads(r.read()) if t.get("type") == "page"}

    def agent(self, *args, timeout_ms=120000):
        return self.h.run(["chvm", "agent", "--socket", "%s/vms/%s/vsock.sock" % (STATE, self.name),
                           "--port", "1024", "--timeout", str(timeout_ms), *args],
                          timeout=timeout_ms // 1000 + 30)


@pytest.fixture(scope="module", params=VERSIONS or [None])
def guest(request, host):
    if request.param is None:
        pytest.skip("no CH builds")
    g = Guest(host, request.param)
    yield g
    host.run(["chvm", "rm", "-f", g.name], check=False, timeout=120)


def step(g):
    """Later steps of a guest skip once one failed (they build on it)."""
    if g.failed:
        pytest.skip("an earlier step of %s failed: %s" % (g.version, g.failed))


@pytest.fixture
def g(guest, request):
    step(guest)
    yield guest
    # conftest.py keeps each phase's report on the item.
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        guest.failed = request.node.name


def test_doctor_sees_nested_kvm(host):
    """chvm doctor in the KVM host: its kvm_amd is nested KVM that runs guests."""
    out = host.run(["chvm", "doctor"], check=False)["out"]
    print("\n" + out)
    assert "nested KVM (runs Linux guests)" in out, out
    assert "KVM guests: yes" in out, out


def test_run_boots_chromium(g):
    """chvm run in the KVM host; a kernel death there (the 6.12 code-patching
    oops seen at vCPU start) reboots the KVM host and retries once."""
    args = ["run", "--backend", "ch", "--name", g.name, "--memory", GUEST_MEMORY,
            "-p", "10.0.2.15:%d:%d" % (CDP, CDP), "--cdp", "10.0.2.15:%d" % ENDPOINT,
            "--timeout", str(BOOT_S - 60), *GUEST_ARGS]
    for attempt in (1, 2):
        t0 = time.monotonic()
        try:
            out = g.chvm_json(*args)
            break
        except kvmhost.HostDied as e:
            kvmhost.log("chvm run %s: attempt %d/2: %s" % (g.version, attempt, e))
            FIGURES.setdefault("host_deaths", []).append("run %s: %s" % (g.version, e))
            if attempt == 2:
                raise
            g.h.shutdown()
            g.h.boot(g.h.disk)
    wall = time.monotonic() - t0
    print("\n%s run: %s; wall %.1f s" % (g.version, out, wall))
    g.figures["run"] = dict(out, wall_s=round(wall, 1))
    ps = json.loads(g.chvm("ps", "--json")["out"])
    mine = [v for v in ps if v.get("name") == g.name]
    assert mine and mine[0].get("status") == "running", ps
    # The VMM runs unprivileged (a uid of chvm-vmm's range, no capabilities).
    st = g.h.sh("grep -E '^(Uid|CapEff|NoNewPrivs):' /proc/%d/status" % mine[0]["pid"])["out"]
    print(st)
    fields = dict(line.split(":", 1) for line in st.strip().splitlines())
    assert fields["Uid"].split()[0] != "0" and int(fields["CapEff"], 16) == 0, st
    g.figures["vmm_uid"] = int(fields["Uid"].split()[0])
    # Its cgroup v2 (the KVM host mounts cgroup2 with cpu, memory and pids):
    # the VMM in it, --cpus 1, GUEST_MEMORY + CH's 256 MiB and 1024 pids.
    cg = vm_cgroup(g)
    print("cgroup: %s" % cg)
    assert cg["path"] and "/chvm.slice/%s-" % g.name in cg["path"], cg
    procs = g.h.sh("cat %s/cgroup.procs" % cg["path"])["out"].split()
    assert str(mine[0]["pid"]) in procs, procs
    mem = (int(GUEST_MEMORY.rstrip("G")) << 30) + (256 << 20)
    assert (cg["cpu.max"], cg["memory.max"], cg["pids.max"]) == ("100000 100000", str(mem),
                                                                  "1024"), cg


def vm_cgroup(g):
    return json.loads(g.chvm("inspect", "--json", g.name)["out"])[0]["cgroup"]


def test_agent_wait_ready_over_vsock(g):
    r = g.agent("ready", "--timeout", "60000")
    print("\n%s agent ready over vsock: %s" % (g.version, r["out"].strip()))
    assert "Chrome" in r["out"] or "Chromium" in r["out"], r


def in_plan(g, what):
    """Skips a step the default plan leaves to the full one."""
    if not FULL and g.version != VERSIONS[0]:
        pytest.skip("%s with the newest CH build only (CHVM_KVMHOST_FULL=1: every build)" % what)


def test_playwright_page_and_screenshot(g, tmp_path):
    in_plan(g, "playwright")
    shot = str(tmp_path / ("page-%s.png" % g.version))
    r = subprocess.run(["node", CDP_CLIENT, g.endpoint, "600000", shot], capture_output=True,
                       text=True, timeout=BOOT_S)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["title"] == out["expected"], out
    with open(shot, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    print("\n%s playwright: %s" % (g.version, out))
    g.page = (out["target_id"], out["url"])
    assert g.targets().get(out["target_id"]) == out["url"]
    g.figures["playwright_connect_ms"] = out["connect_ms"]


# Raw hybrid-vsock CONNECTs to the agent's port (argv: socket, the host
# port to reach, the most to try): prints the host port of each "OK <port>"
# answer, or "no answer" and exits 1 when CH never answers one.  CH's muxer
# hands out host ports in sequence from 2^30 in each VMM's life.
VSOCK_PROBE = r"""
import socket, sys
path, until, most = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
port = 0
for _ in range(most):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(20)
    s.connect(path)
    s.sendall(b"CONNECT 1024\n")
    line = b""
    try:
        while not line.endswith(b"\n"):
            b = s.recv(1)
            if not b:
                break
            line += b
    except socket.timeout:
        print("no answer after port %d" % port)
        sys.exit(1)
    s.close()
    port = int(line.split()[1])
    print(port)
    if port >= until:
        break
"""


def vsock_probe(g, until, most):
    """The host ports CH gave to raw CONNECTs up to port UNTIL (or MOST)."""
    r = g.h.run(["python3", "-c", VSOCK_PROBE, "%s/vms/%s/vsock.sock" % (STATE, g.name), until,
                 most], timeout=most * 25 + 60, check=False)
    assert r["rc"] == 0, "a vsock CONNECT to the agent got no answer: %s %s" % (r["out"][-300:],
                                                                                 r["err"][-300:])
    return [int(x) for x in r["out"].split()]


def standby_restore(g, mode):
    """standby, then restore in MODE, with a CDP WebSocket open across both."""
    ws = subprocess.Popen([sys.executable, "-c", WS_CLIENT, g.endpoint, str(BOOT_S)],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True)
    try:
        assert "Chrome" in ws.stdout.readline()
        # The next host port; the standby's quiesce connection takes the one
        # after it, and stays open in the snapshot.
        last = vsock_probe(g, 0, 1)[-1]
        sb = g.chvm_json("standby", g.name)
        snap = "%s/vms/%s/snapshot" % (STATE, g.name)
        du = g.h.sh("stat -c '%%s %%b' %s/*" % snap)
        sizes = [[int(x) for x in line.split()] for line in du["out"].split("\n") if line.strip()]
        logical, allocated = sum(s for s, _ in sizes), sum(b * 512 for _, b in sizes)
        # What standby reports is what is on the disk (its files).
        assert (sb["snapshot_bytes"], sb["snapshot_allocated"]) == (logical, allocated), (sb, du)
        ps = json.loads(g.chvm("ps", "-a", "--json")["out"])
        assert [v.get("status") for v in ps if v.get("name") == g.name] == ["standby"], ps
        # Under nested emulation an ondemand restore's guest takes minutes
        # to fault its working set back in before the agent answers.
        rs = g.chvm_json("restore", "--memory-restore", mode, "--timeout", str(BOOT_S - 60), g.name)
        t1 = time.monotonic()
        ws.stdin.write("again\n")
        ws.stdin.flush()
        n = ws.stdout.readline().strip()
        ws_s = time.monotonic() - t1
        assert n.isdigit() and int(n) >= 1, (n, ws.stderr.read())
    finally:
        ws.kill()
        ws.wait()
    print("\n%s standby (ms): %s\n%s restore %s (ms): %s\nsnapshot %d bytes (%d allocated), "
          "same WebSocket answered %.2f s after restore"
          % (g.version, sb.get("phases"), g.version, mode, rs.get("phases"), logical, allocated, ws_s))
    g.figures["standby_" + mode] = {"phases": sb.get("phases"), "snapshot_bytes": logical,
                                    "snapshot_allocated": allocated, "guest_ram": GUEST_MEMORY}
    g.figures["restore_" + mode] = {"phases": rs.get("phases"), "ws_answer_s": round(ws_s, 2)}
    assert "restore" in rs.get("phases", {}) and rs["memory_restore"] == mode, rs
    check_snapshot_size(g, sb)
    target, url = g.page
    assert g.targets().get(target) == url, g.targets()
    # The agent's host side reconnects after CH reset vsock.
    assert g.agent("ping")["rc"] == 0
    # The new VMM's muxer counts host ports from 2^30 again: every port up
    # to past the quiesce connection's answers, because the restore's Thaw
    # closed the guest's connections from before (a stale guest socket of a
    # reused port swallows the CONNECT: the soak's agent calls hung so).
    ports = vsock_probe(g, last + 3, last - (1 << 30) + 8)
    print("%s vsock: ports up to %d answered after the restore (the quiesce had %d)"
          % (g.version, ports[-1], last + 1))
    assert ports[-1] >= last + 3, ports


# Standby with shared memory and free page reporting (CH v52+'s default)
# writes what is not free in the guest after the quiesce's cache drop
# (guest RAM - MemFree: the kernel's own memory outside MemTotal counts as
# used), plus what page reporting leaves (it hands back whole 2 MiB blocks
# only) and what the guest allocates between the quiesce and the pause: at
# most SNAPSHOT_MARGIN more.  (guest RAM - MemAvailable would miss the
# mapped binaries in use, Chromium's among them, which no drop frees.)
SNAPSHOT_MARGIN = 64 << 20


def check_snapshot_size(g, sb):
    if major(g.version) < 52:
        assert not sb["shared_memory"] and not sb["free_page_reporting"], sb
        return
    assert sb["shared_memory"] and sb["free_page_reporting"], sb
    print("%s snapshot: %d MiB allocated; at the quiesce %d MiB of %d MiB not free (%d MiB by "
          "MemAvailable)" % (g.version, sb["snapshot_allocated"] >> 20, sb["guest_nonfree"] >> 20,
                             sb["guest_ram"] >> 20, sb["guest_used"] >> 20))
    assert sb["snapshot_allocated"] <= sb["guest_nonfree"] + SNAPSHOT_MARGIN, sb


def test_standby_restore_copy(g):
    if not FULL and g.version == VERSIONS[0] and len(VERSIONS) > 1 and major(g.version) >= 52:
        pytest.skip("copy restore with the older CH builds, ondemand with %s "
                    "(CHVM_KVMHOST_FULL=1: both)" % g.version)
    if g.page is None:
        # No playwright step for this build: the browser's own first tab.
        pages = g.targets()
        assert pages, "no page target in /json/list"
        g.page = sorted(pages.items())[0]
    standby_restore(g, "copy")


def test_standby_restore_ondemand(g):
    if major(g.version) < 52:
        pytest.skip("CH %s has no ondemand restore (v52+)" % g.version)
    if g.page is None:
        pytest.skip("no page from the playwright step")
    standby_restore(g, "ondemand")


def test_cdp_endpoint_wakes_on_connect(g):
    """The supervisor's endpoint with CH: a puppeteer-core client on it, a
    standby, then a new connection wakes the VM (the supervisor runs the
    restore) and the first client's page answers on its same WebSocket."""
    if not CDP_STEP:
        pytest.skip("CHVM_KVMHOST_CDP=0")
    # The oldest build in the default plan: its copy restore takes about
    # 30 s here, v53's ondemand one minutes (CHVM_KVMHOST_FULL=1: every build).
    if not FULL and g.version != VERSIONS[-1]:
        pytest.skip("the CDP endpoint with the oldest CH build only (CHVM_KVMHOST_FULL=1: every "
                    "build)")
    # The endpoint as root in the KVM host has it (with its token), reached
    # through the forward of its port; without the token: 404.
    token = g.chvm("cdp", "--http", g.name)["out"].strip().rsplit("/", 1)[1]
    endpoint = "http://127.0.0.1:%d/%s" % (g.h.port[ENDPOINT], token)
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen("http://127.0.0.1:%d/json/version" % g.h.port[ENDPOINT], timeout=60)
    assert e.value.code == 404
    s = Session("puppeteer", endpoint)
    try:
        s.cmd("open")
        assert s.cmd("eval 6*7")["value"] == 42
        g.chvm_json("standby", g.name)
        ps = json.loads(g.chvm("ps", "-a", "--json")["out"])
        assert [(v["status"], v["supervisor"]) for v in ps if v["name"] == g.name] == [
            ("standby", "running")], ps
        t0 = time.monotonic()
        with urllib.request.urlopen(endpoint + "/json/version", timeout=BOOT_S) as r:
            v = json.loads(r.read())
        wake_s = time.monotonic() - t0
        # The guest's URLs name the endpoint as the KVM host sees it.
        assert v["webSocketDebuggerUrl"].startswith("ws://127.0.0.1:%d/%s/devtools/" % (
            g.h.port[ENDPOINT], token)), v
        assert s.cmd("eval 1+2")["value"] == 3 and s.events == []
        st = json.loads(g.chvm("inspect", "--json", g.name)["out"])[0]["supervisor"]
        print("\n%s endpoint: a new connection woke the VM in %.1f s (supervisor: wake %s ms, "
              "restore %s ms)" % (g.version, wake_s, st["wake_ms"], st["restore_ms"]))
        g.figures["endpoint_wake"] = {"wake_s": round(wake_s, 1), "wake_ms": st["wake_ms"],
                                      "restore_ms": st["restore_ms"]}
        assert st["wakes"] >= 1 and st["wake_failures"] == 0, st
    finally:
        s.close()


def test_stop_and_rm_leave_nothing(g):
    # A process of root's moved into the VM's cgroup: the cgroup's kill ends
    # it (no kill by the VMM's uid would), and stop removes the cgroup.
    path = vm_cgroup(g)["path"]
    g.h.sh("setsid sleep 1000 </dev/null >/dev/null 2>&1 & echo $! >%s/cgroup.procs" % path)
    out = g.chvm_json("stop", "-t", "300", g.name, timeout=400)
    out = out[0] if isinstance(out, list) else out
    print("\n%s stop: %s" % (g.version, out))
    g.figures["stop"] = out
    assert out.get("graceful") is True, out
    g.chvm("rm", g.name, timeout=120)
    left = g.h.sh("pgrep -a cloud-hyperv || true; ip -o link show | grep -i chvm || true; "
                  "nft list ruleset | grep -i chvm || true; ls %s/vms; pgrep -x sleep || true; "
                  "ls -d %s 2>/dev/null || true" % (STATE, path))["out"]
    assert left.strip() == "", left


def mem_available(h):
    out = h.sh("grep MemAvailable: /proc/meminfo")["out"]
    return int(out.split()[1]) << 10


def vmm_rss(g, name, gone=False):
    """The VMM's VmRSS; with gone, None when the VM is no more (the
    copy-restored VM, once test_stop_and_rm_leave_nothing removed it)."""
    rows = [v for v in json.loads(g.chvm("ps", "--json")["out"]) if v.get("name") == name]
    if gone and not rows:
        return None
    assert rows, "VM %s is not in chvm ps" % name
    return int(g.h.sh("grep ^VmRSS: /proc/%d/status" % rows[0]["pid"])["out"].split()[1]) << 10


def disk_written(g):
    """Bytes the KVM host's whole disks have written (/proc/diskstats)."""
    out = g.h.sh("awk '$3 ~ /^(vd[a-z]|sd[a-z]|nvme[0-9]+n[0-9]+)$/ {s += $10} END {print s}' "
                 "/proc/diskstats")["out"]
    return int(out.split()[0]) * 512


def test_memory_file_restore(g):
    """The stand-in booted with --memory-file: standby (quiesce, the file
    flushed, no memory-ranges) and its restore mapping the file again in
    place ("file"): phases, restore to CDP answering, the VMM's resident
    memory 0, 30 and 60 s after and the host disk's writes meanwhile (the
    file's dirty pages written back); beside the copy restore of this build's
    VM from the steps before (its VMM's resident memory now)."""
    if not MEMFILE:
        pytest.skip("restore from a memory file: CHVM_KVMHOST_MEMFILE=1 (full plan; make "
                    "bench-fork-kvmhost)")
    if g.version != VERSIONS[0]:
        pytest.skip("restore from a memory file with the newest CH build only")
    name = "m" + g.name
    try:
        t0 = time.monotonic()
        out = g.chvm_json("run", "--backend", "ch", "--name", name, "--memory", GUEST_MEMORY,
                          "--memory-file", "--timeout", str(BOOT_S - 60), *GUEST_ARGS)
        boot_s = time.monotonic() - t0
        sb = g.chvm_json("standby", name)
        mem = "%s/vms/%s/memory" % (STATE, name)
        alloc = int(g.h.sh("stat -c %%b %s" % mem)["out"].split()[0]) * 512
        assert g.h.sh("test -e %s/vms/%s/snapshot/memory-ranges" % (STATE, name),
                      check=False)["rc"] != 0, "a memory file VM's snapshot holds memory-ranges"
        t1 = time.monotonic()
        rs = g.chvm_json("restore", name, "--timeout", str(BOOT_S - 60))
        rss, written = {"0": vmm_rss(g, name)}, disk_written(g)
        for at in (30, 60):
            time.sleep(max(0.0, at - (time.monotonic() - t1)))  # sampling instants, not a wait
            rss[str(at)] = vmm_rss(g, name)
        # The kernel writes the file's dirty pages back while the VM runs.
        written = disk_written(g) - written
        fig = {"boot_s": round(boot_s, 1), "ready_ms": out.get("ready_ms"),
               "memory_file_allocated": alloc, "standby_phases": sb.get("phases"),
               "restore_phases": rs.get("phases"), "cdp_ready_ms": rs.get("cdp_ready_ms"),
               "memory_restore": rs.get("memory_restore"), "vmm_rss_bytes": rss,
               "disk_written_60s_bytes": written,
               "copy": {"restore": g.figures.get("restore_copy"),
                        "standby": g.figures.get("standby_copy"),
                        "vmm_rss_bytes_now": vmm_rss(g, g.name, gone=True)}}
        g.figures["memory_file_restore"] = fig
        print("\n%s restore from the memory file: %s" % (g.version, fig))
        assert rs["memory_restore"] == "file", rs
        assert rs.get("cdp_ready_ms"), rs
    finally:
        g.chvm("rm", "-f", name, timeout=300, check=False)


def test_template_clones(g):
    """chvm template create of the stand-in, then CLONES VMs at once with
    run --from --count: each one's time from the command to its browser
    ready, playwright-core through its own endpoint, its hostname and kernel
    random output (all different: the agent reseeded each), the VMMs' PSS
    against CLONES x guest RAM and the template, MemAvailable before and
    after; the first clone stood by and woken by a new connection to its
    endpoint; beside this build's cold run and restore of the same image
    (the baselines, from the steps before)."""
    if CLONES == 0:
        pytest.skip("template clones: CHVM_KVMHOST_CLONES=N (full plan 3; make "
                    "bench-fork-kvmhost: 10)")
    if g.version != VERSIONS[0]:
        pytest.skip("template clones with the newest CH build only")
    tmpl, prefix = "t" + g.name, "k" + g.name
    names = ["%s-%d" % (prefix, i) for i in range(1, CLONES + 1)]
    avail0 = mem_available(g.h)
    try:
        t0 = time.monotonic()
        made = g.chvm_json("template", "create", tmpl, "--backend", "ch", "--memory", GUEST_MEMORY,
                           *GUEST_ARGS, timeout=2 * BOOT_S)
        create_s = time.monotonic() - t0
        print("\n%s template create: %.1f s: %s" % (g.version, create_s, made))
        t1 = time.monotonic()
        clones = g.chvm_json("run", "--from", tmpl, "--count", str(CLONES), "--name", prefix,
                             "--cdp", "10.0.2.15:%d" % CLONE_PORT, "--timeout", str(BOOT_S - 60),
                             timeout=2 * BOOT_S)
        wall = time.monotonic() - t1
        assert sorted(c["name"] for c in clones) == sorted(names), clones
        ready = sorted(c["ready_ms"] / 1000 for c in clones)
        hostnames, randoms, pss = set(), set(), 0
        ps = {v["name"]: v for v in json.loads(g.chvm("ps", "--json")["out"])}
        for c in clones:
            i = int(c["name"].rsplit("-", 1)[1])
            token = c["endpoint"].rsplit("/", 1)[1]
            s = Session("playwright", "http://127.0.0.1:%d/%s"
                        % (g.h.port[CLONE_PORT + i - 1], token))
            try:
                s.cmd("open")
                assert s.cmd("eval 6*7")["value"] == 42
            finally:
                s.close()
            sock = "%s/vms/%s/vsock.sock" % (STATE, c["name"])
            ex = ["chvm", "agent", "--socket", sock, "--port", "1024", "exec", "--", "cat"]
            hostnames.add(g.h.run(ex + ["/proc/sys/kernel/hostname"])["out"].strip())
            randoms.add(g.h.run(ex + ["/proc/sys/kernel/random/uuid"])["out"].strip())
            pss += int(g.h.sh("grep ^Pss: /proc/%d/smaps_rollup" % ps[c["name"]]["pid"])
                       ["out"].split()[1]) << 10
        avail1 = mem_available(g.h)
        # A clone stands by (its own snapshot) and a new connection to its
        # endpoint wakes it, as any VM's.
        first = min(clones, key=lambda c: c["name"])
        g.chvm_json("standby", first["name"])
        t0 = time.monotonic()
        url = "http://127.0.0.1:%d/%s/json/version" % (
            g.h.port[CLONE_PORT + int(first["name"].rsplit("-", 1)[1]) - 1],
            first["endpoint"].rsplit("/", 1)[1])
        with urllib.request.urlopen(url, timeout=BOOT_S) as r:
            assert "Chrome" in json.loads(r.read())["Browser"]
        wake_s = time.monotonic() - t0
        ram = int(GUEST_MEMORY.rstrip("G")) << 30
        fig = {"clones": CLONES, "template_create_s": round(create_s, 1),
               "template_memory_bytes": made.get("memory_bytes"), "wall_s": round(wall, 1),
               "ready_s": [round(x, 1) for x in ready],
               "ready_p50_s": round(ready[len(ready) // 2], 1),
               "ready_p95_s": round(ready[min(len(ready) - 1, int(0.95 * len(ready)))], 1),
               "ready_max_s": round(ready[-1], 1), "memory": sorted({c["memory"] for c in clones}),
               "pss_sum_bytes": pss, "guest_ram_sum_bytes": CLONES * ram,
               "mem_available_before": avail0, "mem_available_after": avail1,
               "cold_run_s": g.figures.get("run", {}).get("wall_s"), "clone_wake_s": round(wake_s, 1)}
        g.figures["template_clones"] = fig
        print("%s clones: %s" % (g.version, fig))
        assert fig["memory"] == ["cow"], clones
        assert len(hostnames) == CLONES and len(randoms) == CLONES, (hostnames, randoms)
    finally:
        g.chvm("rm", "-f", *names, timeout=300, check=False)
        g.chvm("template", "rm", tmpl, timeout=120, check=False)


def test_rootfs_pmem(g):
    """chvm run --rootfs-device pmem with CH: the guest mounts /dev/pmem0
    with DAX (no fallback line), standby writes at most what is not free
    plus the margin, restore brings the same browser back; snapshot and
    page cache beside the blk guest's of the same run."""
    if not PMEM:
        pytest.skip("pmem root with CH: CHVM_KVMHOST_PMEM=1 (full plan; make bench-pmem-kvmhost)")
    if g.version != VERSIONS[0]:
        pytest.skip("pmem root with the newest CH build only")
    name = "p" + g.name
    try:
        t0 = time.monotonic()
        out = g.chvm_json("run", "--backend", "ch", "--name", name, "--memory", GUEST_MEMORY,
                          "--rootfs-device", "pmem", "--timeout", str(BOOT_S - 60), *GUEST_ARGS)
        boot_s = time.monotonic() - t0
        ex = ["chvm", "exec", name, "--", "cat"]
        lower = [m for m in g.h.run(ex + ["/proc/mounts"])["out"].splitlines()
                 if m.startswith("/dev/pmem0 ")]
        assert lower and "dax" in lower[0], lower
        console = g.h.sh("cat %s/vms/%s/console.log" % (STATE, name))["out"]
        assert "falling back" not in console, console[-2000:]
        cached = [int(m.split()[1]) << 10 for m in g.h.run(ex + ["/proc/meminfo"])["out"]
                  .splitlines() if m.startswith("Cached:")][0]
        sb = g.chvm_json("standby", name)
        rs = g.chvm_json("restore", name, "--timeout", str(BOOT_S - 60))
        lower2 = [m for m in g.h.run(ex + ["/proc/mounts"])["out"].splitlines()
                  if m.startswith("/dev/pmem0 ")]
        fig = {"boot_s": round(boot_s, 1), "ready_ms": out.get("ready_ms"), "mount": lower[0],
               "cached_bytes": cached, "snapshot_allocated": sb["snapshot_allocated"],
               "guest_nonfree": sb["guest_nonfree"], "guest_ram": sb["guest_ram"],
               "standby_phases": sb.get("phases"), "restore_phases": rs.get("phases"),
               "blk": {"run": g.figures.get("run"),
                       "standby": g.figures.get("standby_ondemand") or g.figures.get("standby_copy")}}
        g.figures["rootfs_pmem"] = fig
        print("\n%s pmem root: %s" % (g.version, fig))
        assert lower2 and "dax" in lower2[0], lower2
        assert sb["snapshot_allocated"] <= sb["guest_nonfree"] + SNAPSHOT_MARGIN, sb
    finally:
        g.chvm("rm", "-f", name, timeout=300, check=False)
