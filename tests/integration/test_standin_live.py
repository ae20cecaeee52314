# SPDX-License-Identifier: Apache-2.0
"""The stand-in image's live-view signalling server (scripts/standin/live/
standin-live), run here on loopback as the image runs it: a viewer's offer
is held until the sender polls and answers, the pages are served, and what
a hostile viewer sends (too big, not JSON, no sdp, a bad id, too many
offers) gets a clear JSON error and leaves the server serving.  Every request
carries the VM's token (?token=); without it, or with another, 403."""
import http.client
import json
import os
import subprocess
import sys
import threading
import time

import pytest

from chvmtest import paths

LIVE = os.path.join(paths.ROOT, "scripts", "standin", "live")
TOKEN = "0123456789abcdef0123456789abcdef"


@pytest.fixture(scope="module")
def server():
    r, w = os.pipe()
    env = dict(os.environ, STANDIN_LIVE_SHARE=LIVE, NEKO_SERVER_BIND="127.0.0.1:0",
               NEKO_WEBRTC_NAT1TO1="192.0.2.7", NEKO_WEBRTC_EPR="25101-25201", STANDIN_LIVE_ANSWER_WAIT="3",
               CHVM_LIVE_VIEW_TOKEN=TOKEN)
    p = subprocess.Popen([sys.executable, os.path.join(LIVE, "standin-live"), "--ready-fd",
                          str(w)], env=env, pass_fds=(w,), stderr=subprocess.DEVNULL)
    os.close(w)
    with os.fdopen(r) as f:
        port = int(f.readline())
    yield port
    p.terminate()
    p.wait(timeout=10)


def call(port, method, path, body=None, raw=None, headers=None, token=TOKEN):
    """One request, with ?token=TOKEN added (token None: none)."""
    if token is not None:
        path += ("&" if "?" in path else "?") + "token=" + token
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    c.request(method, path, body=data, headers=headers or {})
    r = c.getresponse()
    payload = r.read()
    c.close()
    ctype = r.getheader("Content-Type", "")
    return r.status, json.loads(payload) if "json" in ctype and payload else payload


def test_pages_and_config(server):
    for path, marker in (("/", b"window.stats"), ("/sender", b"getDisplayMedia")):
        status, page = call(server, "GET", path)
        assert status == 200 and marker in page
    assert call(server, "GET", "/config") == (200, {"nat1to1": "192.0.2.7", "epr": "25101-25201"})
    status, err = call(server, "GET", "/nope")
    assert status == 404 and "error" in err


def test_offer_unanswered(server):
    status, err = call(server, "POST", "/offer", {"sdp": "nobody polls"})
    assert status == 503 and "did not answer" in err["error"]
    call(server, "GET", "/poll")  # the stale offer: its answer would get 410


def test_offer_answer(server):
    got = {}
    viewer = threading.Thread(target=lambda: got.update(
        r=call(server, "POST", "/offer", {"sdp": "v=0 offer"})))
    viewer.start()
    status, offer = call(server, "GET", "/poll")
    assert status == 200 and offer["sdp"] == "v=0 offer"
    assert call(server, "POST", "/answer?id=%d" % offer["id"], {"sdp": "v=0 answer"})[0] == 200
    viewer.join(30)
    assert got["r"] == (200, {"sdp": "v=0 answer"})
    # Answered once: a second answer to the same offer is refused.
    assert call(server, "POST", "/answer?id=%d" % offer["id"], {"sdp": "late"})[0] == 410


def test_bad_input(server):
    cases = [
        ("/offer", None, b"x" * (64 * 1024 + 1), 413, "body must be"),
        ("/offer", None, b"not json", 400, "not a JSON object"),
        ("/offer", None, b"[1, 2]", 400, "not a JSON object"),
        ("/offer", {"sdp": 5}, None, 400, "needs \"sdp\""),
        ("/answer", {"sdp": "x"}, None, 400, "?id=N"),
        ("/answer?id=x", {"sdp": "x"}, None, 400, "?id=N"),
        ("/answer?id=1", {}, None, 400, "needs \"sdp\""),
    ]
    for path, body, raw, code, msg in cases:
        status, err = call(server, "POST", path, body=body, raw=raw)
        assert status == code and msg in err["error"], (path, status, err)
    status, err = call(server, "POST", "/offer", raw=b"{}", headers={"Content-Length": "-5"})
    assert status == 413, err
    # Still serving.
    assert call(server, "GET", "/config")[0] == 200


def test_pending_offers_bounded(server):
    """At most 16 offers wait for the sender; the 17th is refused at once."""
    threads = [threading.Thread(target=call, args=(server, "POST", "/offer", {"sdp": str(i)}))
               for i in range(16)]
    for t in threads:
        t.start()
    # Until all 16 are queued (each waits ANSWER_WAIT, 3 s, for an answer).
    deadline = time.monotonic() + 10
    status, err = None, None
    while time.monotonic() < deadline:
        status, err = call(server, "POST", "/offer", {"sdp": "one too many"})
        if status == 503 and "too many" in err["error"]:
            break
    assert status == 503 and "too many pending offers" in err["error"], (status, err)
    for _ in range(16):
        call(server, "GET", "/poll")
    for t in threads:
        t.join(10)


def test_token_required(server):
    """Without the VM's token, or with another, every page and every
    signalling request is refused (403) and queues nothing."""
    wrong = TOKEN[:-1] + ("0" if TOKEN[-1] != "0" else "1")
    for token in (None, "", wrong, TOKEN + "0"):
        for method, path, body in (("GET", "/", None), ("GET", "/sender", None),
                                   ("GET", "/config", None), ("GET", "/status", None),
                                   ("GET", "/poll", None), ("POST", "/offer", {"sdp": "x"}),
                                   ("POST", "/answer?id=1", {"sdp": "x"}),
                                   ("POST", "/status", {"x": 1})):
            status, err = call(server, method, path, body=body, token=token)
            assert status == 403 and "token" in err["error"], (token, method, path, status, err)
    # Nothing got through: the sender's status is untouched, no offer waits.
    status, report = call(server, "GET", "/status")
    assert status == 200 and "x" not in report, report
    # With the token: queued, and unanswered (no sender polls).
    status, err = call(server, "POST", "/offer", {"sdp": "with the token"})
    assert status == 503 and "did not answer" in err["error"], err
    call(server, "GET", "/poll")
