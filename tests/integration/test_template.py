# SPDX-License-Identifier: Apache-2.0
"""Templates and clones (chvm template create, chvm run --from) with the real
Cloud Hypervisor and the micro guest built to touch 256 MiB at boot
(micro-touch256.elf; it prints "count N" lines, the counter in guest RAM),
for every CH binary given (PATH or $CLOUD_HYPERVISOR, plus
$CHVM_TEST_CH_EXTRA).  CH v49+ cannot snapshot on a host whose KVM is
kvm_pvm: template create then fails cleanly and the test skips.

What it shows: the template's guest RAM is one file that clones map
copy-on-write (MAP_PRIVATE, "memory": "cow"); a clone's counter carries on
from the template's; a clone stands by and restores like any VM; the
template's files hash the same after its clones ran, wrote memory and were
stood by; rm of a template in use refuses, naming the VM; 10 clones cost the
host about one template, not ten."""

import ctypes
import fcntl
import hashlib
import json
import os
import re
import socket
import subprocess
import threading
import time

import pytest

from chvmtest import ch_micro, cli, net
from chvmtest.cli import chvm, ps

TOUCH_ELF = os.path.join(os.path.dirname(ch_micro.MICRO_ELF), "micro-touch256.elf")
TOUCHED = 256 << 20


def create(env, ns, name, memory="512M", check=True):
    if not os.path.exists(TOUCH_ELF):
        pytest.skip("%s missing (make test-prereqs)" % TOUCH_ELF)
    p = chvm(env, "--json", "template", "create", name, "--backend", "ch", "--netns", ns,
             "--memory", memory, "--kernel", TOUCH_ELF, "--no-wait", "--no-quiesce",
             "--settle-timeout", "120", timeout=300, check=False)
    if p.returncode != 0 and "GetNestedState" in p.stderr:
        pytest.skip("this host's KVM cannot snapshot with this cloud-hypervisor (kvm_pvm)")
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def tdir(env, name):
    return os.path.join(env["CHVM_STATE_DIR"], "templates", name)


def hashes(d):
    out = {}
    for base, _, files in os.walk(d):
        for f in files:
            path = os.path.join(base, f)
            with open(path, "rb") as fh:
                out[os.path.relpath(path, d)] = hashlib.sha256(fh.read()).hexdigest()
    return out


def counts(path):
    try:
        with open(path, errors="replace") as f:
            return [int(c) for c in ch_micro.COUNT_RE.findall(f.read())]
    except FileNotFoundError:
        return []


def vm_counts(env, name):
    return counts(os.path.join(cli.vm_dir(env, name), "console.log"))


def rollup(pid):
    """/proc/PID/smaps_rollup in bytes."""
    out = {}
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            m = re.match(r"^(\w+):\s+(\d+) kB", line)
            if m:
                out[m.group(1)] = int(m.group(2)) << 10
    return out


def maps_private(pid, path):
    with open("/proc/%d/maps" % pid) as f:
        return [line for line in f if line.rstrip().endswith(path) and " rw-p " in line]


def test_template_clone_cow_standby_restore_and_rm_refused(ch):
    env, ns, _ = ch
    made = create(env, ns, "tpl")
    assert made["guest_ram"] == 512 << 20 and made["memory_bytes"] >= TOUCHED, made
    d = tdir(env, "tpl")
    assert {t["name"] for t in json.loads(chvm(env, "--json", "template", "ls").stdout)} == {"tpl"}
    info = json.loads(chvm(env, "template", "inspect", "tpl").stdout)
    assert info["vmm_version"] and len(info["kernel_sha256"]) == 64 and info["vms"] == ""
    assert not [n for n in os.listdir(os.path.dirname(d)) if n.startswith(".")]
    assert not os.path.exists(os.path.join(d, "snapshot", "memory-ranges")), \
        "a shared file-backed zone's snapshot should hold no memory copy"
    for f in ("manifest.json", "snapshot/config.json", "snapshot/state.json", "config.img"):
        assert os.stat(os.path.join(d, f)).st_mode & 0o777 == 0o444, f
    # Stock CH opens a zone's file read-write even to map it privately:
    # root's, writable by the template's group (its clones' VMMs) only.
    st = os.stat(os.path.join(d, "memory"))
    assert st.st_uid == 0 and st.st_mode & 0o777 in (0o660, 0o644), oct(st.st_mode)
    before = hashes(d)
    last = counts(os.path.join(d, "console.log"))[-1]
    assert "tpl" not in [n for n in ps(env)], "the template's VM must be gone"

    p = chvm(env, "--json", "run", "--from", "tpl", "--name", "c1", "--no-agent", timeout=120)
    c1 = json.loads(p.stdout)
    assert c1["memory"] == "cow", c1
    assert c1["netns"] == "chvm-c1"
    vm = ps(env)["c1"]
    assert vm["status"] == "running"
    assert maps_private(vm["pid"], os.path.join(d, "memory")), "template memory not mapped private"
    got = ch_micro.wait_for(lambda: vm_counts(env, "c1"), 60, "the clone's count lines")
    assert last < got[0] <= last + 5, (last, got[:3])

    # --memory copy: the clone's own copy of the memory, the same guest.
    c2 = json.loads(chvm(env, "--json", "run", "--from", "tpl", "--name", "c2", "--memory", "copy",
                         "--no-agent", timeout=120).stdout)
    assert c2["memory"] == "copy" and "asked for" in c2["memory_why"], c2
    own = os.path.join(cli.vm_dir(env, "c2"), "memory")
    assert os.stat(own).st_blocks * 512 >= TOUCHED
    assert not maps_private(ps(env)["c2"]["pid"], os.path.join(d, "memory"))
    got2 = ch_micro.wait_for(lambda: vm_counts(env, "c2"), 60, "the copy clone's count lines")
    assert last < got2[0] <= last + 5, (last, got2[:3])
    chvm(env, "rm", "-f", "c2", timeout=60)

    p = chvm(env, "template", "rm", "tpl", check=False)
    assert p.returncode != 0 and "in use" in p.stderr and "c1" in p.stderr, p.stderr

    # The clone stands by (its own snapshot) and comes back where it was.
    chvm(env, "standby", "--no-quiesce", "c1", timeout=120)
    assert ps(env)["c1"]["status"] == "standby"
    stood = vm_counts(env, "c1")[-1]
    # Its memory-ranges lie over the template's file mapped copy-on-write,
    # which userfaultfd cannot serve: ondemand is refused before any VMM
    # starts (CH v53 failed the restore, and a woken clone answered 503).
    p = chvm(env, "restore", "--no-agent", "--memory-restore", "ondemand", "c1", check=False)
    assert p.returncode != 0 and "userfaultfd cannot serve" in p.stderr, p.stderr
    assert ps(env)["c1"]["status"] == "standby"
    r = json.loads(chvm(env, "--json", "restore", "--no-agent", "c1", timeout=120).stdout)
    assert r["memory_restore"] == "copy", r
    ch_micro.wait_for(lambda: vm_counts(env, "c1")[-1] > stood + 2, 60, "counts after restore")
    assert stood < [c for c in vm_counts(env, "c1") if c > stood][0] <= stood + 3

    chvm(env, "rm", "-f", "c1", timeout=60)
    assert not os.path.exists("/run/netns/chvm-c1")
    assert hashes(d) == before, "the template's files changed"
    chvm(env, "template", "rm", "tpl")
    assert not os.path.exists(d)


def test_ten_clones_cost_about_one_template(ch):
    """10 idle clones of a 1 GiB template: the VMMs' PSS plus any file a
    clone has to itself stay under the template plus 25% of 10 x guest RAM;
    --cdp ADDR:PORT gives the Nth clone's endpoint PORT+N-1."""
    env, ns, _ = ch
    made = create(env, ns, "big", memory="1G")
    names = ["f-%d" % i for i in range(1, 11)]
    port = net.free_ports(socket.SOCK_STREAM, 10)
    try:
        p = chvm(env, "--json", "run", "--from", "big", "--count", "10", "--name", "f",
                 "--no-agent", "--cdp", "127.0.0.1:%d" % port, timeout=300)
        clones = json.loads(p.stdout)
        assert sorted(c["name"] for c in clones) == sorted(names)
        for c in clones:
            i = int(c["name"].rsplit("-", 1)[1])
            assert c["endpoint"].startswith("http://127.0.0.1:%d/" % (port + i - 1)), c
        assert {c["memory"] for c in clones} == {"cow"}, clones
        vms = ps(env)
        for n in names:
            ch_micro.wait_for(lambda: vm_counts(env, n), 60, "count lines of " + n)
        pss = sum(rollup(vms[n]["pid"])["Pss"] for n in names)
        own = sum(os.stat(os.path.join(cli.vm_dir(env, n), f)).st_blocks * 512
                  for n in names for f in os.listdir(cli.vm_dir(env, n)) if f == "memory")
        budget = made["memory_bytes"] + 0.25 * 10 * (1 << 30)
        print("10 clones: PSS %d MiB, own files %d MiB, template %d MiB, budget %d MiB"
              % (pss >> 20, own >> 20, made["memory_bytes"] >> 20, int(budget) >> 20))
        assert pss + own <= budget
    finally:
        chvm(env, "rm", "-f", *names, timeout=120, check=False)
        chvm(env, "template", "rm", "big", timeout=60, check=False)


def test_clones_wait_behind_the_state_lock(ch):
    """run --from --count N --timeout S: each clone waits for the state lock
    (taken in turn by the others' making and restore) as long as S allows,
    not the 30 s of other commands; here another command holds it 35 s."""
    env, ns, _ = ch
    create(env, ns, "held", memory="256M")
    names = ["h-1", "h-2"]
    held = threading.Event()

    def hold():
        with open(os.path.join(env["CHVM_STATE_DIR"], "lock"), "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            held.set()
            time.sleep(35)

    t = threading.Thread(target=hold)
    t.start()
    try:
        held.wait(10)
        p = chvm(env, "--json", "run", "--from", "held", "--count", "2", "--name", "h",
                 "--no-agent", "--timeout", "120", timeout=300, check=False)
        assert p.returncode == 0, p.stderr
        assert sorted(c["name"] for c in json.loads(p.stdout)) == names
    finally:
        t.join()
        chvm(env, "rm", "-f", *names, timeout=120, check=False)
        chvm(env, "template", "rm", "held", timeout=60, check=False)


def cachestat(path):
    """(pages in the page cache, dirty, under writeback) of the file at
    path, by cachestat(2) (Linux 6.5+); None where the kernel lacks it."""
    class Range(ctypes.Structure):
        _fields_ = [("off", ctypes.c_uint64), ("len", ctypes.c_uint64)]

    class Stat(ctypes.Structure):
        _fields_ = [(f, ctypes.c_uint64) for f in
                    ("cache", "dirty", "writeback", "evicted", "recently_evicted")]

    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        r, st = Range(0, 0), Stat()
        if libc.syscall(451, fd, ctypes.byref(r), ctypes.byref(st), 0) != 0:
            return None
        return st.cache, st.dirty, st.writeback
    finally:
        os.close(fd)


def test_memory_file_vm_stands_by_durably_and_restores_in_place(ch):
    """A VM booted with --memory-file: its standby writes no memory-ranges
    (the file is its RAM) but leaves no dirty page of that file in the page
    cache (flushed before the snapshot is named); its restore maps the file
    again, shared, in place ("memory_restore": "file"), and refuses an
    explicit copy or ondemand; the guest's counter carries on."""
    env, ns, _ = ch
    if not os.path.exists(TOUCH_ELF):
        pytest.skip("%s missing (make test-prereqs)" % TOUCH_ELF)
    p = chvm(env, "run", "--backend", "ch", "--netns", ns, "--memory", "512M", "--kernel",
             TOUCH_ELF, "--no-wait", "--memory-file", "--name", "mf", timeout=120)
    try:
        d = cli.vm_dir(env, "mf")
        mem = os.path.join(d, "memory")
        ch_micro.wait_for(lambda: vm_counts(env, "mf"), 120, "the guest's count lines")
        p = chvm(env, "standby", "--no-quiesce", "mf", timeout=120, check=False)
        if p.returncode != 0 and "GetNestedState" in p.stderr:
            pytest.skip("this host's KVM cannot snapshot with this cloud-hypervisor (kvm_pvm)")
        assert p.returncode == 0, p.stderr
        assert not os.path.exists(os.path.join(d, "snapshot", "memory-ranges"))
        cs = cachestat(mem)
        if cs is None:
            print("cachestat(2) missing (Linux < 6.5): the memory file's flush is not checked")
        else:
            assert cs[1] == 0 and cs[2] == 0, "dirty/writeback pages of the memory file: %r" % (cs,)
        stood = vm_counts(env, "mf")[-1]
        for mode in ("copy", "ondemand"):
            p = chvm(env, "restore", "--no-agent", "--memory-restore", mode, "mf", check=False)
            assert p.returncode == 1 and "its memory zone's file" in p.stderr, p.stderr
        assert ps(env)["mf"]["status"] == "standby"
        r = json.loads(chvm(env, "--json", "restore", "--no-agent", "mf", timeout=120).stdout)
        assert r["memory_restore"] == "file" and "shared, in place" in r["memory_restore_reason"], r
        with open("/proc/%d/maps" % ps(env)["mf"]["pid"]) as f:
            assert [ln for ln in f if ln.rstrip().endswith(mem) and " rw-s " in ln], "not mapped shared"
        ch_micro.wait_for(lambda: vm_counts(env, "mf")[-1] > stood + 2, 60, "counts after restore")
        assert stood < [c for c in vm_counts(env, "mf") if c > stood][0] <= stood + 3
    finally:
        chvm(env, "rm", "-f", "mf", timeout=60, check=False)


def fake_template(env, tmp_path, name, vmm_version, kernel_sha=None):
    """A template directory as template create leaves it, with no VM behind
    it: enough for run --from to check it."""
    kernel = tmp_path / "vmlinuz"
    kernel.write_bytes(b"kernel")
    d = os.path.join(env["CHVM_STATE_DIR"], "templates", name)
    os.makedirs(os.path.join(d, "snapshot"))
    manifest = {
        "version": 1, "name": name, "backend": "cloud-hypervisor", "vmm_version": vmm_version,
        "kernel": str(kernel),
        "kernel_sha256": kernel_sha or hashlib.sha256(b"kernel").hexdigest(),
        "initrd": "", "initrd_sha256": "", "image": "x", "image_id": "", "rootfs": "/nonexistent",
        "source_dir": "/nonexistent/vms/t", "created": 1, "cpus": 1, "guest_ram": 1 << 30,
        "memory_bytes": 0, "memory": "file", "gid": 0}
    with open(os.path.join(d, "manifest.json"), "w") as f:
        json.dump(manifest, f)


def test_template_refusals_without_a_vm(tmp_path):
    """What run --from and template refuse before anything boots: a missing
    template, another CH version, a changed kernel; rm and inspect of a
    missing one; a bad --memory."""
    ch = next((b for b in ch_micro.ch_binaries() if b), None)
    if ch is None:
        pytest.skip("cloud-hypervisor not on PATH (or $CLOUD_HYPERVISOR, $CHVM_TEST_CH_EXTRA)")
    env = cli.state_env(tmp_path, CLOUD_HYPERVISOR=ch)
    assert json.loads(chvm(env, "--json", "template", "ls").stdout) == []
    p = chvm(env, "run", "--from", "nope", "--no-agent", check=False)
    assert p.returncode == 1 and "no template named 'nope'" in p.stderr, p.stderr
    for args in (("template", "rm", "nope"), ("template", "inspect", "nope")):
        p = chvm(env, *args, check=False)
        assert p.returncode == 1 and "no template" in p.stderr, p.stderr
    p = chvm(env, "run", "--from", "nope", "--memory", "lots", check=False)
    assert p.returncode == 2 and "--memory" in p.stderr, p.stderr
    p = chvm(env, "run", "--from", "nope", "--cdp", "localhost:9", check=False)
    assert p.returncode == 2 and "bad --cdp" in p.stderr and "IPv4" in p.stderr, p.stderr
    p = chvm(env, "run", "--from", "nope", "--cdp", "10.1.2.3:9", "--no-agent", check=False)
    assert p.returncode == 1 and "open beyond this host" in p.stderr, p.stderr

    fake_template(env, tmp_path, "old", "cloud-hypervisor v1.0")
    p = chvm(env, "run", "--from", "old", "--no-agent", check=False)
    assert p.returncode == 1 and "was made by cloud-hypervisor v1.0" in p.stderr, p.stderr
    version = subprocess.run([ch, "--version"], capture_output=True, text=True).stdout.strip()
    fake_template(env, tmp_path, "moved", version, kernel_sha="0" * 64)
    p = chvm(env, "run", "--from", "moved", "--no-agent", check=False)
    assert p.returncode == 1 and "its kernel" in p.stderr and "changed" in p.stderr, p.stderr
    assert {t["name"] for t in json.loads(chvm(env, "--json", "template", "ls").stdout)} \
        == {"old", "moved"}
    assert not os.listdir(os.path.join(env["CHVM_STATE_DIR"], "vms")) \
        if os.path.exists(os.path.join(env["CHVM_STATE_DIR"], "vms")) else True
    chvm(env, "template", "rm", "old", "moved")
    assert json.loads(chvm(env, "--json", "template", "ls").stdout) == []
