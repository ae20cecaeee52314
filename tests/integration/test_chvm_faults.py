# SPDX-License-Identifier: Apache-2.0
"""Fault injection with the real cloud-hypervisor and the micro guest: chvm,
or the VMM, killed with SIGKILL at every step of run, standby and restore
(the fault points of docs/DESIGN.md, CHVM_FAULT=CMD:STEP[:vmm]), and the
state dir made full during standby.  After each fault:

  - `chvm ps` tells the truth: a VM whose VMM is alive is not shown as
    dead or stopped, one whose VMM is gone is not shown as running;
  - no VMM is left unrecorded: every live cloud-hypervisor naming the VM's
    directory is the pid ps shows;
  - the next command either brings the VM back (restore, or standby and
    restore) or says clearly, in one line, why it cannot; and `chvm rm -f`
    leaves no process and no directory.

Each case is named CMD:STEP[:vmm] in the output.  Runs on the `ch`
fixture (conftest.py: root, ip/nft, KVM, CH, each CH binary); standby
cases need a CH that can snapshot on this host's KVM (v48 here)."""

import json
import os
import subprocess

import pytest

from chvmtest import cli
from chvmtest.cli import chvm

NAME = "chtest"  # the ch fixture removes it whatever happens


def vmms(env):
    """Pids of live cloud-hypervisor processes whose command line names this
    VM's directory."""
    vmdir = os.path.join(env["CHVM_STATE_DIR"], "vms", NAME)
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                args = f.read().split(b"\0")
        except OSError:
            continue
        if args and os.path.basename(args[0]) == b"cloud-hypervisor" and \
                any((vmdir + "/").encode() in a for a in args):
            found.append(int(pid))
    return found


def truthful(env, case):
    """ps's status against the processes there; returns that status."""
    p = chvm(env, "ps", "-a", "--json", check=False)
    assert p.returncode == 0, (case, p.stderr)
    vm = {v["name"]: v for v in json.loads(p.stdout)}.get(NAME)
    live = vmms(env)
    print("%s: ps says %s, live VMMs %s" % (case, vm and vm.get("status"), live))
    if vm is None:
        assert live == [], (case, "VMMs left with no VM recorded", live)
        return None
    assert len(live) <= 1, (case, "more than one VMM for one VM", live)
    if live:
        assert vm.get("pid") == live[0], (case, "a VMM that ps does not record", vm, live)
        # created: a run killed before it recorded its VMM (the next
        # command stops it); standby: a standby or restore killed with a
        # VMM still there (likewise).
        assert vm["status"] in ("running", "paused", "standby", "created"), (case, vm)
    else:
        assert vm["status"] not in ("running", "paused"), (case, "running without a VMM", vm)
    return vm["status"]


def one_line_error(p, case):
    msg = p.stderr.strip()
    assert p.returncode != 0 and msg, (case, p.returncode, p.stderr)
    assert "chvm" in msg.splitlines()[-1], (case, msg)


def with_fault(env, fault):
    return dict(env, CHVM_FAULT=fault) if fault else env


def run_vm(env, ns, fault=None):
    return chvm(with_fault(env, fault), "run", "--backend", "ch", "--netns", ns, "--memory", "256M",
                "--no-wait", "--name", NAME, check=False)


def standby(env, fault=None):
    return chvm(with_fault(env, fault), "standby", "--no-quiesce", NAME, check=False)


def restore(env, fault=None):
    return chvm(with_fault(env, fault), "restore", "--no-agent", NAME, check=False)


def comes_back(env, case):
    """From whatever the fault left: the VM ends up running through the
    commands a user would type, or a command says why it cannot."""
    st = truthful(env, case)
    if st == "standby":
        p = restore(env)
        if p.returncode != 0:
            one_line_error(p, case)
            return
        st = truthful(env, case + " then restore")
    if st in ("running", "paused"):
        assert standby(env).returncode == 0, case
        assert truthful(env, case + " then standby") == "standby"
        p = restore(env)
        assert p.returncode == 0, (case, p.stderr)
        assert truthful(env, case + " then standby, restore") == "running"
    elif st is not None:
        # created, dead or stopped: nothing to bring back; rm must clean.
        pass


def rm_leaves_nothing(env, case):
    p = chvm(env, "rm", "-f", NAME, check=False)
    assert p.returncode == 0, (case, p.stderr)
    assert vmms(env) == [], case
    assert not os.path.exists(os.path.join(env["CHVM_STATE_DIR"], "vms", NAME)), case


def recovers(env, fault, p):
    """After a standby or restore fault: chvm either finished (0), was
    killed (-9) or said why in one line; then the VM comes back and rm
    cleans up."""
    print("%s: exit %d %s" % (fault, p.returncode, p.stderr.strip()[-200:]))
    if p.returncode not in (0, -9):
        one_line_error(p, fault)
    comes_back(env, fault)
    rm_leaves_nothing(env, fault)


RUN_FAULTS = ["run:recorded", "run:started", "run:started:vmm"]
STANDBY_FAULTS = ["standby:paused", "standby:paused:vmm", "standby:snapshotted",
                  "standby:snapshotted:vmm", "standby:recorded", "standby:stopped"]
RESTORE_FAULTS = ["restore:tap", "restore:restored", "restore:restored:vmm", "restore:recorded",
                  "restore:recorded:vmm"]


def can_snapshot(major):
    if major >= 49:
        pytest.skip("this host's KVM lacks KVM_GET_NESTED_STATE (kvm_pvm), which "
                    "cloud-hypervisor v49+ needs to snapshot")


@pytest.mark.parametrize("fault", RUN_FAULTS)
def test_run_fault(ch, fault):
    env, ns, major = ch
    p = run_vm(env, ns, fault)
    print("%s: exit %d %s" % (fault, p.returncode, p.stderr.strip()[-200:]))
    st = truthful(env, fault)
    if st in ("running", "paused") and major < 49:
        comes_back(env, fault)
    rm_leaves_nothing(env, fault)


@pytest.mark.parametrize("fault", STANDBY_FAULTS)
def test_standby_fault(ch, fault):
    env, ns, major = ch
    can_snapshot(major)
    assert run_vm(env, ns).returncode == 0
    p = standby(env, fault)
    recovers(env, fault, p)


@pytest.mark.parametrize("fault", RESTORE_FAULTS)
def test_restore_fault(ch, fault):
    env, ns, major = ch
    can_snapshot(major)
    assert run_vm(env, ns).returncode == 0
    assert standby(env).returncode == 0
    p = restore(env, fault)
    recovers(env, fault, p)


def test_standby_disk_full(ch, tmp_path):
    """The state dir on a 160 MiB filesystem, a 256 MiB guest: the snapshot
    cannot fit.  standby fails saying so, the VM runs on, and nothing half
    written is left."""
    env, ns, major = ch
    can_snapshot(major)
    small = cli.vmm_reachable(tmp_path) / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=160m,mode=0755", "tmpfs", str(small)],
                   check=True)
    try:
        state = small / "state"
        state.mkdir()
        images = os.path.join(env["CHVM_STATE_DIR"], "images")
        if os.path.exists(images):
            os.symlink(os.path.realpath(images), state / "images")
        e = dict(env, CHVM_STATE_DIR=str(state))
        assert run_vm(e, ns).returncode == 0
        p = standby(e)
        print("disk full: exit %d %s" % (p.returncode, p.stderr.strip()))
        one_line_error(p, "disk full")
        assert "No space left on device" in p.stderr or "space" in p.stderr.lower(), p.stderr
        assert truthful(e, "disk full") == "running"
        vmdir = state / "vms" / NAME
        assert not [d for d in os.listdir(vmdir) if d.startswith("snapshot")], os.listdir(vmdir)
        rm_leaves_nothing(e, "disk full")
    finally:
        chvm(dict(env, CHVM_STATE_DIR=str(small / "state")), "rm", "-f", NAME, timeout=60,
             check=False)
        subprocess.run(["umount", "-l", str(small)], capture_output=True)
