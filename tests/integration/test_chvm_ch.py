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
import re
import signal
import subprocess
import sys

import pytest

from chvmtest import ch_micro, cli, doubles, prereq
from chvmtest.cli import chvm, ps
from chvmtest.net import Netns, ns_links

MEMORY = "512M"


def tap_ipv4(ns, tap):
    """IPv4 addresses on the tap: a bridge port must have none (CH v48 gives
    the tap 192.168.249.1 unless chvm removes it)."""
    out = subprocess.run(["ip", "-netns", ns, "-4", "-o", "addr", "show", "dev", tap],
                         capture_output=True, text=True, check=True).stdout
    return out.split()


def api(env, path, name="chtest"):
    """GET on the VM's CH API socket (what CH itself says it runs)."""
    sock = os.path.join(cli.vm_dir(env, name), "api.sock")
    p = subprocess.run(["curl", "-sS", "--max-time", "10", "--unix-socket", sock,
                        "http://localhost/api/v1/" + path],
                       capture_output=True, text=True, timeout=20)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def test_ch_runs_the_real_vm_config_standby_restore_rm(ch):
    env, ns, major = ch
    chvm(env, "run", "--backend", "ch", "--netns", ns, "--memory", MEMORY, "--no-wait",
         "--name", "chtest")
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

    p = chvm(env, "--json", "standby", "--no-quiesce", "chtest", check=False)
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

    chvm(env, "--json", "restore", "--no-agent", "chtest")
    vm = ps(env)["chtest"]
    assert vm["status"] == "running" and vm["pid"] != pid
    info = api(env, "vm.info")
    assert info["state"] == "Running"
    assert info["config"]["net"][0]["tap"] == tap
    assert tap_ipv4(ns, tap) == []

    # With the agent (which the micro guest lacks), standby's and restore's
    # --timeout bound the wait for it: the error says how long it waited,
    # and a standby that cannot quiesce leaves the VM running.
    p = chvm(env, "standby", "--timeout", "2", "chtest", timeout=60, check=False)
    assert p.returncode == 1 and "quiesce" in p.stderr, p.stderr
    waited = [int(w) for w in re.findall(r"did not answer in (\d+) ms", p.stderr)]
    assert waited and max(waited) <= 2000, p.stderr
    assert ps(env)["chtest"]["status"] == "running"
    chvm(env, "standby", "--no-quiesce", "chtest")
    p = chvm(env, "restore", "--timeout", "2", "chtest", timeout=60, check=False)
    assert p.returncode == 1 and "thaw" in p.stderr, p.stderr
    waited = [int(w) for w in re.findall(r"did not answer in (\d+) ms", p.stderr)]
    assert waited and max(waited) <= 2000, p.stderr
    vm = ps(env)["chtest"]
    assert vm["status"] == "running", vm

    new_pid = vm["pid"]
    chvm(env, "rm", "-f", "chtest")
    assert not ch_micro.alive(new_pid)
    assert "chtest" not in ps(env)
    assert not os.path.exists(vmdir)
    assert tap not in ns_links(ns)
    nft = subprocess.run(["ip", "netns", "exec", ns, "nft", "list", "tables"],
                         capture_output=True, text=True).stdout
    assert "chvm" not in nft


def test_ch_vmm_killed_is_reported_dead(ch):
    env, ns, _ = ch
    chvm(env, "run", "--backend", "ch", "--netns", ns, "--memory", MEMORY, "--no-wait",
         "--name", "chtest")
    pid = ps(env)["chtest"]["pid"]
    os.kill(pid, signal.SIGKILL)
    ch_micro.wait_for(lambda: not ch_micro.alive(pid), 10, "VMM %d to die" % pid)
    assert ps(env)["chtest"]["status"] == "dead"
    p = chvm(env, "standby", "--no-quiesce", "chtest", timeout=60, check=False)
    assert p.returncode != 0 and p.stderr.strip(), "standby of a dead VM must fail with a message"
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr


def subuid_range(user="chvm-vmm"):
    with open("/etc/subuid") as f:
        for line in f:
            name, first, count = line.strip().split(":")
            if name == user:
                return range(int(first), int(first) + int(count))
    raise AssertionError("no /etc/subuid range for " + user)


def test_ch_vmm_runs_unprivileged_in_its_own_dir(ch):
    """Each VMM runs as a uid of its own from chvm-vmm's range (not root),
    with no capabilities, NoNewPrivs, none of chvm's environment, Landlock
    on, and a VM dir that no other VMM's uid can open."""
    env, ns, _ = ch
    names = ("chtest", "chtest2")
    try:
        for name in names:
            chvm(env, "run", "--backend", "ch", "--netns", ns, "--memory", "256M",
                 "--no-wait", "--name", name)
        vms = ps(env)
        uids = []
        for name in names:
            pid = vms[name]["pid"]
            vmdir = os.path.join(env["CHVM_STATE_DIR"], "vms", name)
            # uid, gid, CapEff, CapPrm, NoNewPrivs, the VM dir's owner and mode.
            uid = cli.assert_vmm_unprivileged(pid, vmdir)
            st = cli.proc_status(pid)
            assert uid in subuid_range(), (uid, "not from chvm-vmm's /etc/subuid range")
            assert int(st["CapBnd"], 16) == 0 and int(st["CapAmb"], 16) == 0
            kvm_gid = os.stat("/dev/kvm").st_gid
            assert set(st["Groups"].split()) <= {str(kvm_gid)}, st["Groups"]
            with open("/proc/%d/environ" % pid, "rb") as f:
                environ = f.read().split(b"\0")
            assert not [e for e in environ if e.startswith(b"CHVM_TEST_MARKER=")]
            assert not [e for e in environ if e.startswith(b"CHVM_STATE_DIR=")]
            assert os.stat(os.path.join(vmdir, "api.sock")).st_uid == uid
            assert api(env, "vm.info", name)["config"].get("landlock_enable") is True
            uids.append(uid)
        assert uids[0] != uids[1], "two VMs share a VMM uid"
        # As VM 1's VMM uid, VM 2's directory cannot be opened, its own can.
        for me, other in ((0, 1), (1, 0)):
            probe = "import os,sys; os.listdir(sys.argv[1])"
            own = os.path.join(env["CHVM_STATE_DIR"], "vms", names[me])
            theirs = os.path.join(env["CHVM_STATE_DIR"], "vms", names[other])
            asuid = ["setpriv", "--reuid", str(uids[me]), "--regid", str(uids[me]),
                     "--clear-groups", "--", sys.executable, "-c", probe]
            assert subprocess.run(asuid + [own], capture_output=True).returncode == 0
            p = subprocess.run(asuid + [theirs], capture_output=True, text=True)
            assert p.returncode != 0 and "Permission denied" in p.stderr, p.stderr
    finally:
        chvm(env, "rm", "-f", "chtest2", timeout=60, check=False)


def sleeper_as(uid):
    """A process of the VMM's uid that a compromised VMM could leave: its
    own session, no parent of the VM's."""
    return subprocess.Popen(["setpriv", "--reuid", str(uid), "--regid", str(uid),
                             "--clear-groups", "--", "setsid", "sleep", "1000"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def uid_alive(uid):
    """Whether a live (not zombie) process has uid as its real uid."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            st = cli.proc_status(int(pid))
        except (FileNotFoundError, ProcessLookupError):
            continue
        if st.get("State", "").startswith("Z"):
            continue
        if int(st["Uid"].split()[0]) == uid:
            return True
    return False


def test_ch_vmm_uid_processes_end_with_the_vm(ch):
    """Nothing of a VMM's uid outlives its VM: a process of that uid left
    running (a compromised VMM's setsid'd child) is gone after `chvm stop`
    and after `chvm rm`, and while one lives no new VM gets that uid."""
    env, ns, _ = ch
    try:
        chvm(env, "run", "--backend", "ch", "--netns", ns, "--memory", "256M",
             "--no-wait", "--name", "chuid")
        uid = cli.inspect(env, "chuid")["spec"]["vmm_uid"]
        assert uid != 0
        left = sleeper_as(uid)
        assert uid_alive(uid)
        chvm(env, "stop", "chuid", timeout=60)
        left.wait(timeout=10)
        assert not uid_alive(uid), "a process of the VMM's uid outlived chvm stop"

        left = sleeper_as(uid)
        chvm(env, "rm", "chuid", timeout=60)
        left.wait(timeout=10)
        assert not uid_alive(uid), "a process of the VMM's uid outlived chvm rm"

        # The uid is free in vm.json now, but a process of it still lives.
        left = sleeper_as(uid)
        chvm(env, "run", "--backend", "ch", "--netns", ns, "--memory", "256M",
             "--no-wait", "--name", "chuid")
        assert cli.inspect(env, "chuid")["spec"]["vmm_uid"] != uid
        left.kill()
        left.wait(timeout=10)
    finally:
        chvm(env, "rm", "-f", "chuid", timeout=60, check=False)


def test_ch_missing_vmm_user_is_refused(ch):
    """Without its VMM user chvm refuses to start a VMM, saying how to make
    it; CHVM_VMM_USER=root is the one way to run it as root."""
    env, ns, _ = ch
    env = dict(env, CHVM_VMM_USER="chvm-no-such-user")
    p = chvm(env, "run", "--backend", "ch", "--netns", ns, "--memory", "256M", "--no-wait",
             "--name", "chtest", check=False)
    assert p.returncode != 0
    assert "VMM user 'chvm-no-such-user' does not exist" in p.stderr, p.stderr
    assert "vmm-user.sh" in p.stderr and "CHVM_VMM_USER=root" in p.stderr, p.stderr
    assert "chtest" not in ps(env)


@pytest.fixture
def slow_double(tmp_path):
    """(env, ns, record file, pids to kill) for chvm with the declared fake
    cloud-hypervisor (chvmtest.doubles) answering each call after 1 s (so a
    signal lands while chvm waits on it), in a network namespace of the
    test's own."""
    why = prereq.missing(*prereq.CHVM_CH)
    if why:
        pytest.skip("chvm with cloud-hypervisor: missing " + why)
    record = tmp_path / "requests.jsonl"
    fake = doubles.fake_cloud_hypervisor(tmp_path, "--mode", "slow", "--delay", "1",
                                         "--record", record)
    with Netns() as ns:
        # The double runs as root (see chvmtest.doubles).
        env = cli.state_env(tmp_path, CLOUD_HYPERVISOR=fake, CHVM_VMM_USER="root")
        pids = []
        try:
            yield env, ns, record, pids
        finally:
            for pid in pids:
                if ch_micro.alive(pid):
                    os.kill(pid, signal.SIGKILL)
            chvm(env, "rm", "-f", "chint", timeout=60, check=False)


def interrupt_when(argv, env, pred):
    """Runs chvm argv, sends it SIGINT once pred() holds, returns its stderr
    after checking that the signal ended it."""
    # SIGINT as a terminal gives it: a test run in the background of a
    # shell without job control inherits it ignored, and so would chvm.
    p = subprocess.Popen([cli.CHVM, *argv], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        ch_micro.wait_for(lambda: pred() or p.poll() is not None, 120, "chvm to get there")
        assert p.poll() is None, p.communicate()[1]
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == -signal.SIGINT, err
    return err


def test_ch_run_interrupted_leaves_no_vmm(slow_double):
    """A ^C while `chvm run` talks to the VMM it just started must leave no
    VMM, VM directory or tap: the VMM runs in its own session, so chvm dying
    there would orphan it with no record naming it."""
    env, ns, _, pids = slow_double
    vmdir = os.path.join(env["CHVM_STATE_DIR"], "vms", "chint")
    pidfile = os.path.join(vmdir, "vmm.pid")  # written once the VMM answered a first call
    interrupt_when(["run", "--backend", "ch", "--netns", ns, "--no-wait", "--name", "chint"], env,
                   lambda: os.path.exists(pidfile) and pids.append(int(open(pidfile).read())) is None)
    ch_micro.wait_for(lambda: not ch_micro.alive(pids[0]), 10, "VMM %d to be gone" % pids[0])
    assert not os.path.exists(vmdir)
    assert not [link for link in ns_links(ns) if link.startswith("chvm-t")]


def test_ch_standby_interrupted_resumes_the_vm(slow_double):
    """A ^C while `chvm standby` has the VM paused must not leave it paused:
    the snapshot (which the double refuses) is seen through and the VM
    resumed before chvm ends."""
    env, ns, record, pids = slow_double
    chvm(env, "run", "--backend", "ch", "--netns", ns, "--no-wait", "--name", "chint")
    pids.append(ps(env)["chint"]["pid"])
    record.write_text("")

    def paths():
        return [json.loads(line)["path"].rsplit("/", 1)[1]
                for line in record.read_text().splitlines()]

    interrupt_when(["standby", "--no-quiesce", "chint"], env, lambda: "vm.pause" in paths())
    assert paths()[-1] == "vm.resume", paths()


def test_ch_restore_interrupted_records_the_new_vmm(slow_double):
    """A ^C while `chvm restore` waits on the VMM it started must not leave
    that VMM unrecorded (then neither stop nor rm would end it): the record
    names it before chvm ends.  The standby state is written by hand, as the
    double refuses snapshots."""
    env, ns, record, pids = slow_double
    chvm(env, "run", "--backend", "ch", "--netns", ns, "--no-wait", "--name", "chint")
    pids.append(ps(env)["chint"]["pid"])
    os.kill(pids[0], signal.SIGKILL)
    ch_micro.wait_for(lambda: not ch_micro.alive(pids[0]), 10, "VMM %d to die" % pids[0])
    vmdir = os.path.join(env["CHVM_STATE_DIR"], "vms", "chint")
    with open(os.path.join(vmdir, "vm.json")) as f:
        rec = json.load(f)
    rec["state"] = "standby"
    with open(os.path.join(vmdir, "vm.json"), "w") as f:
        json.dump(rec, f)
    os.mkdir(os.path.join(vmdir, "snapshot"))
    for name in ("config.json", "state.json", "memory-ranges"):  # what chvm checks before a restore
        with open(os.path.join(vmdir, "snapshot", name), "w") as f:
            f.write("{}")
    record.write_text("")

    def restoring():
        return any(json.loads(line)["path"].endswith("/vm.restore")
                   for line in record.read_text().splitlines())

    interrupt_when(["restore", "--no-agent", "chint"], env, restoring)
    vm = ps(env)["chint"]
    pids.append(vm["pid"])
    assert vm["status"] == "running", vm


FLOOD_ELF = os.path.join(os.path.dirname(ch_micro.MICRO_ELF), "micro-flood.elf")
CONSOLE_MAX = 64 << 10


def console_files(vmdir):
    return {n: os.path.getsize(os.path.join(vmdir, n))
            for n in ("console.log", "console.log.1") if os.path.exists(os.path.join(vmdir, n))}


def logger_pid(vmdir):
    with open(os.path.join(vmdir, "console-log.pid")) as f:
        return int(f.read())


def counted(vmdir):
    """The last "count N" of the console, 0 before the first."""
    with open(os.path.join(vmdir, "console.log"), errors="replace") as f:
        found = ch_micro.COUNT_RE.findall(f.read())
    return int(found[-1]) if found else 0


def test_ch_console_is_bounded_across_flood_rotation_restore_rm(ch):
    """A guest writing more to its serial port than CHVM_CONSOLE_MAX (the
    micro guest's flood build: 6000 lines, ~570 KiB, then an "ERROR
    init[1]:" line, then "count N" lines) costs the host at most
    2 x CHVM_CONSOLE_MAX (console.log and console.log.1), keeps the last
    lines, and `chvm logs` shows them; `chvm run`, which reads the console
    for guest-init's lines, still finds the one after the flood.  The
    logger is stopped by standby, started again by restore, and gone after
    rm."""
    env, ns, major = ch
    if not os.path.exists(FLOOD_ELF):
        pytest.skip("%s missing (make micro-guest)" % FLOOD_ELF)
    env = dict(env, CHVM_CONSOLE_MAX=str(CONSOLE_MAX))
    vmdir = os.path.join(env["CHVM_STATE_DIR"], "vms", "chtest")
    p = chvm(env, "run", "--backend", "ch", "--netns", ns, "--memory", "256M", "--kernel",
             FLOOD_ELF, "--timeout", "240", "--name", "chtest", check=False)
    assert p.returncode == 1 and "micro flood done lines=6000" in p.stderr, p.stderr
    ch_micro.wait_for(lambda: counted(vmdir) >= 3, 120, "count lines after the flood")
    sizes = console_files(vmdir)
    assert sum(sizes.values()) <= 2 * CONSOLE_MAX, sizes
    assert all(s <= CONSOLE_MAX for s in sizes.values()), sizes
    assert "console.log.1" in sizes, sizes  # rotated at least once

    p = chvm(env, "logs", "chtest")
    assert len(p.stdout) <= 2 * CONSOLE_MAX
    tail = p.stdout.splitlines()
    flood = [line for line in tail if line.startswith("flood ")]
    assert flood and flood[-1].startswith("flood 6000 "), tail[-5:]
    assert "ERROR init[1]: micro flood done lines=6000" in tail
    assert ch_micro.COUNT_RE.search(p.stdout)
    # -f follows console.log as it grows, until the VMM and logger are gone.
    f = subprocess.Popen([cli.CHVM, "logs", "-f", "chtest"], env=env, stdout=subprocess.PIPE,
                         text=True)
    try:
        want = counted(vmdir) + 2
        seen = ch_micro.wait_for(lambda: f.stdout.readline().strip() == "count %d" % want, 60,
                                 "chvm logs -f to show count %d" % want)
        assert seen
    finally:
        f.kill()
        f.wait()

    logger = logger_pid(vmdir)
    assert ch_micro.alive(logger)
    p = chvm(env, "standby", "--no-quiesce", "chtest", check=False)
    if major >= 49 and p.returncode != 0 and "GetNestedState" in p.stderr:
        logger2 = None  # this host's KVM cannot snapshot with v49+ (see above)
    else:
        assert p.returncode == 0, p.stderr
        assert not ch_micro.alive(logger), "standby left the console logger"
        before = counted(vmdir)
        chvm(env, "restore", "--no-agent", "chtest")
        logger2 = logger_pid(vmdir)
        assert logger2 != logger and ch_micro.alive(logger2)
        ch_micro.wait_for(lambda: counted(vmdir) > before + 2, 60, "console lines after restore")
        assert sum(console_files(vmdir).values()) <= 2 * CONSOLE_MAX

    chvm(env, "rm", "-f", "chtest")
    for pid in (logger, logger2):
        if pid:
            ch_micro.wait_for(lambda: not ch_micro.alive(pid), 10, "logger %d to be gone" % pid)
    assert not os.path.exists(vmdir)


def cgroup2_root():
    """The first cgroup2 mount point (what chvm uses), or None."""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            pre, _, post = line.partition(" - ")
            if post.split()[0] == "cgroup2":
                return pre.split()[4].replace("\\040", " ")
    return None


def cgroup_procs(path):
    with open(os.path.join(path, "cgroup.procs")) as f:
        return [int(p) for p in f.read().split()]


def sleeper_in(path):
    """A process of root's, in a session of its own, moved into the VM's
    cgroup: no kill by the VMM's uid reaches it, only the cgroup's."""
    p = subprocess.Popen(["setsid", "sleep", "1000"], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(os.path.join(path, "cgroup.procs"), "w") as f:
        f.write(str(p.pid))
    assert p.pid in cgroup_procs(path)
    return p


def assert_cgroup_killed(env, name, path, left, what):
    assert left.wait(timeout=10) == -signal.SIGKILL, "a process in the VM's cgroup outlived " + what
    assert not os.path.exists(path), "the VM's cgroup outlived " + what


def test_ch_vm_cgroup_is_killed_whole(ch):
    """Each VM's VMM and console logger run in a cgroup v2 of the VM's own
    under chvm.slice, with --cpus, memory (guest RAM + 256 MiB for CH) and
    pids limits where the controllers exist; stop, standby and rm kill
    everything in it (a root process moved in, which no kill by uid
    reaches, included) and remove it."""
    env, ns, major = ch
    root = cgroup2_root()
    if root is None:
        pytest.skip("no cgroup2 hierarchy mounted here")
    with open(os.path.join(root, "cgroup.controllers")) as f:
        controllers = f.read().split()
    run = ["run", "--backend", "ch", "--netns", ns, "--cpus", "1", "--memory", "256M",
           "--no-wait", "--name", "chcg"]
    try:
        chvm(env, *run)
        cg = cli.inspect(env, "chcg")["cgroup"]
        path = cg["path"]
        assert path and path.startswith(os.path.join(root, "chvm.slice", "chcg-")), cg
        vmdir = cli.vm_dir(env, "chcg")
        procs = cgroup_procs(path)
        assert ps(env)["chcg"]["pid"] in procs and logger_pid(vmdir) in procs, procs
        want = {"cpu": ("cpu.max", "100000 100000"), "memory": ("memory.max", str(512 << 20)),
                "pids": ("pids.max", "1024")}
        for ctl, (key, value) in want.items():
            assert cg[key] == (value if ctl in controllers else None), (ctl, cg)
        left = sleeper_in(path)
        chvm(env, "stop", "chcg", timeout=60)
        assert_cgroup_killed(env, "chcg", path, left, "chvm stop")
        assert cli.inspect(env, "chcg")["cgroup"] == {"path": None, "why": "no VMM running"}
        chvm(env, "rm", "chcg", timeout=60)

        chvm(env, *run)
        path = cli.inspect(env, "chcg")["cgroup"]["path"]
        left = sleeper_in(path)
        p = chvm(env, "standby", "--no-quiesce", "chcg", timeout=120, check=False)
        if p.returncode == 0:
            assert_cgroup_killed(env, "chcg", path, left, "chvm standby")
            chvm(env, "restore", "--no-agent", "chcg", timeout=120)
            assert cli.inspect(env, "chcg")["cgroup"]["path"] == path
            assert ps(env)["chcg"]["pid"] in cgroup_procs(path)
            left = sleeper_in(path)
        else:
            # CH v49+ cannot snapshot on kvm_pvm (see the first test).
            assert major >= 49 and "GetNestedState" in p.stderr, p.stderr
        chvm(env, "rm", "-f", "chcg", timeout=60)
        assert_cgroup_killed(env, "chcg", path, left, "chvm rm")
    finally:
        chvm(env, "rm", "-f", "chcg", timeout=60, check=False)
