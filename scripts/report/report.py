#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Writes the report, docs/report/README.md and its PNG plots, from the
benchmark results in docs/report/data/*.json (data.py says what they hold).

  report.py [--data DIR] [--out DIR]

Every result file is read and checked first; a missing required file, an
unknown or malformed one, or a value a figure needs that is missing or not
a number stops it with one line naming the file and the value, exit 1:
no figure is drawn from missing data.  Then matplotlib (Debian's
python3-matplotlib, `make setup`) draws the figures.  `make report` runs it;
REPORT_RERUN=1 reruns the benchmarks first (rerun.py)."""
import argparse
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import data  # noqa: E402
import figures  # noqa: E402
from data import ReportError  # noqa: E402
import text  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(HERE))
DEBIAN_PYTHON = "/usr/bin/python3"


def matplotlib_or_reexec():
    """Debian's python3-matplotlib lives in /usr/bin/python3's path; a
    python3 first on PATH (pyenv, a venv) may not see it: run again with
    Debian's then."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        return plt
    except ImportError:
        pass
    if (os.path.realpath(sys.executable) != os.path.realpath(DEBIAN_PYTHON) and os.path.exists(DEBIAN_PYTHON)
            and subprocess.run([DEBIAN_PYTHON, "-c", "import matplotlib"], capture_output=True).returncode == 0):
        os.execv(DEBIAN_PYTHON, [DEBIAN_PYTHON] + sys.argv)
    raise ReportError("python3 module matplotlib not found: install the Debian package python3-matplotlib "
                      "(make setup does)")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.path.join(ROOT, "docs", "report", "data"))
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "report"))
    a = ap.parse_args()
    try:
        docs = data.load(a.data)
        specs = [(name, extract(docs), draw) for name, extract, draw in figures.FIGURES]
        values = text.extract(docs)
        plt = matplotlib_or_reexec()
        plt.rcParams.update({"font.size": 8, "svg.hashsalt": "chvm", "path.simplify": True})
        os.makedirs(a.out, exist_ok=True)
        written = []
        for name, spec, draw in specs:
            path = os.path.join(a.out, name + ".png")
            draw(plt, spec, path)
            written.append(path)
        readme = text.write_readme(docs, values, a.out, a.data)
    except ReportError as e:
        print("report: %s" % e, file=sys.stderr)
        return 1
    for p in written + [readme]:
        print("report: wrote %s (%d bytes)" % (os.path.relpath(p), os.path.getsize(p)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
