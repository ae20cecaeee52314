# SPDX-License-Identifier: Apache-2.0
"""The integration tests' harness: everything tests/integration, tests/soak
and tests/bench share.  Test modules import from here, never from each
other; the fixtures built on it are in tests/integration/conftest.py.

  paths     where the tree and its build outputs are
  prereq    what a suite needs and is missing: one reason line, skip markers
  cli       the one `chvm` runner, ps/inspect, a state dir per test
  net       free ports, network namespaces, echo clients
  doubles   the declared fake cloud-hypervisor (runs tests/doubles)
  cdp       DevTools over HTTP, the node CDP clients, a raw WebSocket client
  liveview  the live view's receiver (playwright-core + chromium)
  vm        guests booted directly under QEMU (no chvm): config disks, console
  guest     the stand-in guest that conftest.py's `guest` fixture boots
  ch_micro  the micro guest under cloud-hypervisor through ch-driver
  kvmhost   a nested KVM host (QEMU/TCG -cpu max) for CH with real guests

This package imports nothing at import time, and paths and ch_micro need
only the standard library: tests/bench/bench_snapshot.py copies them into
the KVM host for bench_ch.py.
"""
