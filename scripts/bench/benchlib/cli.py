# SPDX-License-Identifier: BSD-2-Clause
"""cli.py - `scripts/bench/run`: options, the runs × MTUs × backends × measures loop, and cleanup."""

import argparse
import json
import os
import shutil

from . import backends, measures, netns, report
from .proc import RigError
from .session import (REPO, RigBase, Session, begin, describe_build, dpkg_version, log, machine_meta,
                      split_available)

SETUP_SECONDS = 4  # rough cost of one backend start + servers, for the time estimate


def parse(argv):
    names = [b.name for b in backends.ALL]
    ap = argparse.ArgumentParser(
        prog="scripts/bench/run",
        description="Benchmark slirpnet against slirp4netns, passt, pasta and the kernel's own "
                    "veth/loopback, with the kernel's TCP stack in a network namespace as the "
                    "guest. Needs root; uses only loopback and namespaces it creates.")
    ap.add_argument("--quick", action="store_true",
                    help="CI smoke run: 1 run, 2-second measures, MTU 1500 (overridable)")
    ap.add_argument("--runs", type=int, help="runs per cell (default 3; --quick: 1)")
    ap.add_argument("--seconds", type=float, help="TCP throughput duration (default 10; --quick: 2)")
    ap.add_argument("--probe-seconds", type=float,
                    help="request/response, connect-rate and UDP duration (default 5; --quick: 2)")
    ap.add_argument("--mtu", help="comma list (default 1500,65520; --quick: 1500)")
    ap.add_argument("--backends", help="comma list of %s (default: all but %s)" % (
        ",".join(names), ",".join(sorted(backends.OPT_IN))))
    ap.add_argument("--measures", help="comma list of %s (default: %s)" % (
        ",".join(measures.ALL_MEASURES), ",".join(measures.MEASURES)))
    ap.add_argument("--churn-seconds", type=float,
                    help="duration of the churn measure (default 60; --quick: 5)")
    ap.add_argument("--soak", type=float, metavar="MINUTES",
                    help="instead of the table: the soak (benchlib/soak.py): mixed traffic "
                         "through slirpnet for MINUTES, the helper sampled each second; exit 1 "
                         "if its RSS or fds grow after the warm-up or a frame is lost")
    ap.add_argument("--directions", help="comma list of g2h,h2g (default: both)")
    ap.add_argument("--cc", default="cubic",
                    help="TCP congestion control of the iperf3 senders (default cubic, what most "
                         "guest kernels run; the machine's default may differ)")
    ap.add_argument("--build", default=os.environ.get("SLIRPNET_BUILD") or os.path.join(REPO, "build"),
                    help="meson build directory with the helper and scripts/bench's tools "
                         "(default $SLIRPNET_BUILD, else build/)")
    ap.add_argument("--baseline", metavar="DIR",
                    help="a second build directory (e.g. of an older commit): every selected "
                         "slirpnet* backend also runs with DIR's helper, libslirpnet and tap bridge "
                         "as column <name>@base, right after its counterpart; the report adds "
                         "current/base ratios")
    ap.add_argument("--out", help="directory for results.{md,json}, logs and profiles "
                                  "(default /tmp/slirpnet-bench-DATE)")
    ap.add_argument("--profile", action="store_true",
                    help="perf record the backend processes during each TCP run (perf-*.txt in --out)")
    ap.add_argument("--require-all", action="store_true",
                    help="fail when a selected backend cannot run here (CI), instead of skipping it")
    a = ap.parse_args(argv)

    def pick(value, allowed, what, default=None):
        items = value.split(",") if value else list(default or allowed)
        bad = [i for i in items if i not in allowed]
        if bad:
            ap.error("unknown %s: %s (known: %s)" % (what, ",".join(bad), ",".join(allowed)))
        return items

    a.backends = pick(a.backends, names, "backend", [n for n in names if n not in backends.OPT_IN])
    a.measures = pick(a.measures, measures.ALL_MEASURES, "measure", measures.MEASURES)
    a.churn_seconds = a.churn_seconds or (5 if a.quick else 60)
    a.directions = pick(a.directions, measures.DIRECTIONS, "direction")
    a.runs = a.runs or (1 if a.quick else 3)
    a.seconds = a.seconds or (2 if a.quick else 10)
    a.probe_seconds = a.probe_seconds or (2 if a.quick else 5)
    try:
        a.mtu = [int(m) for m in (a.mtu or ("1500" if a.quick else "1500,65520")).split(",")]
    except ValueError:
        ap.error("--mtu takes numbers")
    if any(m < 576 or m > 65520 for m in a.mtu):
        ap.error("--mtu: 576..65520")
    return a


class Rig(RigBase):
    """What every backend and measure needs: binaries, the sealed host, processes, paths."""

    def __init__(self, args, outdir):
        self.build = backends.Build(args.build)
        self.baseline = backends.Build(args.baseline) if args.baseline else None
        self.helper = self.build.helper
        self.tapbridge = self.build.tapbridge
        self.netprobe = self.build.netprobe  # the main build's, for every column
        self.cc = args.cc
        self.profile = args.profile
        super().__init__(outdir, "slirpnet-bench-")  # ns: the sealed host


def _missing_prerequisites(args):
    problems = []
    if os.geteuid() != 0:
        problems.append("needs root (network namespaces, taps)")
    for tool in ("ip", "iperf3", "sysctl"):
        if not shutil.which(tool):
            problems.append("%s is not installed (scripts/install-deps)" % tool)
    if args.profile and not shutil.which("perf"):
        problems.append("--profile needs perf (linux-perf)")
    for path in ("plugin/slirpnet", "scripts/bench/slirpnet-tapbridge", "scripts/bench/slirpnet-netprobe"):
        if not os.access(os.path.join(args.build, path), os.X_OK):
            problems.append("%s/%s is missing: build first (ninja -C %s)" % (args.build, path, args.build))
    if args.baseline:
        base = backends.Build(args.baseline)
        missing = [p for p in (base.helper, base.tapbridge) if not os.access(p, os.X_OK)]
        for p in missing:
            problems.append("--baseline: %s is missing: build first (ninja -C %s)" % (p, args.baseline))
        if os.path.realpath(base.path) == os.path.realpath(args.build):
            problems.append("--baseline is the --build directory")
        elif not missing:
            # The bridge must load the baseline's own libslirpnet (its rpath), not the main one.
            lib = base.libslirpnet()
            if not lib or not lib.startswith(os.path.realpath(base.path) + os.sep):
                problems.append("--baseline: %s loads libslirpnet from %s, not from %s" % (
                    base.tapbridge, lib or "nowhere", base.path))
    return problems


def _build_source(build):
    """The source directory of a meson build directory (meson-info), or None."""
    try:
        with open(os.path.join(build, "meson-info", "meson-info.json")) as f:
            return json.load(f)["directories"]["source"]
    except (OSError, ValueError, KeyError):
        return None


def _meta(args, rig):
    meta = machine_meta(rig.helper)
    meta.update({
        "slirp4netns": dpkg_version("slirp4netns"),
        "runs": args.runs, "tcp_seconds": args.seconds, "probe_seconds": args.probe_seconds,
        "churn_seconds": args.churn_seconds,
        "mtus": args.mtu, "cc": args.cc, "quick": args.quick,
    })
    if rig.baseline:
        # The baseline's commit: its own source tree's, tracked files only.
        meta["baseline"] = describe_build(_build_source(rig.baseline.path) or REPO, rig.baseline.helper,
                                          untracked=False)
        meta["baseline_dir"] = rig.baseline.path
        meta["baseline_libslirpnet"] = rig.baseline.libslirpnet()
    return meta


def _seconds(args, m):
    """How long measure m runs (its client's duration; many and xfer run to completion)."""
    return {"tcp": args.seconds, "churn": args.churn_seconds, "many": 30, "xfer": 60}.get(m, args.probe_seconds)


def _one_backend(rig, args, results, be, run_no, mtu):
    """Set up one backend, run every selected measure and direction on it, tear it down."""
    servers = []
    try:
        try:
            be.setup(mtu)
            measures.start_servers(rig, be, servers)
        except (RigError, OSError) as e:
            log("  %s MTU %d: set-up failed: %s" % (be.name, mtu, e))
            for m in args.measures:
                for d in args.directions:
                    results.add(run_no, mtu, be.name, m, d, error="set-up: %s" % e)
            return
        for m in args.measures:
            secs = _seconds(args, m)
            for d in args.directions:
                try:
                    values, extra = measures.measure(rig, be, m, d, secs)
                    results.add(run_no, mtu, be.name, m, d, values, extra)
                    log("  %-23s MTU %-5d %-3s %s: %s" % (be.name, mtu, m, d, ", ".join(
                        "%s=%s" % (k, report.fmt(v)) for k, v in values.items())))
                except measures.MeasureError as e:
                    results.add(run_no, mtu, be.name, m, d, error=str(e))
                    log("  %-23s MTU %-5d %-3s %s: FAILED: %s" % (be.name, mtu, m, d, e))
    finally:
        for s in reversed(servers):
            rig.procs.stop(s)
        be.teardown()


def _write(outdir, args, meta, results, selected, skipped):
    cells = results.cells()
    names = [b.name for b in selected]
    table = report.text_table(cells, names, args.mtu, args.directions, args.measures)
    print(table)
    pairs = report.baseline_pairs(names)
    legend = report.LEGEND + (report.BASE_COLUMNS if pairs else "")
    print("\n" + legend)
    tgt = report.targets(cells, args.mtu, args.directions) + report.churn_targets(cells, args.mtu, args.directions)
    churn_lines, churn_tables = report.churn_lines(results)
    if churn_lines:
        print("\nchurn (connect/close at full rate; the network process sampled each second):\n  "
              + "\n  ".join(churn_lines))
    if tgt:
        print("\ntargets (slirpnet vs slirp4netns):\n  " + "\n  ".join(tgt))
    if pairs:
        print("\nchange vs baseline %s (current / base):" % meta["baseline"])
        print(report.text_rows(*report.baseline_table(results, pairs, args.mtu, args.directions,
                                                       args.measures)))
        print("\n" + report.BASELINE_LEGEND)
    md = ["# slirpnet benchmark, %s" % meta["date"], "",
          "Kernel %s, %d CPUs, load %s at start and %s at end; slirpnet %s; libslirp %s, "
          "slirp4netns %s, passt %s, %s. %d run(s); TCP %g s, others %g s; sender CC %s." % (
              meta["kernel"], meta["cpus"], "/".join(meta["loadavg_start"]),
              "/".join(meta["loadavg_end"]), meta["slirpnet"], meta["libslirp"],
              meta["slirp4netns"], meta["passt"], meta["iperf3"], args.runs, args.seconds,
              args.probe_seconds, args.cc), "",
          report.markdown_table(cells, names, args.mtu, args.directions, args.measures), "",
          legend, ""]
    md += ["Backends: " + "; ".join("**%s**: %s" % (b.name, b.description) for b in selected), ""]
    if skipped:
        md += ["Skipped: " + "; ".join("%s (%s)" % s for s in skipped), ""]
    if tgt:
        md += ["Targets (slirpnet vs slirp4netns):", ""] + ["- " + t for t in tgt] + [""]
    if pairs:
        md += ["## Change vs baseline", "",
               "Current %s against baseline %s (`%s`): current / base." % (
                   meta["slirpnet"], meta["baseline"], meta["baseline_dir"]), "",
               report.markdown_rows(*report.baseline_table(results, pairs, args.mtu,
                                                            args.directions, args.measures)), "",
               report.BASELINE_LEGEND, ""]
    if churn_lines:
        md += ["## Churn", "", "connect, 1 byte each way, close, at full rate; the backend's network "
               "process's RSS and open fds sampled each second.", ""]
        md += ["- " + line for line in churn_lines] + [""]
        for head, rows in churn_tables:
            md += ["### " + head, "", report.markdown_rows(["conn/s", "RSS MiB", "fds"], rows)
                   .replace("| measure |", "| second |", 1), ""]
    fails = results.failures()
    if fails:
        md += ["Failures:", ""] + ["- run %d %s MTU %d %s %s: %s" % (
            f["run"], f["backend"], f["mtu"], f["measure"], f["direction"], f["error"]) for f in fails]
    with open(os.path.join(outdir, "results.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    with open(os.path.join(outdir, "results.json"), "w") as f:
        f.write(report.to_json(results, cells, meta) + "\n")


def main(argv):
    args = parse(argv)
    problems = _missing_prerequisites(args)
    if problems:
        for p in problems:
            log("bench: " + p)
        return 2
    if args.soak:
        from . import soak
        return soak.main(args, Rig)
    outdir = begin(args.out, "slirpnet-bench")
    rig = Rig(args, outdir)
    # With --baseline, a slirpnet* column's @base twin comes right after it: same turn.
    candidates = [cls(rig, build) for cls in backends.ALL if cls.name in args.backends
                  for build in [rig.build] + ([rig.baseline] if rig.baseline and cls.slirpnet else [])]
    selected, skipped = split_available("bench", candidates, lambda be: be.unavailable())
    if skipped and args.require_all:
        log("bench: --require-all: every selected backend must run")
        rig.close()
        return 1
    meta = _meta(args, rig)
    per_backend = SETUP_SECONDS + sum(_seconds(args, m) + 1 for m in args.measures) * len(args.directions)
    if rig.baseline:
        log("bench: baseline %s in %s" % (meta["baseline"], rig.baseline.path))
    log("bench: %d run(s) × MTU %s × %d backend(s): about %.0f min; logs in %s" % (
        args.runs, ",".join(map(str, args.mtu)), len(selected),
        args.runs * len(args.mtu) * len(selected) * per_backend / 60, outdir))

    results = report.Results()
    session = Session("bench")
    try:
        with session:
            rig.ns = netns.make_host("host")
            for run_no in range(1, args.runs + 1):
                # Backends take turns within each run, so slow drifts of the machine hit them alike.
                for mtu in args.mtu:
                    log("bench: run %d/%d, MTU %d" % (run_no, args.runs, mtu))
                    for be in selected:
                        _one_backend(rig, args, results, be, run_no, mtu)
        if session.error:
            results.add(0, 0, "rig", "setup", "-", error=str(session.error))
    finally:
        for be in selected:
            be.teardown()
        rig.close()
    session.stamp(meta)
    _write(outdir, args, meta, results, selected, skipped)
    return session.finish(outdir, meta, len(results.failures()), "client run(s) failed (see results.md)")
