# SPDX-License-Identifier: Apache-2.0
"""DECLARED TEST DOUBLE: a fake `cloud-hypervisor` for chvm.

fake_cloud_hypervisor() writes an executable that chvm runs as its VMM
($CLOUD_HYPERVISOR): it answers `--version` as CH v53.0 and otherwise
execs tests/doubles/ch_api_double.py (itself a declared test double of
CH's REST API) on the --api-socket chvm gave it.  No guest runs; tests
use it where CH must misbehave on demand (slow answers, a refused
snapshot) or where no KVM is needed.  The double runs as whoever runs
chvm: give it CHVM_VMM_USER=root, as the python it execs may live where
the VMM user cannot reach (pyenv under /root)."""
import os
import sys

from . import paths


def fake_cloud_hypervisor(directory, *double_args):
    """Writes DIRECTORY/cloud-hypervisor, which runs the CH API double
    with --socket (chvm's --api-socket) and double_args (e.g. "--mode",
    "normal"); returns its path (str)."""
    path = os.path.join(str(directory), "cloud-hypervisor")
    with open(path, "w") as f:
        f.write(
            "#!%s\n"
            "# DECLARED TEST DOUBLE of cloud-hypervisor (tests/integration/chvmtest/doubles.py)\n"
            "import os, sys\n"
            "if '--version' in sys.argv:\n    print('cloud-hypervisor v53.0')\n    sys.exit(0)\n"
            "sock = sys.argv[sys.argv.index('--api-socket') + 1].split('=', 1)[1]\n"
            "os.execv(sys.executable, [sys.executable, %r, '--socket', sock] + %r)\n"
            % (sys.executable, paths.CH_API_DOUBLE, [str(a) for a in double_args]))
    os.chmod(path, 0o755)
    return path
