# SPDX-License-Identifier: Apache-2.0
"""The live view's receiver for the integration tests: live_view_client.js
(playwright-core driving Debian's chromium) holding one viewer page open
for the whole VM's life, so the same page is watched before a standby and
after the restore.  Used by the user-net (test_chvm_qemu.py) and the tap
(test_chvm_qemu_tap.py) tests; the figures go to stdout (pytest -s) and the
screenshots to LIVE_VIEW_SHOTS (default: pytest's tmp dir)."""
import json
import os
import shutil
import subprocess
import time
import urllib.parse

from . import paths

ROOT = paths.ROOT
CLIENT = paths.LIVE_VIEW_CLIENT_JS
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
WATCH_S = 5
# The guest page the live view must show: a colour no browser chrome has,
# and a clock, so the screen changes every frame.
LIVE_RGB = (224, 33, 138)
LIVE_PAGE = "data:text/html," + urllib.parse.quote(
    "<body style='margin:0;background:rgb(%d,%d,%d)'><h1 style='color:white;font:64px "
    "sans-serif'>chvm live view</h1><p id=c style='color:white;font:48px monospace'></p>"
    "<script>setInterval(()=>c.textContent=Date.now(),40)</script>" % LIVE_RGB)


def missing():
    """What the receiver needs from the host, or None."""
    if shutil.which("node") is None:
        return "node (apt-get install nodejs)"
    if not os.path.isdir(os.path.join(paths.NODE_MODULES, "playwright-core")):
        return "node_modules/playwright-core (npm ci)"
    if not os.access(CHROMIUM, os.X_OK):
        return "%s (apt-get install chromium)" % CHROMIUM
    return None


class Receiver:
    """One viewer page; prefix runs it elsewhere (e.g. ip netns exec NS)."""

    def __init__(self, url, prefix=(), timeout_ms=240000):
        self.url = url
        self.proc = subprocess.Popen(
            [*prefix, "node", CLIENT, url, str(timeout_ms)], cwd=ROOT, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.opened = self._line()

    def _line(self):
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError("live_view_client.js ended: %s" % self.proc.stderr.read())
        return json.loads(line)

    def watch(self, png):
        """Waits for video, samples getStats for WATCH_S seconds, saves the
        video frame to png; asserts that video came (a frame size) and kept
        coming (framesDecoded rose over the window; under TCG on two loaded
        cores the encoder may skip a 2 s sample: "rising" says whether it
        rose in every one, and is reported)."""
        self.proc.stdin.write("watch %s %d\n" % (png, WATCH_S))
        self.proc.stdin.flush()
        r = self._line()
        assert "error" not in r, r
        assert r["video_width"] > 0 and r["video_height"] > 0, r
        assert r["frames"] and r["frames"][-1] > r["frames"][0], (
            "framesDecoded did not rise in %d s: %s" % (WATCH_S, r["frames"]))
        assert os.path.getsize(png) > 0
        return r

    def watch_live(self, png, deadline):
        """watch() until the received frame shows LIVE_PAGE or the deadline
        (time.monotonic()) passes; the last watch's result, with the seconds
        it took in "live_after_s".  After a restore under TCG the sender
        repeats its last frame from before the standby for a while (up to
        20 s seen on two loaded cores) before the display's new frames come."""
        t0 = time.monotonic()
        while True:
            r = self.watch(png)
            if shows_live_page(r) or time.monotonic() >= deadline:
                r["live_after_s"] = time.monotonic() - t0
                return r

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()


def shot_path(tmp_dir, name):
    d = os.environ.get("LIVE_VIEW_SHOTS") or str(tmp_dir)
    os.makedirs(d, exist_ok=True)
    return os.path.join(d, name)


def report(what, r):
    print("%s: first frame %.2f s after the page opened, a new one %.2f s after asking; "
          "%dx%d, %.1f fps, %.0f kbit/s, viewer offers %d, frames %s"
          % (what, r["first_frame_ms"] / 1000, r["new_frame_ms"] / 1000, r["video_width"],
             r["video_height"], r["fps"], r["kbps"], r["connects"], r["frames"]))


# What `make bench-webrtc` measures (the report's WebRTC figure): each
# network path's watch before the standby and after the restore, written to
# RESULTS after each one (the same shape as the report's
# docs/report/data/findings-webrtc-qemu.json).
RESULTS = os.path.join(paths.TEST_RESULTS, "webrtc-qemu.json")
_figures = {}


def record(path, r, restored_connects=None):
    """Keeps r, the watch of the network path named path: before the standby
    when restored_connects is None, else after the restore (the viewer's
    offer count before it: more now means a new session, not the same)."""
    p = _figures.setdefault(path, {"path": path})
    if restored_connects is None:
        p.update(first_frame_s=round(r["first_frame_ms"] / 1000, 2), fps=round(r["fps"], 1),
                 kbps=round(r["kbps"]))
    else:
        # new_frame_s: the last watch's (watch_live watches until the screen is
        # the current one); live_after_s: how long that took in all.
        p["after_restore"] = {"new_frame_s": round(r["new_frame_ms"] / 1000, 2), "fps": round(r["fps"], 1),
                              "kbps": round(r["kbps"]), "live_after_s": round(r["live_after_s"], 1),
                              "same_session": r["connects"] <= restored_connects}
    doc = {"paths": [v for v in _figures.values() if "after_restore" in v and "fps" in v],
           "frame_size": "%dx%d" % (r["video_width"], r["video_height"]), "watch_s": WATCH_S}
    os.makedirs(paths.TEST_RESULTS, exist_ok=True)
    with open(RESULTS + ".tmp", "w") as f:
        json.dump(doc, f, indent=1)
    os.replace(RESULTS + ".tmp", RESULTS)


def shows_live_page(r):
    """Whether the received frame's middle has LIVE_PAGE's colour."""
    return all(abs(a - b) <= 24 for a, b in zip(r["center_rgb"], LIVE_RGB))


def assert_shows_live_page(r):
    """The received frame's middle has LIVE_PAGE's colour."""
    assert shows_live_page(r), \
        "the received frame's middle is %s, the guest's page is %s" % (r["center_rgb"], LIVE_RGB)
