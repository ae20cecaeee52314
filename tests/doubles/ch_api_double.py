#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""DECLARED TEST DOUBLE of the Cloud Hypervisor REST API.

It stands in for `cloud-hypervisor --api-socket PATH` where a test needs CH
to misbehave in ways the real one cannot be made to on demand: answer 500 on
vm.snapshot, answer too slowly, send malformed or oversized bodies, or claim
an older version.  It speaks HTTP/1.1 over a unix socket like CH does, and
records each request (method, path, body) as one JSON line, so tests can
check what the client sent.  It is not an emulation of CH: it knows only
the handful of endpoints listed in ANSWERS.

  ch_api_double.py --socket PATH --mode MODE [--record FILE] [--version V]

Modes: normal (errors only on vm.snapshot), slow (every answer after
--delay seconds), malformed (invalid JSON bodies), huge (2 MiB vm.info),
close (hang up without answering).
"""
import argparse
import json
import os
import socketserver
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler

# What CH v53 sends on a failed snapshot: the error chain as a JSON array.
SNAPSHOT_ERROR = [
    "Error from API",
    "The VM could not be snapshotted",
    "Cannot snapshot VM: no space left on device (test double)",
]

INFO = {
    "config": {"cpus": {"boot_vcpus": 2, "max_vcpus": 2},
               "memory": {"size": 536870912}, "payload": {"kernel": "/k"}},
    "state": "Running",
    "memory_actual_size": 536870912,
}


def answers(version):
    return {
        ("GET", "/api/v1/vmm.ping"): (200, {"version": version, "build_version": version, "pid": os.getpid()}),
        ("GET", "/api/v1/vm.info"): (200, INFO),
        ("GET", "/api/v1/vm.counters"): (200, {"_disk0": {"read_bytes": 1}}),
        ("PUT", "/api/v1/vm.create"): (204, None),
        ("PUT", "/api/v1/vm.boot"): (204, None),
        ("PUT", "/api/v1/vm.pause"): (204, None),
        ("PUT", "/api/v1/vm.resume"): (204, None),
        ("PUT", "/api/v1/vm.shutdown"): (204, None),
        ("PUT", "/api/v1/vm.restore"): (204, None),
        ("PUT", "/api/v1/vmm.shutdown"): (200, None),  # v4x answers 200, newer 204
        ("PUT", "/api/v1/vm.snapshot"): (500, SNAPSHOT_ERROR),
    }


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet: tests read stdout
        pass

    def address_string(self):
        return "unix"

    def handle_any(self, method):
        opts = self.server.opts
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n).decode("utf-8", "replace") if n else ""
        if opts.record:
            with self.server.lock, open(opts.record, "a") as f:
                f.write(json.dumps({"method": method, "path": self.path, "body": body}) + "\n")
        if opts.mode == "close":
            self.close_connection = True
            return
        if opts.mode == "slow":
            time.sleep(opts.delay)
        status, payload = answers(opts.version).get((method, self.path), (404, ["Not found"]))
        if opts.mode == "malformed" and method == "GET":
            data = b'{"state": "Running", "config": {"cpus": '  # truncated JSON
        elif opts.mode == "huge" and self.path.endswith("vm.info"):
            data = b'{"pad": "' + b"x" * (2 << 20) + b'"}'
        else:
            data = json.dumps(payload).encode() if payload is not None else b""
        self.send_response(status)
        if data:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        try:
            self.wfile.write(data)
        except BrokenPipeError:
            pass  # the client gave up (timeout tests)

    def do_GET(self):
        self.handle_any("GET")

    def do_PUT(self):
        self.handle_any("PUT")


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--socket", required=True)
    ap.add_argument("--mode", default="normal", choices=["normal", "slow", "malformed", "huge", "close"])
    ap.add_argument("--delay", type=float, default=3.0)
    ap.add_argument("--version", default="v53.0")
    ap.add_argument("--record")
    opts = ap.parse_args()
    try:
        os.unlink(opts.socket)
    except FileNotFoundError:
        pass
    srv = Server(opts.socket, Handler)
    srv.opts = opts
    srv.lock = threading.Lock()
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
