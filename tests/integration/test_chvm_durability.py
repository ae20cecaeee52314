# SPDX-License-Identifier: Apache-2.0
"""Crash consistency of chvm's host state, end to end with the real chvm
binary and the declared fake cloud-hypervisor (chvmtest.doubles, running
the CH API double of tests/doubles): no guest boots, so this runs on any
host.  The VM and its
snapshot are written by hand, in the shapes standby leaves them.

- a restore whose record cannot be saved stops the VMM it started and leaves
  the VM in standby (vm.json made immutable: the rename over it fails as it
  would on a full disk);
- a restore refuses a snapshot without its memory;
- a VMM left by a standby killed after recording "standby" shows as standby
  and the next command stops it; stop says it discards the snapshot;
- standby sweeps the snapshot.tmp-* of interrupted standbys;
- `chvm image rm` refuses an image a VM uses, naming the VM."""

import json
import os
import subprocess

import pytest

from chvmtest import cli, doubles, prereq
from chvmtest.cli import chvm, ps

NAME = "dur"
MEM = 1 << 20

pytestmark = prereq.requires_chvm


@pytest.fixture
def env(tmp_path):
    """A state dir holding the directory of VM NAME (no record yet), chvm's
    VMM the fake cloud-hypervisor in its normal mode."""
    fake = doubles.fake_cloud_hypervisor(tmp_path, "--mode", "normal")
    # The double runs as root (see chvmtest.doubles); test_chvm_ch.py tests
    # the VMM user itself.
    e = cli.state_env(tmp_path, image_cache=False, vmm_user=False, CLOUD_HYPERVISOR=fake,
                      CHVM_VMM_USER="root")
    os.makedirs(vmdir(e))
    yield e
    for pid in vmm_pids(e):
        os.kill(pid, 9)
    subprocess.run(["chattr", "-i", vm_json(e)], capture_output=True)


def vmdir(env):
    return os.path.join(env["CHVM_STATE_DIR"], "vms", NAME)


def vm_json(env):
    return os.path.join(vmdir(env), "vm.json")


def vmm_pids(env):
    """Live processes whose arguments name the VM's API socket."""
    sock = os.path.join(vmdir(env), "api.sock").encode()
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                args = f.read().split(b"\0")
        except OSError:
            continue
        if any(a == sock or a.endswith(b"=" + sock) for a in args):
            out.append(int(d))
    return out


def write_vm(env, state="standby", pid=0, rootfs=""):
    rec = {"version": 1, "name": NAME, "backend": "cloud-hypervisor", "image": "x",
           "created": 1700000000, "state": state,
           "spec": {"kernel": "/k/vmlinux", "cpus": 1, "memory_mib": 1, "rootfs": rootfs},
           "runtime": {"vmm_pid": pid}}
    with open(vm_json(env), "w") as f:
        json.dump(rec, f)


def write_snapshot(env, memory=MEM, name="snapshot"):
    d = os.path.join(vmdir(env), name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump({"memory": {"size": MEM, "shared": False, "hotplug_size": None}}, f)
    with open(os.path.join(d, "state.json"), "w") as f:
        f.write("{}")
    if memory is not None:
        with open(os.path.join(d, "memory-ranges"), "wb") as f:
            f.truncate(memory)
    return d


def immutable(path):
    p = subprocess.run(["chattr", "+i", path], capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip("chattr +i unsupported here: " + p.stderr.strip())


def test_restore_that_cannot_be_recorded_leaves_no_vmm(env):
    write_vm(env)
    write_snapshot(env)
    immutable(vm_json(env))
    p = chvm(env, "restore", "--no-agent", NAME, check=False)
    assert p.returncode == 1
    assert "could not be recorded" in p.stderr and "stays in standby" in p.stderr, p.stderr
    # Besides the error only WARN lines (the double ignores vmm.shutdown).
    assert all(l.startswith("WARN") for l in p.stderr.strip().splitlines()[:-1]), p.stderr
    assert vmm_pids(env) == [], "the restored VMM was left running unrecorded"
    assert not os.path.exists(os.path.join(vmdir(env), "vmm.pid"))
    subprocess.run(["chattr", "-i", vm_json(env)], check=True)
    assert ps(env)[NAME]["status"] == "standby"
    # Nothing was lost: a second restore works and is the only VMM.
    p = chvm(env, "restore", "--no-agent", NAME)
    vm = ps(env)[NAME]
    assert vm["status"] == "running" and vmm_pids(env) == [vm["pid"]]


@pytest.mark.parametrize("memory,needle", [
    (None, "is incomplete: no memory-ranges"),
    (0, "memory-ranges is empty"),
    (4096, "memory-ranges has 4096 bytes, less than config.json's memory size 1048576"),
])
def test_restore_refuses_a_snapshot_without_its_memory(env, memory, needle):
    write_vm(env)
    write_snapshot(env, memory=memory)
    p = chvm(env, "restore", "--no-agent", NAME, check=False)
    assert p.returncode == 1 and needle in p.stderr, p.stderr
    assert vmm_pids(env) == []
    assert ps(env)[NAME]["status"] == "standby"


def running_vm(env):
    """A VM running on the double (restored from a hand-made snapshot)."""
    write_vm(env)
    write_snapshot(env)
    chvm(env, "restore", "--no-agent", NAME)
    vm = ps(env)[NAME]
    assert vm["status"] == "running"
    return vm["pid"]


def test_vmm_left_by_an_interrupted_standby(env):
    # What a chvm killed between recording standby and stopping the VMM
    # leaves: standby recorded, a complete snapshot, the VMM still there.
    pid = running_vm(env)
    write_vm(env, state="standby", pid=pid)
    write_snapshot(env)
    assert ps(env)[NAME]["status"] == "standby"
    p = chvm(env, "stop", NAME)
    assert "interrupted standby" in p.stderr, p.stderr
    assert "snapshot is discarded" in p.stdout, p.stdout
    assert vmm_pids(env) == []
    assert ps(env)[NAME]["status"] == "stopped"


def test_restore_stops_the_vmm_an_interrupted_standby_left(env):
    pid = running_vm(env)
    write_vm(env, state="standby", pid=pid)
    write_snapshot(env)
    chvm(env, "restore", "--no-agent", NAME)
    vm = ps(env)[NAME]
    assert vm["status"] == "running" and vm["pid"] != pid
    assert vmm_pids(env) == [vm["pid"]], "two VMMs on one snapshot"


def test_standby_sweeps_interrupted_snapshots(env):
    running_vm(env)
    dead = subprocess.Popen(["true"])
    dead.wait()
    # One named after a standby process that is gone, one with no pid in
    # its name: neither belongs to a standby still running.
    stale = write_snapshot(env, name="snapshot.tmp-%d-abcdef" % dead.pid)
    no_pid = write_snapshot(env, name="snapshot.tmp-Ab12Cd")
    # The double refuses vm.snapshot: standby fails and resumes the VM, but
    # the leftovers are gone by then.
    p = chvm(env, "standby", "--no-quiesce", NAME, check=False)
    assert p.returncode == 1, p.stderr
    assert not os.path.exists(stale) and not os.path.exists(no_pid)
    assert not [e for e in os.listdir(vmdir(env)) if e.startswith("snapshot.tmp-")]
    assert ps(env)[NAME]["status"] == "running"


def test_image_rm_refuses_an_image_a_vm_uses(env):
    images = os.path.join(env["CHVM_STATE_DIR"], "images")
    img = "ab" * 32
    os.makedirs(os.path.join(images, img))
    rootfs = os.path.join(images, img, "rootfs.ext4")
    open(rootfs, "w").close()
    write_vm(env, state="stopped", rootfs=rootfs)
    p = chvm(env, "image", "rm", img[:8], check=False)
    assert p.returncode == 1, p.stdout
    assert "is the root disk of VM %s" % NAME in p.stderr, p.stderr
    assert os.path.exists(rootfs)
    p = chvm(env, "rm", NAME)
    p = chvm(env, "image", "rm", img[:8], check=False)
    assert p.returncode == 0 and p.stdout.strip() == img, p.stderr
    assert not os.path.exists(os.path.join(images, img))
