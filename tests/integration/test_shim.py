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
import json
import os
import signal
import subprocess
import time

from chvmtest import cli, containerd, paths, prereq
from chvmtest.containerd import CNI_BIN, CRI_BRIDGE, CRI_CONFIG, CRI_NS
from chvmtest.cdp import Session, wait_cdp

SHIM = os.path.join(paths.BUILD, "bin", "containerd-shim-chvm-v1")
ARCHIVE = os.path.join(paths.STANDIN, "docker-archive.tar")
NS = "chvmtest"
CID = "shim1"
CID2 = "shim2"
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


def test_ctr_run_kill_delete(tmp_path):
    d = str(tmp_path)
    env = cli.state_env(tmp_path, image_cache=False)
    env["PATH"] = os.path.join(paths.BUILD, "bin") + ":" + env["PATH"]
    c = Containerd(d, env)
    name = "ctr-%s-%s" % (NS, CID)
    try:
        out = c.ctr("images", "import", ARCHIVE, timeout=600).stdout
        ref = c.ctr("images", "ls", "-q").stdout.split()[0]
        print("\nimported %s (%s)" % (ref, out.strip()[-80:]))
        t0 = time.monotonic()
        c.ctr("run", "-d", "--runtime", "io.containerd.chvm.v1", "--cpus", "1",
              "--memory-limit", str(MEMORY_LIMIT), ref, CID, timeout=BOOT_TIMEOUT)
        t_run = time.monotonic() - t0
        assert task_status(c) == "RUNNING", c.tail()
        assert_vm_size(env, name)
        print("ctr run -d (create: root disk from the layers; start: VMM up): %.1f s" % t_run)
        endpoint = cli.chvm(env, "cdp", "--http", name).stdout.strip()
        wait_cdp(endpoint, time.monotonic() + BOOT_TIMEOUT)
        print("CDP answers %.1f s after ctr run: %s" % (time.monotonic() - t0, endpoint))
        s = Session("playwright", endpoint)
        try:
            s.cmd("open")
            assert s.cmd("eval 6*7")["value"] == 42
        finally:
            s.close()
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
        c.ctr("run", "-d", "--runtime", "io.containerd.chvm.v1", ref, CID2, timeout=BOOT_TIMEOUT)
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
            c.ctr("task", "kill", "-s", "SIGKILL", cid, check=False)
            c.ctr("task", "delete", cid, check=False)
            c.ctr("container", "rm", cid, check=False)
            cli.chvm(env, "rm", "-f", "ctr-%s-%s" % (NS, cid), check=False)
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
    env = cli.state_env(tmp_path, image_cache=False)
    env["PATH"] = os.path.join(paths.BUILD, "bin") + ":" + env["PATH"]
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
        s = Session("playwright", endpoint)
        try:
            s.cmd("open")
            assert s.cmd("eval 6*7")["value"] == 42
        finally:
            s.close()
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
