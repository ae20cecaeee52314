#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Circles of calls between files: which object files use a symbol another
defines (nm), then the strongly connected components of that graph.
scripts/call-cycles.py OBJ...  prints each circle (files that call each
other round) and exits 1 when there is one.  With --cc "COMPILER FLAGS",
the arguments are sources, compiled first (into a temporary folder)."""
import os, shlex, subprocess, sys, tempfile

def syms(obj):
    out = subprocess.run(["nm", "--defined-only", obj], capture_output=True, text=True).stdout
    defined = {l.split()[-1] for l in out.splitlines() if len(l.split()) == 3 and l.split()[1] in "TDBR"}
    out = subprocess.run(["nm", "--undefined-only", obj], capture_output=True, text=True).stdout
    used = {l.split()[-1] for l in out.splitlines() if l.split()}
    return defined, used

def main(objs):
    d, u = {}, {}
    for o in objs:
        d[o], u[o] = syms(o)
    owner = {s: o for o in objs for s in d[o]}
    edges = {o: {owner[s] for s in u[o] if s in owner and owner[s] != o} for o in objs}
    index, low, stack, on, sccs, n = {}, {}, [], set(), [], [0]
    sys.setrecursionlimit(10000)
    def visit(v):
        index[v] = low[v] = n[0]; n[0] += 1; stack.append(v); on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w); low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            c = []
            while True:
                w = stack.pop(); on.discard(w); c.append(w)
                if w == v:
                    break
            if len(c) > 1:
                sccs.append(sorted(c))
    for o in objs:
        if o not in index:
            visit(o)
    for c in sccs:
        print("circle: " + " <-> ".join(c))
    print("%d files, %d circle(s)" % (len(objs), len(sccs)))
    return 1 if sccs else 0

args = sys.argv[1:]
if args[:1] == ["--cc"]:
    cc, srcs = shlex.split(args[1]), args[2:]
    with tempfile.TemporaryDirectory() as tmp:
        objs = []
        for src in srcs:
            obj = os.path.join(tmp, src.replace("/", "_") + ".o")
            subprocess.run(cc + ["-c", "-o", obj, src], check=True)
            objs.append(obj)
        sys.exit(main(objs))
sys.exit(main(args))
