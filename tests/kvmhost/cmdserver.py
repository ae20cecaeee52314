# SPDX-License-Identifier: Apache-2.0
"""The KVM host's command channel: runs the commands the outer test sends
on the virtio-serial port named in argv[1], one thread each.

Requests and replies are JSON lines:
  -> {"id": N, "argv": [...], "timeout": S, "env": {...}, "input": "..."}
  <- {"id": N, "rc": RC, "out": "...", "err": "...", "ms": T}
rc is -9 after the timeout killed the command's process group.  Output is
kept up to 4 MiB per stream.  A line that is not such a request gets
{"id": null, "error": "..."}."""

import json
import os
import subprocess
import sys
import threading
import time

CAP = 4 << 20


def port_path(name):
    for p in os.listdir("/sys/class/virtio-ports"):
        with open("/sys/class/virtio-ports/%s/name" % p) as f:
            if f.read().strip() == name:
                return "/dev/" + p
    raise SystemExit("cmdserver: no virtio-serial port named %s" % name)


def main():
    dev = port_path(sys.argv[1])
    # A virtio-serial port opens once: one file for both directions.
    rd = wr = open(dev, "r+b", buffering=0)
    lock = threading.Lock()

    def reply(obj):
        data = (json.dumps(obj) + "\n").encode()
        with lock:
            wr.write(data)

    def run(req):
        t0 = time.monotonic()
        env = dict(os.environ, PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        env.update(req.get("env") or {})
        try:
            p = subprocess.Popen(req["argv"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, env=env, start_new_session=True)
        except OSError as e:
            reply({"id": req["id"], "rc": 127, "out": "", "err": str(e), "ms": 0})
            return
        try:
            out, err = p.communicate((req.get("input") or "").encode(), timeout=req.get("timeout", 600))
            rc = p.returncode
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, 9)
            out, err = p.communicate()
            rc = -9
        reply({"id": req["id"], "rc": rc, "ms": int((time.monotonic() - t0) * 1000),
               "out": out[:CAP].decode(errors="replace"), "err": err[:CAP].decode(errors="replace")})

    buf = b""
    while True:
        chunk = rd.read(65536)
        if not chunk:
            # The host side is not connected (or went away): wait for it.
            time.sleep(0.1)
            continue
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            try:
                req = json.loads(line)
                if not isinstance(req.get("argv"), list):
                    raise ValueError("no argv list")
            except ValueError as e:
                reply({"id": None, "error": "bad request: %s" % e})
                continue
            threading.Thread(target=run, args=(req,), daemon=True).start()


if __name__ == "__main__":
    main()
