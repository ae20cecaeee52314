# SPDX-License-Identifier: Apache-2.0
"""The chvm command line as the tests drive it: the one runner, `ps` and
`inspect`, a private state dir per test, the agent's argv, and the VMM's
privilege checks."""
import json
import os
import pathlib
import subprocess
import time

from . import paths

CHVM = paths.CHVM
# chvm run of the stand-in image under QEMU/TCG on two shared cores.
BOOT_TIMEOUT = 600
TIMEOUT = 300  # any other command


# The test hooks: a test that sets one runs paths.CHVM_HOOKS, the build
# that reads them (the supervisor it starts, and the supervisor's children,
# are that build too: they are /proc/self/exe).
HOOK_VARS = ("CHVM_SUPERVISOR_EXEC", "CHVM_FAULT")


def binary(env):
    """build/bin/chvm, or build/tests/chvm-hooks when env sets a hook."""
    if env is None or not any(env.get(v) for v in HOOK_VARS):
        return CHVM
    assert os.access(paths.CHVM_HOOKS, os.X_OK), "%s: make %s" % (
        paths.rel(paths.CHVM_HOOKS), paths.rel(paths.CHVM_HOOKS))
    return paths.CHVM_HOOKS


def chvm(env, *args, timeout=TIMEOUT, check=True, input=None):
    """Runs build/bin/chvm ARGS with env (a state dir's, see state_env) and
    input (text) on its stdin; returns the CompletedProcess (text).  check:
    AssertionError with the exit code and output unless it exits 0.  With a
    test hook in env, the hooks build (binary)."""
    p = subprocess.run([binary(env), *args], env=env, capture_output=True, text=True,
                       timeout=timeout, input=input)
    if check and p.returncode != 0:
        raise AssertionError("chvm %s: rc=%d\n%s%s" % (" ".join(args), p.returncode, p.stdout,
                                                       p.stderr))
    return p


def ps(env):
    """`chvm ps -a --json` as {name: row}."""
    return {v["name"]: v for v in json.loads(chvm(env, "ps", "-a", "--json").stdout)}


def ps_row(env, name):
    """VM name's row of `chvm ps -a --json`."""
    return ps(env)[name]


def inspect(env, name):
    """`chvm inspect NAME`: the VM's record (spec, runtime, supervisor)."""
    return json.loads(chvm(env, "inspect", name).stdout)[0]


def supervisor_status(env, name):
    """What `chvm inspect` says of the VM's supervisor."""
    return inspect(env, name)["supervisor"]


def wait_status(env, name, want, timeout):
    """Waits until ps shows VM name in status want."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = ps_row(env, name)["status"]
        if st == want:
            return
        time.sleep(0.5)
    raise AssertionError("VM did not become %s in %d s (ps: %s)" % (want, timeout, st))


def vmm_reachable(path):
    """The VMM user (chvm-vmm, made here by scripts/vmm-user.sh as `make
    install` would) must reach the state dir: pytest's own tmp dirs are
    root-only, so each directory above path gets o+x (search, not list)."""
    subprocess.run([paths.VMM_USER_SCRIPT], check=True, capture_output=True)
    p = os.path.abspath(str(path))
    while p != "/":
        mode = os.stat(p).st_mode
        if not mode & 0o001:
            os.chmod(p, (mode & 0o7777) | 0o001)
        p = os.path.dirname(p)
    return path


def state_env(parent, image_cache=True, vmm_user=True, **extra):
    """A private chvm state dir, PARENT/state, and the environment that
    names it (CHVM_DATA_DIR dropped, extra added).  image_cache: its images/
    links to the stand-in image `make setup` imported (build/state/images)
    rather than importing 900 MB again; vmm_user: the VMM user can reach
    it (vmm_reachable)."""
    parent = pathlib.Path(parent)
    if vmm_user:
        vmm_reachable(parent)
    state = parent / "state"
    state.mkdir()
    if image_cache and os.path.isdir(paths.IMAGE_CACHE):
        os.symlink(paths.IMAGE_CACHE, state / "images")
    env = dict(os.environ, CHVM_STATE_DIR=str(state), **extra)
    env.pop("CHVM_DATA_DIR", None)
    return env


def vm_dir(env, name):
    """The VM's directory in env's state dir."""
    return os.path.join(env["CHVM_STATE_DIR"], "vms", name)


def agent_argv(env, name):
    """chvm agent argv for the VM's agent: QEMU user-net's forwarded port on
    127.0.0.1, or the guest's own address with a tap (in its namespace)."""
    insp = inspect(env, name)
    if insp["spec"]["address"]:
        target = "%s:%d" % (insp["spec"]["address"].split("/")[0], insp["spec"]["agent_tcp_port"])
    else:
        target = "127.0.0.1:%d" % insp["runtime"]["agent_host_port"]
    return [CHVM, "agent", "--tcp", target, "--token", insp["spec"]["agent_token"],
            "--timeout", "30000"]


def proc_status(pid):
    """/proc/PID/status as {field: value}."""
    with open("/proc/%d/status" % pid) as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def assert_vmm_unprivileged(pid, vmdir):
    """The VMM (QEMU or CH) runs as the VM's own uid (vmmuser.c): uid and
    gid that number, no capabilities, NoNewPrivs, and a VM dir
    root:<uid> 01770.  Returns the uid."""
    with open("/proc/%d/status" % pid) as f:
        st = dict(line.split(":", 1) for line in f.read().splitlines() if ":" in line)
    uid = int(st["Uid"].split()[0])
    assert uid != 0, "the VMM (pid %d) runs as root" % pid
    assert set(st["Uid"].split()) == {str(uid)} and set(st["Gid"].split()) == {str(uid)}, st
    assert int(st["CapEff"], 16) == 0 and int(st["CapPrm"], 16) == 0, st
    assert st["NoNewPrivs"].strip() == "1", st
    d = os.stat(vmdir)
    assert (d.st_uid, d.st_gid, d.st_mode & 0o7777) == (0, uid, 0o1770), oct(d.st_mode)
    return uid


class Vm(dict):
    """A VM a test made: a dict holding at least "name" and "env" (its
    state dir's environment), with chvm's views of it."""

    def row(self):
        """Its row of `chvm ps -a --json`."""
        return ps_row(self["env"], self["name"])

    def supervisor(self):
        """What `chvm inspect` says of its supervisor."""
        return supervisor_status(self["env"], self["name"])

    def wait_status(self, want, timeout):
        """Waits until ps shows it in status want."""
        wait_status(self["env"], self["name"], want, timeout)
