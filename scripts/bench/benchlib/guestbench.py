# SPDX-License-Identifier: BSD-2-Clause
"""guestbench.py - `scripts/bench/guest-run`: TCP throughput from inside a real guest (QEMU, TCG)
on slirpnet --socket and --vhost-user, QEMU's own -netdev user and passt; table, Markdown and
JSON."""

import argparse
import json
import os
import re
import shutil
import statistics
import sys

from . import netns, report
from .proc import RigError, cpu_seconds, listening, wait_for
from .session import REPO, RigBase, Session, begin, log, machine_meta, split_available, version

sys.path.insert(0, os.path.join(REPO, "scripts", "guest"))
import guestlib  # noqa: E402

HOST_IPERF = 5201  # the iperf3 server on the sealed namespace's 127.0.0.1
START_TIMEOUT = 15
REFERENCE = "user"
DIRECTIONS = [("g2h", "guest sends"), ("h2g", "guest receives")]


class Config:
    """One column: a backend at one guest MTU."""

    def __init__(self, name, kind, mtu, description, extra=()):
        self.name, self.kind, self.mtu, self.description = name, kind, mtu, description
        self.extra = list(extra)  # more helper options


CONFIGS = [
    Config("user", "user", 1500, "QEMU -netdev user (its built-in libslirp; MTU 1500 fixed)"),
    Config("slirpnet-1500", "slirpnet", 1500, "slirpnet --socket --mtu=1500, -netdev stream"),
    Config("slirpnet-65520", "slirpnet", 65520, "slirpnet --socket --mtu=65520, -netdev stream"),
    # The default busy-poll=50 against none: what polling buys or costs next to QEMU.
    Config("slirpnet-1500-nopoll", "slirpnet", 1500, "slirpnet --socket --mtu=1500 --busy-poll=0",
           ["--busy-poll=0"]),
    Config("slirpnet-vhost-1500", "slirpnet-vhost", 1500,
           "slirpnet --vhost-user --mtu=1500, -netdev vhost-user (guest memory in a shared memfd)"),
    Config("slirpnet-vhost-65520", "slirpnet-vhost", 65520,
           "slirpnet --vhost-user --mtu=65520, -netdev vhost-user (guest memory in a shared memfd)"),
    Config("passt-1500", "passt", 1500, "passt --socket -m 1500, -netdev stream"),
    Config("passt-65520", "passt", 65520, "passt --socket -m 65520, -netdev stream"),
]


def parse(argv):
    names = [c.name for c in CONFIGS]
    ap = argparse.ArgumentParser(
        prog="scripts/bench/guest-run",
        description="TCP throughput (iperf3 both ways) from inside a real guest under QEMU/TCG "
                    "with a virtio-net NIC: slirpnet --socket and --vhost-user (MTU 1500 and "
                    "65520) vs QEMU's "
                    "-netdev user vs passt. Needs root; everything runs in a sealed network "
                    "namespace whose only reachable addresses are its own.")
    ap.add_argument("--quick", action="store_true", help="1 run, 5-second measures")
    ap.add_argument("--runs", type=int, help="runs per cell (default 3; --quick: 1)")
    ap.add_argument("--seconds", type=int, help="iperf3 duration per direction (default 10; --quick: 5)")
    ap.add_argument("--backends", help="comma list of %s (default: all)" % ",".join(names))
    ap.add_argument("--directions", default="g2h,h2g", help="g2h, h2g or both (default g2h,h2g)")
    ap.add_argument("--iperf3-args", default="",
                    help="more options for the guest's iperf3, both directions, e.g. '-w 16K' "
                         "(the guest's socket buffer: the receive window it can offer in h2g); "
                         "letters, digits and '-' only")
    ap.add_argument("--helper-opt", action="append", default=[],
                    help="one more k=v option for the slirpnet columns (repeatable), e.g. "
                         "pcap=FILE snaplen=96")
    ap.add_argument("--smp", type=int, default=1, help="guest vCPUs (default 1)")
    ap.add_argument("--memory", type=int, default=256, help="guest MiB (default 256)")
    ap.add_argument("--build", default=os.environ.get("SLIRPNET_BUILD") or os.path.join(REPO, "build"),
                    help="meson build directory with plugin/slirpnet (default $SLIRPNET_BUILD, else build/)")
    ap.add_argument("--image-dir", default=guestlib.DEFAULT_IMAGE_DIR,
                    help="guest image directory (default %(default)s; initrd-iperf3.gz is built there)")
    ap.add_argument("--out", help="directory for results.{md,json} and logs (default /tmp/slirpnet-guest-bench-DATE)")
    ap.add_argument("-v", "--verbose", action="store_true", help="echo the guest's serial console")
    a = ap.parse_args(argv)
    items = a.backends.split(",") if a.backends else names
    bad = [i for i in items if i not in names]
    if bad:
        ap.error("unknown backend: %s (known: %s)" % (",".join(bad), ",".join(names)))
    a.configs = [c for c in CONFIGS if c.name in items]
    a.runs = a.runs or (1 if a.quick else 3)
    a.seconds = a.seconds or (5 if a.quick else 10)
    if not 1 <= a.smp <= 2:
        ap.error("--smp: 1 or 2")
    a.directions = a.directions.split(",")
    if not a.directions or any(d not in ("g2h", "h2g") for d in a.directions):
        ap.error("--directions: g2h, h2g or g2h,h2g")
    a.iperf3_args = a.iperf3_args.split()
    if any(not re.fullmatch(r"[A-Za-z0-9-]+", w) for w in a.iperf3_args):
        ap.error("--iperf3-args: letters, digits and '-' only (the guest's /init refuses more)")
    return a


def unix_listening(pid, path):
    """True when pid's network namespace has a UNIX socket listening on path."""
    try:
        with open("/proc/%d/net/unix" % pid) as f:
            next(f)
            for line in f:
                cols = line.split()
                # Flags 00010000 = __SO_ACCEPTCON: listen() was called.
                if len(cols) >= 8 and cols[7] == path and cols[3] == "00010000":
                    return True
    except OSError:
        pass
    return False


class GuestRig(RigBase):
    def __init__(self, args, outdir):
        self.args = args
        self.helper = os.path.join(args.build, "plugin", "slirpnet")
        # on_line(kind, name, fields, backend): called for each guest result/event line (a
        # profiling script starts perf on the backend when the lease is taken).
        self.on_line = None
        super().__init__(outdir, "slirpnet-gbench-")

    def unavailable(self, cfg):
        if cfg.kind.startswith("slirpnet") and not os.access(self.helper, os.X_OK):
            return "%s is missing: build first" % self.helper
        if cfg.kind == "passt" and not shutil.which("passt"):
            return "passt is not installed"
        return None

    def start_backend(self, cfg, tag):
        """Start cfg's backend in the sealed namespace; return (process or None, run_guest
        keywords: its netdev, or vhost_user)."""
        if cfg.kind == "user":
            # QEMU's libslirp: 10.0.2.2 reaches the namespace's loopback. No hostfwd, no IPv6.
            return None, {"netdev": "user,id=n0,ipv6=off"}
        sock = os.path.join(self.sockdir, "%s.sock" % tag)
        if cfg.kind == "slirpnet":
            argv = [self.helper, "--socket", sock, "--mtu=%d" % cfg.mtu, "--ipv6=off"] + cfg.extra \
                + self.args.helper_opt
        elif cfg.kind == "slirpnet-vhost":
            argv = [self.helper, "--vhost-user", sock, "--mtu=%d" % cfg.mtu, "--ipv6=off"] + cfg.extra \
                + self.args.helper_opt
        else:
            # -a/-n/-g: libslirp's addressing, so the guest is the same in every column. The
            # gateway 10.0.2.2 is mapped to the host's loopback (passt's default; no
            # --no-map-gw). -4: IPv4 only; -D none: no DNS; -t/-u none: no inbound forwards.
            argv = ["passt", "-f", "-q", "-4", "-s", sock, "-a", "10.0.2.15", "-n", "24",
                    "-g", netns.GATEWAY, "-m", str(cfg.mtu), "-D", "none",
                    "-t", "none", "-u", "none"]
        p = self.procs.start("%s-backend" % tag, self.ns.exec(argv))
        wait_for(lambda: p.poll() is not None or unix_listening(p.pid, sock), START_TIMEOUT,
                 "%s to listen on %s" % (cfg.name, sock))
        if p.poll() is not None:
            raise RigError("%s exited with %s (see logs/%s-backend.log)" % (cfg.name, p.returncode, tag))
        if cfg.kind == "slirpnet-vhost":
            return p, {"netdev": None, "vhost_user": sock}
        return p, {"netdev": "stream,id=n0,server=off,addr.type=unix,addr.path=" + sock}

    def one(self, cfg, run_no):
        """One guest boot on cfg: both directions. Returns a record."""
        a = self.args
        tag = "%s-run%d" % (cfg.name, run_no)
        rec = {"config": cfg.name, "backend": cfg.kind, "mtu": cfg.mtu, "run": run_no,
               "ok": False, "error": None, "directions": {}}
        server = backend = None
        try:
            server = self.procs.start("%s-iperf3" % tag, self.ns.exec(
                ["iperf3", "-s", "-B", "127.0.0.1", "-p", str(HOST_IPERF)]))
            wait_for(lambda: listening(server.pid, HOST_IPERF), 10, "the iperf3 server")
            backend, link = self.start_backend(cfg, tag)
            cpu0 = cpu_seconds(backend.pid) if backend is not None else None
            serial_log = os.path.join(self.logdir, "%s-serial.log" % tag)
            r = guestlib.run_guest(
                nic="virtio-net-pci", checks=("lease", "iperf3"), **link,
                mtu=cfg.mtu, iperf3_port=HOST_IPERF, iperf3_secs=a.seconds,
                iperf3_dirs=a.directions, iperf3_args=a.iperf3_args,
                on_line=(lambda k, n, f: self.on_line(k, n, f, backend)) if self.on_line else None,
                timeout=150 + 2 * (a.seconds + 40), image_dir=a.image_dir, memory=a.memory,
                smp=a.smp, accel="tcg", cmd_prefix=self.ns.exec([]), serial_log=serial_log,
                echo=(lambda l: print("    | " + l, file=sys.stderr, flush=True)) if a.verbose else None)
            rec["timings"] = r["timings"]
            rec["qemu_cmd"] = r["cmd"]
            if r["stderr"].strip():
                rec["qemu_stderr"] = r["stderr"][-2000:]
            for d, _ in DIRECTIONS:
                res = r["results"].get("iperf3-" + d)
                if res:
                    rec["directions"][d] = res
            # The backend's CPU over the whole boot (both directions) per GB it moved: the
            # boot and the lease are a few ms of it. QEMU's own slirp has no separate process.
            cpu1 = cpu_seconds(backend.pid) if backend is not None else None
            moved = sum(_num(res, "recv_bytes") or 0 for res in rec["directions"].values())
            if cpu0 is not None and cpu1 is not None and moved:
                rec["backend_cpu_s"] = round(cpu1 - cpu0, 3)
                rec["backend_cpu_s_per_gb"] = (cpu1 - cpu0) / (moved / 1e9)
            rec["lease"] = r["results"].get("lease")
            rec["nic"] = r["results"].get("nic")
            if not r["ok"]:
                rec["error"] = r["reason"]
            else:
                mtu = rec["nic"].get("mtu") if rec["nic"] else None
                if mtu != str(cfg.mtu):
                    rec["error"] = "guest MTU %s, wanted %d" % (mtu, cfg.mtu)
                else:
                    rec["ok"] = True
        except (RigError, OSError) as e:
            rec["error"] = "set-up: %s" % e
        finally:
            for p in (backend, server):
                if p is not None:
                    self.procs.stop(p)
        return rec


def gbps(res):
    try:
        return float(res["recv_bps"]) / 1e9
    except (KeyError, TypeError, ValueError):
        return None


def cells(records, configs):
    """{(config, metric, direction): {values, errors, median, min, max, ratio}}"""
    out = {}
    for rec in records:
        c = out.setdefault((rec["config"], "cpu", "both"), {"values": [], "errors": []})
        if rec["ok"] and rec.get("backend_cpu_s_per_gb") is not None:
            c["values"].append(rec["backend_cpu_s_per_gb"])
        elif not rec["ok"]:
            c["errors"].append(rec["error"])
        for d, _ in DIRECTIONS:
            res = rec["directions"].get(d)
            for metric, value in (("gbps", gbps(res) if res else None),
                                  ("retrans", _num(res, "retrans") if res else None)):
                c = out.setdefault((rec["config"], metric, d), {"values": [], "errors": []})
                if rec["ok"] and value is not None:
                    c["values"].append(value)
                elif not rec["ok"]:
                    c["errors"].append(rec["error"])
    for c in out.values():
        v = c["values"]
        c["median"] = statistics.median(v) if v else None
        c["min"], c["max"] = (min(v), max(v)) if v else (None, None)
    for (name, metric, d), c in out.items():
        ref = out.get((REFERENCE, metric, d))
        ok = metric == "gbps" and ref and ref["median"] and c["median"] is not None
        c["ratio"] = c["median"] / ref["median"] if ok else None
    return out


def _num(res, key):
    try:
        return float(res[key])
    except (KeyError, TypeError, ValueError):
        return None


def _rows(cs, configs):
    rows = []
    for metric, label in (("gbps", "TCP Gbit/s"), ("retrans", "retransmits")):
        num = report.fmt if metric == "gbps" else (lambda v: "%.0f" % v)
        for d, what in DIRECTIONS:
            texts = [report.cell_text(cs.get((cfg.name, metric, d)), cfg.name != REFERENCE, num)
                     for cfg in configs]
            rows.append(("%s, %s (%s)" % (label, d, what), texts))
    rows.append(("backend CPU s per GB (both ways)",
                 [report.cell_text(cs.get((cfg.name, "cpu", "both")), False, lambda v: "%.2f" % v)
                  for cfg in configs]))
    return rows


def text_table(cs, configs):
    return report.text_rows([c.name for c in configs], _rows(cs, configs))


def markdown_table(cs, configs):
    return report.markdown_rows([c.name for c in configs], _rows(cs, configs))


LEGEND = ("median [min–max] over the runs; ×r = median / `-netdev user`'s median (higher is "
          "better). iperf3 in the guest (QEMU TCG, virtio-net-pci) to a server on the host's "
          "127.0.0.1 through the gateway 10.0.2.2: g2h = guest sends, h2g = `-R`, the host "
          "sends; Gbit/s as received. Retransmits: the sender's, per run. Backend CPU: "
          "user+system seconds of the backend process over the boot per GB received in both "
          "directions (lower is better; — for `-netdev user`, which runs inside QEMU).")


def _write(outdir, args, meta, records, selected, skipped):
    cs = cells(records, selected)
    print(text_table(cs, selected))
    print("\n" + LEGEND)
    md = ["# slirpnet real-guest benchmark, %s" % meta["date"], "",
          "Host kernel %s, %d CPUs, load %s at start and %s at end; guest kernel %s, %d vCPU(s), "
          "TCG, virtio-net-pci; %s; slirpnet %s; libslirp %s; passt %s; %s. %d run(s), iperf3 "
          "%d s per direction%s." % (
              meta["kernel"], meta["cpus"], "/".join(meta["loadavg_start"]),
              "/".join(meta["loadavg_end"]), meta["guest_kernel"], args.smp, meta["qemu"],
              meta["slirpnet"], meta["libslirp"], meta["passt"], meta["iperf3"], args.runs,
              args.seconds, "".join(
                  "; %s %s" % (k, " ".join(v)) for k, v in (
                      ("guest iperf3 options", args.iperf3_args),
                      ("helper options", args.helper_opt)) if v)), "",
          markdown_table(cs, selected), "", LEGEND, "",
          "Columns: " + "; ".join("**%s**: %s" % (c.name, c.description) for c in selected), ""]
    if skipped:
        md += ["Skipped: " + "; ".join("%s (%s)" % s for s in skipped), ""]
    fails = [r for r in records if not r["ok"]]
    if fails:
        md += ["Failures:", ""] + ["- run %d %s: %s" % (r["run"], r["config"], r["error"]) for r in fails]
    with open(os.path.join(outdir, "results.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    with open(os.path.join(outdir, "results.json"), "w") as f:
        json.dump({"meta": meta,
                   "cells": [dict(config=k[0], metric=k[1], direction=k[2], **v)
                             for k, v in sorted(cs.items())],
                   "records": records}, f, indent=1, ensure_ascii=False)
        f.write("\n")


def main(argv, on_line=None):
    """on_line: see GuestRig.on_line (for a script that profiles the runs)."""
    args = parse(argv)
    problems = []
    if os.geteuid() != 0:
        problems.append("needs root (a sealed network namespace)")
    for tool in ("ip", "iperf3", guestlib.QEMU):
        if not shutil.which(tool):
            problems.append("%s is not installed" % tool)
    if problems:
        for p in problems:
            log("guest-bench: " + p)
        return 2
    try:
        image = guestlib.ensure_image(args.image_dir, with_iperf3=True)
    except Exception as e:  # noqa: BLE001 - build-image already said why
        log("guest-bench: building the guest image failed: %s" % e)
        return 2
    outdir = begin(args.out, "slirpnet-guest-bench")
    rig = GuestRig(args, outdir)
    rig.on_line = on_line
    selected, skipped = split_available("guest-bench", args.configs, rig.unavailable)
    try:
        kver = json.load(open(os.path.join(args.image_dir, ".stamp-iperf3")))["kver"]
    except (OSError, ValueError, KeyError):
        kver = "?"
    meta = machine_meta(rig.helper)
    meta.update({"guest_kernel": kver, "image": list(image), "qemu": version([guestlib.QEMU, "--version"]),
                 "runs": args.runs, "seconds": args.seconds, "smp": args.smp, "memory": args.memory,
                 "directions": args.directions, "iperf3_args": args.iperf3_args,
                 "helper_opt": args.helper_opt,
                 "configs": [c.name for c in selected]})
    log("guest-bench: %d run(s) × %d backend(s), iperf3 %d s each way: about %.0f min; logs in %s" % (
        args.runs, len(selected), args.seconds,
        args.runs * len(selected) * (2 * args.seconds + 8) / 60, outdir))

    records, session = [], Session("guest-bench")
    try:
        with session:
            # Everything (iperf3 server, backend, QEMU) runs in a namespace with loopback and a
            # dead-end veth: whatever a backend maps 10.0.2.2 to, nothing can leave it.
            rig.ns = netns.make_host("guest")
            for run_no in range(1, args.runs + 1):
                for cfg in selected:  # backends take turns within each run
                    rec = rig.one(cfg, run_no)
                    records.append(rec)
                    if rec["ok"]:
                        log("  run %d %-15s %s" % (run_no, cfg.name, "  ".join(
                            "%s %s Gbit/s (retr %s)" % (d, report.fmt(gbps(rec["directions"][d])),
                                                        rec["directions"][d].get("retrans"))
                            for d, _ in DIRECTIONS if d in rec["directions"])))
                    else:
                        log("  run %d %-15s FAILED: %s" % (run_no, cfg.name, rec["error"]))
        if session.error:
            records.append({"config": "rig", "backend": "-", "mtu": 0, "run": 0, "ok": False,
                            "error": str(session.error), "directions": {}})
    finally:
        rig.close()
    session.stamp(meta)
    _write(outdir, args, meta, records, selected, skipped)
    return session.finish(outdir, meta, sum(not r["ok"] for r in records),
                          "guest run(s) failed (see results.md and logs/)")
