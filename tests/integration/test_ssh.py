# SPDX-License-Identifier: Apache-2.0
"""SSH into the shared guest with a real OpenSSH client: init started the
image's sshd because the config disk carries an authorized key."""

import shutil
import subprocess
import time

import pytest

SSH_DEADLINE = 120  # sshd makes its host key at first boot, under TCG


def ssh(guest, command, timeout=30):
    return subprocess.run(
        ["ssh", "-i", guest.ssh_key, "-p", str(guest.ssh_port),
         "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
         "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "ConnectTimeout=10",
         "-o", "LogLevel=ERROR",
         "root@127.0.0.1", command],
        capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def ssh_guest(guest):
    if not shutil.which("ssh") or guest.ssh_key is None:
        pytest.skip("OpenSSH client (ssh, ssh-keygen) not installed")
    deadline = time.monotonic() + SSH_DEADLINE
    while True:
        p = ssh(guest, "true")
        if p.returncode == 0:
            return guest
        if time.monotonic() > deadline:
            raise AssertionError("no SSH login within %d s: %s" % (SSH_DEADLINE, p.stderr))
        time.sleep(1)  # each try is a full TCP+SSH handshake; sshd may not listen yet


def test_ssh_runs_commands_as_root_in_the_guest(ssh_guest):
    p = ssh(ssh_guest, "id -u; hostname; cat /proc/1/comm")
    assert p.returncode == 0, p.stderr
    uid, hostname, pid1 = p.stdout.split()
    assert uid == "0"
    assert hostname == ssh_guest.config["hostname"]
    assert pid1 == "init"  # chvm-init is PID 1 inside the VM, not the host's


def test_ssh_refuses_a_key_not_in_the_config(ssh_guest, tmp_path):
    other = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    p = subprocess.run(
        ["ssh", "-i", str(other), "-p", str(ssh_guest.ssh_port), "-o", "StrictHostKeyChecking=no",
         "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
         "-o", "ConnectTimeout=10", "root@127.0.0.1", "true"],
        capture_output=True, text=True, timeout=30)
    assert p.returncode == 255 and "Permission denied" in p.stderr, p.stderr
