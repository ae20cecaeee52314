# SPDX-License-Identifier: Apache-2.0
"""The report generator (scripts/report/report.py, `make report`) on a copy
of the committed results (docs/report/data/): it writes every plot and the
page; a missing, unknown or malformed result file, or a value a figure
needs that is missing or not a number, stops it with one line naming the
file and the value, exit 1, before any plot is written (no silent empty
plot).  The failing cases check the files before matplotlib is imported,
so they run without it; the whole generation skips with one line when
neither this python3 nor Debian's has matplotlib."""
import json
import os
import shutil
import subprocess
import sys

import pytest

from chvmtest import paths

REPORT = os.path.join(paths.ROOT, "scripts", "report", "report.py")
RERUN = os.path.join(paths.ROOT, "scripts", "report", "rerun.py")
DATA = os.path.join(paths.ROOT, "docs", "report", "data")
PLOTS = ["boot", "memory", "snapshot", "restore", "versions", "wake", "soak", "webrtc"]


def has_matplotlib():
    for py in (sys.executable, "/usr/bin/python3"):
        if os.path.exists(py) and subprocess.run([py, "-c", "import matplotlib"],
                                                 capture_output=True).returncode == 0:
            return True
    return False


@pytest.fixture
def tree(tmp_path):
    data = tmp_path / "data"
    shutil.copytree(DATA, data)
    out = tmp_path / "out"
    return data, out


def generate(data, out):
    return subprocess.run([sys.executable, REPORT, "--data", str(data), "--out", str(out)],
                          capture_output=True, text=True, timeout=300)


def edit(path, change):
    with open(path) as f:
        doc = json.load(f)
    change(doc)
    with open(path, "w") as f:
        json.dump(doc, f)


def fails_with(data, out, *words):
    r = generate(data, out)
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    line = r.stderr.strip()
    assert len(line.splitlines()) == 1 and line.startswith("report: "), line
    for w in words:
        assert w in line, (w, line)
    # Nothing drawn: the checks come before any plot.
    assert not out.exists() or not any(out.iterdir()), list(out.iterdir())
    return line


def test_generates_every_plot_and_the_page(tree):
    if not has_matplotlib():
        pytest.skip("matplotlib missing: apt-get install python3-matplotlib (make setup does)")
    data, out = tree
    r = generate(data, out)
    assert r.returncode == 0, r.stderr
    text = (out / "README.md").read_text()
    for name in PLOTS:
        png = (out / (name + ".png")).read_bytes()
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and 5000 < len(png) < 200000, (name, len(png))
        assert "(%s.png)" % name in text, name
    for q in ("with 2 GiB?", "how does Cloud Hypervisor behave?", "WebRTC live view?",
              "keep a CDP connection alive?", "## On hardware KVM", "How long a full rerun takes here"):
        assert q in text, q


def test_missing_result_file(tree):
    data, out = tree
    os.unlink(data / "findings-ch-micro.json")
    fails_with(data, out, "findings-ch-micro.json: missing")


def test_not_json(tree):
    data, out = tree
    (data / "findings-cdp-wake.json").write_text('{"benchmark": "cdp-wake", ')
    fails_with(data, out, "findings-cdp-wake.json: not valid JSON")


def test_missing_value(tree):
    data, out = tree
    edit(data / "findings-ch-micro.json", lambda d: d["results"]["runs"][0]["sizes"][1].pop("standby_ms"))
    fails_with(data, out, "findings-ch-micro.json", "results.runs.0.sizes.1.standby_ms: missing")


def test_value_not_a_number(tree):
    # The transcribed file, without the rerun's webrtc-qemu.json that stands
    # in for it when there is one (a measured file is optional).
    data, out = tree
    if (data / "webrtc-qemu.json").exists():
        os.unlink(data / "webrtc-qemu.json")
    edit(data / "findings-webrtc-qemu.json", lambda d: d["results"]["paths"][1].update(fps="2.4"))
    fails_with(data, out, "findings-webrtc-qemu.json", "paths.1.fps", "not a number")


def test_envelope_checked(tree):
    data, out = tree
    edit(data / "findings-boot-tcg.json", lambda d: d.update(host="somewhere"))
    fails_with(data, out, "findings-boot-tcg.json: host", "not one of")
    edit(data / "findings-boot-tcg.json", lambda d: (d.update(host="qemu-tcg"), d.pop("commit")))
    fails_with(data, out, "findings-boot-tcg.json: commit: missing")


def test_measured_file_checked_too(tree):
    """A rerun's file (optional) is checked like a committed one, and an
    unknown file is refused rather than ignored."""
    data, out = tree
    (data / "cdp-wake.json").write_text(json.dumps({
        "benchmark": "cdp-wake", "title": "t", "date": "2026-12-06", "commit": "abc", "host": "qemu-tcg",
        "command": "make bench-cdp-wake", "source": "s", "transcribed": False,
        "results": {"rows": [{"cycle": 1}], "cycles": 1}}))
    fails_with(data, out, "cdp-wake.json", "results.rows.0.answer_ms: missing")
    os.unlink(data / "cdp-wake.json")
    (data / "stray.json").write_text("{}")
    fails_with(data, out, "stray.json: not a result file the report knows")


def test_rerun_time_checked(tree):
    """A rerun's recorded time is a number of minutes, not negative."""
    data, out = tree
    edit(data / "bench-agent.json", lambda d: d.update(took_min="3"))
    fails_with(data, out, "bench-agent.json", "took_min", "not a number")
    edit(data / "bench-agent.json", lambda d: d.update(took_min=-1))
    fails_with(data, out, "bench-agent.json: took_min", "negative")


def test_rerun_copies_only_a_whole_run(tmp_path):
    """rerun.py copies a benchmark's JSON with the minutes it took when its
    make target exits 0, and leaves the committed file when it fails, even
    if the failed run wrote a partial result.  The make is a declared test
    double (a script writing bench-agent's result line, exiting $RC); the
    real targets run in `make report REPORT_RERUN=1`."""
    data, results = tmp_path / "data", tmp_path / "results"
    data.mkdir()
    results.mkdir()
    make = tmp_path / "make"
    make.write_text('#!/bin/sh\necho \'{"partial": true, "ping_p50_us": 9}\' > "%s/bench-agent.json"\n'
                    'exit "$RC"\n' % results)
    make.chmod(0o755)
    (data / "bench-agent.json").write_text('{"committed": true}')

    def rerun(rc):
        return subprocess.run([sys.executable, RERUN, "--only", "bench-agent", "--make", str(make),
                               "--data", str(data), "--results", str(results)],
                              env=dict(os.environ, RC=str(rc)), capture_output=True, text=True, timeout=60)
    r = rerun(2)
    assert r.returncode == 0, r.stderr
    assert "exit 2, no result copied" in r.stdout, r.stdout
    assert json.loads((data / "bench-agent.json").read_text()) == {"committed": True}
    r = rerun(0)
    assert "bench-agent: " in r.stdout and "written" in r.stdout, r.stdout
    doc = json.loads((data / "bench-agent.json").read_text())
    assert doc["results"] == {"partial": True, "ping_p50_us": 9} and doc["took_min"] >= 0, doc
    assert doc["command"] == "make bench-agent" and not doc["transcribed"], doc
