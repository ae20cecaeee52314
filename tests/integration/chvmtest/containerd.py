# SPDX-License-Identifier: Apache-2.0
"""What the containerd shim's suites share (test_shim.py here, and
test_shim_kvmhost.py inside the KVM host): a private containerd's
configuration with the CRI plugin on, the CNI bridge network of its pods,
and the readings of `ctr task ls` (status, pid) and `ctr task metrics`."""

CNI_BIN = "/usr/lib/cni"  # Debian's containernetworking-plugins
CRI_NS = "k8s.io"
CRI_SUBNET = "10.214.0.0/24"
CRI_BRIDGE = "chvmcri0"

# The test's own containerd: everything under d, the CRI plugin with
# runtime handler chvm (the default) and CNI's configuration in d/cni.
CRI_CONFIG = """version = 2
root = "{d}/root"
state = "{d}/state"
[grpc]
  address = "{d}/c.sock"
[ttrpc]
  address = "{d}/c.sock.ttrpc"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{sandbox_image}"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{cni_bin}"
    conf_dir = "{d}/cni"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "chvm"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.chvm]
    runtime_type = "io.containerd.chvm.v1"
"""


def cni_conf(d):
    """The pods' network: CNI's bridge CRI_BRIDGE on CRI_SUBNET, its
    addresses kept in d/cni-ipam."""
    return {
        "cniVersion": "0.4.0", "name": "chvmcri",
        "plugins": [{"type": "bridge", "bridge": CRI_BRIDGE, "isGateway": True, "ipMasq": False,
                     "ipam": {"type": "host-local", "ranges": [[{"subnet": CRI_SUBNET}]],
                              "routes": [{"dst": "0.0.0.0/0"}], "dataDir": d + "/cni-ipam"}}],
    }


def task_row(ls_out, cid):
    """cid's row in `ctr task ls`'s output (TASK, PID, STATUS), None when it
    is not there."""
    for line in ls_out.splitlines()[1:]:
        f = line.split()
        if f and f[0] == cid:
            return f
    return None


def task_status(ls_out, cid):
    """cid's status in `ctr task ls`'s output, None when it is not there."""
    row = task_row(ls_out, cid)
    return row[-1] if row else None


def task_pid(ls_out, cid):
    """cid's pid in `ctr task ls`'s output (its VM's VMM), None when it is
    not there."""
    row = task_row(ls_out, cid)
    return int(row[1]) if row else None


def metrics(out):
    """`ctr task metrics` (cgroups v2 Metrics) as {"cpu.usage_usec": N, ...}."""
    rows = [line.split() for line in out.splitlines()]
    return {f[0]: int(f[1]) for f in rows if len(f) == 2 and "." in f[0] and f[1].isdigit()}
