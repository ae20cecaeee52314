# SPDX-License-Identifier: Apache-2.0
"""`chvm run --backend ch` with the real Cloud Hypervisor and the real guest
(Debian's kernel, our initramfs, the stand-in image, config disk, tap, vsock),
inside a network namespace this test creates, for every CH binary given
(PATH or $CLOUD_HYPERVISOR, plus $CHVM_TEST_CH_EXTRA).

What it shows: CH accepts the VmConfig chvm sends for a real VM (disks with
serials, tap, vsock, initramfs, console/serial files) and boots it; standby
and restore go through CH's API with that configuration, keeping the tap;
`chvm rm` leaves no VMM, tap, nft table or file behind.

What it cannot show on hosts whose /dev/kvm is software (kvm_pvm): the Linux
guest itself does not run there (shared/docs/build-hosts.md), so there is no
agent, no CDP and no console output; standby and restore use --no-quiesce and
--no-agent.  CH v49+ cannot snapshot on such hosts (KVM_GET_NESTED_STATE is
missing): standby then must fail with CH's message and leave the VM paused,
never half-written."""

import json
import os
import shutil
import signal
import subprocess
import sys
import uuid

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ch_micro  # noqa: E402
import test_chvm_qemu as base  # noqa: E402  (paths and skip reasons)

MEMORY = "512M"


def _missing():
    if base.MISSING:
        return base.MISSING
    if os.geteuid() != 0:
        return "root (ip netns, taps, nft)"
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            return tool
    if not os.path.exists("/dev/net/tun"):
        return "/dev/net/tun"
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "/dev/kvm"
    return None


MISSING = _missing()


@pytest.fixture(params=ch_micro.ch_binaries() or [None], ids=ch_micro.version_id)
def ch(request, tmp_path):
    """(env, CH major version) for one CH binary, a fresh state dir and a
    network namespace of the test's own."""
    if MISSING:
        pytest.skip("chvm with cloud-hypervisor: missing " + MISSING)
    if request.param is None:
        pytest.skip("cloud-hypervisor not on PATH (or $CLOUD_HYPERVISOR)")
    ns = "chvmt-" + uuid.uuid4().hex[:8]
    subprocess.run(["ip", "netns", "add", ns], check=True)
    state = tmp_path / "state"
    state.mkdir()
    if os.path.isdir(base.IMAGE_CACHE):  # the stand-in image, imported once by make setup
        os.symlink(base.IMAGE_CACHE, state / "images")
    env = dict(os.environ, CLOUD_HYPERVISOR=request.param, CHVM_STATE_DIR=str(state))
    env.pop("CHVM_DATA_DIR", None)
    try:
        yield env, ns, int(ch_micro.version_id(request.param).lstrip("v").split(".")[0])
    finally:
        subprocess.run([base.CHVM, "rm", "-f", "chtest"], env=env, capture_output=True, timeout=60)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def chvm(env, *args, timeout=300):
    return subprocess.run([base.CHVM, *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def ps(env):
    p = chvm(env, "ps", "-a", "--json")
    assert p.returncode == 0, p.stderr
    return {v["name"]: v for v in json.loads(p.stdout)}


def ns_links(ns):
    out = subprocess.run(["ip", "-netns", ns, "-o", "link"], capture_output=True, text=True,
                         check=True).stdout
    return [line.split(":")[1].strip().split("@")[0] for line in out.splitlines()]


def tap_ipv4(ns, tap):
    """IPv4 addresses on the tap: a bridge port must have none (CH v48 gives
    the tap 192.168.249.1 unless chvm removes it)."""
    out = subprocess.run(["ip", "-netns", ns, "-4", "-o", "addr", "show", "dev", tap],
                         capture_output=True, text=True, check=True).stdout
    return out.split()


def api(env, path):
    """GET on the VM's CH API socket (what CH itself says it runs)."""
    sock = os.path.join(env["CHVM_STATE_DIR"], "vms", "chtest", "api.sock")
    p = subprocess.run(["curl", "-sS", "--max-time", "10", "--unix-socket", sock,
                        "http://localhost/api/v1/" + path],
                       capture_output=True, text=True, timeout=20)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def test_ch_runs_the_real_vm_config_standby_restore_rm(ch):
    env, ns, major = ch
    p = chvm(env, "run", "--backend", "ch", "--netns", ns, "--memory", MEMORY, "--no-wait",
             "--name", "chtest")
    assert p.returncode == 0, p.stderr
    vm = ps(env)["chtest"]
    assert vm["status"] == "running" and vm["backend"] == "cloud-hypervisor"
    pid = vm["pid"]

    info = api(env, "vm.info")
    assert info["state"] == "Running"
    cfg = info["config"]
    serials = {d.get("serial") for d in cfg["disks"]}
    assert {"chvm-root", "chvm-config"} <= serials
    assert all(d.get("readonly") for d in cfg["disks"])
    tap = cfg["net"][0]["tap"]
    assert tap in ns_links(ns) and "chvm0" in ns_links(ns)
    assert tap_ipv4(ns, tap) == []
    assert cfg["vsock"]["socket"].endswith("/vsock.sock")
    assert cfg["payload"]["initramfs"].endswith("initrd.cpio.gz")
    assert cfg["memory"]["size"] == 512 << 20

    p = chvm(env, "--json", "standby", "--no-quiesce", "chtest")
    vmdir = os.path.join(env["CHVM_STATE_DIR"], "vms", "chtest")
    if major >= 49 and p.returncode != 0 and "GetNestedState" in p.stderr:
        # The host's KVM cannot give CH what v49+ snapshots: a clear error,
        # nothing restorable left behind, the VMM still there.
        assert not os.path.exists(os.path.join(vmdir, "snapshot"))
        assert ch_micro.alive(pid)
        pytest.skip("this host's KVM lacks KVM_GET_NESTED_STATE (kvm_pvm), which "
                    "cloud-hypervisor v49+ needs to snapshot; standby failed cleanly")
    assert p.returncode == 0, p.stderr
    phases = json.loads(p.stdout)
    assert phases  # pause, snapshot and shutdown timed
    assert not ch_micro.alive(pid), "standby left the VMM running"
    assert ps(env)["chtest"]["status"] == "standby"
    assert tap in ns_links(ns), "standby must keep the tap"
    snap = os.path.join(vmdir, "snapshot")
    assert os.path.getsize(os.path.join(snap, "memory-ranges")) >= 512 << 20

    p = chvm(env, "--json", "restore", "--no-agent", "chtest")
    assert p.returncode == 0, p.stderr
    vm = ps(env)["chtest"]
    assert vm["status"] == "running" and vm["pid"] != pid
    info = api(env, "vm.info")
    assert info["state"] == "Running"
    assert info["config"]["net"][0]["tap"] == tap
    assert tap_ipv4(ns, tap) == []

    new_pid = vm["pid"]
    p = chvm(env, "rm", "-f", "chtest")
    assert p.returncode == 0, p.stderr
    assert not ch_micro.alive(new_pid)
    assert "chtest" not in ps(env)
    assert not os.path.exists(vmdir)
    assert tap not in ns_links(ns)
    nft = subprocess.run(["ip", "netns", "exec", ns, "nft", "list", "tables"],
                         capture_output=True, text=True).stdout
    assert "chvm" not in nft


def test_ch_vmm_killed_is_reported_dead(ch):
    env, ns, _ = ch
    p = chvm(env, "run", "--backend", "ch", "--netns", ns, "--memory", MEMORY, "--no-wait",
             "--name", "chtest")
    assert p.returncode == 0, p.stderr
    pid = ps(env)["chtest"]["pid"]
    os.kill(pid, signal.SIGKILL)
    ch_micro.wait_for(lambda: not ch_micro.alive(pid), 10, "VMM %d to die" % pid)
    assert ps(env)["chtest"]["status"] == "dead"
    p = chvm(env, "standby", "--no-quiesce", "chtest", timeout=60)
    assert p.returncode != 0 and p.stderr.strip(), "standby of a dead VM must fail with a message"
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr
