# SPDX-License-Identifier: Apache-2.0
"""The report's inputs: docs/report/data/*.json, one file per benchmark
result, each an envelope

  {"benchmark": "...", "title": "...", "date": "YYYY-MM-DD", "commit": "...",
   "host": one of HOSTS, "command": "what reproduces it",
   "source": "measured by ... | docs/FINDINGS.md at <commit>, section ...",
   "transcribed": true|false, "results": {... the benchmark's own JSON ...},
   "took_min": minutes its rerun took (optional), "notes": ["...", ...]}

around what the benchmark itself wrote (build/test-results/*.json).  The
findings-*.json files hold figures transcribed from docs/FINDINGS.md before
the benchmarks wrote JSON; a rerun never replaces them (nothing measured is
lost).  Every value a figure uses is read through Doc.get, which fails with
the file and the path of the value: no figure is drawn from a missing one.
Standard library only: `make report` checks every file before it imports
matplotlib."""
import json
import os
import re

# Where a result was measured: the label every caption carries.
HOSTS = {
    "nested": "nested software emulation: CH with a real Linux guest inside the KVM host, "
              "a QEMU/TCG VM with emulated SVM",
    "kvm-pvm-micro": "this host's KVM (kvm_pvm, software) with the micro guest",
    "qemu-tcg": "QEMU/TCG (software emulation) on this host",
    "hardware-kvm": "hardware KVM",
    "host": "this host itself, no VM",
}
HOST_SHORT = {"nested": "nested emulation", "kvm-pvm-micro": "kvm_pvm, micro guest",
              "qemu-tcg": "QEMU/TCG", "hardware-kvm": "hardware KVM", "host": "no VM"}

# Transcribed figures: always there (committed).
REQUIRED = [
    "findings-boot-tcg", "findings-ch-micro", "findings-qemu-standby", "findings-agent",
    "findings-webrtc-qemu", "findings-snapshot-kvmhost", "findings-vsock", "findings-cdp-wake",
    "findings-soak-qemu", "findings-soak-kvmhost", "findings-kvmhost", "findings-pmem-qemu",
]
# Measured by a rerun (scripts/report/rerun.py): used when present, each
# checked like the others.  hw-NAME: the same from `make bench-hw`.
MEASURED = {
    "host-bandwidth": "python3 scripts/report/bandwidth.py",
    "bench-boot": "make bench-boot",
    "bench-agent": "make bench-agent",
    "bench-ch": "make ch-bench",
    "bench-snapshot": "make bench-snapshot",
    "kvmhost": "make test-kvmhost",
    "cdp-wake": "make bench-cdp-wake",
    "bench-fork": "make bench-fork",
    "fork-kvmhost": "make bench-fork-kvmhost",
    "pmem-kvmhost": "make bench-pmem-kvmhost",
    "density": "make bench-density",
    "density-kvmhost": "make bench-density-kvmhost",
    "webrtc-qemu": "make bench-webrtc",
    "soak-qemu": "make soak",
    "soak-kvmhost": "make soak-kvmhost",
}
HW = ["hw-" + n for n in ("host-bandwidth", "bench-ch", "cdp-wake", "soak")]
# What each rerun takes on this project's 2-core build host, in minutes,
# until a rerun records its own time ("took_min" in its file).
ESTIMATE_MIN = {
    "host-bandwidth": "1", "bench-agent": "1", "bench-boot": "3-5", "bench-ch": "5-10", "cdp-wake": "15-20",
    "kvmhost": "20-30", "bench-snapshot": "40", "bench-fork": "10", "fork-kvmhost": "15-40",
    "pmem-kvmhost": "15", "density": "15-30", "density-kvmhost": "45", "webrtc-qemu": "3-5",
    "soak-qemu": "25",
    "soak-kvmhost": "55-120",
}

DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class ReportError(Exception):
    """What is wrong with which input, in one line."""


class Doc:
    """One result file, checked; get() reads a value by a dotted path."""

    def __init__(self, path):
        self.path = path
        self.name = os.path.basename(path)[:-len(".json")]
        rel = os.path.relpath(path)
        self.rel = rel
        try:
            with open(path) as f:
                text = f.read()
        except FileNotFoundError:
            raise ReportError("%s: missing; it is produced by %s" % (rel, producer(self.name))) from None
        except OSError as e:
            raise ReportError("%s: cannot read: %s" % (rel, e)) from None
        try:
            self.doc = json.loads(text)
        except ValueError as e:
            raise ReportError("%s: not valid JSON: %s" % (rel, e)) from None
        if not isinstance(self.doc, dict):
            raise ReportError("%s: not a JSON object" % rel)
        for key in ("benchmark", "title", "date", "commit", "host", "command", "source"):
            self.get(key, str)
        if not DATE_RE.match(self.doc["date"]):
            raise ReportError("%s: date: %r is not YYYY-MM-DD" % (rel, self.doc["date"]))
        if self.doc["host"] not in HOSTS:
            raise ReportError("%s: host: %r is not one of %s" % (rel, self.doc["host"], ", ".join(HOSTS)))
        self.get("transcribed", bool)
        self.get("results", dict)
        took = self.num("took_min", None)
        if took is not None and took < 0:
            raise ReportError("%s: took_min: %r is negative" % (rel, took))
        self.took_min = took
        self.host = self.doc["host"]
        self.transcribed = self.doc["transcribed"]

    def get(self, dotted, kind=None, default=KeyError):
        """The value at "results.sizes.0.standby_ms"; kind: a type (or
        tuple) it must have, "num" for a number (not a bool)."""
        cur, where, parts = self.doc, [], dotted.split(".")
        while parts:
            # A key may hold dots itself ("v53.0"): the longest one that is there.
            n = len(parts) if isinstance(cur, dict) else 1
            while isinstance(cur, dict) and n > 1 and ".".join(parts[:n]) not in cur:
                n -= 1
            part = ".".join(parts[:n])
            parts = parts[n:]
            where.append(part)
            if isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
                cur = cur[int(part)]
            elif isinstance(cur, dict) and part in cur:
                cur = cur[part]
            else:
                if default is not KeyError:
                    return default
                raise ReportError("%s: %s: missing" % (self.rel, ".".join(where)))
        if kind == "num":
            ok = isinstance(cur, (int, float)) and not isinstance(cur, bool)
            what = "a number"
        elif kind is not None:
            ok = isinstance(cur, kind) and not (kind in (int, float) and isinstance(cur, bool))
            what = getattr(kind, "__name__", str(kind))
        else:
            ok = True
        if not ok:
            raise ReportError("%s: %s: %r is not %s" % (self.rel, dotted, cur, what))
        return cur

    def num(self, dotted, default=KeyError):
        return self.get(dotted, "num", default)

    def r(self, dotted, kind=None, default=KeyError):
        return self.get("results." + dotted, kind, default)

    def rnum(self, dotted, default=KeyError):
        return self.get("results." + dotted, "num", default)

    def caption(self):
        d = self.doc
        how = ("transcribed from " + d["source"]) if self.transcribed else d["source"]
        return "%s, commit %s, %s; `%s`; %s" % (d["date"], d["commit"], HOSTS[d["host"]], d["command"], how)

    def footer(self):
        d = self.doc
        return "%s: %s, %s, %s%s; %s" % (self.name, d["date"], d["commit"], HOST_SHORT[d["host"]],
                                         ", transcribed" if self.transcribed else "", d["command"])


def producer(name):
    if name in MEASURED:
        return "`%s` (or make report REPORT_RERUN=1)" % MEASURED[name]
    if name.startswith("hw-"):
        return "`make bench-hw` on a host with hardware KVM"
    return "hand transcription from docs/FINDINGS.md (committed; restore it with git)"


def load(data_dir):
    """{name: Doc} of every file in data_dir; ReportError on the first
    missing required file, unknown file or malformed one."""
    if not os.path.isdir(data_dir):
        raise ReportError("%s: no such directory" % os.path.relpath(data_dir))
    docs = {}
    for name in REQUIRED:
        docs[name] = Doc(os.path.join(data_dir, name + ".json"))
    known = set(REQUIRED) | set(MEASURED) | set(HW)
    for f in sorted(os.listdir(data_dir)):
        if not f.endswith(".json"):
            continue
        name = f[:-5]
        if name not in known:
            raise ReportError("%s: not a result file the report knows (known: %s)"
                              % (os.path.relpath(os.path.join(data_dir, f)), ", ".join(sorted(known))))
        if name not in docs:
            docs[name] = Doc(os.path.join(data_dir, f))
    for name, d in docs.items():
        want = "hardware-kvm" if name.startswith("hw-") else None
        if want and d.host != want:
            raise ReportError("%s: host is %r; a hw-* file holds hardware KVM results" % (d.rel, d.host))
    return docs
