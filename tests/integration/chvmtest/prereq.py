# SPDX-License-Identifier: Apache-2.0
"""What a suite needs from the host and the build, each need a function
that returns None or one line naming what is missing and how to get it;
missing(*needs) gives the first such line, and the requires_* markers skip
with "missing <that line>"."""
import os
import shutil

import pytest

from . import paths


def _file(path, how):
    def need():
        return None if os.path.exists(path) else "%s (%s)" % (paths.rel(path), how)
    need.__name__ = os.path.basename(path)
    return need


def _tool(tool, how):
    def need():
        return None if shutil.which(tool) else "%s (%s)" % (tool, how)
    need.__name__ = tool
    return need


def _node_module(mod):
    def need():
        return (None if os.path.isdir(os.path.join(paths.NODE_MODULES, mod))
                else "node_modules/%s (npm ci)" % mod)
    need.__name__ = mod
    return need


def chvm():
    return None if os.access(paths.CHVM, os.X_OK) else "build/bin/chvm (make host)"


qemu = _tool("qemu-system-x86_64", "apt-get install qemu-system-x86")
kernel = _file(paths.KERNEL, "make kernel")
initrd = _file(paths.INITRD, "make initrd")
standin_image = _file(paths.STANDIN_OCI, "make images")
ip = _tool("ip", "apt-get install iproute2")
nft = _tool("nft", "apt-get install nftables")
node = _tool("node", "apt-get install nodejs")
playwright = _node_module("playwright-core")
puppeteer = _node_module("puppeteer-core")
chromium = _tool("chromium", "apt-get install chromium")


def root():
    return None if os.geteuid() == 0 else "root (ip netns, taps, nft)"


def tun():
    return None if os.path.exists("/dev/net/tun") else "/dev/net/tun"


def kvm():
    return None if os.access("/dev/kvm", os.R_OK | os.W_OK) else "/dev/kvm"


def agent_in_initrd():
    from . import vm
    return None if vm.initrd_has_agent() else "the agent in build/initrd.cpio.gz"


def cloud_hypervisor():
    from . import ch_micro
    return (None if ch_micro.ch_binaries()
            else "cloud-hypervisor not on PATH (or $CLOUD_HYPERVISOR)")


# `chvm run` with the QEMU backend and the stand-in image.
CHVM_QEMU = (chvm, qemu, kernel, initrd, standin_image)
# The same on a tap in a network namespace (--net tap --netns), agent over TCP.
CHVM_TAP = CHVM_QEMU + (root, ip, nft, agent_in_initrd, tun)
# `chvm run --backend ch` with the real CH and the stand-in image.
CHVM_CH = CHVM_TAP + (kvm,)
# The node CDP clients (tests/integration/cdp_session.js).
CDP_CLIENTS = (node, playwright, puppeteer)


def missing(*needs):
    """The first need's line of what is missing, or None."""
    for need in needs:
        why = need()
        if why:
            return why
    return None


def requires(*needs):
    """A skipif marker: "missing <what>" for the first need not met."""
    why = missing(*needs)
    return pytest.mark.skipif(why is not None, reason="missing %s" % why)


requires_chvm = requires(chvm)
requires_qemu = requires(qemu)
requires_kvm = requires(kvm)
requires_ch = requires(cloud_hypervisor)
requires_chvm_qemu = requires(*CHVM_QEMU)
requires_tap = requires(*CHVM_TAP)
