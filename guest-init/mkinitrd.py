#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Builds the initramfs: a reproducible cpio (newc) archive, gzip-compressed.

Contents: initrd-skel/ (minus modules.list), chvm-init as /init, chvm-agent
as /sbin/chvm-agent when it exists, the modules of initrd-skel/modules.list
with their dependencies under /lib/modules/<version>/, and
/lib/modules/chvm.load listing them in load order for init.  Entries are
sorted, owned by 0:0, with a fixed mtime, so the same inputs give the same
bytes."""

import argparse
import gzip
import io
import lzma
import os
import shutil
import stat
import subprocess
import sys
import tempfile

MTIME = int(os.environ.get("SOURCE_DATE_EPOCH", "0"))
# Directories init mounts on or creates before it can mkdir itself.
BASE_DIRS = ["dev", "proc", "sys", "run", "tmp", "newroot", "sbin", "lib",
             "lib/modules", "etc"]


class Cpio:
    def __init__(self):
        self.entries = {}  # path -> (mode, data, rdev)

    def add(self, path, mode, data=b"", rdev=(0, 0)):
        self.entries[path.strip("/")] = (mode, data, rdev)

    def add_dir(self, path):
        parts = path.strip("/").split("/")
        for i in range(1, len(parts) + 1):
            p = "/".join(parts[:i])
            if p not in self.entries:
                self.add(p, stat.S_IFDIR | 0o755)

    def add_file(self, path, data, perm=0o644):
        self.add_dir(os.path.dirname(path.strip("/")) or ".")
        self.add(path, stat.S_IFREG | perm, data)

    def bytes(self):
        out = io.BytesIO()
        ino = 1
        self.entries.pop(".", None)
        for path in sorted(self.entries):
            mode, data, rdev = self.entries[path]
            self._entry(out, ino, path, mode, data, rdev)
            ino += 1
        self._entry(out, 0, "TRAILER!!!", 0, b"", (0, 0))
        return out.getvalue()

    @staticmethod
    def _entry(out, ino, name, mode, data, rdev):
        name_b = name.encode() + b"\0"
        nlink = 2 if stat.S_ISDIR(mode) else 1
        hdr = "070701" + "".join("%08x" % v for v in (
            ino, mode, 0, 0, nlink, MTIME, len(data), 0, 0, rdev[0], rdev[1],
            len(name_b), 0))
        out.write(hdr.encode() + name_b)
        out.write(b"\0" * (-(110 + len(name_b)) % 4))
        out.write(data)
        out.write(b"\0" * (-len(data) % 4))


def norm(name):
    return name.replace("-", "_")


def module_order(moddir, wanted):
    """Paths (relative to moddir) of the wanted modules and their
    dependencies, each after its dependencies."""
    deps = {}
    by_name = {}
    with open(os.path.join(moddir, "modules.dep")) as f:
        for line in f:
            mod, _, rest = line.partition(":")
            deps[mod] = rest.split()
            by_name[norm(os.path.basename(mod).split(".ko")[0])] = mod
    builtin = set()
    path = os.path.join(moddir, "modules.builtin")
    if os.path.exists(path):
        with open(path) as f:
            builtin = {norm(os.path.basename(l.strip()).split(".ko")[0])
                       for l in f}
    order, seen = [], set()

    def visit(mod):
        if mod in seen:
            return
        seen.add(mod)
        # modules.dep lists all dependencies, deepest last (modprobe loads
        # them in reverse).
        for d in reversed(deps.get(mod, [])):
            visit(d)
        order.append(mod)

    for name in wanted:
        optional = name.startswith("?")
        name = norm(name.lstrip("?"))
        if name in builtin:
            continue
        if name not in by_name:
            if optional:
                continue
            sys.exit("mkinitrd: module %s is neither in modules.dep nor "
                     "built in" % name)
        visit(by_name[name])
    return order


def read_module(path):
    """Module bytes, decompressed: finit_module() only takes compressed
    modules on kernels built with CONFIG_MODULE_DECOMPRESS."""
    with open(path, "rb") as f:
        data = f.read()
    if path.endswith(".xz"):
        data = lzma.decompress(data)
    elif path.endswith(".gz"):
        data = gzip.decompress(data)
    return data


def read_program(path):
    """An executable's bytes, without debug info and symbols when it is an
    ELF file and binutils' strip exists: the build keeps -g for debugging,
    the initramfs need not carry it."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"\x7fELF" or not shutil.which("strip"):
        return data
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "stripped")
        subprocess.run(["strip", "-o", out, path], check=True)
        with open(out, "rb") as f:
            return f.read()


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--skel", required=True)
    ap.add_argument("--init", required=True, help="the /init program")
    ap.add_argument("--agent")
    ap.add_argument("--kernel",
                    help="dir with version and modules/ (the lib/modules/<version> "
                         "tree); omit it for a kernel with its drivers built in")
    ap.add_argument("--extra", action="append", default=[],
                    help="SRC:DEST extra file (benchmarks)")
    ap.add_argument("-o", "--output", required=True)
    a = ap.parse_args()

    cpio = Cpio()
    for d in BASE_DIRS:
        cpio.add_dir(d)
    # The kernel opens /dev/console for init's stdio before devtmpfs exists.
    cpio.add("dev/console", stat.S_IFCHR | 0o600, rdev=(5, 1))

    wanted = []
    for root, dirs, files in os.walk(a.skel):
        dirs.sort()
        rel = os.path.relpath(root, a.skel)
        if rel != ".":
            cpio.add_dir(rel)
        for name in sorted(files):
            src = os.path.join(root, name)
            dest = os.path.normpath(os.path.join(rel, name))
            if dest == "modules.list":
                with open(src) as f:
                    wanted = [l.strip() for l in f
                              if l.strip() and not l.startswith("#")]
                continue
            with open(src, "rb") as f:
                cpio.add_file(dest, f.read(),
                              os.stat(src).st_mode & 0o755 | 0o644)

    cpio.add_file("init", read_program(a.init), 0o755)
    if a.agent and os.path.exists(a.agent):
        cpio.add_file("sbin/chvm-agent", read_program(a.agent), 0o755)
    elif a.agent:
        print("mkinitrd: warning: %s missing, initramfs without agent"
              % a.agent, file=sys.stderr)
    for spec in a.extra:
        src, dest = spec.split(":", 1)
        cpio.add_file(dest, read_program(src), os.stat(src).st_mode & 0o755)

    load = []
    if a.kernel:
        with open(os.path.join(a.kernel, "version")) as f:
            version = f.read().strip()
        moddir = os.path.join(a.kernel, "modules")
        for rel in module_order(moddir, wanted):
            dest = "lib/modules/%s/%s" % (version, rel.rsplit(".ko", 1)[0] + ".ko")
            cpio.add_file(dest, read_module(os.path.join(moddir, rel)))
            load.append("/" + dest)
        cpio.add_file("lib/modules/chvm.load", ("\n".join(load) + "\n").encode())

    raw = cpio.bytes()
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=MTIME, compresslevel=9,
                       filename="") as gz:
        gz.write(raw)
    tmp = a.output + ".tmp"
    with open(tmp, "wb") as f:
        f.write(buf.getvalue())
    os.replace(tmp, a.output)
    print("initrd %s: %d bytes (%d uncompressed, %d modules)"
          % (a.output, len(buf.getvalue()), len(raw), len(load)))


if __name__ == "__main__":
    main()
