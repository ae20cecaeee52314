# SPDX-License-Identifier: Apache-2.0
"""The shared stand-in guest that conftest.py's session fixture `guest`
boots once (vm.VM: QEMU/TCG, this tree's kernel, initramfs and init), and
the config such a test guest gets.

Attributes of Guest (a stable interface; test_agent.py, test_ssh.py and
test_guest_init.py rely on them):
  cdp_port, ssh_port, agent_port  host ports forwarded (127.0.0.1) to guest
                                  9222, 22 and the agent's TCP port 1025
  token           the agent.token in its config (agent.tcp_port=1025)
  ssh_key         private key file whose public half is the config's
                  ssh.authorized_key (None where ssh-keygen is missing)
  console_path    the guest's serial console log
  config          the config dict its config disk was made from
  wait_console(regex, timeout) -> re.Match (AssertionError on timeout)
  vm              the underlying vm.VM
"""
import os
import shutil
import subprocess

from . import vm

BOOT_TIMEOUT = 180  # kernel start to "phase exec" under TCG on a busy host
EXTRA_ENV = "CHVM_TEST_EXTRA=from config disk"


class Guest:
    def __init__(self, machine, token, ssh_key):
        self.vm = machine
        self.ssh_key = ssh_key
        self.cdp_port = machine.cdp_port
        self.ssh_port = machine.ssh_port
        self.agent_port = machine.agent_port
        self.token = token
        self.console_path = machine.console_path
        self.config = machine.config

    def wait_console(self, regex, timeout):
        return self.vm.wait_console(regex, timeout)


def guest_config(img, token, **extra):
    """The config a test guest gets: the image's exec fields, QEMU user-net
    addressing, the agent on TCP with a token, and an extra env entry."""
    cfg = vm.config_from_image(
        img, hostname="chvm-test", env=[EXTRA_ENV],
        net__address=vm.GUEST_ADDRESS, net__gateway=vm.GUEST_GATEWAY,
        net__dns=[vm.GUEST_DNS], agent__tcp_port=vm.AGENT_TCP_PORT,
        agent__token=token, init__timeout=60)
    cfg.update(extra)
    return cfg


def ssh_keypair(directory):
    """A fresh ed25519 key pair: (private key path, public key line)."""
    if not shutil.which("ssh-keygen"):
        return None, None
    key = os.path.join(directory, "id_ed25519")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "chvm-test",
                    "-f", key], check=True)
    with open(key + ".pub") as f:
        return key, f.read().strip()
