#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Function lengths of GNU-style C files (the name line to the closing brace
at column 0), longest first: scripts/func-lengths.py [-n N] [--max L] FILES.
With --max, exits 1 when a function is longer than L lines."""
import argparse, re, sys

def lengths(path):
    lines = open(path, encoding="utf-8", errors="replace").read().split("\n")
    for i, line in enumerate(lines):
        m = re.match(r"^([A-Za-z_][A-Za-z0-9_]*) \(", line)
        if not m or line.rstrip().endswith(";"):
            continue
        j = i
        while j < len(lines) and lines[j] != "{":
            if lines[j].rstrip().endswith(";"):
                break
            j += 1
        if j >= len(lines) or lines[j] != "{":
            continue
        k = j
        while k < len(lines) and lines[k] != "}":
            k += 1
        yield m.group(1), path, i + 1, k - i + 1

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=10)
    ap.add_argument("--max", type=int)
    ap.add_argument("files", nargs="+")
    a = ap.parse_args()
    rows = sorted((r for f in a.files for r in lengths(f)), key=lambda r: -r[3])
    for name, path, line, n in rows[: a.n]:
        print(f"{n:5d}  {path}:{line}  {name}")
    if a.max is not None:
        over = [r for r in rows if r[3] > a.max]
        if over:
            print(f"func-lengths: {len(over)} function(s) over {a.max} lines", file=sys.stderr)
            sys.exit(1)

main()
