#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Stands in for `chvm standby|restore NAME` as the supervisor runs them
(CHVM_SUPERVISOR_EXEC), for test_supervisor_logic.py: the "VMM" is a host
Chromium; standby stops it (SIGSTOP: its TCP connections stay, as through a
tap) and records standby with a snapshot dir; restore continues it.  Only
the supervisor's own logic is under test there; the real commands are
tested with real VMs in test_cdp_endpoint.py.
argv: chvm --state-dir ROOT standby|restore NAME"""
import json
import os
import signal
import sys
import time


def main():
    root, cmd, name = sys.argv[2], sys.argv[3], sys.argv[4]
    d = os.path.join(root, "vms", name)
    with open(os.path.join(d, "vm.json")) as f:
        rec = json.load(f)
    pid = rec["runtime"]["vmm_pid"]
    if os.environ.get("STUB_FAIL") == cmd:
        time.sleep(float(os.environ.get("STUB_FAIL_AFTER_S", "0")))
        print("stub: %s fails" % cmd, flush=True)
        return 1
    if cmd == "standby":
        os.kill(pid, signal.SIGSTOP)
        os.makedirs(os.path.join(d, "snapshot"), exist_ok=True)
        rec["state"] = "standby"
    elif cmd == "restore":
        time.sleep(float(os.environ.get("STUB_RESTORE_S", "0.2")))
        os.kill(pid, signal.SIGCONT)
        os.rmdir(os.path.join(d, "snapshot"))
        rec["state"] = "running"
    else:
        return 2
    tmp = os.path.join(d, "vm.json.tmp")
    with open(tmp, "w") as f:
        json.dump(rec, f)
    os.rename(tmp, os.path.join(d, "vm.json"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
