# SPDX-License-Identifier: Apache-2.0
"""containerd-shim-chvm-v1 with the real Cloud Hypervisor: Debian's containerd
inside the KVM host (chvmtest/kvmhost.py; issue 25), the newest CH build.

One containerd of the test's own (config, root, state and sockets in
directories of its own, the CRI plugin on with CNI's bridge on a private
subnet), in the KVM host:

  test_ctr_run: `ctr image import` of the stand-in's docker archive, `ctr
  run --runtime io.containerd.chvm.v1 --cpus 1 --memory-limit 1G` boots it
  as a CH VM of 1 vCPU and 1 GiB, playwright-core from this host drives a
  page through the VM's CDP endpoint, containerd restarted while the VM
  runs finds the task RUNNING through the same shim, `ctr task exec`,
  pause and resume, metrics from the VM's cgroup (memory too: the KVM host's
  cgroup2 has the controllers), `ctr task kill` (the power button), delete
  and `ctr container rm` leave no process, tap, nft table, mount or file; a
  second container (its root disk cached: no work) whose shim is killed
  with SIGKILL is cleaned up by containerd's `delete` from the bundle alone.
  test_chvm_run_beside: `chvm run` of the same image, timed to CDP, for
  the pod's figure to stand beside.
  test_cri_pod: `crictl runp` (runtime handler chvm), create, start: the
  VM in the pod's CNI namespace, CDP at the pod IP (playwright-core through
  a forward), exec, stop, stopp, rmp leave nothing.

The KVM host reaches what this host cannot (the endpoint on its loopback,
the pod IP) through tests/kvmhost/tcpfwd.py on a port QEMU forwards.
Figures in build/test-results/shim-kvmhost.json.  make test-shim-kvmhost
(CHVM_KVMHOST_SHIM=1; about 25 minutes nested, so not in make test).  Skips with one line when the KVM host's
prerequisites, the shim or the docker archive are missing.
"""
import json
import os
import shutil
import time

import pytest

from chvmtest import containerd, kvmhost, paths
from chvmtest.containerd import CNI_BIN, CRI_CONFIG, CRI_NS
from chvmtest.cdp import drive, wait_cdp

SHIM = os.path.join(paths.BUILD, "bin", "containerd-shim-chvm-v1")
ARCHIVE = os.path.join(paths.STANDIN, "docker-archive.tar")
CRICTL = shutil.which("crictl")


def missing():
    if os.environ.get("CHVM_KVMHOST_SHIM") != "1":
        return "off (25 minutes: make test-shim-kvmhost runs it, CHVM_KVMHOST_SHIM=1)"
    m = kvmhost.missing_prerequisites()
    if m is None and not os.path.exists(SHIM):
        m = "missing %s (make shim)" % SHIM
    if m is None and not os.path.exists(ARCHIVE):
        m = "missing %s (make images)" % ARCHIVE
    return m


MISSING = missing()
pytestmark = pytest.mark.skipif(MISSING is not None, reason="containerd in the KVM host: %s"
                                % MISSING)

VERSION = (kvmhost.ch_versions() or [None])[0]
CH_ENV = {"CLOUD_HYPERVISOR": "/opt/cloud-hypervisor/%s/cloud-hypervisor" % VERSION}
IN_ARCHIVE = "/var/lib/kvmhost/standin.tar"
FWD = "/usr/local/lib/kvmhost/tcpfwd.py"
D = "/var/lib/ctdtest"
SOCK = D + "/c.sock"
TASKS = D + "/state/io.containerd.runtime.v2.task/" + CRI_NS
CID, CID2 = "shim1", "shim2"
VM = "ctr-%s-%s" % (CRI_NS, CID)  # one namespace for ctr and the CRI plugin: one import
# Forwarded ports of the KVM host: the ctr container's endpoint, the pod's CDP.
PORT_CTR, PORT_POD = 9470, 9471
BOOT_S = 900
# Nested emulation: one vCPU (two triple-faulted there) and no zygote
# (test_kvmhost.py says why).
LIMITS = ["--cpus", "1", "--memory-limit", str(1 << 30)]
CHROMIUM_ENV = "CHROMIUM_FLAGS=--no-zygote"
RESULTS = os.path.join(paths.BUILD, "test-results", "shim-kvmhost.json")
FIGURES = {"date": time.strftime("%Y-%m-%d"), "ch": VERSION,
           "host": "CH inside the KVM host (QEMU/TCG -cpu max, nested SVM)"}
# Whatever a container can leave in the KVM host, one line each.
LEFTOVERS = r"""
pgrep -af '[c]ontainerd-shim-chvm|[c]loud-hypervisor' | sed 's/^/process /'
ls /var/lib/chvm/vms 2>/dev/null | sed 's/^/VM dir /'
ip -o link | awk -F': ' '$2 ~ /chvm/ && $2 != "chvmcri0" {print "link " $2}'
nft list tables 2>/dev/null | grep chvm | sed 's/^/nft /'
awk '$5 ~ "^/var/lib/ctdtest/" && $5 !~ "snapshots" {print "mount " $5}' /proc/self/mountinfo
ip netns list 2>/dev/null | sed 's/^/netns /'
"""


class Ctd:
    """The KVM host and the containerd in it."""

    def __init__(self, h, image_id):
        self.h, self.image_id = h, image_id
        self.pid = None
        self.ref = None
        self.fwd = {}

    def sh(self, script, timeout=600, check=True):
        return self.h.run(["/bin/bash", "-c", script], timeout=timeout, env=CH_ENV, check=check)

    def start(self):
        self.pid = int(self.sh("setsid containerd --config %s/config.toml --log-level debug "
                               ">>%s/containerd.log 2>&1 </dev/null & echo $!" % (D, D))["out"])
        self.sh("for i in $(seq 120); do ctr -a %s version >/dev/null 2>&1 && exit 0; "
                "kill -0 %d || exit 1; sleep 0.5; done; exit 1" % (SOCK, self.pid))

    def stop(self):
        self.sh("kill %d; for i in $(seq 60); do kill -0 %d 2>/dev/null || exit 0; sleep 0.5; "
                "done; kill -9 %d" % (self.pid, self.pid, self.pid), check=False)

    def ctr(self, *args, check=True, timeout=300):
        return self.h.run(["ctr", "-a", SOCK, "-n", CRI_NS, *args], timeout=timeout,
                          env=CH_ENV, check=check)

    def crictl(self, *args, check=True, timeout=300):
        return self.h.run(["crictl", "--runtime-endpoint", "unix://" + SOCK, "--image-endpoint",
                           "unix://" + SOCK, "--timeout", "%ds" % timeout, *args],
                          timeout=timeout + 30, env=CH_ENV, check=check)

    def status(self, cid=CID):
        return containerd.task_status(self.ctr("task", "ls", check=False)["out"], cid)

    def wait_status(self, want, cid=CID, timeout=300):
        t0 = time.monotonic()
        while self.status(cid) not in want:
            assert time.monotonic() - t0 < timeout, (cid, self.status(cid), self.tail())
            time.sleep(1)
        return time.monotonic() - t0

    def forward(self, port, target):
        """This host's 127.0.0.1:h.port[port] to target (host:port) as the KVM
        host reaches it; replaces the port's earlier forward."""
        if port in self.fwd:
            self.sh("kill %d" % self.fwd[port], check=False)
        host, tport = target.rsplit(":", 1)
        self.fwd[port] = int(self.sh("setsid python3 %s 10.0.2.15 %d %s %s >>%s/fwd.log 2>&1 "
                                     "</dev/null & echo $!" % (FWD, port, host, tport, D))["out"])
        return "http://127.0.0.1:%d" % self.h.port[port]

    def leftovers(self):
        return self.sh(LEFTOVERS, check=False)["out"].split("\n")[:-1]

    def wait_clean(self, timeout=90):
        t0 = time.monotonic()
        while self.leftovers() and time.monotonic() - t0 < timeout:
            time.sleep(1)
        assert self.leftovers() == [], self.tail()
        return time.monotonic() - t0

    def tail(self):
        return self.sh("tail -n 40 %s/containerd.log" % D, check=False)["out"]


@pytest.fixture(scope="module")
def ctd(tmp_path_factory):
    kvmhost.build_base()
    run_dir = str(tmp_path_factory.mktemp("kvmhost-shim"))
    extra = [(ARCHIVE, IN_ARCHIVE), ("tests/kvmhost/tcpfwd.py", FWD)]
    if CRICTL:
        extra.append((CRICTL, "usr/local/bin/crictl"))
    disk, image_id = kvmhost.make_disk(run_dir, extra=extra)
    h = kvmhost.KvmHost(run_dir, forwards=[PORT_CTR, PORT_POD])
    h.boot(disk)
    c = Ctd(h, image_id)
    try:
        c.sh("mkdir -p %s/cni && printf '%%s' '%s' >%s/cni/10-chvmcri.conflist"
             % (D, json.dumps(containerd.cni_conf(D)), D))
        # The sandbox image is the stand-in itself (no registry here; the
        # shim never runs a sandbox's process): its reference is known once
        # imported, so the first start names a placeholder and the second
        # the imported reference.
        c.sh("printf '%%s' '%s' >%s/config.toml" % (CRI_CONFIG.format(d=D, sandbox_image="none", cni_bin=CNI_BIN), D))
        c.start()
        t0 = time.monotonic()
        c.ctr("images", "import", IN_ARCHIVE, timeout=1800)
        FIGURES["import_s"] = round(time.monotonic() - t0, 1)
        c.ref = c.ctr("images", "ls", "-q")["out"].split()[0]
        print("\nctr images import %s: %.1f s" % (c.ref, FIGURES["import_s"]))
        c.stop()
        c.sh("printf '%%s' '%s' >%s/config.toml" % (CRI_CONFIG.format(d=D, sandbox_image=c.ref, cni_bin=CNI_BIN), D))
        c.start()
        yield c
    finally:
        # The figures are written whatever happened, also after the KVM
        # host died (then nothing is left to clean up in it).
        try:
            for cid in (CID, CID2):
                c.ctr("task", "kill", "-s", "SIGKILL", cid, check=False)
                c.ctr("task", "delete", cid, check=False)
                c.ctr("container", "rm", cid, check=False)
            print(c.tail())
        except kvmhost.HostDied as e:
            print("no cleanup in the KVM host: %s" % e)
        finally:
            h.shutdown()
            os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
            with open(RESULTS, "w") as f:
                json.dump(FIGURES, f, indent=1)
            print("shim-kvmhost figures: %s" % RESULTS)


def chvm_json(c, *args, timeout=BOOT_S):
    return json.loads(c.h.run(["chvm", "--json", *args], timeout=timeout, env=CH_ENV)["out"])


def test_ctr_run(ctd):
    c = ctd
    t0 = time.monotonic()
    c.ctr("run", "-d", "--runtime", "io.containerd.chvm.v1", *LIMITS, "--env", CHROMIUM_ENV,
          c.ref, CID, timeout=BOOT_S)
    t_run = time.monotonic() - t0
    assert c.status() == "RUNNING", c.tail()
    vm = [v for v in chvm_json(c, "ps") if v["name"] == VM][0]
    print("\nctr run -d (create: the root disk from the layers; start: the VMM up): %.1f s; "
          "backend %s, vcpus %s, memory %s" % (t_run, vm.get("backend"), vm.get("cpus"),
                                              vm.get("memory_mib")))
    assert (vm["backend"], vm["cpus"], vm["memory_mib"]) == ("cloud-hypervisor", 1, 1024), vm
    token_url = c.h.run(["chvm", "cdp", "--http", VM], env=CH_ENV)["out"].strip()
    port = token_url.split("//", 1)[1].split("/", 1)[0]
    endpoint = c.forward(PORT_CTR, port) + "/" + token_url.rsplit("/", 1)[1]
    wait_cdp(endpoint, t0 + BOOT_S)
    FIGURES["ctr_run"] = {"create_start_s": round(t_run, 1),
                          "to_cdp_s": round(time.monotonic() - t0, 1)}
    print("CDP answers %.1f s after ctr run (through the endpoint %s)"
          % (time.monotonic() - t0, token_url))
    drive(endpoint)
    # containerd restarted while the VM runs: the same shim, the task RUNNING.
    pidfile = "%s/%s/shim.pid" % (TASKS, CID)
    shim_pid = c.sh("cat " + pidfile)["out"].strip()
    c.stop()
    c.start()
    assert c.status() == "RUNNING", c.tail()
    assert c.sh("echo $(cat %s); kill -0 %s && echo alive" % (pidfile, shim_pid))["out"].split() == [
        shim_pid, "alive"]
    wait_cdp(endpoint, time.monotonic() + 60)
    print("containerd restarted: RUNNING, the same shim (pid %s), CDP answers" % shim_pid)
    p = c.ctr("task", "exec", "--exec-id", "e1", "--cwd", "/proc", CID, "sh", "-c",
              'echo "in $(pwd)"; echo err >&2; exit 3', check=False)
    assert (p["rc"], p["out"], p["err"].strip()) == (3, "in /proc\n", "err"), p
    c.ctr("task", "pause", CID)
    assert c.status() == "PAUSED"
    c.ctr("task", "resume", CID)
    assert c.status() == "RUNNING"
    wait_cdp(endpoint, time.monotonic() + 120)
    m = containerd.metrics(c.ctr("task", "metrics", CID)["out"])
    print("ctr task metrics: %s" % m)
    assert m["cpu.usage_usec"] > 0, m
    assert 0 < m["memory.usage"] < m["memory.usage_limit"], m
    assert 0 < m["pids.current"] <= m["pids.limit"], m
    FIGURES["metrics"] = m
    t1 = time.monotonic()
    c.ctr("task", "kill", CID)
    FIGURES["kill_to_stopped_s"] = round(c.wait_status(("STOPPED",)), 1)
    print("ctr task kill (the power button) to STOPPED: %.1f s" % (time.monotonic() - t1))
    c.ctr("task", "delete", CID)
    c.ctr("container", "rm", CID)
    c.sh("kill %d" % c.fwd.pop(PORT_CTR))
    c.wait_clean()
    # The second container of the image: its root disk is cached.  Its shim
    # killed with SIGKILL: containerd's delete cleans up from the bundle.
    t0 = time.monotonic()
    c.ctr("run", "-d", "--runtime", "io.containerd.chvm.v1", *LIMITS, "--env", CHROMIUM_ENV,
          c.ref, CID2, timeout=BOOT_S)
    FIGURES["second_create_start_s"] = round(time.monotonic() - t0, 1)
    print("second container (cached root disk), ctr run -d: %.1f s"
          % FIGURES["second_create_start_s"])
    assert c.status(CID2) == "RUNNING"
    assert c.leftovers(), "a running container leaves nothing to find: the check is blind"
    c.sh("kill -9 $(cat %s/%s/shim.pid)" % (TASKS, CID2))
    c.wait_status(("STOPPED", None), CID2, timeout=120)
    c.ctr("task", "delete", CID2, check=False)
    c.ctr("container", "rm", CID2)
    print("shim SIGKILLed: nothing left after %.1f s" % c.wait_clean())


def test_chvm_run_beside(ctd):
    """The same image by chvm run, timed the same way, for the pod's figure."""
    c = ctd
    t0 = time.monotonic()
    out = chvm_json(c, "run", "--backend", "ch", "--name", "plain", "--cpus", "1", "--memory",
                    "1G", "-e", CHROMIUM_ENV, "--timeout", str(BOOT_S - 60), c.image_id)
    url = c.h.run(["chvm", "cdp", "--http", "plain"], env=CH_ENV)["out"].strip()
    c.sh("curl -sf -m 30 %s/json/version" % url)
    FIGURES["chvm_run_to_cdp_s"] = round(time.monotonic() - t0, 1)
    print("\nchvm run of the same image to CDP: %.1f s (%s)" % (FIGURES["chvm_run_to_cdp_s"], out))
    c.h.run(["chvm", "rm", "-f", "plain"], env=CH_ENV, timeout=120)
    c.wait_clean()


@pytest.mark.skipif(CRICTL is None, reason="no crictl here (make setup builds it)")
def test_cri_pod(ctd):
    c = ctd
    pod_cfg, ctr_cfg = D + "/pod.json", D + "/ctr.json"
    c.sh("printf '%%s' '%s' >%s; printf '%%s' '%s' >%s" % (
        json.dumps({"metadata": {"name": "chvmpod", "namespace": "default", "uid": "chvm-pod-1"},
                    "log_directory": D + "/podlogs", "linux": {}}), pod_cfg,
        json.dumps({"metadata": {"name": "browser"}, "image": {"image": c.ref},
                    "log_path": "browser.log", "envs": [{"key": "CHROMIUM_FLAGS",
                                                        "value": "--no-zygote"}],
                    "linux": {"resources": {"cpu_quota": 100000, "cpu_period": 100000,
                                            "memory_limit_in_bytes": 1 << 30}}}), ctr_cfg))
    t0 = time.monotonic()
    pod = c.crictl("runp", "--runtime", "chvm", pod_cfg)["out"].strip()
    try:
        ip = json.loads(c.crictl("inspectp", pod)["out"])["status"]["network"]["ip"]
        assert ip.startswith("10.214.0."), ip
        ctr = c.crictl("create", pod, ctr_cfg, pod_cfg, timeout=BOOT_S)["out"].strip()
        c.crictl("start", ctr, timeout=BOOT_S)
        endpoint = c.forward(PORT_POD, "%s:9222" % ip)
        wait_cdp(endpoint, t0 + BOOT_S)
        FIGURES["pod_to_cdp_s"] = round(time.monotonic() - t0, 1)
        print("\npod to CDP at %s:9222: %.1f s (chvm run of the same image: %s s)"
              % (ip, FIGURES["pod_to_cdp_s"], FIGURES.get("chvm_run_to_cdp_s")))
        drive(endpoint)
        assert c.crictl("exec", ctr, "sh", "-c", "echo in-$((6*7))")["out"].strip() == "in-42"
        c.crictl("stop", ctr)
        c.crictl("stopp", pod)
        c.crictl("rmp", "-f", pod)
        pod = None
        c.sh("kill %d" % c.fwd.pop(PORT_POD))
        c.wait_clean()
    finally:
        if pod is not None:
            c.crictl("rmp", "-f", pod, check=False)
