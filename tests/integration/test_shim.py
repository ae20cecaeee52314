# SPDX-License-Identifier: Apache-2.0
"""containerd-shim-chvm-v1 under Debian's containerd (issue 25).

A containerd of the test's own (config, root, state and sockets in a
temp dir, the CRI plugin off, the shim found on its PATH from build/bin)
imports the stand-in's docker archive; `ctr run --runtime
io.containerd.chvm.v1 --cpus 1 --memory-limit` 1.5 GiB boots it as a chvm
VM of 1 vCPU and 1536 MiB (QEMU/TCG here: one VM, minutes),
playwright-core drives a page through the VM's CDP endpoint,
containerd restarted while the VM runs finds the task RUNNING through the
same shim, `ctr task exec` runs a command in the guest, `ctr task pause`
and `resume` stop and continue its vCPUs (PAUSED in `ctr task ls`), `ctr
task metrics` reports the VM's cgroup, `ctr task kill` stops it gracefully (the power button), and `ctr
task delete` plus `ctr container rm` leave no process, mount, socket or
file; a second container whose shim is killed with SIGKILL is cleaned up
by containerd's `delete` from the bundle alone.

test_ctr_pause_standby: annotation io.chvm.pause=standby: `ctr task
pause` stands the VM by (`chvm standby`: a snapshot on disk, no VMM),
PAUSED in `ctr task ls` and "standby" in `chvm ps`; `resume` restores it
(`chvm restore`: a new VMM, which the shim watches and reports as the
task's pid), RUNNING with the page opened before; a kill of the restored
VM stops it; nothing is left.  A bad value is refused at `ctr run`.

test_ctr_run_from_template (real Cloud Hypervisor, the micro guest):
annotation io.chvm.template=T starts the VM as a clone of chvm template T
(`chvm run --from`: the template's size, the container's root filesystem
unused), with io.chvm.agent=false (the micro guest has no agent) and
io.chvm.pause=standby; standby, restore, standby again and a kill in
standby; nothing is left and the template can go.

test_cri_pod: the same with containerd's CRI plugin on (runtime handler
`chvm`) and crictl: a pod (its sandbox a placeholder process of the
shim, its network CNI's bridge on a private subnet), one container of the
stand-in limited to 1 CPU and 1.5 GiB (its VM of 1 vCPU and 1536 MiB in
the pod's network namespace), CDP at the pod's IP port 9222 from the
host, crictl exec, stop, stopp and rmp leaving no process, mount, file or
network namespace; then `chvm run` of the same image (the docker archive
containerd imported) with the same size, timed to CDP beside the pod
(build/test-results/cri-pod.json).  The sandbox image is the
stand-in itself: there is no registry here, and the shim never runs the
sandbox's process (a placeholder stands for it), so any image present
serves.
"""
import hashlib
import io
import json
import os
import signal
import subprocess
import tarfile
import time

from chvmtest import ch_micro, cli, containerd, paths, prereq
from chvmtest.containerd import CNI_BIN, CRI_BRIDGE, CRI_CONFIG, CRI_NS
from chvmtest.cdp import drive, http, wait_cdp
from test_template import create as create_template, vm_counts

SHIM = os.path.join(paths.BUILD, "bin", "containerd-shim-chvm-v1")
ARCHIVE = os.path.join(paths.STANDIN, "docker-archive.tar")
NS = "chvmtest"
CID = "shim1"
CID2 = "shim2"
RUNTIME = "io.containerd.chvm.v1"
BOOT_TIMEOUT = 900
# The containers' limits: 1 CPU (quota = period) and 1.5 GiB, the VM's size.
CPU_PERIOD = 100000
MEMORY_LIMIT = 1536 << 20
RESULTS = os.path.join(paths.TEST_RESULTS, "cri-pod.json")

pytestmark = prereq.requires(
    *prereq.CHVM_QEMU, prereq.root, prereq._tool("containerd", "make deps: apt-get install containerd"),
    prereq._tool("ctr", "make deps: apt-get install containerd"),
    prereq._file(SHIM, "make shim"), prereq._file(ARCHIVE, "make images"), *prereq.CDP_CLIENTS)


CONFIG = """version = 2
root = "{d}/root"
state = "{d}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "{d}/c.sock"
[ttrpc]
  address = "{d}/c.sock.ttrpc"
"""


class Containerd:
    def __init__(self, d, env, config=None, ns=NS):
        self.d, self.env, self.ns = d, env, ns
        with open(os.path.join(d, "config.toml"), "w") as f:
            f.write(config or CONFIG.format(d=d))
        self.log = open(os.path.join(d, "containerd.log"), "w")
        self.p = subprocess.Popen(["containerd", "--config", os.path.join(d, "config.toml"),
                                   "--log-level", "debug"], env=env, stdout=self.log,
                                  stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while not self.ctr("version", check=False).returncode == 0:
            assert time.monotonic() < deadline and self.p.poll() is None, self.tail()
            time.sleep(0.5)

    def ctr(self, *args, check=True, timeout=120):
        r = subprocess.run(["ctr", "-a", os.path.join(self.d, "c.sock"), "-n", self.ns, *args],
                           env=self.env, capture_output=True, text=True, timeout=timeout,
                           stdin=subprocess.DEVNULL)
        if check:
            assert r.returncode == 0, (args, r.stdout, r.stderr, self.tail())
        return r

    def tail(self):
        if not self.log.closed:
            self.log.flush()
        with open(self.log.name) as f:
            return "".join(f.readlines()[-40:])

    def stop(self):
        self.p.terminate()
        try:
            self.p.wait(30)
        except subprocess.TimeoutExpired:
            self.p.kill()
        self.log.close()


def task_status(c, cid=CID):
    return containerd.task_status(c.ctr("task", "ls", check=False).stdout, cid)


def task_pid(c, cid=CID):
    return containerd.task_pid(c.ctr("task", "ls", check=False).stdout, cid)


def wait_stopped(c, cid, timeout):
    """Waits until cid's task is STOPPED; returns how long that took."""
    t0 = time.monotonic()
    while task_status(c, cid) != "STOPPED":
        assert time.monotonic() - t0 < timeout, (task_status(c, cid), c.tail())
        time.sleep(0.5)
    return time.monotonic() - t0


def gone(c, cid, d, env, timeout=60):
    """ctr task delete and container rm of cid; then nothing may be left."""
    c.ctr("task", "delete", cid)
    c.ctr("container", "rm", cid)
    deadline = time.monotonic() + timeout
    while leftovers(d, env) and time.monotonic() < deadline:
        time.sleep(1)
    assert leftovers(d, env) == [], c.tail()


def vmm_runs(env, pid):
    """Whether pid is a VMM of env's state dir (its command line names it;
    a zombie's is empty)."""
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return env["CHVM_STATE_DIR"].encode() in f.read()
    except FileNotFoundError:
        return False


def remove(c, env, cid):
    """Whatever a failed test left of cid: its task killed (and waited for),
    deleted, its container and VM removed."""
    c.ctr("task", "kill", "-s", "SIGKILL", cid, check=False)
    deadline = time.monotonic() + 60
    while task_status(c, cid) not in ("STOPPED", None) and time.monotonic() < deadline:
        time.sleep(0.5)
    c.ctr("task", "delete", cid, check=False)
    c.ctr("container", "rm", cid, check=False)
    cli.chvm(env, "rm", "-f", "ctr-%s-%s" % (NS, cid), check=False)


def refused(c, ref, annotation, message):
    """ctr run with annotation fails at Create, saying message; nothing is
    left of it."""
    p = c.ctr("run", "-d", "--runtime", RUNTIME, "--annotation", annotation, ref, CID, check=False)
    assert p.returncode != 0 and message in p.stderr, p
    c.ctr("task", "delete", CID, check=False)
    c.ctr("container", "rm", CID, check=False)
    print("ctr run --annotation %s: refused: %s" % (annotation, p.stderr.strip()[-160:]))


def metrics(c, cid=CID):
    return containerd.metrics(c.ctr("task", "metrics", cid).stdout)


def read_shim_pid(d, cid):
    """The shim's pid, from the bundle containerd made for cid."""
    with open(os.path.join(d, "state", "io.containerd.runtime.v2.task", NS, cid,
                           "shim.pid")) as f:
        return int(f.read().strip())


def leftovers(d, env):
    """Processes, mounts and files the container could have left."""
    left = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "containerd-shim-chvm" in cmd or env["CHVM_STATE_DIR"] in cmd:
            left.append("process %s: %s" % (pid, cmd[:200]))
    with open("/proc/self/mountinfo") as f:
        left += ["mount " + line.split()[4] for line in f if d in line.split()[4]
                 and "/root/" in line.split()[4] and "snapshots" not in line.split()[4]]
    vms = os.path.join(env["CHVM_STATE_DIR"], "vms")
    if os.path.isdir(vms):
        left += ["VM dir " + n for n in os.listdir(vms)]
    s = os.path.join(d, "s")
    if os.path.isdir(s):
        left += ["socket " + n for n in os.listdir(s)]
    return left


def assert_vm_size(env, name):
    """VM name has the containers' limits as its size: 1 vCPU, 1536 MiB
    (and its cgroup 1 CPU, where the cpu controller is on v2)."""
    insp = cli.inspect(env, name)
    assert (insp["spec"]["cpus"], insp["spec"]["memory_mib"]) == (1, MEMORY_LIMIT >> 20), insp
    if insp["cgroup"].get("cpu.max") is not None:
        assert insp["cgroup"]["cpu.max"] == "%d %d" % (CPU_PERIOD, CPU_PERIOD), insp["cgroup"]


def shim_env(tmp_path):
    """chvm's state in tmp_path, the shim and chvm on containerd's PATH."""
    env = cli.state_env(tmp_path, image_cache=False)
    env["PATH"] = os.path.join(paths.BUILD, "bin") + ":" + env["PATH"]
    return env


def test_ctr_run_kill_delete(tmp_path):
    d = str(tmp_path)
    env = shim_env(tmp_path)
    c = Containerd(d, env)
    name = "ctr-%s-%s" % (NS, CID)
    try:
        out = c.ctr("images", "import", ARCHIVE, timeout=600).stdout
        ref = c.ctr("images", "ls", "-q").stdout.split()[0]
        print("\nimported %s (%s)" % (ref, out.strip()[-80:]))
        t0 = time.monotonic()
        c.ctr("run", "-d", "--runtime", RUNTIME, "--cpus", "1",
              "--memory-limit", str(MEMORY_LIMIT), ref, CID, timeout=BOOT_TIMEOUT)
        t_run = time.monotonic() - t0
        assert task_status(c) == "RUNNING", c.tail()
        assert_vm_size(env, name)
        print("ctr run -d (create: root disk from the layers; start: VMM up): %.1f s" % t_run)
        endpoint = cli.chvm(env, "cdp", "--http", name).stdout.strip()
        wait_cdp(endpoint, time.monotonic() + BOOT_TIMEOUT)
        print("CDP answers %.1f s after ctr run: %s" % (time.monotonic() - t0, endpoint))
        drive(endpoint)
        # containerd restarted while the VM runs: it finds the shim again
        # (the bundle's address file) and the task answers State.
        shim_pid = read_shim_pid(d, CID)
        c.stop()
        c = Containerd(d, env)
        assert task_status(c) == "RUNNING", c.tail()
        assert read_shim_pid(d, CID) == shim_pid and os.path.exists("/proc/%d" % shim_pid)
        wait_cdp(endpoint, time.monotonic() + 60)
        print("containerd restarted: the task is RUNNING, the same shim (pid %d), CDP answers"
              % shim_pid)
        # ctr task exec: the command in the guest (chvm exec through the
        # agent), its output on the fifos, its status as ctr's.
        p = c.ctr("task", "exec", "--exec-id", "e1", "--cwd", "/proc", CID, "sh", "-c",
                  'echo "in $(pwd)"; echo err >&2; exit 3', check=False)
        assert (p.returncode, p.stdout, p.stderr.strip()) == (3, "in /proc\n", "err"), p
        p = c.ctr("task", "exec", "--exec-id", "e2", CID, "/no/such/program", check=False)
        assert p.returncode != 0, p
        # ctr task pause/resume: chvm pause|resume of the VM; PAUSED between,
        # an exec refused, the guest's CDP silent until it resumes.
        c.ctr("task", "pause", CID)
        assert task_status(c) == "PAUSED", c.tail()
        assert cli.ps_row(env, name)["status"] == "paused"
        p = c.ctr("task", "exec", "--exec-id", "e3", CID, "true", check=False)
        assert p.returncode != 0 and "not running" in p.stderr, p
        assert c.ctr("task", "pause", CID, check=False).returncode != 0
        c.ctr("task", "resume", CID)
        assert task_status(c) == "RUNNING", c.tail()
        assert cli.ps_row(env, name)["status"] == "running"
        wait_cdp(endpoint, time.monotonic() + 60)
        assert c.ctr("task", "resume", CID, check=False).returncode != 0
        # ctr task metrics: the VM's cgroup v2.  cpu.stat is in every
        # cgroup; memory and pids only where those controllers are on v2
        # (not on a hybrid host, whose v2 has no controllers).
        m = metrics(c)
        cg = cli.inspect(env, name)["cgroup"]
        print("ctr task metrics: %s (cgroup %s)" % (m, cg))
        assert m["cpu.usage_usec"] > 0 and m["cpu.usage_usec"] >= m["cpu.user_usec"], m
        if cg.get("memory.max") is not None:
            assert m["memory.usage"] > 0 and m["memory.usage_limit"] > m["memory.usage"], m
        if cg.get("pids.max") is not None:
            assert 0 < m["pids.current"] <= m["pids.limit"], m
        t1 = time.monotonic()
        c.ctr("task", "kill", CID)
        while task_status(c) != "STOPPED":
            assert time.monotonic() - t1 < 300, (task_status(c), c.tail())
            time.sleep(1)
        print("ctr task kill (power button) to STOPPED: %.1f s" % (time.monotonic() - t1))
        c.ctr("task", "delete", CID)
        c.ctr("container", "rm", CID)
        deadline = time.monotonic() + 30
        while leftovers(d, env) and time.monotonic() < deadline:
            time.sleep(1)
        assert leftovers(d, env) == [], c.tail()
        # A shim killed with SIGKILL while its VM runs: containerd runs the
        # shim's `delete`, which cleans up from the bundle alone.
        c.ctr("run", "-d", "--runtime", RUNTIME, ref, CID2, timeout=BOOT_TIMEOUT)
        assert task_status(c, CID2) == "RUNNING", c.tail()
        assert leftovers(d, env), "a running container leaves nothing to find: the check is blind"
        os.kill(read_shim_pid(d, CID2), signal.SIGKILL)
        t1 = time.monotonic()
        while task_status(c, CID2) not in ("STOPPED", None):
            assert time.monotonic() - t1 < 120, (task_status(c, CID2), c.tail())
            time.sleep(1)
        c.ctr("task", "delete", CID2, check=False)
        c.ctr("container", "rm", CID2)
        deadline = time.monotonic() + 60
        while leftovers(d, env) and time.monotonic() < deadline:
            time.sleep(1)
        assert leftovers(d, env) == [], c.tail()
        print("shim SIGKILLed: containerd's delete left nothing after %.1f s"
              % (time.monotonic() - t1))
    finally:
        for cid in (CID, CID2):
            remove(c, env, cid)
        c.stop()
        print(c.tail())


def test_ctr_pause_standby(tmp_path):
    d = str(tmp_path)
    env = shim_env(tmp_path)
    c = Containerd(d, env)
    name = "ctr-%s-%s" % (NS, CID)
    try:
        c.ctr("images", "import", ARCHIVE, timeout=600)
        ref = c.ctr("images", "ls", "-q").stdout.split()[0]
        refused(c, ref, "io.chvm.pause=snapshot",
                "annotation io.chvm.pause: 'snapshot' is neither 'pause' nor 'standby'")
        assert leftovers(d, env) == [], c.tail()
        t0 = time.monotonic()
        c.ctr("run", "-d", "--runtime", RUNTIME, "--annotation", "io.chvm.pause=standby",
              "--cpus", "1", "--memory-limit", str(MEMORY_LIMIT), ref, CID, timeout=BOOT_TIMEOUT)
        assert task_status(c) == "RUNNING", c.tail()
        endpoint = cli.chvm(env, "cdp", "--http", name).stdout.strip()
        wait_cdp(endpoint, t0 + BOOT_TIMEOUT)
        print("\nCDP answers %.1f s after ctr run" % (time.monotonic() - t0))
        # A page of its own, which the restored browser must still have.
        marker = "data:text/html,chvm-shim-standby-%d" % os.getpid()
        target = http(endpoint + "/json/new?" + marker, method="PUT")["id"]
        deadline = time.monotonic() + 60
        while {t["id"]: t["url"] for t in http(endpoint + "/json/list")}.get(target) != marker:
            assert time.monotonic() < deadline, http(endpoint + "/json/list")
            time.sleep(0.2)
        vmm = task_pid(c)
        assert vmm == cli.ps_row(env, name)["pid"]

        # No CDP request while it stands by: the endpoint would wake it.
        t1 = time.monotonic()
        c.ctr("task", "pause", CID, timeout=600)
        print("ctr task pause (chvm standby): %.1f s" % (time.monotonic() - t1))
        assert task_status(c) == "PAUSED", c.tail()
        assert cli.ps_row(env, name)["status"] == "standby"
        assert os.path.isdir(os.path.join(cli.vm_dir(env, name), "snapshot"))
        assert not vmm_runs(env, vmm), "the VMM must be gone in standby"
        p = c.ctr("task", "exec", "--exec-id", "e1", CID, "true", check=False)
        assert p.returncode != 0 and "not running" in p.stderr, p
        assert c.ctr("task", "pause", CID, check=False).returncode != 0

        t1 = time.monotonic()
        c.ctr("task", "resume", CID, timeout=600)
        print("ctr task resume (chvm restore, the browser ready): %.1f s"
              % (time.monotonic() - t1))
        assert task_status(c) == "RUNNING", c.tail()
        row = cli.ps_row(env, name)
        assert row["status"] == "running" and row["pid"] != vmm, row
        assert task_pid(c) == row["pid"], "the task's pid must be the new VMM's"
        # QEMU: CDP clients reconnect to the same browser, the same page.
        wait_cdp(endpoint, time.monotonic() + 120)
        after = {t["id"]: t["url"] for t in http(endpoint + "/json/list")}
        assert after.get(target) == marker, after
        drive(endpoint)

        # The restored VMM is the one watched: its exit is the task's.
        c.ctr("task", "kill", CID)
        print("ctr task kill of the restored VM (power button) to STOPPED: %.1f s"
              % wait_stopped(c, CID, 300))
        gone(c, CID, d, env)
    finally:
        remove(c, env, CID)
        c.stop()
        print(c.tail())


def tiny_archive(path):
    """A docker archive of chvm/tiny:latest: one layer holding /x, its
    command.  A clone never uses a container's root filesystem (its root
    disk is its template's), but ctr run needs an image to make the
    container of."""
    def add(t, name, data, mode=0o644):
        info = tarfile.TarInfo(name)
        info.size, info.mode = len(data), mode
        t.addfile(info, io.BytesIO(data))

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        add(t, "x", b"#!/bin/sh\n", 0o755)
    layer = buf.getvalue()
    config = {"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/x"]},
              "rootfs": {"type": "layers",
                         "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()]}}
    manifest = [{"Config": "config.json", "RepoTags": ["chvm/tiny:latest"],
                 "Layers": ["layer.tar"]}]
    with tarfile.open(path, "w") as t:
        add(t, "layer.tar", layer)
        add(t, "config.json", json.dumps(config).encode())
        add(t, "manifest.json", json.dumps(manifest).encode())
    return path


def test_ctr_run_from_template(ch, tmp_path):
    env, ns, _ = ch
    d = str(tmp_path)
    env["PATH"] = os.path.join(paths.BUILD, "bin") + ":" + env["PATH"]
    create_template(env, ns, "tpl")
    c = Containerd(d, env)
    name = "ctr-%s-%s" % (NS, CID)
    try:
        c.ctr("images", "import", tiny_archive(os.path.join(d, "tiny.tar")))
        ref = c.ctr("images", "ls", "-q").stdout.split()[0]
        refused(c, ref, "io.chvm.template=../tpl",
                "annotation io.chvm.template: '../tpl' is not a template name")
        # The micro guest has no agent and no ACPI power button: no thaw,
        # no quiesce, and SIGKILL to stop it.  Its limits are not the
        # clone's size: a clone has its template's.
        t0 = time.monotonic()
        c.ctr("run", "-d", "--runtime", RUNTIME, "--annotation", "io.chvm.template=tpl",
              "--annotation", "io.chvm.agent=false", "--annotation", "io.chvm.pause=standby",
              "--memory-limit", str(MEMORY_LIMIT), ref, CID, timeout=300)
        print("\nctr run -d of a clone of template tpl: %.1f s" % (time.monotonic() - t0))
        assert task_status(c) == "RUNNING", c.tail()
        row, insp = cli.ps_row(env, name), cli.inspect(env, name)
        assert row["status"] == "running" and row["memory_mib"] == 512, row
        assert insp["spec"]["template"] == "tpl", insp["spec"]
        assert insp["spec"]["memory_file"].endswith("/templates/tpl/memory"), \
            "the clone's memory must be the template's, copy-on-write: %s" % insp["spec"]
        assert task_pid(c) == row["pid"]
        with open(os.path.join(d, "state", "io.containerd.runtime.v2.task", NS, CID,
                               "chvm-shim.json")) as f:
            assert json.load(f)["image"] == "", "a clone needs no root disk of its own"
        ch_micro.wait_for(lambda: vm_counts(env, name), 60, "the clone's count lines")

        t1 = time.monotonic()
        c.ctr("task", "pause", CID, timeout=120)
        print("ctr task pause of the clone (chvm standby --no-quiesce): %.1f s"
              % (time.monotonic() - t1))
        assert task_status(c) == "PAUSED" and cli.ps_row(env, name)["status"] == "standby"
        stood = vm_counts(env, name)[-1]
        t1 = time.monotonic()
        c.ctr("task", "resume", CID, timeout=120)
        print("ctr task resume of the clone (chvm restore --no-agent): %.1f s"
              % (time.monotonic() - t1))
        assert task_status(c) == "RUNNING", c.tail()
        restored = cli.ps_row(env, name)["pid"]
        assert restored != row["pid"] and task_pid(c) == restored
        ch_micro.wait_for(lambda: vm_counts(env, name)[-1] > stood + 2, 60, "counts after restore")

        # A kill in standby: `chvm stop` discards the snapshot, the task ends.
        c.ctr("task", "pause", CID, timeout=120)
        assert cli.ps_row(env, name)["status"] == "standby"
        c.ctr("task", "kill", "-s", "SIGKILL", CID)
        print("ctr task kill in standby to STOPPED: %.1f s" % wait_stopped(c, CID, 60))
        gone(c, CID, d, env)
        assert not os.path.exists("/run/netns/chvm-" + name)
        cli.chvm(env, "template", "rm", "tpl")  # no clone of it is left
    finally:
        remove(c, env, CID)
        cli.chvm(env, "template", "rm", "tpl", check=False)
        c.stop()
        print(c.tail())


def crictl(c, *args, check=True, timeout=120):
    sock = "unix://" + os.path.join(c.d, "c.sock")
    r = subprocess.run(["crictl", "--runtime-endpoint", sock, "--image-endpoint", sock,
                        "--timeout", "%ds" % timeout, *args], env=c.env, capture_output=True,
                       text=True, timeout=timeout + 30, stdin=subprocess.DEVNULL)
    if check:
        assert r.returncode == 0, (args, r.stdout, r.stderr, c.tail())
    return r


def netns_names():
    return set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f)
    return path


PLAIN = "plain"


def chvm_run_beside(env, d, t_pod):
    """`chvm run` of the pod's image at the pod's size, timed from the run
    to CDP answering, beside t_pod (the pod's, from runp: the shim's root
    disk made from the layers included) in RESULTS; nothing left after.
    The image is the archive containerd imported, imported into chvm's
    store untimed: the shim's entry of the container, which held its
    entrypoint, went with it (its layer chain's, left for the next
    container, has none)."""
    img = json.loads(cli.chvm(env, "--json", "image", "import", "docker-archive:" + ARCHIVE,
                              timeout=600).stdout)["id"]
    t0 = time.monotonic()
    cli.chvm(env, "run", "--name", PLAIN, "--cpus", "1", "--memory",
             "%dM" % (MEMORY_LIMIT >> 20), "--no-wait", img, timeout=BOOT_TIMEOUT)
    wait_cdp(cli.chvm(env, "cdp", "--http", PLAIN).stdout.strip(), t0 + BOOT_TIMEOUT)
    t_run = time.monotonic() - t0
    assert_vm_size(env, PLAIN)
    print("pod to CDP %.1f s; chvm run of the same image to CDP %.1f s (%.2fx)"
          % (t_pod, t_run, t_pod / t_run))
    os.makedirs(paths.TEST_RESULTS, exist_ok=True)
    write_json(RESULTS, {"pod_to_cdp_s": round(t_pod, 1), "chvm_run_to_cdp_s": round(t_run, 1),
                         "date": time.strftime("%Y-%m-%d"), "host": "QEMU/TCG"})
    cli.chvm(env, "rm", "-f", PLAIN)
    cli.chvm(env, "image", "rm", img)
    deadline = time.monotonic() + 60
    while leftovers(d, env) and time.monotonic() < deadline:
        time.sleep(1)
    assert leftovers(d, env) == [] and cli.ps(env) == {}


@prereq.requires(prereq._tool("crictl", "make setup (built from the Go module proxy)"),
                 prereq._file(os.path.join(CNI_BIN, "bridge"),
                              "make setup: apt-get install containernetworking-plugins"))
def test_cri_pod(tmp_path):
    d = str(tmp_path)
    env = shim_env(tmp_path)
    os.makedirs(os.path.join(d, "cni"))
    write_json(os.path.join(d, "cni", "10-chvmcri.conflist"), containerd.cni_conf(d))
    # The sandbox image: the stand-in's reference once imported (a first
    # containerd, without CRI, imports it into the CRI's namespace).
    c = Containerd(d, env, ns=CRI_NS)
    c.ctr("images", "import", ARCHIVE, timeout=600)
    ref = c.ctr("images", "ls", "-q").stdout.split()[0]
    c.stop()
    c = Containerd(d, env, CRI_CONFIG.format(d=d, sandbox_image=ref, cni_bin=CNI_BIN), CRI_NS)
    before = netns_names()
    pod = ctr = None
    try:
        pod_cfg = write_json(os.path.join(d, "pod.json"), {
            "metadata": {"name": "chvmpod", "namespace": "default", "uid": "chvm-pod-1"},
            "log_directory": os.path.join(d, "podlogs"), "linux": {}})
        ctr_cfg = write_json(os.path.join(d, "ctr.json"), {
            "metadata": {"name": "browser"}, "image": {"image": ref}, "log_path": "browser.log",
            "linux": {"resources": {"cpu_quota": CPU_PERIOD, "cpu_period": CPU_PERIOD,
                                    "memory_limit_in_bytes": MEMORY_LIMIT}}})
        t0 = time.monotonic()
        pod = crictl(c, "runp", "--runtime", "chvm", pod_cfg).stdout.strip()
        info = json.loads(crictl(c, "inspectp", pod).stdout)
        ip, placeholder = info["status"]["network"]["ip"], info["info"]["pid"]
        assert ip.startswith("10.214.0.") and os.path.exists("/proc/%d" % placeholder), info
        ctr = crictl(c, "create", pod, ctr_cfg, pod_cfg, timeout=600).stdout.strip()
        crictl(c, "start", ctr, timeout=BOOT_TIMEOUT)
        endpoint = "http://%s:9222" % ip
        wait_cdp(endpoint, t0 + BOOT_TIMEOUT)
        t_pod = time.monotonic() - t0
        print("\npod to CDP at %s: %.1f s" % (endpoint, t_pod))
        assert len(cli.ps(env)) == 1, cli.ps(env)
        assert_vm_size(env, next(iter(cli.ps(env))))
        drive(endpoint)
        p = crictl(c, "exec", ctr, "sh", "-c", "echo in-$((6*7))")
        assert p.stdout.strip() == "in-42", p
        # A second container in the pod: refused (one VM per pod).
        ctr_cfg2 = write_json(os.path.join(d, "ctr2.json"), {
            "metadata": {"name": "second"}, "image": {"image": ref}, "linux": {}})
        r = crictl(c, "create", pod, ctr_cfg2, pod_cfg, check=False, timeout=600)
        if r.returncode == 0:
            r = crictl(c, "start", r.stdout.strip(), check=False)
        assert r.returncode != 0 and "one container per pod" in r.stderr, r
        crictl(c, "stop", ctr, timeout=300)
        crictl(c, "stopp", pod, timeout=300)
        crictl(c, "rmp", "-f", pod, timeout=300)
        pod = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (leftovers(d, env) or netns_names() - before
                                               or os.path.exists("/proc/%d" % placeholder)):
            time.sleep(1)
        assert leftovers(d, env) == [] and netns_names() - before == set(), c.tail()
        assert not os.path.exists("/proc/%d" % placeholder)
        with open("/proc/self/mountinfo") as f:
            assert [m for m in f if d in m.split()[4]] == []
        assert cli.ps(env) == {}
        chvm_run_beside(env, d, t_pod)
    finally:
        if pod is not None:
            crictl(c, "rmp", "-f", pod, check=False, timeout=300)
        cli.chvm(env, "rm", "-f", PLAIN, check=False)
        c.stop()
        subprocess.run(["ip", "link", "del", CRI_BRIDGE], capture_output=True)
        print(c.tail())
