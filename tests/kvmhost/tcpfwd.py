# SPDX-License-Identifier: Apache-2.0
"""A TCP forward inside the KVM host, for the test's own plumbing: connections
to LISTEN_ADDR:LISTEN_PORT (the KVM host's address, which QEMU forwards from
the outer host's loopback) go to TARGET_ADDR:TARGET_PORT (a port that only
the KVM host reaches: a VM's CDP endpoint on its loopback, a pod's IP).  A
connection the target refuses is closed at once.

Usage: tcpfwd.py LISTEN_ADDR LISTEN_PORT TARGET_ADDR TARGET_PORT
"""
import socket
import sys
import threading


def pipe(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def serve(c, target):
    try:
        u = socket.create_connection(target, timeout=10)
    except OSError:
        c.close()
        return
    u.settimeout(None)
    threading.Thread(target=pipe, args=(u, c), daemon=True).start()
    pipe(c, u)


def main():
    listen = (sys.argv[1], int(sys.argv[2]))
    target = (sys.argv[3], int(sys.argv[4]))
    srv = socket.create_server(listen)
    print("tcpfwd: %s:%d -> %s:%d" % (listen + target), flush=True)
    while True:
        c, _ = srv.accept()
        threading.Thread(target=serve, args=(c, target), daemon=True).start()


if __name__ == "__main__":
    main()
