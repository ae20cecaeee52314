# SPDX-License-Identifier: Apache-2.0
"""The report's text: docs/report/README.md.  extract() reads every figure
the text quotes from the checked result files (before any plotting);
write_readme() writes the page: the four questions answered, each plot
with its caption, what is not measured yet and the command that will,
the hardware KVM column, and every result file."""
import os

from data import ESTIMATE_MIN, HOSTS, HW, MEASURED, ReportError
from figures import pick

REPO = "../.."  # from docs/report/ to the tree


def rng(doc, dotted, fmt="%g"):
    lo, hi = doc.rnum(dotted + ".min"), doc.rnum(dotted + ".max")
    return (fmt % lo) + "-" + (fmt % hi)


def extract(docs):
    v = {}
    boot = docs["findings-boot-tcg"]
    v["cdp_tcg"] = rng(boot, "cdp_after_start_s")
    v["avail"] = boot.rnum("mem_available_kB")
    v["total"] = boot.rnum("mem_total_kB")
    v["init_s"] = boot.rnum("phases_s.exec") - boot.rnum("phases_s.start")
    v["modules_s"] = boot.rnum("phases_s.disks") - boot.rnum("phases_s.modules")
    bb = docs.get("bench-boot")
    if bb:
        v["handoff"] = (bb.rnum("min_handoff_s.chvm-init"), bb.rnum("min_handoff_s.busybox"), "bench-boot, " + bb.get("date"))
    else:
        v["handoff"] = (boot.rnum("handoff_min_of_3_s.chvm-init"), boot.rnum("handoff_min_of_3_s.busybox"),
                        "bench-boot, " + boot.get("date"))
    kh = pick(docs, "kvmhost", "findings-kvmhost")
    v["kh"] = kh
    # Every run kept (the rerun's and the transcribed one): how much the
    # copy restore varies between runs under nested emulation.
    kh_runs = [d for d in (docs.get("kvmhost"), docs["findings-kvmhost"]) if d]
    for ver in ("v53.0", "v48.0"):
        v[ver + "_ready"] = kh.rnum(ver + ".run.ready_ms") / 1e3
        v[ver + "_copy"] = kh.rnum(ver + ".restore_copy.phases.restore") / 1e3
        alloc = kh.rnum(ver + ".standby_copy.snapshot_allocated")
        v[ver + "_copy_mib"] = alloc / 2**20
        # Sparse: holes where the guest never wrote (shared memory on v52+).
        v[ver + "_sparse"] = ("sparse" if alloc < 0.9 * kh.rnum(ver + ".standby_copy.snapshot_bytes")
                              else "dense")
        copies = [d.rnum(ver + ".restore_copy.phases.restore") / 1e3 for d in kh_runs]
        v[ver + "_copies"] = "%.1f-%.1f" % (min(copies), max(copies))
        v[ver + "_ws"] = kh.rnum(ver + ".restore_copy.ws_answer_s")
    v["ond_restore"] = kh.rnum("v53.0.restore_ondemand.phases.restore") / 1e3
    v["ond_ws"] = kh.rnum("v53.0.restore_ondemand.ws_answer_s")
    micro = docs["findings-ch-micro"]
    # The 2 GiB copy restore, warm, patched v53.0 (runs.0) and v48.0 (runs.1).
    v["micro_copy_2g"] = [micro.rnum("runs.%d.sizes.1.restore_copy_warm_ms" % i) / 1e3 for i in range(2)]
    bw = [micro.rnum("host_range.seq_write_MBps.0"), micro.rnum("host_range.seq_write_MBps.1")]
    ond = [micro.rnum("runs.0.sizes.%d.restore_ondemand_warm_ms" % i) for i in range(len(micro.r("runs.0.sizes", list)))]
    v["ond_ms"] = "%g-%g" % (min(ond), max(ond))
    sb2 = [micro.rnum("runs.%d.sizes.1.standby_ms" % i) / 1e3 for i in range(2)]
    m = docs.get("bench-ch")
    if m:  # the measured run joins the ranges
        bw.append(m.rnum("host.seq_write_MBps"))
        sb2 += [m.rnum("sizes.%d.standby_ms" % i) / 1e3 for i in range(len(m.r("sizes", list)))
                if m.r("sizes.%d.error" % i, str, None) is None and m.rnum("sizes.%d.touched_MiB" % i) == 2048]
    v["write_bw"] = "%.0f-%.0f" % (min(bw), max(bw))
    v["standby_2g"] = "%.1f-%.1f" % (min(sb2), max(sb2))
    snap = pick(docs, "bench-snapshot", "findings-snapshot-kvmhost")
    pct = []
    for i in range(len(snap.r("chromium", list))):
        p = "chromium.%d.standby." % i
        pct.append(100.0 * snap.rnum(p + "snapshot_allocated") / snap.rnum(p + "guest_ram"))
    v["snap_pct_min"], v["snap_pct_shared"] = pct[0], "%.0f-%.0f" % (min(pct[1:]), max(pct[1:]))
    ag = docs.get("bench-agent")
    if ag:
        v["fwd"] = "%.0f MiB/s on loopback, %.2fx a direct connection: bench-agent, %s" % (
            ag.rnum("forward_mib_s"), ag.rnum("forward_throughput_ratio"), ag.get("date"))
    else:
        fa = docs["findings-agent"]
        v["fwd"] = "%g-%g GiB/s on loopback, %g-%gx a direct connection: bench-agent, %s" % (
            fa.rnum("forward_GiBps.0"), fa.rnum("forward_GiBps.1"), fa.rnum("forward_throughput_ratio.0"),
            fa.rnum("forward_throughput_ratio.1"), fa.get("date"))
    v["agent_doc"] = ag or docs["findings-agent"]
    w = pick(docs, "webrtc-qemu", "findings-webrtc-qemu")
    v["webrtc_first"] = "%g-%g" % tuple(sorted(w.rnum("paths.%d.first_frame_s" % i) for i in range(2)))
    v["webrtc_fps"] = "%g-%g" % tuple(sorted(w.rnum("paths.%d.fps" % i) for i in range(2)))
    v["webrtc_new"] = "%g-%g" % tuple(sorted(w.rnum("paths.%d.after_restore.new_frame_s" % i) for i in range(2)))
    same = [w.r("paths.%d.after_restore.same_session" % i, bool) for i in range(2)]
    v["webrtc_same"] = ("the same session resumed after standby/restore" if all(same) else
                        "after standby/restore the viewer made a new offer on %d of 2 network paths"
                        % same.count(False))
    live = [w.rnum("paths.%d.after_restore.live_after_s" % i, None) for i in range(2)]
    v["webrtc_live"] = (" (the current screen %g-%g s after asking)" % (min(live), max(live))
                        if None not in live else "")
    q = docs["findings-qemu-standby"]
    v["tap_ws"] = rng(q, "tap_websocket_answer_after_restore_s")
    v["qemu_standby"] = rng(q, "standby_s")
    v["qemu_restore"] = rng(q, "restore_s")
    wk = pick(docs, "cdp-wake", "findings-cdp-wake")
    v["wake"] = (wk.rnum("cycles"), wk.rnum("errors"), wk.rnum("client_p50_ms"), wk.rnum("client_p95_ms"),
                 100 * wk.rnum("restore_share_p50"))
    soaks = []
    for where in ("qemu", "kvmhost"):
        d = pick(docs, "soak-" + where, "findings-soak-" + where)
        soaks.append("%d/%d cycles, %d lines lost, %d CDP errors (%s)" % (
            d.rnum("cycles"), d.rnum("cycles_planned"), d.rnum("lines_lost"), d.rnum("cdp_errors"),
            "QEMU/TCG" if where == "qemu" else "CH v48.0 nested"))
    v["soaks"] = soaks
    v["soak_p50"] = "; ".join("%s: standby %.2f s, restore %.2f s" % (
        lab, d.rnum("standby_s.p50"), d.rnum("restore_s.p50")) for lab, d in (
        ("QEMU/TCG", pick(docs, "soak-qemu", "findings-soak-qemu")),
        ("CH v48.0 nested", pick(docs, "soak-kvmhost", "findings-soak-kvmhost"))))
    vs = docs["findings-vsock"]
    v["vsock_port"] = vs.rnum("first_host_port")
    v["vsock_cost"] = vs.rnum("lost_connect_cost_s")
    snapd = pick(docs, "bench-snapshot", "findings-snapshot-kvmhost")
    rows = snapd.r("chromium", list)
    ond_rows = [i for i in range(len(rows)) if snapd.r("chromium.%d.restore" % i, str) == "ondemand"]
    if not ond_rows:
        raise ReportError("%s: results.chromium: no ondemand row" % snapd.rel)
    i = ond_rows[0]
    v["fill"] = (snapd.rnum("chromium.%d.vmm_rss_after" % i) / 1048576, snapd.rnum("chromium.%d.vmm_rss_30s" % i) / 1048576)
    v["hw"] = {n: docs.get(n) for n in HW}
    return v


def caption(docs_list):
    return "\n".join("<sub>`%s.json`: %s</sub><br>" % (d.name, d.caption()) for d in docs_list)


def figure(name, title, anchor, alt, specs_sources, intro):
    return ('<a id="%s"></a>\n## %s\n\n%s\n\n![%s](%s.png)\n\n%s\n'
            % (anchor, title, intro, alt, name, caption(specs_sources)))


def questions(v):
    h = v["handoff"]
    out = ["## The four questions\n"]
    out.append(
        "**Can Chromium run in a Cloud Hypervisor VM from the users' images, with 2 GiB?** Yes: the image is used "
        "as it is (`chvm image import` makes a read-only disk of the OCI image; chvm-init overlays a tmpfs and "
        "runs its Entrypoint/Cmd with its Env, WorkingDir and User). With 2 GiB and 2 vCPUs under QEMU/TCG the "
        "stand-in answered CDP %s s after start, with MemAvailable %s of %s kB once the browser was up "
        "([boot](#boot)). Under the real Cloud Hypervisor, v53.0 and v48.0, with a real Linux guest (only "
        "possible here inside the KVM host, nested emulation), the same image and VM spec answered CDP %.0f s and "
        "%.0f s after `chvm run` at 1 GiB ([v48 vs v53](#ch-versions)), and 2 GiB browsers under v53.0 loaded a "
        "page, stood by and restored in every memory setting ([snapshot size](#snapshot-size)). This host's own "
        "KVM (kvm_pvm) runs no Linux guest; with hardware KVM it is not measured yet ([hardware KVM](#hardware)).\n"
        % (v["cdp_tcg"], format(v["avail"], ","), format(v["total"], ","), v["v53.0_ready"], v["v48.0_ready"]))
    out.append(
        "**How fast are boot, standby and restore, and how does Cloud Hypervisor behave?** Boot: init reaches the "
        "entrypoint in %.2f s under TCG (%.2f s of it loading virtio modules), %.2fx faster than a BusyBox "
        "script doing the same steps (%.2f s vs %.2f s, %s); the rest, %s s, is Chromium's own start under "
        "software emulation ([boot](#boot)). Standby is a snapshot bounded by the disk's write speed: with "
        "private memory it is all of guest RAM (2 GiB in %s s here at %s MB/s), with shared memory (CH v52+, "
        "chvm's default there) only what the guest touched, %s%% of 2 GiB for a browser with a page loaded "
        "against %.0f%% ([memory](#memory), [snapshot size](#snapshot-size)). A copy restore reads it all back "
        "before the VM runs (bounded by the cold disk read, or memcpy when cached); ondemand (userfaultfd, v52+) "
        "resumes in %s ms whatever the size, but v53 then fills every page in the background (VMM resident "
        "%.0f MiB after restore, %.0f MiB 30 s on), so chvm copies shared-memory snapshots on v53 "
        "([restore modes](#restore-modes)). On the same VM (nested) a copy restore's restore phase took %.1f s "
        "on v53.0 reading %.0f MiB (a %s snapshot) and %.1f s on v48.0 reading %.0f MiB (%s), but between the "
        "runs kept here it took %s s on v53.0 and %s s on v48.0: under nested emulation neither release is "
        "shown slower, and with the micro guest both copy 2 GiB back in about the same time (%.2f s vs %.2f s "
        "warm; [v48 vs v53](#ch-versions)). Stock v49+ cannot snapshot on kvm_pvm hosts, and CH reuses "
        "vsock host ports from %d after a restore without a transport reset, which cost %.1f s per lost connect "
        "until chvm closed the stale connections (docs/FINDINGS.md).\n"
        % (v["init_s"], v["modules_s"], h[1] / h[0], h[0], h[1], h[2], v["cdp_tcg"], v["standby_2g"], v["write_bw"],
           v["snap_pct_shared"], v["snap_pct_min"], v["ond_ms"], v["fill"][0], v["fill"][1],
           v["v53.0_copy"], v["v53.0_copy_mib"], v["v53.0_sparse"], v["v48.0_copy"], v["v48.0_copy_mib"],
           v["v48.0_sparse"], v["v53.0_copies"],
           v["v48.0_copies"], v["micro_copy_2g"][0], v["micro_copy_2g"][1], v["vsock_port"], v["vsock_cost"]))
    out.append(
        "**Can a client reach CDP and drive the browser, SSH in, and watch the WebRTC live view?** Yes, all "
        "three. playwright-core's `connectOverCDP` drives the guest's Chromium through a published port (QEMU's "
        "forward, or chvm's `--publish` DNAT to a tap: under CH v53.0 nested it navigated and took "
        "[a screenshot](../kvmhost-page-v53.png)) and through the agent's Forward ([%s](#agent)). SSH: with an authorized "
        "key on the config disk, init starts the image's own sshd and OpenSSH logs in (`tests/integration/"
        "test_ssh.py`). WebRTC: `chvm run --live-view` prints a viewer page; a host Chromium received the "
        "guest's display (first frame %s s, %s fps encoded under TCG) and %s, a new frame %s s after "
        "asking%s ([WebRTC](#webrtc)). The frame rate under Cloud Hypervisor is not measured (no hardware "
        "KVM here).\n"
        % (v["fwd"], v["webrtc_first"], v["webrtc_fps"], v["webrtc_same"], v["webrtc_new"], v["webrtc_live"]))
    wk = v["wake"]
    out.append(
        "**Does standby/restore keep a CDP connection alive?** Yes when CDP goes through a tap, as chvm sends it "
        "on Cloud Hypervisor: the tap outlives the VMM, so the guest's TCP state resumes. An open CDP WebSocket "
        "answered again %s s after `chvm restore` on QEMU, %.2f s (v53.0) and %.2f s (v48.0) after a copy restore "
        "and %.2f s after an ondemand one under CH nested; over the soak's 100 cycles: %s; %s ([soak](#soak)). "
        "Through the CDP endpoint with idle standby, %d/%d wakes answered on the same WebSocket with %d errors, "
        "p50 %.0f ms, p95 %.0f ms, %.0f%% of it the restore ([wake](#wake)). Connections through QEMU's user "
        "network or vsock end with the VMM process; clients reconnect to the same browser and targets.\n"
        % (v["tap_ws"], v["v53.0_ws"], v["v48.0_ws"], v["ond_ws"], v["soaks"][0], v["soaks"][1],
           wk[0], wk[0], wk[1], wk[2], wk[3], wk[4]))
    return "\n".join(out)


NOT_YET = [
    ("Density with Cloud Hypervisor on hardware KVM (4 VMs at once measured inside the KVM host: [pmem](#pmem))",
     "issue 24", "make bench-density DENSITY_BACKEND=ch on a host with hardware KVM"),
    ("Everything on hardware KVM (boot to CDP, standby, restore, wake, soak with CH)", "this page's last section",
     "make bench-hw"),
    ("WebRTC frame rate and bitrate under Cloud Hypervisor", "no KVM-backed Chromium with a display here",
     "make bench-hw, then the live-view test: python3 -m pytest tests/integration/test_chvm_qemu_tap.py -k live_view"),
    ("Restore modes: VMM resident memory over 60 s for copy and ondemand (only 0 and 30 s sampled; the memory "
     "file and the micro guest's copy at 0/10/30/60 s: [fork](#fork))", "bench_snapshot samples twice",
     "make bench-snapshot"),
    ("Boot waterfall of CH's own phases (kernel, init) with a real guest", "the KVM host logs only run/ready",
     "make test-kvmhost"),
]


def hardware(v, docs):
    rows = []

    def cell(name, fn):
        d = v["hw"].get(name)
        if not d:
            return "empty"
        return fn(d)
    bw = docs.get("host-bandwidth")
    micro = docs["findings-ch-micro"]
    here_bw = ("disk write %.0f, cold read %.0f, memcpy %.0f MB/s (%s)" % (
        bw.rnum("seq_write_MBps"), bw.rnum("seq_read_cold_MBps"), bw.rnum("memcpy_MBps"), bw.get("date"))
        if bw else "disk write %g-%g, cold read %g-%g, memcpy %g-%g MB/s" % tuple(
            micro.rnum("host_range.%s.%d" % (k, j)) for k in ("seq_write_MBps", "seq_read_cold_MBps", "memcpy_MBps")
            for j in (0, 1)))
    rows.append(("host bandwidth", here_bw, cell("hw-host-bandwidth", lambda d: "disk write %.0f, cold read %.0f, "
                 "memcpy %.0f MB/s" % (d.rnum("seq_write_MBps"), d.rnum("seq_read_cold_MBps"), d.rnum("memcpy_MBps")))))

    def ch(d):
        out = []
        for i in range(len(d.r("sizes", list))):
            p = "sizes.%d." % i
            if d.r(p + "error", str, None) is None:
                out.append("%d MiB: standby %.2f s, copy restore %.2f s" % (
                    d.rnum(p + "touched_MiB"), d.rnum(p + "standby_ms") / 1e3,
                    d.rnum(p + "restore_copy_cold_ms", d.rnum(p + "restore_copy_warm_ms", 0)) / 1e3))
        return "CH %s: %s" % (d.r("ch_version", str), "; ".join(out))
    rows.append(("micro guest standby/restore (`make ch-bench`)",
                 "v48.0, kvm_pvm: 2 GiB standby %.1f s, cold copy restore %.1f s" % (
                     micro.rnum("runs.1.sizes.1.standby_ms") / 1e3, micro.rnum("runs.1.sizes.1.restore_copy_cold_ms") / 1e3),
                 cell("hw-bench-ch", ch)))
    wk = v["wake"]
    rows.append(("CDP wake, p50 / p95 (`make bench-cdp-wake`)", "%.0f / %.0f ms (QEMU/TCG)" % (wk[2], wk[3]),
                 cell("hw-cdp-wake", lambda d: "%.0f / %.0f ms" % (d.rnum("client_p50_ms"), d.rnum("client_p95_ms")))))
    rows.append(("soak: standby / restore p50 (`make soak`)", v["soak_p50"],
                 cell("hw-soak", lambda d: "%d/%d cycles, standby %.2f s, restore %.2f s, boot %.0f s" % (
                     d.rnum("cycles"), d.rnum("cycles_planned"), d.rnum("standby_s.p50"), d.rnum("restore_s.p50"),
                     d.rnum("boot_s")))))
    empty = not any(v["hw"].values())
    lines = ['<a id="hardware"></a>\n## On hardware KVM\n',
             "`make bench-hw` runs the same benchmarks on a host with hardware KVM (`kvm_intel` or `kvm_amd`) and "
             "`cloud-hypervisor` on PATH or in `$CLOUD_HYPERVISOR`, no KVM host inside QEMU: the micro guest's "
             "standby/restore, the CDP wake and the soak, which pick Cloud Hypervisor there by themselves "
             "(`--backend auto`), and the bandwidth probe; their results go to `docs/report/data/hw-*.json` and "
             "this column.\n"]
    if empty:
        lines.append("**The column is empty:** no machine with hardware KVM was at hand; this project's build hosts "
                     "have only `kvm_pvm` (software KVM), under which no Linux guest runs "
                     "(`../shared/docs/build-hosts.md`).\n")
    lines.append("| benchmark | this project's hosts | hardware KVM |\n|---|---|---|")
    for r in rows:
        lines.append("| %s | %s | %s |" % r)
    return "\n".join(lines) + "\n"


def data_table(docs, datadir):
    lines = ["## The result files\n",
             "Each figure above reads these (`docs/report/data/`); *transcribed* ones hold the figures "
             "docs/FINDINGS.md recorded before the benchmarks wrote JSON, with the commit and section they "
             "come from, and are never overwritten; the others are what `make report REPORT_RERUN=1` last "
             "copied from `build/test-results/`. Their notes keep every figure that no plot shows.\n",
             "| file | what | date | commit | host | reproduce | kind | rerun took |",
             "|---|---|---|---|---|---|---|---|"]
    for name in sorted(docs):
        d = docs[name]
        took = "" if d.transcribed or d.took_min is None else "%.1f min" % d.took_min
        lines.append("| [`%s.json`](data/%s.json) | %s | %s | %s | %s | `%s` | %s | %s |" % (
            name, name, d.get("title"), d.get("date"), d.get("commit"), HOSTS[d.host], d.get("command"),
            "transcribed" if d.transcribed else "measured", took))
    missing = [n for n in MEASURED if n not in docs]
    if missing:
        lines.append("\nNot rerun yet (the transcribed figures stand in): %s." % ", ".join(
            "`%s.json` (`%s`)" % (n, MEASURED[n]) for n in missing))
    lines.append("\n" + rerun_time(docs))
    return "\n".join(lines) + "\n"


def rerun_time(docs):
    """How long `make report REPORT_RERUN=1` takes here: the times the
    reruns recorded, the estimates for the others."""
    timed = {n: docs[n].took_min for n in MEASURED
             if n in docs and not docs[n].transcribed and docs[n].took_min is not None
             and docs[n].host != "hardware-kvm"}
    rest = [n for n in MEASURED if n not in timed]
    lo = hi = sum(timed.values())
    for n in rest:
        a, _, b = ESTIMATE_MIN[n].partition("-")
        lo += float(a)
        hi += float(b or a)
    span = ("%.0f min (%.1f h)" % (lo, lo / 60) if round(lo) == round(hi)
            else "%.0f-%.0f min (%.1f-%.1f h)" % (lo, hi, lo / 60, hi / 60))
    text = ("**How long a full rerun takes here** (`make report REPORT_RERUN=1`, every benchmark one after "
            "another on this project's 2-core build host): about %s, of which %.0f min are the recorded "
            "times of %d reruns (the column above)" % (span, sum(timed.values()), len(timed)))
    if rest:
        text += " and the rest estimates for %s, not yet timed by a rerun" % ", ".join(
            "`%s` (%s min)" % (n, ESTIMATE_MIN[n]) for n in rest)
    return text + "."


def agent_table(v):
    d = v["agent_doc"]
    if d.name == "bench-agent":
        row = "| %s | %.1f / %.1f us | %.1f us | %.1f us | %.0f MiB/s | %.0f MiB/s | %.2f |" % (
            d.get("date"), d.rnum("ping_p50_us"), d.rnum("ping_p99_us"), d.rnum("direct_rtt_p50_us"),
            d.rnum("forward_rtt_p50_us"), d.rnum("direct_mib_s"), d.rnum("forward_mib_s"),
            d.rnum("forward_throughput_ratio"))
    else:
        row = "| %s | - | %g us | %g us | - | %g-%g GiB/s | %g-%g |" % (
            d.get("date"), d.rnum("direct_rtt_us"), d.rnum("forward_rtt_us"), d.rnum("forward_GiBps.0"),
            d.rnum("forward_GiBps.1"), d.rnum("forward_throughput_ratio.0"), d.rnum("forward_throughput_ratio.1"))
    return ('<a id="agent"></a>\n## The agent\'s Forward (CDP over vsock or TCP)\n\n'
            "| date | Ping round trip p50 / p99 | 64-byte round trip, direct | through the Forward | "
            "throughput, direct | through the Forward | ratio |\n|---|---|---|---|---|---|---|\n%s\n\n%s\n"
            % (row, caption([d])))


def write_readme(docs, v, outdir, datadir):
    kh = v["kh"]
    parts = [
        "# chvm: Chromium in Cloud Hypervisor VMs, measured\n",
        "<!-- Generated by `make report` (scripts/report/report.py) from docs/report/data/*.json: "
        "edit those or the generator, not this file. -->\n",
        "What the benchmarks of this tree measured, as plots beside their physical bound, and the users' four "
        "questions answered from them. The hosts (every caption names its own):\n",
        "\n".join("- **%s**: %s" % (k, HOSTS[k]) for k in HOSTS) + "\n",
        "Nested emulation and QEMU/TCG set every absolute time (slow and noisy, on a shared 2-core machine); "
        "sizes, ratios within one run, and behaviour are what carries over to hardware KVM. "
        "The short list of Cloud Hypervisor behaviours found is [docs/FINDINGS.md](../FINDINGS.md).\n",
        questions(v),
        figure("boot", "Boot", "boot", "boot waterfall", [docs["findings-boot-tcg"], kh] +
               ([docs["bench-boot"]] if "bench-boot" in docs else []),
               "Left: from start to CDP answering on each backend. Right: chvm-init's phases from `/init` to the "
               "entrypoint, against a BusyBox script doing the same steps in the same VM (`make bench-boot`)."),
        figure("memory", "Standby and restore against memory", "memory", "standby and restore vs memory",
               [d for d in (docs["findings-ch-micro"], docs.get("bench-ch"), docs.get("host-bandwidth"),
                            pick(docs, "bench-snapshot", "findings-snapshot-kvmhost")) if d],
               "The micro guest (a tiny hand-made guest that writes one word into each page of the touched "
               "size) under the real CH. The shaded bounds are the snapshot's bytes divided by the host's "
               "measured disk write, cold disk read and memcpy bandwidth (the range over the runs): a standby "
               "cannot beat the write bound once the page cache is full, a cold copy restore not the read "
               "bound. Right: inside the KVM host, a 2 GiB guest: private memory snapshots all of it, shared "
               "memory only what was touched."),
        figure("snapshot", "Snapshot size per memory setting", "snapshot-size", "snapshot bytes",
               [pick(docs, "bench-snapshot", "findings-snapshot-kvmhost")],
               "Bytes the snapshot's `memory-ranges` allocates, per guest memory setting, against guest RAM and "
               "what the guest used. Blk vs pmem root: [its own figure](#pmem)."),
        figure("restore", "Restore modes", "restore-modes", "restore modes",
               [pick(docs, "kvmhost", "findings-kvmhost"), pick(docs, "bench-snapshot", "findings-snapshot-kvmhost")],
               "Copy restore reads the whole snapshot before the VM resumes; ondemand (userfaultfd) resumes "
               "at once and faults pages in, and v53 fills the rest behind. Template fork: "
               "[VMs from a template](#fork)."),
        figure("versions", "Cloud Hypervisor v48.0 against v53.0", "ch-versions", "CH v48 vs v53",
               [kh, docs["findings-ch-micro"]],
               "The same VM with both releases. Stock v53 cannot snapshot on this host's kvm_pvm (it asks for "
               "KVM_GET_NESTED_STATE); the right panel's v53 is a 6-line patched build. Nested, the copy "
               "restore's time varies several-fold between runs (emulated disk and page cache): compare "
               "within one run."),
        figure("wake", "Wake on CDP", "wake", "CDP wake latency CDF",
               [d for d in (docs.get("cdp-wake"), docs["findings-cdp-wake"]) if d],
               "The supervisor stands the VM by after 5 s without a CDP byte and restores it on the next one; "
               "the client's command waits and answers on the same WebSocket. The committed run kept only "
               "percentiles (points); `make bench-cdp-wake` now keeps every cycle (steps)."),
        figure("webrtc", "WebRTC live view", "webrtc", "WebRTC first frame, frame rate, bitrate",
               [pick(docs, "webrtc-qemu", "findings-webrtc-qemu")],
               "A host Chromium as the viewer (playwright-core, getStats for 5 s). Software emulation encodes "
               "VP8 at a few frames a second; under Cloud Hypervisor: not measured (`make bench-hw`). Received "
               "frames: [before standby](../live-view-user-net.png), [after restore](../live-view-tap-restored.png)."),
        figure("soak", "Standby/restore soak", "soak", "soak per cycle",
               [pick(docs, "soak-qemu", "findings-soak-qemu"), pick(docs, "soak-kvmhost", "findings-soak-kvmhost")],
               "100 standby/restore cycles of one VM while a guest process appends a counter line every second "
               "and a CDP client evaluates every second over one connection; after each restore every line "
               "written before the standby must be there."),
        figure("fork", "VMs from a template", "fork", "template clones: time to ready and host memory",
               [d for d in (docs["fork-kvmhost"], docs.get("bench-fork")) if d],
               "`chvm template create` boots the stand-in with its guest RAM in one file, lets it settle, "
               "quiesces and snapshots it; `chvm run --from T --count N` restores N VMs at once, each mapping "
               "that file copy-on-write (`MAP_PRIVATE`), in a network namespace of its own, told its own "
               "hostname, machine-id and fresh entropy by the agent before any client. Every clone then drove "
               "a page with playwright-core through its own endpoint. On a one-vCPU KVM host the clones' "
               "browsers resume one after another, so the times add up; on hardware each would take its own "
               "core. The micro guest's figures (command to running: 212-1204 ms cow against 932-5804 ms "
               "for a copy restore) are in [FINDINGS](../FINDINGS.md). Right: a VM's own standby and restore "
               "with the micro guest (`make bench-fork`): a copy restore reads its `memory-ranges` and then "
               "holds all of it; a VM run with `--memory-file` restores by mapping that file again in place "
               "(`memory_restore` \"file\"), so its VMM holds only the pages the guest touches after."),
        figure("pmem", "The root filesystem as virtio-pmem with DAX", "pmem", "snapshot: blk vs pmem root",
               [d for d in (docs["findings-pmem-qemu"], docs["pmem-kvmhost"], docs.get("density"),
                            docs.get("density-kvmhost")) if d],
               "`chvm run --rootfs-device pmem` maps the read-only root image into the guest as virtio-pmem and "
               "init mounts it with DAX: Chromium's binaries are read from the host's page cache (shared by every "
               "VM of the image) instead of being copied into guest RAM, so neither the guest's page cache nor the "
               "snapshot holds them. With CH (shared memory, free page reporting) the snapshot is what is not "
               "free in the guest plus a little; with QEMU it is the migration stream of guest RAM without the "
               "image (`x-ignore-shared`). Right, when `make bench-density` (QEMU here) or `make "
               "bench-density-kvmhost` (CH inside the KVM host, whose MemAvailable is the host's) has run: N "
               "VMs at once with each root; PSS splits the image's shared page cache among the VMs that map it."),
        agent_table(v),
        "## Not measured yet\n\n" + "\n".join("- %s (%s): `%s`" % n for n in NOT_YET) + "\n",
        hardware(v, docs),
        data_table(docs, datadir),
    ]
    path = os.path.join(outdir, "README.md")
    with open(path, "w") as f:
        f.write("\n".join(parts))
    return path
