# SPDX-License-Identifier: Apache-2.0
"""guest-init seen from outside the VM: the shared stand-in guest (phases,
CDP), one probe boot whose entrypoint is a shell script reporting what it
sees on the console, and short boots with bad inputs that must each end in
one clear console line and a poweroff."""

import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import time

import pytest

from chvmtest import paths, vm
from chvmtest.guest import EXTRA_ENV, guest_config

PHASES = ["start", "modules", "disks", "config", "overlay", "network", "agent",
          "exec"]
CDP_TIMEOUT = 240
# A bad-input boot must power off by itself well within this.
SHORT_BOOT_TIMEOUT = 90

PROBE_SCRIPT = r"""
echo PROBE-BEGIN
tr '\0' '\n' < /proc/$$/environ | sed 's/^/ENV /'
echo "PWD $(pwd)"
echo "ID $(id -u) $(id -g) $(id -G)"
grep -E ' (/|/run/chvm/lower) ' /proc/mounts | sed 's/^/MOUNT /'
if touch /usr/chvm-overlay-probe 2>/dev/null; then echo 'OVERLAY-WRITE ok'; else echo 'OVERLAY-WRITE refused'; fi
if touch /run/chvm/lower/chvm-probe 2>/dev/null; then echo 'LOWER-WRITE ok'; else echo 'LOWER-WRITE refused'; fi
ip -4 -o addr show dev eth0 | sed 's/^/ADDR /'
ip -4 route show default | sed 's/^/ROUTE /'
echo "MTU $(cat /sys/class/net/eth0/mtu)"
echo "HOSTNAME $(hostname)"
echo PROBE-END
exit 7
"""


def phase_names(console):
    return [m.group(2) for m in vm.PHASE_RE.finditer(console)]


# ---- the shared guest: the stand-in image as it is ---------------------------

def test_phases_in_order(guest):
    guest.wait_console(r"phase exec$", 10)
    console = guest.vm.console()
    assert phase_names(console) == PHASES
    times = [guest.vm.phases()[p] for p in PHASES]
    assert times == sorted(times)
    assert "ERROR init" not in console
    if "sbin/chvm-agent" in vm.initrd_members():
        # init found the agent and it exec'd (spawn reports exec failures).
        assert "no /sbin/chvm-agent" not in console
        assert "WARN init[1]: agent:" not in console
    else:
        assert "WARN init[1]: no /sbin/chvm-agent in the initramfs" in console


def test_cdp_answers_on_forwarded_port(guest):
    body = guest.vm.http_get("/json/version", guest.cdp_port, CDP_TIMEOUT)
    info = json.loads(body)
    assert "Chrome" in info["Browser"], info
    assert info["webSocketDebuggerUrl"].startswith("ws://"), info
    assert "Protocol-Version" in info


# ---- one probe boot: image env/user/workdir, overlay, network, poweroff ------

def expected_env(img_env, extra):
    """docker's merge: a later NAME replaces an earlier one in place; PATH
    and HOME added when absent (the stand-in runs as root)."""
    env = []
    for kv in img_env + extra:
        name = kv.split("=", 1)[0]
        for i, old in enumerate(env):
            if old.split("=", 1)[0] == name:
                env[i] = kv
                break
        else:
            env.append(kv)
    names = [kv.split("=", 1)[0] for kv in env]
    if "PATH" not in names:
        env.append("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    if "HOME" not in names:
        env.append("HOME=/root")
    return env


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    why = vm.missing_prerequisites()
    if why:
        pytest.skip("probe boot: " + why)
    img = vm.image_config()
    cfg = guest_config(img, "ab" * 16, hostname="probe")
    cfg["net.mtu"] = 1400
    cfg["entrypoint"] = ["/bin/sh", "-c"]
    # A config value is one line: the script's lines joined by "; ".
    cfg["cmd"] = [PROBE_SCRIPT.strip().replace("\n", "; ")]
    machine = vm.VM(str(tmp_path_factory.mktemp("probe")), cfg,
                    forward=False, name="probe").start()
    try:
        rc = machine.wait_exit(SHORT_BOOT_TIMEOUT)
        console = machine.console()
    finally:
        machine.stop()
    body = console[console.index("PROBE-BEGIN"):console.index("PROBE-END")]
    return {"img": img, "rc": rc, "console": console, "lines": body.splitlines()}


def probe_values(probe, tag):
    return [l[len(tag) + 1:] for l in probe["lines"] if l.startswith(tag + " ")]


def test_entrypoint_env_is_image_env_plus_config(probe):
    assert probe_values(probe, "ENV") == expected_env(probe["img"]["Env"],
                                                      [EXTRA_ENV])


def test_entrypoint_workdir_and_user(probe):
    img = probe["img"]
    assert probe_values(probe, "PWD") == [img["WorkingDir"] or "/"]
    # The stand-in runs as root (User "root" or empty): uid 0, gid 0, and
    # root's supplementary groups from its /etc/group (none in Debian).
    assert img["User"] in ("", "root", "0")
    assert probe_values(probe, "ID") == ["0 0 0"]


def test_root_is_readonly_below_writable_overlay(probe):
    mounts = probe_values(probe, "MOUNT")
    lower = [m for m in mounts if " /run/chvm/lower " in m]
    root = [m for m in mounts if m.split()[1] == "/"]
    assert lower and lower[0].split()[3].split(",")[0] == "ro", mounts
    assert lower[0].split()[2] in ("ext4", "erofs")
    assert root and root[-1].split()[2] == "overlay", mounts
    assert probe_values(probe, "OVERLAY-WRITE") == ["ok"]
    assert probe_values(probe, "LOWER-WRITE") == ["refused"]


def test_eth0_configured(probe):
    addr = probe_values(probe, "ADDR")
    assert len(addr) == 1 and "inet %s " % vm.GUEST_ADDRESS in addr[0], addr
    route = probe_values(probe, "ROUTE")
    assert route and route[0].startswith("default via %s dev eth0"
                                          % vm.GUEST_GATEWAY), route
    assert probe_values(probe, "MTU") == ["1400"]
    assert probe_values(probe, "HOSTNAME") == ["probe"]


def test_clean_poweroff_with_status(probe):
    console = probe["console"]
    assert "INFO init[1]: entrypoint exited status 7" in console
    assert re.search(r"entrypoint exited status 7\n(.*\n)*INFO init\[1\]: poweroff",
                     console)
    assert probe["rc"] == 0  # QEMU exited by itself on the guest's poweroff
    assert "Kernel panic" not in console


# ---- bad inputs: one clear line, then poweroff ----------------------------------

@pytest.fixture(scope="module")
def tiny_rootfs(tmp_path_factory):
    """A small ext4 root with BusyBox, so bad-input boots need no image."""
    busybox = "/bin/busybox"
    if not (os.path.exists(busybox) and shutil.which("mkfs.ext4")):
        pytest.skip("missing: /bin/busybox (busybox-static) or mkfs.ext4")
    d = tmp_path_factory.mktemp("tiny")
    root = d / "root"
    for sub in ("bin", "etc", "root", "tmp", "proc", "sys", "dev", "run"):
        (root / sub).mkdir(parents=True)
    shutil.copy(busybox, root / "bin" / "busybox")
    for applet in ("sh", "echo", "true", "sleep", "kill"):
        (root / "bin" / applet).symlink_to("busybox")
    for applet in ("id", "pwd"):
        (root / "bin" / applet).symlink_to("busybox")
    (root / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\n"
        "alice:x:1000:1000:Alice:/home/alice:/bin/sh\n")
    (root / "etc" / "group").write_text(
        "root:x:0:\nalice:x:1000:\naudio:x:29:bob,alice\nvideo:x:44:alice\n")
    image = d / "rootfs.ext4"
    subprocess.run(["mkfs.ext4", "-q", "-L", "chvm-root", "-d", str(root),
                    str(image), "16M"], check=True, stdout=subprocess.DEVNULL)
    return str(image)


def test_erofs_root_and_named_user(tmp_path, tiny_rootfs):
    """An erofs root works like ext4; User "alice" gets her uid, gid,
    supplementary groups and HOME from the image's files, and a missing
    WorkingDir is created (docker does both)."""
    if not shutil.which("mkfs.erofs"):
        pytest.skip("missing: mkfs.erofs (erofs-utils)")
    root = os.path.join(os.path.dirname(tiny_rootfs), "root")
    image = str(tmp_path / "rootfs.erofs")
    subprocess.run(["mkfs.erofs", image, root], check=True,
                   capture_output=True)
    config = {"user": "alice", "workdir": "/srv/work",
              "entrypoint": ["/bin/sh", "-c",
                             'echo "WHO $(id -u) $(id -g) $(id -G) $HOME $(pwd)"']}
    rc, console = short_boot(tmp_path, config, image)
    assert "WHO 1000 1000 1000 29 44 /home/alice /srv/work" in console, console
    assert rc == 0


def short_boot(tmp_path, config, rootfs, disks=(), serials=True):
    why = vm.missing_prerequisites(rootfs=None)
    if why:
        pytest.skip("short boot: " + why)
    machine = vm.VM(str(tmp_path), config, rootfs=rootfs, memory=512,
                    forward=False, disks=disks, serials=serials,
                    name="short").start()
    try:
        rc = machine.wait_exit(SHORT_BOOT_TIMEOUT)
        return rc, machine.console()
    finally:
        machine.stop()


GOOD = "# chvm-config 1\nentrypoint=/bin/sh\ncmd=-c\ncmd=echo hi\ninit.timeout=3\n"

BAD_INPUTS = {
    "missing-rootfs": (GOOD, False,
                       r"ERROR init\[1\]: no disk with serial chvm-root after 3s "
                       r"\(disks seen: vda\(chvm-config\)\)"),
    "corrupt-config": ("\x7fELF\x02\x01garbage\nhostname=x\n", True,
                       r"ERROR init\[1\]: config chvm-config line 1: first line "
                       r"must be '# chvm-config 1'"),
    "unknown-key": (GOOD + "net.adress=10.0.2.15/24\n", True,
                    r"ERROR init\[1\]: config chvm-config line 6: unknown key "
                    r"'net.adress'"),
    "oversized-value": (GOOD + "env=BIG=" + "x" * 5000 + "\n", True,
                        r"ERROR init\[1\]: config chvm-config line 6: line "
                        r"longer than 4096 bytes"),
    "missing-entrypoint": ("# chvm-config 1\nentrypoint=/no/such/binary\n",
                           True,
                           r"ERROR init\[1\]: exec /no/such/binary: execve: "
                           r"No such file or directory"),
    # The kernel's extended ACK text reaches the console.
    "unreachable-gateway": ("# chvm-config 1\nentrypoint=/bin/true\n"
                            "net.address=10.0.2.15/24\nnet.gateway=192.168.99.1\n",
                            True,
                            r"ERROR init\[1\]: add default route via 192\.168\.99\.1: "
                            r"Nexthop has invalid gateway: Network unreachable"),
    "entrypoint-not-in-path": ("# chvm-config 1\nentrypoint=nosuchprogram\n",
                               True,
                               r"ERROR init\[1\]: exec nosuchprogram: look up "
                               r"in PATH: No such file or directory"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_fails_cleanly(case, tmp_path, tiny_rootfs):
    config, with_root, want = BAD_INPUTS[case]
    rc, console = short_boot(tmp_path, config, tiny_rootfs if with_root else None)
    errors = [l for l in console.splitlines() if l.startswith("ERROR init")]
    assert len(errors) == 1, console
    assert re.fullmatch(want, errors[0].rstrip("\r")), errors[0]
    after = console[console.index(errors[0]):]
    assert "INFO init[1]: poweroff" in after, console
    assert "phase exec" not in console or "entrypoint" in case
    assert "Kernel panic" not in console, console
    assert rc == 0


# ---- signals: SIGINT to PID 1 reaches the entrypoint -----------------------------

# The script asks init itself to pass SIGINT on (as a Ctrl-Alt-Del would, see
# RB_DISABLE_CAD), dies of SIGKILL in its trap, and leaves a background sleep
# that init must terminate before powering off.
SIGNAL_SCRIPT = ("sleep 1000 & trap 'echo GOT-INT; kill -KILL $$' INT; "
                 "kill -INT 1; while :; do sleep 1; done")


def test_sigint_forwarded_then_rest_killed(tmp_path, tiny_rootfs):
    config = {"entrypoint": ["/bin/sh", "-c", SIGNAL_SCRIPT]}
    rc, console = short_boot(tmp_path, config, tiny_rootfs)
    assert re.search(r"GOT-INT\n(.*\n)*INFO init\[1\]: entrypoint exited "
                     r"status 137\n(.*\n)*INFO init\[1\]: poweroff", console), console
    assert "SIGKILL" not in console  # the sleep ended on SIGTERM
    assert rc == 0


# ---- the ACPI power button (QEMU system_powerdown): graceful poweroff --------

def powerdown_boot(tmp_path, tiny_rootfs, script, exit_timeout):
    """Boots script as the entrypoint, presses the power button once it
    printed READY, and waits for QEMU to exit by itself.  Returns (QEMU's
    exit code, console, seconds from the press to QEMU's exit)."""
    why = vm.missing_prerequisites(rootfs=None)
    if why:
        pytest.skip("power button boot: " + why)
    machine = vm.VM(str(tmp_path), {"entrypoint": ["/bin/sh", "-c", script]},
                    rootfs=tiny_rootfs, memory=512, forward=False,
                    name="powerdown", qmp=True).start()
    try:
        machine.wait_console(r"^READY", SHORT_BOOT_TIMEOUT)
        t0 = time.monotonic()
        machine.qmp("system_powerdown")
        rc = machine.wait_exit(exit_timeout)
        return rc, machine.console(), time.monotonic() - t0
    finally:
        machine.stop()


def test_power_button_stops_entrypoint_gracefully(tmp_path, tiny_rootfs):
    script = ("trap 'echo GOT-TERM; exit 3' TERM; echo READY; "
              "while :; do sleep 1; done")
    rc, console, took = powerdown_boot(tmp_path, tiny_rootfs, script, 30)
    print("\nFIGURE power button to QEMU exit: %.2f s" % took)
    assert re.search(r"INFO init\[1\]: power button: stopping the entrypoint\n"
                     r"(.*\n)*GOT-TERM\n(.*\n)*"
                     r"INFO init\[1\]: entrypoint exited status 3\n(.*\n)*"
                     r"INFO init\[1\]: poweroff", console), console
    assert "SIGKILL" not in console and "killing" not in console, console
    assert "Kernel panic" not in console
    assert rc == 0  # QEMU exited by itself on the guest's poweroff


def test_power_button_kills_entrypoint_ignoring_term(tmp_path, tiny_rootfs):
    script = "trap '' TERM; echo READY; while :; do sleep 1; done"
    rc, console, took = powerdown_boot(tmp_path, tiny_rootfs, script, 60)
    print("\nFIGURE power button to QEMU exit, TERM ignored: %.2f s" % took)
    assert re.search(r"INFO init\[1\]: power button: stopping the entrypoint\n"
                     r"(.*\n)*WARN init\[1\]: power button: entrypoint still "
                     r"running after 8 s, killing every process\n(.*\n)*"
                     r"INFO init\[1\]: entrypoint exited status 137\n(.*\n)*"
                     r"INFO init\[1\]: poweroff", console), console
    assert took >= 8, took  # the grace period was given
    assert rc == 0


def test_disks_without_serial_found_by_label_and_magic(tmp_path, tiny_rootfs):
    """Fallback of docs/DESIGN.md: ext4 label chvm-root, config magic."""
    config = {"entrypoint": ["/bin/sh", "-c", "echo LABEL-BOOT-OK"]}
    rc, console = short_boot(tmp_path, config, tiny_rootfs, serials=False)
    assert "LABEL-BOOT-OK" in console, console
    assert "INFO init[1]: entrypoint exited status 0" in console
    assert rc == 0


# ---- overlay=disk: the upper layer on the chvm-upper disk survives ------------

def test_overlay_on_upper_disk(tmp_path, tiny_rootfs):
    if not shutil.which("debugfs"):
        pytest.skip("missing: debugfs (e2fsprogs)")
    upper = tmp_path / "upper.ext4"
    subprocess.run(["mkfs.ext4", "-q", str(upper), "16M"], check=True)
    config = {"overlay": "disk",
              "entrypoint": ["/bin/sh", "-c", "echo kept > /marker"]}
    rc, console = short_boot(tmp_path, config, tiny_rootfs,
                             disks=[(str(upper), "chvm-upper", False)])
    assert "INFO init[1]: entrypoint exited status 0" in console, console
    assert rc == 0
    out = subprocess.run(["debugfs", "-R", "cat /upper/marker", str(upper)],
                         capture_output=True, text=True)
    assert out.stdout == "kept\n", out
    # Unmounted cleanly at poweroff: no journal replay needed.
    fsck = subprocess.run(["e2fsck", "-n", str(upper)], capture_output=True,
                          text=True)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr


# ---- the initramfs itself -----------------------------------------------------------

def test_initrd_reproducible_and_complete(tmp_path):
    init = os.path.join(paths.BUILD, "bin", "chvm-init")
    if not (os.path.exists(init) and os.path.exists(
            os.path.join(paths.KERNEL_DIR, "version"))):
        pytest.skip("missing: build/bin/chvm-init or build/kernel (make kernel)")
    outs = []
    for i in range(2):
        out = tmp_path / ("initrd%d.cpio.gz" % i)
        subprocess.run([sys.executable,
                        paths.MKINITRD,
                        "--skel", paths.INITRD_SKEL,
                        "--init", init, "--kernel",
                        paths.KERNEL_DIR, "-o", str(out)],
                       check=True, capture_output=True)
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]
    listing = subprocess.run(["cpio", "-itv"], input=gzip.decompress(outs[0]),
                             capture_output=True, check=True).stdout.decode()
    entries = {l.split()[-1]: l.split() for l in listing.splitlines()}
    assert entries["init"][0] == "-rwxr-xr-x"
    assert entries["dev/console"][0].startswith("c")
    assert all(e[2] == "root" and e[3] == "root" for e in entries.values())
    load = subprocess.run(["cpio", "-i", "--to-stdout", "lib/modules/chvm.load"],
                          input=gzip.decompress(outs[0]), capture_output=True,
                          check=True).stdout.decode().split()
    names = [os.path.basename(p)[:-3].replace("-", "_") for p in load]
    for mod, dep in (("virtio_blk", "virtio_ring"), ("virtio_net", "failover"),
                     ("vmw_vsock_virtio_transport", "vsock"),
                     ("virtio_pci", "virtio")):
        assert names.index(dep) < names.index(mod), names
    assert "overlay" in names
    assert all(p.lstrip("/") in entries for p in load)


def test_initrd_for_a_kernel_with_builtin_drivers(tmp_path):
    """make initrd KERNEL_DIR= (README: another guest kernel): no modules and
    no load list, which init takes as "everything is built in"."""
    init = os.path.join(paths.BUILD, "bin", "chvm-init")
    if not os.path.exists(init):
        pytest.skip("missing: build/bin/chvm-init")
    out = tmp_path / "initrd.cpio.gz"
    p = subprocess.run([sys.executable, paths.MKINITRD,
                        "--skel", paths.INITRD_SKEL, "--init", init,
                        "-o", str(out)], check=True, capture_output=True, text=True)
    assert "0 modules" in p.stdout
    names = vm.initrd_members(str(out))
    assert "init" in names and "dev/console" in names
    assert not [n for n in names if n.endswith(".ko") or n == "lib/modules/chvm.load"]
