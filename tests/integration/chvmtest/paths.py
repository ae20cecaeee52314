# SPDX-License-Identifier: Apache-2.0
"""Where the tree and its build outputs are (`make setup`, `make all initrd
test-prereqs`).  Standard library only (see __init__.py)."""
import os

HARNESS = os.path.dirname(os.path.abspath(__file__))
INTEGRATION = os.path.dirname(HARNESS)  # tests/integration
ROOT = os.path.dirname(os.path.dirname(INTEGRATION))
BUILD = os.path.join(ROOT, "build")

CHVM = os.path.join(BUILD, "bin", "chvm")
# chvm with its test hooks (CHVM_SUPERVISOR_EXEC, CHVM_FAULT) compiled in
# (make build/tests/chvm-hooks); build/bin/chvm has none.
CHVM_HOOKS = os.path.join(BUILD, "tests", "chvm-hooks")
KERNEL_DIR = os.path.join(BUILD, "kernel")
KERNEL = os.path.join(KERNEL_DIR, "vmlinuz")
INITRD = os.path.join(BUILD, "initrd.cpio.gz")
STANDIN = os.path.join(BUILD, "images", "standin")
STANDIN_OCI = os.path.join(STANDIN, "oci")
STANDIN_ROOTFS = os.path.join(STANDIN, "rootfs.ext4")
STANDIN_IMAGE_JSON = os.path.join(STANDIN, "image.json")
# The stand-in image as `make images` imported it; tests link their state
# dirs' images/ to it instead of importing 900 MB again.
IMAGE_CACHE = os.path.join(BUILD, "state", "images")
CH_DRIVER = os.path.join(BUILD, "tests", "ch-driver")
MICRO_ELF = os.path.join(BUILD, "tests", "micro-guest", "micro.elf")
TEST_RESULTS = os.path.join(BUILD, "test-results")

NODE_MODULES = os.path.join(ROOT, "node_modules")
VMM_USER_SCRIPT = os.path.join(ROOT, "scripts", "vmm-user.sh")
MKINITRD = os.path.join(ROOT, "guest-init", "mkinitrd.py")
INITRD_SKEL = os.path.join(ROOT, "initrd-skel")
CH_API_DOUBLE = os.path.join(ROOT, "tests", "doubles", "ch_api_double.py")
# The CH builds the KVM host suite installs (../shared/tools beside the tree).
CH_TOOLS = os.path.abspath(os.path.join(ROOT, "..", "shared", "tools", "cloud-hypervisor"))

# Programs of tests/integration that the tests run.
CDP_CLIENT_JS = os.path.join(INTEGRATION, "cdp_client.js")
CDP_SESSION_JS = os.path.join(INTEGRATION, "cdp_session.js")
LIVE_VIEW_CLIENT_JS = os.path.join(INTEGRATION, "live_view_client.js")
SUPERVISOR_STUB = os.path.join(INTEGRATION, "supervisor_stub.py")


def rel(path):
    """path relative to the tree, for skip reasons and messages."""
    return os.path.relpath(path, ROOT)
