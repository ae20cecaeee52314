# SPDX-License-Identifier: Apache-2.0
"""The report's figures.  Each is two functions: extract_X(docs) reads every
value it will draw from the checked result files (data.Doc.get: a missing
or mistyped value is a ReportError naming file and path) into plain lists,
before any plotting; draw_X(plt, spec, path) draws them with matplotlib.
Every figure names its axes with units and its series, and carries a
footer per source file: date, commit, host, command."""
import io

from data import ReportError

MiB = 1048576.0
FOOT = 6.5  # footer font size


def pick(docs, measured, transcribed):
    """The measured result when a rerun made one, else the transcribed one."""
    return docs.get(measured) or docs[transcribed]


def vals(doc, dotted):
    """A list of numbers at dotted (per-cycle figures)."""
    v = doc.r(dotted, list)
    for i, x in enumerate(v):
        if not isinstance(x, (int, float)) or isinstance(x, bool):
            raise ReportError("%s: results.%s.%d: %r is not a number" % (doc.rel, dotted, i, x))
    return v


def finish(plt, fig, sources, path, title):
    fig.suptitle(title, fontsize=11)
    lines = [d.footer() for d in sources]
    fig.text(0.005, 0.005, "\n".join(lines), fontsize=FOOT, va="bottom", ha="left", color="#444")
    fig.tight_layout(rect=(0, 0.012 * (len(lines) + 1) + 0.02, 1, 0.95))
    buf = io.BytesIO()
    fig.savefig(buf, dpi=100, format="png", metadata={"Software": None})
    plt.close(fig)
    # A palette of 64 colours: a third of the bytes, the same picture
    # (flat colours and text); PIL comes with python3-matplotlib.
    from PIL import Image
    buf.seek(0)
    Image.open(buf).convert("RGB").quantize(colors=64).save(path, optimize=True)


# ---- boot -------------------------------------------------------------------
INIT_PHASES = ["start", "modules", "disks", "config", "overlay", "network", "agent", "exec"]


def extract_boot(docs):
    tcg = docs["findings-boot-tcg"]
    ph = {n: tcg.rnum("phases_s." + n) for n in INIT_PHASES}
    cdp = ph["agent"] + tcg.rnum("wait_ready_after_agent_s")
    rows = [("QEMU/TCG, stand-in, 2 GiB", [("kernel to /init", 0, ph["start"]),
                                          ("init: /init to entrypoint", ph["start"], ph["exec"]),
                                          ("entrypoint to CDP answering", ph["exec"], cdp)])]
    kh = pick(docs, "kvmhost", "findings-kvmhost")
    for v in ("v53.0", "v48.0"):
        if kh.r(v, dict, None) is None:
            continue
        s, r = kh.rnum(v + ".run.start_ms") / 1e3, kh.rnum(v + ".run.ready_ms") / 1e3
        rows.append(("CH %s nested, stand-in, 1 GiB" % v, [("chvm run to VMM started", 0, s),
                                                          ("VMM started to CDP answering", s, r)]))
    sources = [tcg, kh]
    if "hw-soak" in docs:
        b = docs["hw-soak"].rnum("boot_s")
        rows.append(("CH, hardware KVM (soak's boot)", [("chvm run to VM ready", 0, b)]))
        sources.append(docs["hw-soak"])
    bench = docs.get("bench-boot")
    if bench:
        runs = bench.r("runs.chvm-init", list)
        if not runs:
            raise ReportError("%s: results.runs.chvm-init: no runs" % bench.rel)
        # The fastest run's phases: the one the total beside them is.
        best = min(range(len(runs)), key=lambda i: bench.rnum("runs.chvm-init.%d.handoff" % i))
        wph = {n: bench.rnum("runs.chvm-init.%d.phases.%s" % (best, n)) for n in INIT_PHASES}
        init_total = bench.rnum("min_handoff_s.chvm-init")
        bb_total = bench.rnum("min_handoff_s.busybox")
        wlabel = "chvm-init phases, fastest of %d runs (bench-boot)" % len(runs)
        sources.append(bench)
    else:
        wph = ph
        init_total = tcg.rnum("handoff_min_of_3_s.chvm-init")
        bb_total = tcg.rnum("handoff_min_of_3_s.busybox")
        wlabel = "chvm-init phases (stand-in boot, test_guest_init)"
    water = []
    for a, b in zip(INIT_PHASES, INIT_PHASES[1:]):
        water.append(("mounts" if a == "start" else a, wph[a] - wph["start"], wph[b] - wph[a]))
    return {"rows": rows, "water": water, "wlabel": wlabel, "init_total": init_total,
            "bb_total": bb_total, "sources": sources}


def draw_boot(plt, s, path):
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.6), gridspec_kw={"width_ratios": [1.25, 1]})
    colors = {}
    palette = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860"]
    for i, (label, segs) in enumerate(s["rows"]):
        for name, x0, x1 in segs:
            c = colors.setdefault(name, palette[len(colors) % len(palette)])
            a.barh(i, x1 - x0, left=x0, color=c, label=name if name not in a.get_legend_handles_labels()[1] else None)
        a.text(segs[-1][2], i, " %.1f s" % segs[-1][2], va="center", fontsize=8)
    a.set_yticks(range(len(s["rows"])), [r[0] for r in s["rows"]], fontsize=8)
    a.invert_yaxis()
    a.set_xlabel("time from start (s)")
    a.set_title("start to CDP answering, per backend", fontsize=9)
    a.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=3)
    a.margins(x=0.15)
    n = len(s["water"])
    for i, (name, x0, d) in enumerate(s["water"]):
        b.barh(i, d, left=x0, color="#4c72b0")
        b.text(x0 + d, i, " %s %.0f ms" % (name, d * 1e3), va="center", fontsize=7)
    b.barh(n, s["init_total"], color="#55a868", label="chvm-init: /init to entrypoint, min of runs")
    b.barh(n + 1, s["bb_total"], color="#c44e52", label="BusyBox script, same steps: min of runs")
    for i, v in ((n, s["init_total"]), (n + 1, s["bb_total"])):
        b.text(v, i, " %.2f s" % v, va="center", fontsize=7)
    b.set_yticks(range(n + 2), [w[0] for w in s["water"]] + ["chvm-init total", "BusyBox total"], fontsize=7)
    b.invert_yaxis()
    b.set_xlabel("time since /init started (s)")
    b.set_title("init waterfall: " + s["wlabel"], fontsize=8)
    b.legend(fontsize=7, loc="upper right")
    b.margins(x=0.3)
    finish(plt, fig, s["sources"], path, "Boot: where the time goes")


# ---- standby / restore against memory ---------------------------------------
RESTORES = [("restore_copy_cold_ms", "copy restore, cold cache", "o"),
            ("restore_copy_warm_ms", "copy restore, warm cache", "s"),
            ("restore_ondemand_warm_ms", "ondemand restore", "^")]


def micro_series(doc, base, label):
    """Per CH run: touched MiB, guest MiB, standby s, restore s per mode."""
    sizes = doc.r(base + "sizes", list)
    out = {"label": label, "x": [], "guest": [], "bytes": [], "standby": [], "restores": {}}
    for i in range(len(sizes)):
        p = "%ssizes.%d." % (base, i)
        if doc.r(p + "error", str, None) is not None:
            continue
        out["x"].append(doc.rnum(p + "touched_MiB"))
        out["guest"].append(doc.rnum(p + "guest_MiB"))
        out["bytes"].append(doc.rnum(p + "snapshot_alloc_bytes"))
        out["standby"].append(doc.rnum(p + "standby_ms") / 1e3)
        for key, _, _ in RESTORES:
            v = doc.rnum(p + key, None)
            out["restores"].setdefault(key, []).append(None if v is None else v / 1e3)
    if not out["x"]:
        raise ReportError("%s: results.%ssizes: no size without an error" % (doc.rel, base))
    return out


def extract_memory(docs):
    tr = docs["findings-ch-micro"]
    runs = [micro_series(tr, "runs.%d." % i, "CH " + tr.r("runs.%d.ch_version" % i, str).split(" (")[0]
                         + (" patched" if "patched" in tr.r("runs.%d.ch_version" % i) else ""))
            for i in range(len(tr.r("runs", list)))]
    rng = {k: [tr.rnum("host_range.%s.0" % k), tr.rnum("host_range.%s.1" % k)]
           for k in ("seq_write_MBps", "seq_read_cold_MBps", "memcpy_MBps")}
    sources = [tr]
    host = None
    if "bench-ch" in docs:
        m = docs["bench-ch"]
        ver = m.r("ch_version", str).split(" (")[0]
        ver = ver[len("cloud-hypervisor "):] if ver.startswith("cloud-hypervisor ") else ver
        runs.append(micro_series(m, "", "CH %s, measured %s" % (ver, m.get("date"))))
        host = {k: m.rnum("host." + k) for k in rng}
        sources.append(m)
    bw = docs.get("host-bandwidth")
    if bw:
        sources.append(bw)
        bwv = {k: bw.rnum(k) for k in rng}
    else:
        bwv = None
    nest = pick(docs, "bench-snapshot", "findings-snapshot-kvmhost")
    sources.append(nest)
    nseries = {}
    for i in range(len(nest.r("micro.sizes", list))):
        p = "micro.sizes.%d." % i
        if nest.r(p + "error", str, None) is not None:
            continue
        kind = "shared (memfd)" if nest.r(p + "shared_memory", str) == "on" else "private"
        d = nseries.setdefault(kind, {"x": [], "standby": [], "restore": [], "alloc": []})
        d["x"].append(nest.rnum(p + "touched_MiB"))
        d["standby"].append(nest.rnum(p + "standby_ms") / 1e3)
        d["restore"].append(nest.rnum(p + "restore_copy_warm_ms") / 1e3)
        d["alloc"].append(nest.rnum(p + "snapshot_alloc_bytes") / MiB)
        guest = nest.rnum(p + "guest_MiB")
    nhost = ({k: nest.rnum("micro.host." + k) for k in rng}
             if nest.r("micro.host", dict, None) is not None else None)
    return {"runs": runs, "range": rng, "host": host, "probe": bwv, "nested": nseries, "nguest": guest,
            "nhost": nhost, "sources": sources}


def bound(ax, xs, bytes_, mbps, label, color, band=True):
    """Time = bytes / bandwidth: a band for a [min, max] range, else a line."""
    order = sorted(range(len(xs)), key=lambda i: xs[i])
    x = [xs[i] for i in order]
    t = [bytes_[i] / 1e6 for i in order]
    if band:
        lo, hi = mbps
        ax.fill_between(x, [v / hi for v in t], [v / lo for v in t], color=color, alpha=0.18,
                        label="bound: %s %.0f-%.0f MB/s" % (label, lo, hi))
    else:
        ax.plot(x, [v / mbps for v in t], color=color, ls="--", lw=1,
                label="bound: %s %.0f MB/s" % (label, mbps))


def draw_memory(plt, s, path):
    fig, axes = plt.subplots(1, 3, figsize=(14, 8.2))
    a, b, c = axes
    colors = ["#4c72b0", "#dd8452", "#55a868", "#8172b3"]
    allx = sorted({x for r in s["runs"] for x in r["x"]})
    gx = {}
    for r in s["runs"]:
        for x, g, by in zip(r["x"], r["guest"], r["bytes"]):
            gx[x] = by
    bytes_ = [gx[x] for x in allx]
    bound(a, allx, bytes_, s["range"]["seq_write_MBps"], "snapshot bytes / disk write", "#c44e52")
    bound(b, allx, bytes_, s["range"]["seq_read_cold_MBps"], "snapshot bytes / cold disk read", "#c44e52")
    bound(b, allx, bytes_, s["range"]["memcpy_MBps"], "snapshot bytes / memcpy", "#8c8c8c")
    for h, tag in ((s["host"], "measured run"), (s["probe"], "bandwidth probe")):
        if h:
            bound(a, allx, bytes_, h["seq_write_MBps"], "disk write, " + tag, "#c44e52", band=False)
            bound(b, allx, bytes_, h["seq_read_cold_MBps"], "cold read, " + tag, "#c44e52", band=False)
            bound(b, allx, bytes_, h["memcpy_MBps"], "memcpy, " + tag, "#8c8c8c", band=False)
    for i, r in enumerate(s["runs"]):
        col = colors[i % len(colors)]
        a.plot(r["x"], r["standby"], marker="o", color=col, label=r["label"] + ": standby")
        for key, name, mk in RESTORES:
            pts = [(x, y) for x, y in zip(r["x"], r["restores"].get(key, [])) if y is not None]
            if pts:
                b.plot([p[0] for p in pts], [p[1] for p in pts], marker=mk, color=col,
                       ls={"o": "-", "s": ":", "^": "-."}[mk], label="%s: %s" % (r["label"], name))
    for ax, t in ((a, "standby (pause + snapshot) vs touched memory"), (b, "restore vs touched memory")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(allx, [str(int(x)) for x in allx])
        ax.set_xlabel("guest memory touched (MiB); guest RAM = touched + 32 MiB")
        ax.set_ylabel("time (s)")
        ax.set_title("this host's KVM (kvm_pvm), micro guest:\n" + t, fontsize=8)
        # Below the plot: a dozen series would hide the points.
        ax.legend(fontsize=6.5, loc="upper center", bbox_to_anchor=(0.5, -0.13))
        ax.grid(alpha=0.3, which="both")
    for kind, d in s["nested"].items():
        ls = "-" if kind == "private" else "--"
        c.plot(d["x"], d["standby"], marker="o", ls=ls, color="#4c72b0", label="standby, " + kind)
        c.plot(d["x"], d["restore"], marker="s", ls=ls, color="#dd8452", label="copy restore, " + kind)
    if s["nhost"]:
        xs = sorted({x for d in s["nested"].values() for x in d["x"]})
        bound(c, xs, [x * MiB for x in xs], s["nhost"]["seq_write_MBps"], "touched bytes / disk write",
              "#c44e52", band=False)
    c.set_xlabel("guest memory touched (MiB) of %d MiB guest RAM" % s["nguest"])
    c.set_ylabel("time (s)")
    c.set_title("nested (CH v53 in the KVM host), micro guest: private memory costs\nall guest RAM, shared only "
                "what was touched%s" % ("" if s["nhost"] else "\n(no host bandwidth was recorded in this run: "
                                        "no bound)"), fontsize=8)
    c.legend(fontsize=7)
    c.grid(alpha=0.3)
    c.set_ylim(bottom=0)
    finish(plt, fig, s["sources"], path, "Standby and restore against guest memory, beside the host's bandwidth")


# ---- snapshot bytes per memory setting ----------------------------------------
def chromium_rows(doc):
    rows = []
    for i in range(len(doc.r("chromium", list))):
        p = "chromium.%d." % i
        rows.append({"label": "%s\n(%s restore)" % (doc.r(p + "row", str), doc.r(p + "restore", str)),
                     "alloc": doc.rnum(p + "standby.snapshot_allocated") / MiB,
                     "ram": doc.rnum(p + "standby.guest_ram") / MiB,
                     "used": doc.rnum(p + "standby.guest_used", 0) / MiB,
                     "standby": doc.rnum(p + "standby.total_ms") / 1e3,
                     "cdp": doc.rnum(p + "restore_out.cdp_ready_ms",
                                     doc.rnum(p + "restore_out.total_ms", 0)) / 1e3,
                     "mode": doc.r(p + "restore", str),
                     "rss0": doc.rnum(p + "vmm_rss_after") / MiB, "rss30": doc.rnum(p + "vmm_rss_30s") / MiB})
    if not rows:
        raise ReportError("%s: results.chromium: no rows" % doc.rel)
    return rows


def shorten(label):
    return (label.replace("\n", " ").replace("default memory (private, no balloon)", "private")
            .replace("shared=on", "shared").replace(" + free page reporting", " +FPR").replace(" restore)", ")"))


def extract_snapshot(docs):
    d = pick(docs, "bench-snapshot", "findings-snapshot-kvmhost")
    nonfree = d.rnum("nonfree_probe_MiB.sum", None)
    return {"rows": chromium_rows(d), "nonfree": nonfree, "version": d.r("version", str),
            "memory": extract_memory(docs)["nested"], "sources": [d]}


def draw_snapshot(plt, s, path):
    fig, (a, b) = plt.subplots(1, 2, figsize=(13, 5), gridspec_kw={"width_ratios": [1.7, 1]})
    rows = s["rows"]
    x = range(len(rows))
    a.bar(x, [r["alloc"] for r in rows], color="#4c72b0", label="snapshot, allocated bytes")
    a.scatter(x, [r["used"] for r in rows], color="#dd8452", zorder=3, marker="D",
              label="guest used at the quiesce (RAM - MemAvailable)")
    a.axhline(rows[0]["ram"], color="#c44e52", ls="--", label="guest RAM %.0f MiB" % rows[0]["ram"])
    if s["nonfree"]:
        a.axhline(s["nonfree"], color="#55a868", ls=":",
                  label="guest non-free (MemTotal - MemFree + kernel), probe: %.0f MiB" % s["nonfree"])
    for i, r in enumerate(rows):
        a.text(i, r["alloc"], "%.0f\n(%.0f%%)" % (r["alloc"], 100 * r["alloc"] / r["ram"]),
               ha="center", va="bottom", fontsize=7)
    a.set_xticks(list(x), [shorten(r["label"]).replace(" +", "\n+").replace(" (", "\n(") for r in rows],
                 fontsize=7)
    a.set_ylabel("MiB")
    a.set_ylim(0, rows[0]["ram"] * 1.25)
    a.set_title("Chromium stand-in after loading a page, CH %s nested" % s["version"], fontsize=9)
    a.legend(fontsize=7, loc="upper right")
    labels, allocs, touched = [], [], []
    for kind, d in s["memory"].items():
        for t, al in zip(d["x"], d["alloc"]):
            labels.append("%d MiB touched\n%s" % (t, kind))
            allocs.append(al)
            touched.append(t)
    xs = range(len(labels))
    b.bar(xs, allocs, color="#4c72b0", label="snapshot, allocated bytes")
    b.scatter(xs, touched, color="#dd8452", marker="D", zorder=3, label="memory the guest touched")
    b.axhline(2048, color="#c44e52", ls="--", label="guest RAM 2048 MiB")
    b.set_xticks(list(xs), labels, fontsize=7)
    b.set_ylabel("MiB")
    b.set_ylim(0, 2048 * 1.25)
    b.set_title("micro guest, 2 GiB, nested: private vs shared", fontsize=9)
    b.legend(fontsize=7, loc="upper right")
    finish(plt, fig, s["sources"], path, "Snapshot size per guest memory setting")


# ---- restore modes ------------------------------------------------------------
RESTORE_PHASES = ["tap", "vmm-start", "restore", "resume", "thaw", "ready"]


def extract_restore(docs):
    kh = pick(docs, "kvmhost", "findings-kvmhost")
    bars = []
    for v in ("v53.0", "v48.0"):
        for mode in ("copy", "ondemand"):
            p = "%s.restore_%s.phases" % (v, mode)
            if kh.r(p, dict, None) is None:
                continue
            bars.append(("CH %s, %s" % (v, mode), [(n, kh.rnum(p + "." + n) / 1e3) for n in RESTORE_PHASES
                                                   if kh.rnum(p + "." + n, None) is not None]))
    snap = pick(docs, "bench-snapshot", "findings-snapshot-kvmhost")
    return {"bars": bars, "rows": chromium_rows(snap), "sources": [kh, snap]}


def draw_restore(plt, s, path):
    fig, (a, b, c) = plt.subplots(1, 3, figsize=(15, 5), gridspec_kw={"width_ratios": [1.4, 1, 0.9]})
    palette = dict(zip(RESTORE_PHASES, ["#937860", "#8172b3", "#4c72b0", "#55a868", "#dd8452", "#c44e52"]))
    seen = set()
    for i, (label, phases) in enumerate(s["bars"]):
        x = 0.0
        for name, d in phases:
            a.barh(i, d, left=x, color=palette[name], label=None if name in seen else name)
            seen.add(name)
            x += d
            if name == "resume":
                a.plot([x, x], [i - 0.45, i + 0.45], color="k", lw=1.5)
                a.text(x, i - 0.47, "resumed %.1f s" % x, fontsize=6.5, va="bottom")
        a.text(x, i, " CDP %.1f s" % x, va="center", fontsize=7)
    a.set_yticks(range(len(s["bars"])), [bb[0] for bb in s["bars"]], fontsize=8)
    a.invert_yaxis()
    a.set_xlabel("time since chvm restore started (s)")
    a.set_title("chvm restore phases, stand-in 1 GiB, nested (test-kvmhost)", fontsize=8)
    a.legend(fontsize=7, loc="lower right", title="phase", title_fontsize=7)
    a.margins(x=0.2)
    rows = s["rows"]
    short = [shorten(r["label"]) for r in rows]
    colors = ["#4c72b0" if r["mode"] == "copy" else "#dd8452" for r in rows]
    b.barh(range(len(rows)), [r["cdp"] for r in rows], color=colors)
    for i, r in enumerate(rows):
        b.text(r["cdp"], i, " %.1f s" % r["cdp"], va="center", fontsize=7)
    b.set_yticks(range(len(rows)), short, fontsize=6.5)
    b.invert_yaxis()
    b.set_xlabel("chvm restore to CDP answering (s)")
    b.set_title("restore to CDP, stand-in 2 GiB, nested (bench-snapshot)\nblue: copy, orange: ondemand; "
                "FPR: free page reporting", fontsize=8)
    b.margins(x=0.2)
    distinct = ["#4c72b0", "#55a868", "#8172b3", "#937860", "#dd8452", "#c44e52"]
    for i, (r, lab) in enumerate(zip(rows, short)):
        c.plot([0, 30], [r["rss0"], r["rss30"]], marker="o", color=distinct[i % len(distinct)],
               ls="-" if r["mode"] == "copy" else "--", label=lab)
    c.set_xlabel("seconds after the restore returned")
    c.set_ylabel("VMM resident memory (MiB)")
    c.set_xticks([0, 30])
    c.set_title("VMM resident memory after restore\n(sampled at 0 and 30 s)", fontsize=8)
    c.legend(fontsize=6, loc="center right")
    c.set_ylim(0, 2300)
    finish(plt, fig, s["sources"], path, "Restore modes: copy and ondemand (userfaultfd)")


# ---- CH v48 vs v53 --------------------------------------------------------------
STEPS = [("run.ready_ms", "chvm run: CDP answering"),
         ("playwright_connect_ms", "playwright connectOverCDP"),
         ("standby_copy.phases.quiesce", "standby: quiesce"),
         ("standby_copy.phases.snapshot", "standby: snapshot"),
         ("restore_copy.phases.restore", "copy restore: restore"),
         ("restore_copy.phases.thaw", "copy restore: thaw"),
         ("restore_copy.phases.ready", "copy restore: ready"),
         ("stop_ms", "chvm stop")]


def extract_versions(docs):
    kh = pick(docs, "kvmhost", "findings-kvmhost")
    steps = []
    for key, label in STEPS:
        a = kh.rnum("v53.0." + key, None)
        b = kh.rnum("v48.0." + key, None)
        if a is not None and b is not None:
            steps.append((label, a / 1e3, b / 1e3))
    if not steps:
        raise ReportError("%s: results: no step measured with both v53.0 and v48.0" % kh.rel)
    tr = docs["findings-ch-micro"]
    micro = {}
    for i in range(len(tr.r("runs", list))):
        ver = tr.r("runs.%d.ch_version" % i, str).split(" ")[0]
        ser = micro_series(tr, "runs.%d." % i, ver)
        for x, sb, cold, warm in zip(ser["x"], ser["standby"], ser["restores"]["restore_copy_cold_ms"],
                                     ser["restores"]["restore_copy_warm_ms"]):
            micro.setdefault(x, {})[ver] = (sb, cold, warm)
    common = {x: v for x, v in micro.items() if len(v) == 2}
    return {"steps": steps, "micro": common, "sources": [kh, tr]}


def draw_versions(plt, s, path):
    fig, (a, b) = plt.subplots(1, 2, figsize=(13, 4.8))
    st = s["steps"]
    y = range(len(st))
    a.barh([i - 0.2 for i in y], [v[1] for v in st], height=0.4, color="#4c72b0", label="CH v53.0")
    a.barh([i + 0.2 for i in y], [v[2] for v in st], height=0.4, color="#dd8452", label="CH v48.0")
    for i, (_, v53, v48) in enumerate(st):
        a.text(v53, i - 0.2, " %.1f" % v53, va="center", fontsize=6.5)
        a.text(v48, i + 0.2, " %.1f" % v48, va="center", fontsize=6.5)
    a.set_yticks(list(y), [v[0] for v in st], fontsize=8)
    a.invert_yaxis()
    a.set_xscale("log")
    a.set_xlabel("time (s, log scale)")
    a.set_title("same VM (stand-in, 1 GiB, 1 vCPU), nested: test-kvmhost", fontsize=8)
    a.legend(fontsize=7)
    labels, v53, v48 = [], [], []
    for x in sorted(s["micro"]):
        for j, what in enumerate(("standby", "copy restore\ncold cache", "copy restore\nwarm cache")):
            labels.append("%d MiB\n%s" % (x, what))
            v53.append(s["micro"][x]["v53.0"][j])
            v48.append(s["micro"][x]["v48.0"][j])
    xs = range(len(labels))
    b.bar([i - 0.2 for i in xs], v53, width=0.4, color="#4c72b0", label="CH v53.0 (patched for kvm_pvm)")
    b.bar([i + 0.2 for i in xs], v48, width=0.4, color="#dd8452", label="CH v48.0")
    b.set_xticks(list(xs), labels, fontsize=6.5)
    b.set_yscale("log")
    b.set_ylabel("time (s, log scale)")
    b.set_title("micro guest on this host's KVM (kvm_pvm), touched memory per group", fontsize=8)
    b.legend(fontsize=7)
    finish(plt, fig, s["sources"], path, "Cloud Hypervisor v48.0 against v53.0")


# ---- CDP wake ----------------------------------------------------------------------
def extract_wake(docs):
    sources = []
    cdfs, points = [], []
    if "cdp-wake" in docs:
        m = docs["cdp-wake"]
        rows = m.r("rows", list)
        client = [m.rnum("rows.%d.answer_ms" % i) for i in range(len(rows))]
        cdfs.append(("client send to answer (%d cycles)" % len(client), client, "#4c72b0"))
        if m.r("wake_ms", list, None) is not None:
            cdfs.append(("supervisor: first byte in to first byte out", vals(m, "wake_ms"), "#55a868"))
            cdfs.append(("of it: chvm restore", vals(m, "restore_ms"), "#dd8452"))
        sources.append(m)
    t = docs["findings-cdp-wake"]
    cyc = t.rnum("cycles")
    points.append(("client send to answer, %d cycles (p50/p95/max only)" % cyc,
                   [(t.rnum("client_p50_ms"), .5), (t.rnum("client_p95_ms"), .95), (t.rnum("client_max_ms"), 1)],
                   "#4c72b0"))
    points.append(("supervisor wake (p50/p95 only)", [(t.rnum("wake_p50_ms"), .5), (t.rnum("wake_p95_ms"), .95)],
                   "#55a868"))
    points.append(("of it: chvm restore (p50/p95 only)",
                   [(t.rnum("restore_p50_ms"), .5), (t.rnum("restore_p95_ms"), .95)], "#dd8452"))
    points.append(("supervisor logic, stubbed 0.25 s restore, no VM (p50/p95 only)",
                   [(t.rnum("supervisor_logic_stub.wake_p50_ms"), .5),
                    (t.rnum("supervisor_logic_stub.wake_p95_ms"), .95)], "#8c8c8c"))
    sources.append(t)
    return {"cdfs": cdfs, "points": points, "sources": sources}


def draw_wake(plt, s, path):
    fig, ax = plt.subplots(figsize=(9, 4.8))
    for label, v, col in s["cdfs"]:
        xs = sorted(v)
        ax.step(xs, [(i + 1) / len(xs) for i in range(len(xs))], where="post", color=col, label=label)
    for label, pts, col in s["points"]:
        ax.plot([p[0] for p in pts], [p[1] for p in pts], ls=":", marker="o", color=col, label=label)
        for x, y in pts:
            ax.annotate("%.0f" % x, (x, y), textcoords="offset points", xytext=(4, -10), fontsize=7)
    ax.set_xlabel("wake latency (ms)")
    ax.set_ylabel("fraction of cycles at or below")
    ax.set_ylim(0, 1.05)
    ax.set_xlim(left=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title("CDP command to a VM in standby (QEMU/TCG, 2 GiB, tap, --idle-standby 5)", fontsize=9)
    finish(plt, fig, s["sources"], path, "Wake on CDP: latency distribution and the part spent in restore")


# ---- soak ---------------------------------------------------------------------------
SOAK = [("standby_s", "standby"), ("restore_s", "restore"), ("cdp_resume_s", "open CDP connection answers")]


def extract_soak(docs):
    out = []
    for where, label in (("qemu", "QEMU/TCG, %s"), ("kvmhost", "CH %s nested, %s")):
        d = pick(docs, "soak-" + where, "findings-soak-" + where)
        # Older files (the transcribed ones, soak-qemu before) lack memory: that run's.
        memory = d.r("memory", str, "2G" if where == "qemu" else "768M")
        memory = memory.replace("G", " GiB").replace("M", " MiB")
        label = label % ((memory,) if where == "qemu" else (d.r("ch_version", str), memory))
        summ = {k: [d.rnum("%s.%s" % (k, q)) for q in ("p50", "p95", "max")] for k, _ in SOAK}
        cyc = {k: vals(d, k + "_cycles") for k, _ in SOAK if d.r(k + "_cycles", list, None) is not None}
        out.append({"label": "%s: %d/%d cycles, %d lines lost, %d CDP errors" % (
            label, d.rnum("cycles"), d.rnum("cycles_planned"), d.rnum("lines_lost"), d.rnum("cdp_errors")),
            "short": label, "summ": summ, "cycles": cyc, "doc": d})
    return {"hosts": out, "sources": [h["doc"] for h in out]}


def draw_soak(plt, s, path):
    colors = ["#4c72b0", "#dd8452"]
    have = any(h["cycles"] for h in s["hosts"])
    # No empty panel: without per-cycle figures only the percentiles are drawn.
    if have:
        fig, (a, b) = plt.subplots(1, 2, figsize=(13, 4.8))
        for h, col in zip(s["hosts"], colors):
            for (k, name), ls in zip(SOAK, ("-", "--", ":")):
                if k in h["cycles"]:
                    v = h["cycles"][k]
                    a.plot(range(1, len(v) + 1), v, ls=ls, color=col, lw=1, label="%s: %s" % (h["short"], name))
        a.legend(fontsize=6.5)
        a.set_xlabel("cycle")
        a.set_ylabel("time (s)")
        a.set_title("per cycle", fontsize=9)
    else:
        fig, b = plt.subplots(figsize=(9, 4.8))
    labels = []
    width = 0.8 / (3 * len(s["hosts"]))
    for j, (h, col) in enumerate(zip(s["hosts"], colors)):
        for q, (qn, alpha) in enumerate((("p50", 1.0), ("p95", 0.6), ("max", 0.3))):
            off = (j * 3 + q) * width - 0.4 + width / 2
            b.bar([i + off for i in range(len(SOAK))], [h["summ"][k][q] for k, _ in SOAK], width=width,
                  color=col, alpha=alpha, label="%s %s" % (h["short"], qn))
        labels.append(h["label"])
    b.set_xticks(range(len(SOAK)), [n for _, n in SOAK], fontsize=8)
    b.set_ylabel("time per cycle (s)")
    b.set_title("p50 / p95 / max over the cycles%s\n" % ("" if have else " (these runs kept no per-cycle "
                "figures; `make soak` now does)") + "\n".join(labels), fontsize=7.5)
    b.legend(fontsize=6.5, ncol=2)
    finish(plt, fig, s["sources"], path, "Standby/restore soak: 100 cycles with a counter file and an open CDP client")


# ---- WebRTC --------------------------------------------------------------------------
def extract_webrtc(docs):
    d = pick(docs, "webrtc-qemu", "findings-webrtc-qemu")
    paths = []
    for i in range(len(d.r("paths", list))):
        p = "paths.%d." % i
        same = d.r(p + "after_restore.same_session", bool)
        paths.append({"label": d.r(p + "path", str) + ("" if same else " (new offer after restore)"),
                      "first": d.rnum(p + "first_frame_s"), "new": d.rnum(p + "after_restore.new_frame_s"),
                      "fps": (d.rnum(p + "fps"), d.rnum(p + "after_restore.fps")),
                      "kbps": (d.rnum(p + "kbps"), d.rnum(p + "after_restore.kbps"))})
    return {"paths": paths, "sources": [d]}


def draw_webrtc(plt, s, path):
    fig, axes = plt.subplots(1, 3, figsize=(13, 5.0))
    ps = s["paths"]
    x = range(len(ps))
    names = [p["label"].replace(" (", "\n(").replace(", nft", "\nnft") for p in ps]
    a, b, c = axes
    a.bar([i - 0.2 for i in x], [p["first"] for p in ps], 0.4, label="first frame after the viewer opened")
    a.bar([i + 0.2 for i in x], [p["new"] for p in ps], 0.4, label="new frame after restore")
    a.set_ylabel("time (s)")
    for ax, key, unit in ((b, "fps", "frame rate (frames/s)"), (c, "kbps", "bitrate (kbit/s)")):
        ax.bar([i - 0.2 for i in x], [p[key][0] for p in ps], 0.4, label="before standby (5 s)")
        ax.bar([i + 0.2 for i in x], [p[key][1] for p in ps], 0.4, label="after restore (5 s)")
        ax.set_ylabel(unit)
    for ax in axes:
        ax.set_xticks(list(x), names, fontsize=7)
        # Below the panel: inside it the legend hid the bars' tops.
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2))
    finish(plt, fig, s["sources"], path,
           "WebRTC live view, QEMU/TCG guest (VP8 1280x800 encoded in software emulation)")


# ---- template fork --------------------------------------------------------------


def extract_fork(docs):
    d = docs.get("fork-kvmhost")
    if d is None:
        raise ReportError("docs/report/data/fork-kvmhost.json is missing (make bench-fork-kvmhost, "
                          "or scripts/report/rerun.py fork-kvmhost)")
    versions = [k for k in d.get("results", dict) if k.startswith("v")]
    if len(versions) != 1:
        raise ReportError("%s: results: expected one CH build (vNN.N), found %s" % (d.rel, versions))
    p = versions[0] + ".template_clones."
    return {"version": versions[0], "ready": vals(d, p + "ready_s"),
            "cold": d.rnum(versions[0] + ".run.wall_s"), "create": d.rnum(p + "template_create_s"),
            "pss": d.rnum(p + "pss_sum_bytes") / MiB, "ram": d.rnum(p + "guest_ram_sum_bytes") / MiB,
            "template": d.rnum(p + "template_memory_bytes") / MiB,
            "avail": (d.rnum(p + "mem_available_before") - d.rnum(p + "mem_available_after")) / MiB,
            "copy": sum(d.rnum(versions[0] + ".restore_copy.phases." + k)
                        for k in d.r(versions[0] + ".restore_copy.phases", dict))
            / 1e3 if d.r(versions[0] + ".restore_copy", dict, None) else None,
            "own": extract_own_restore(docs.get("bench-fork")),
            "sources": [d] + ([docs["bench-fork"]] if docs.get("bench-fork") else [])}


OWN_AT = (0, 10, 30, 60)


def extract_own_restore(d):
    """A VM's own restore, copy against its memory file (make bench-fork):
    per size and mode the restore's time and the VMM's PSS over 60 s."""
    if d is None:
        return []
    rows = []
    for i, _ in enumerate(d.r("sizes", list)):
        p = "sizes.%d." % i
        for mode in ("copy", "file"):
            k = p + "own_" + mode
            rows.append({"size": d.rnum(p + "size"), "mode": mode, "restore_ms": d.rnum(k + "_ms"),
                         "count_ms": d.rnum(k + "_count_ms"),
                         "pss": [d.rnum("%s_pss_mib_%ds" % (k, a)) for a in OWN_AT]})
    return rows


def draw_fork(plt, s, path):
    own = s["own"]
    fig, axes = plt.subplots(1, 3 if own else 2, figsize=(18 if own else 12, 4.6))
    a, b = axes[0], axes[1]
    n = len(s["ready"])
    a.bar(range(n), s["ready"], 0.6, label="clone: run --from to browser ready (s)")
    a.axhline(s["cold"], color="#c44", linestyle="--", label="cold chvm run of the same image (s)")
    if s["copy"] is not None:
        a.axhline(s["copy"], color="#484", linestyle=":",
                  label="copy restore of a standby of that VM, to CDP (s)")
    a.set_xticks(list(range(n)), ["clone %d" % (i + 1) for i in range(n)])
    a.set_ylabel("time (s)")
    a.legend(fontsize=7)
    a.set_title("%d clones started at once (one vCPU: they resume in turn)" % n, fontsize=9)
    bars = [("guest RAM of all clones", s["ram"]), ("template memory file", s["template"]),
            ("VMMs' PSS, all clones", s["pss"]), ("host MemAvailable drop", s["avail"])]
    b.barh(range(len(bars)), [v for _, v in bars], color=["#999", "#69c", "#4a4", "#c84"])
    b.set_yticks(list(range(len(bars))), [k for k, _ in bars])
    b.set_xlabel("MiB")
    b.set_title("host memory after the clones drove a page", fontsize=9)
    if own:
        c = axes[2]
        colors = ["#4c72b0", "#55a868", "#c44e52", "#8172b3", "#937860", "#dd8452"]
        sizes = sorted({r["size"] for r in own})
        for r in own:
            c.plot(OWN_AT, r["pss"], marker="o", color=colors[sizes.index(r["size"]) % len(colors)],
                   ls="-" if r["mode"] == "copy" else "--",
                   label="%d MiB written, %s: restore %.0f ms, first count %.0f ms"
                   % (r["size"], r["mode"], r["restore_ms"], r["count_ms"]))
        c.set_xlabel("seconds after chvm restore started")
        c.set_ylabel("VMM PSS (MiB)")
        c.set_xticks(list(OWN_AT))
        c.legend(fontsize=6)
        c.set_title("a VM's own restore, micro guest (make bench-fork): copy (memory-ranges, solid)\n"
                    "against its --memory-file mapped again in place (dashed)", fontsize=8)
    finish(plt, fig, s["sources"], path,
           "VMs from a template of the Chromium stand-in (CH %s, memory copy-on-write), nested emulation%s"
           % (s["version"], "; right: the micro guest on this host's kvm_pvm" if own else ""))


# ---- pmem root -------------------------------------------------------------------


def extract_pmem(docs):
    q = docs["findings-pmem-qemu"]
    k = docs.get("pmem-kvmhost")
    if k is None:
        raise ReportError("docs/report/data/pmem-kvmhost.json is missing (make bench-pmem-kvmhost, "
                          "or scripts/report/rerun.py pmem-kvmhost)")
    runs = q.r("runs", list)
    rows = []
    for i in range(len(runs)):
        p = "runs.%d." % i
        rows.append(("QEMU, 2 GiB, run %d" % (i + 1), q.rnum("guest_ram_mib"),
                     {d: (q.rnum(p + d + ".snapshot_mib"), q.rnum(p + d + ".nonfree_mib"),
                          q.rnum(p + d + ".cached_mib")) for d in ("blk", "pmem")}))
    v = [x for x in k.get("results", dict) if x.startswith("v")]
    if len(v) != 1:
        raise ReportError("%s: results: expected one CH build (vNN.N), found %s" % (k.rel, v))
    pm = v[0] + ".rootfs_pmem."
    ram = k.rnum(pm + "guest_ram") / MiB
    rows.append(("CH %s nested, 1 GiB" % v[0], ram,
                 {"pmem": (k.rnum(pm + "snapshot_allocated") / MiB, k.rnum(pm + "guest_nonfree") / MiB,
                           k.rnum(pm + "cached_bytes") / MiB),
                  "blk": (k.rnum(pm + "blk.standby.snapshot_allocated") / MiB, None, None)}))
    dens = [d for d in (docs.get("density"), docs.get("density-kvmhost")) if d]
    return {"rows": rows, "density": [extract_density(d) for d in dens], "sources": [q, k] + dens}


def extract_density(d):
    """make bench-density (QEMU here) or make bench-density-kvmhost (CH
    inside the KVM host): per root device, N VMs at once: per-VM PSS,
    snapshot and host MemAvailable drop (MiB)."""
    n = d.rnum("count")
    backend = d.r("backend", str)
    what = "CH %s" % d.r("ch_version", str) if backend == "ch" else backend.upper()
    if d.host == "nested":
        what += " in the KVM host (%s)" % d.r("kvmhost.memory", str)
    out = {"n": n, "label": "%s, %d at once" % (what, n), "command": d.get("command", str), "bars": {}}
    for dev in ("blk", "pmem"):
        p = "passes.%s." % dev
        c = d.rnum(p + "count")
        out["bars"][dev] = [d.rnum(p + "pss.median") / MiB, d.rnum(p + "pss.sum") / c / MiB,
                            d.rnum(p + "snapshot_allocated.median") / MiB,
                            d.rnum(p + "mem_available_drop") / c / MiB]
    return out


DENSITY_BARS = ["VMM PSS, median", "VMM PSS, sum / N", "snapshot, median", "host MemAvailable drop / N"]


def draw_pmem(plt, s, path):
    dens = s["density"]
    fig, axes = plt.subplots(1, 2 if dens else 1, figsize=(18 if dens else 11, 4.6 + 0.3 * len(dens)),
                             squeeze=False)
    ax = axes[0][0]
    rows = s["rows"]
    x = range(len(rows))
    for off, dev, color in ((-0.2, "blk", "#999"), (0.2, "pmem", "#4a4")):
        ax.bar([i + off for i in x], [100 * r[2][dev][0] / r[1] for r in rows], 0.4, color=color,
               label="snapshot with a %s root" % dev)
        ax.scatter([i + off for i in x if rows[i][2][dev][1] is not None],
                   [100 * r[2][dev][1] / r[1] for r in rows if r[2][dev][1] is not None],
                   marker="_", s=400, color="#c22", zorder=3,
                   label="guest memory not free at the quiesce" if dev == "blk" else None)
    ax.axhline(25, color="#36c", linestyle="--", label="goal: 25% of guest RAM")
    ax.set_xticks(list(x), [r[0] for r in rows])
    ax.set_ylabel("% of guest RAM")
    ax.legend(fontsize=7)
    if dens:
        b = axes[0][1]
        x = range(len(DENSITY_BARS))
        w = 0.8 / (2 * len(dens))
        series = [(d, dev, color, hatch) for d, hatch in zip(dens, ("", "//"))
                  for dev, color in (("blk", "#999"), ("pmem", "#4a4"))]
        for j, (d, dev, color, hatch) in enumerate(series):
            b.bar([i - 0.4 + w * (j + 0.5) for i in x], d["bars"][dev], w, color=color, hatch=hatch,
                  edgecolor="#333" if hatch else None, label="%s root: %s" % (dev, d["label"]))
        b.set_xticks(list(x), DENSITY_BARS, fontsize=7)
        b.set_ylabel("MiB per VM")
        # Room above the bars for the legend.
        b.set_ylim(0, 1.35 * max(v for d in dens for bars in d["bars"].values() for v in bars))
        b.legend(fontsize=7, ncol=2, loc="upper center")
        b.set_title("VMs of the stand-in (2 GiB) at once, a page loaded in each (%s)"
                    % ", ".join(d["command"] for d in dens), fontsize=8)
    finish(plt, fig, s["sources"], path,
           "Snapshot after loading a page: block-device root against virtio-pmem with DAX")


FIGURES = [("boot", extract_boot, draw_boot), ("memory", extract_memory, draw_memory),
           ("snapshot", extract_snapshot, draw_snapshot), ("restore", extract_restore, draw_restore),
           ("versions", extract_versions, draw_versions), ("wake", extract_wake, draw_wake),
           ("soak", extract_soak, draw_soak), ("webrtc", extract_webrtc, draw_webrtc),
           ("fork", extract_fork, draw_fork), ("pmem", extract_pmem, draw_pmem)]
