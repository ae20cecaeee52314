# SPDX-License-Identifier: Apache-2.0
"""Fixtures shared by the integration tests; the helpers they use are the
chvmtest package (tests/integration/chvmtest).

  guest      session: the stand-in Chromium image booted once under
             QEMU/TCG with this tree's kernel, initramfs and init
             (chvmtest.guest.Guest)
  state_env  a private chvm state dir (the stand-in image linked in, the
             VMM user can reach it): the environment naming it
  netns      a network namespace of the test's own: its name
  ch         for each cloud-hypervisor binary (PATH or $CLOUD_HYPERVISOR,
             plus $CHVM_TEST_CH_EXTRA): (env, netns, CH major version)
             for `chvm run --backend ch`; removes VM "chtest" afterwards

Each phase's report is kept on the test item (item.rep_setup, rep_call,
rep_teardown), so that fixtures can tell whether their test failed.
"""
import secrets

import pytest

from chvmtest import ch_micro, cli, net, prereq, vm
from chvmtest.guest import BOOT_TIMEOUT, Guest, guest_config, ssh_keypair


@pytest.fixture(scope="session")
def guest(tmp_path_factory):
    why = vm.missing_prerequisites()
    if why:
        pytest.skip("guest VM: " + why)
    token = secrets.token_hex(32)
    workdir = str(tmp_path_factory.mktemp("guest"))
    key, pub = ssh_keypair(workdir)
    extra = {"ssh.authorized_key": [pub]} if pub else {}
    cfg = guest_config(vm.image_config(), token, **extra)
    machine = vm.VM(workdir, cfg).start()
    try:
        machine.wait_console(r"phase exec$", BOOT_TIMEOUT)
        yield Guest(machine, token, key)
    finally:
        machine.stop()


@pytest.fixture
def state_env(tmp_path):
    """A private state dir (tmp_path/state) for chvm: its environment."""
    return cli.state_env(tmp_path)


@pytest.fixture
def netns():
    """A fresh network namespace (nothing set up in it): its name."""
    with net.Netns() as name:
        yield name


@pytest.fixture(params=ch_micro.ch_binaries() or [None], ids=ch_micro.version_id)
def ch(request, tmp_path):
    """(env, netns, CH major version) for one CH binary: a fresh state dir
    with the stand-in image, CLOUD_HYPERVISOR naming the binary, and a
    marker variable that must not reach the VMM."""
    why = prereq.missing(*prereq.CHVM_CH)
    if why:
        pytest.skip("chvm with cloud-hypervisor: missing " + why)
    if request.param is None:
        pytest.skip("cloud-hypervisor not on PATH (or $CLOUD_HYPERVISOR)")
    with net.Netns() as ns:
        env = cli.state_env(tmp_path, CLOUD_HYPERVISOR=request.param,
                            CHVM_TEST_MARKER="leaks-into-the-vmm")
        try:
            yield env, ns, ch_micro.major(request.param)
        finally:
            # Every VM a failed test left (its VMM, tap and netns too).
            try:
                names = set(cli.ps(env)) | {"chtest"}
            except (AssertionError, ValueError):
                names = {"chtest"}
            for name in sorted(names):
                cli.chvm(env, "rm", "-f", name, timeout=60, check=False)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)
