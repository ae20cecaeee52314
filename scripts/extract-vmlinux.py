#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Extract the uncompressed ELF vmlinux from an x86 bzImage.

Cloud Hypervisor boots the ELF (through its PVH note); Debian ships only the
bzImage.  Rather than scanning the whole file for compression magic (which can
match inside the setup code), we read the boot protocol header: the protected
mode part starts after (setup_sects + 1) * 512 bytes and its compressed payload
lies at payload_offset / payload_length (boot protocol >= 2.08).  Every kernel
compressor except gzip appends the 4-byte little-endian uncompressed size,
which we strip and use to check the result.

Usage: extract-vmlinux.py BZIMAGE OUT
"""
import os
import struct
import subprocess
import sys

# magic -> (name, decompress argv, has appended size)
COMPRESSORS = [
    (b"\x02\x21\x4c\x18", "lz4", ["lz4", "-dc"], True),  # lz4 legacy frame
    (b"\xfd7zXZ\x00", "xz", ["xz", "-dc"], True),
    (b"\x28\xb5\x2f\xfd", "zstd", ["zstd", "-dc"], True),
    (b"\x1f\x8b", "gzip", ["gzip", "-dc"], False),
    (b"\x5d\x00\x00", "lzma", ["xz", "--format=lzma", "-dc"], True),
    (b"BZh", "bzip2", ["bzip2", "-dc"], True),
]


def die(msg):
    sys.stderr.write("extract-vmlinux: %s\n" % msg)
    sys.exit(1)


def main():
    if len(sys.argv) != 3:
        die("usage: extract-vmlinux.py BZIMAGE OUT")
    src, out = sys.argv[1], sys.argv[2]
    with open(src, "rb") as f:
        img = f.read()
    if len(img) < 0x250 or img[0x202:0x206] != b"HdrS":
        die("%s: not a bzImage (no HdrS boot header)" % src)
    version = struct.unpack_from("<H", img, 0x206)[0]
    if version < 0x208:
        die("%s: boot protocol %#x too old (need 2.08 for payload fields)" % (src, version))
    setup_sects = img[0x1F1] or 4
    pm_start = (setup_sects + 1) * 512
    payload_offset, payload_length = struct.unpack_from("<II", img, 0x248)
    start = pm_start + payload_offset
    end = start + payload_length
    if payload_length < 8 or end > len(img):
        die("%s: payload %d+%d outside the file (%d bytes)" % (src, start, payload_length, len(img)))
    payload = img[start:end]
    for magic, name, argv, sized in COMPRESSORS:
        if payload.startswith(magic):
            break
    else:
        die("%s: unknown payload compression (magic %s)" % (src, payload[:6].hex()))
    expect = None
    if sized:
        expect = struct.unpack("<I", payload[-4:])[0]
        payload = payload[:-4]
    proc = subprocess.run(argv, input=payload, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    data = proc.stdout
    # lz4/xz may complain about the frame end yet emit everything; the size
    # and ELF checks below decide.
    if expect is not None and len(data) != expect:
        die("%s: %s gave %d bytes, header says %d (%s)"
            % (src, name, len(data), expect, proc.stderr.decode(errors="replace").strip()))
    if data[:4] != b"\x7fELF":
        die("%s: decompressed payload is not an ELF file" % src)
    tmp = out + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.rename(tmp, out)
    sys.stderr.write("extract-vmlinux: %s payload, %d bytes -> %s\n" % (name, len(data), out))


if __name__ == "__main__":
    main()
