# SPDX-License-Identifier: BSD-2-Clause
"""soak.py - `scripts/bench/run --soak MINUTES`: mixed traffic through slirpnet for minutes, the helper sampled each second, judged on growth and loss."""

import json
import os
import socket
import subprocess
import time

from . import backends, measures, netns
from .backends import GUEST_VERIFY, HOST_PROBE, HOST_VERIFY
from .proc import RigError
from .session import Session, begin, log, machine_meta

# The traffic, all at once, each a netprobe client run for the whole soak (see README "Soak").
# (name, side, argv after the program, given (address, port, seconds, source))
UDP_RATE = 200  # datagrams per second of the UDP request/response flow
BULK_BYTES = "16M"  # each way, per verified bulk transfer (repeated)
# Concurrent verified connections, a round every BURST_PAUSE seconds. The server closes each
# first, so the helper keeps each in TIME_WAIT (libslirp: 10 s) with its buffers: the rate
# bounds what lingers.
BURST_CONNS, BURST_BYTES, BURST_PAUSE = 50, "16K", 2

# Growth after the warm-up: the run is cut in thirds (warm-up, middle, last); the last third's
# floor (its lowest sample: the level the helper comes back to between bursts) may exceed
# the middle third's by this much at most. Peaks would judge where a 1-s sample happened to
# land in a burst of 50 connections (21 or 70 fds in a 60-s run); a leak raises the floor.
RSS_SLACK_KIB, RSS_SLACK_FRACTION = 2048, 0.05
FDS_SLACK, FDS_SLACK_FRACTION = 16, 0.10
SAMPLE_TIMEOUT = 2.0  # seconds for one control-socket "stats" answer


def _clients(be, seconds):
    """[(name, argv)] of the traffic: the guest's flows through the gateway to the host's
    servers, and the host's through the hostfwd to the guest's."""
    gw, src = be.server_from_guest, be.host_client_src
    h_addr, h_port = be.to_guest(GUEST_VERIFY)
    s = "%g" % seconds
    g = be.guest.exec
    h = be.host_ns.exec
    np = be.rig.netprobe
    return [
        ("bulk-g2h", g([np, "verify", gw, str(HOST_VERIFY), "--up", BULK_BYTES, "--down", BULK_BYTES,
                        "--repeat", s, "--timeout", "120"])),
        ("bulk-h2g", h([np, "verify", h_addr, str(h_port), "--up", BULK_BYTES, "--down", BULK_BYTES,
                        "--repeat", s, "--timeout", "120", "--src", src])),
        ("burst-g2h", g([np, "verify", gw, str(HOST_VERIFY), "--conns", str(BURST_CONNS), "--up",
                         BURST_BYTES, "--down", BURST_BYTES, "--repeat", s, "--pause", str(BURST_PAUSE),
                         "--timeout", "120", "--seed", "1000000"])),
        ("rr-g2h", g([np, "rr", gw, str(HOST_PROBE), s, "64"])),
        ("churn-g2h", g([np, "crr", gw, str(HOST_PROBE), s])),
        ("udp-g2h", g([np, "urr", gw, str(HOST_PROBE), s, str(UDP_RATE)])),
    ]


def _client_ok(name, rc, out):
    """None when the client's run counts as clean, else why not."""
    if out is None:
        return "no JSON result (exit %s)" % rc
    if out.get("error"):
        return out["error"]
    if name.startswith(("bulk", "burst")):
        if out.get("failed") or not out.get("completed"):
            return "%s of %s verified connections failed: %s" % (
                out.get("failed"), out.get("connections"), out.get("first_error", "?"))
    elif name.startswith("churn"):
        if out.get("failed"):
            return "%d of %d connections failed (%s)" % (out["failed"], out["failed"] + out["connections"],
                                                        out.get("last_error", "?"))
    elif name.startswith("udp"):
        if out.get("lost") or out.get("send_errors"):
            return "%d of %d datagrams lost, %d send errors" % (out["lost"], out["sent"], out["send_errors"])
    if rc != 0:
        return "exit %d" % rc
    return None


class _Stats:
    """The helper's counters over its control socket, one connection kept open."""

    def __init__(self, path):
        self.path = path
        self.sock = None
        self.buf = b""

    def __call__(self):
        if self.sock is None:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(SAMPLE_TIMEOUT)
            self.sock.connect(self.path)
        self.sock.sendall(b'{"execute": "stats"}\n')
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise OSError("control socket closed")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        reply = json.loads(line)
        if "return" not in reply:
            raise OSError("stats: %s" % reply)
        return {"stats": {k: v for k, v in reply["return"].items() if isinstance(v, int)}}

    def close(self):
        if self.sock:
            self.sock.close()


def _growth(samples, key, slack_abs, slack_frac):
    """(ok, middle floor, last floor) of key over the thirds of samples (see the constants)."""
    vals = [s[key] for s in samples if s.get(key) is not None]
    n = len(vals)
    if n < 6:
        return False, None, None
    mid, last = vals[n // 3: 2 * n // 3], vals[2 * n // 3:]
    allowed = min(mid) + max(slack_abs, min(mid) * slack_frac)
    return min(last) <= allowed, min(mid), min(last)


def _bridge_stats(logdir, be):
    """The tap bridge's exit counters (its last "tapbridge: stats:" line), or {}."""
    try:
        with open(os.path.join(logdir, "%s-bridge.log" % be.name)) as f:
            lines = [ln for ln in f if "tapbridge: stats:" in ln]
    except OSError:
        return {}
    if not lines:
        return {}
    return {k: int(v) for k, v in (kv.split("=") for kv in lines[-1].split("stats:")[1].split())}


def judge(samples, clients, bridge, helper_alive, seconds):
    """[problems] of a soak: empty when it passed. Growth is judged on the samples taken
    while the traffic ran (t <= seconds): the flows' last rounds and the closing of their
    connections come after."""
    problems = []
    during = [s for s in samples if s["t"] <= seconds]
    for key, what, slack_abs, frac in (("rss_kib", "RSS", RSS_SLACK_KIB, RSS_SLACK_FRACTION),
                                       ("fds", "open fds", FDS_SLACK, FDS_SLACK_FRACTION)):
        ok, mid, last = _growth(during, key, slack_abs, frac)
        if mid is None:
            problems.append("too few samples of %s to judge growth" % what)
        elif not ok:
            problems.append("%s grew after the warm-up: floor %s in the last third, %s in the middle one"
                            % (what, last, mid))
    with_stats = [s["stats"] for s in samples if "stats" in s]
    if len(with_stats) < 2:
        problems.append("no counters from the control socket")
    else:
        first, last = with_stats[0], with_stats[-1]
        for k in sorted(last):
            if k.startswith("drop_") and last[k] != first.get(k, 0):
                problems.append("helper counter %s rose by %d" % (k, last[k] - first.get(k, 0)))
    for name, c in clients.items():
        if c["problem"]:
            problems.append("%s: %s" % (name, c["problem"]))
    for k in ("tap_write_errors", "send_errors", "rx_too_big"):
        if bridge.get(k):
            problems.append("tap bridge %s=%d" % (k, bridge[k]))
    if not bridge:
        problems.append("no counters from the tap bridge")
    if not helper_alive:
        problems.append("the helper was gone at the end")
    return problems


def _table(samples, every):
    """Rows of the per-interval table: time, RSS MiB, fds, CPU %, frames/s each way, drops."""
    rows = []
    prev = None
    for s in samples:
        if prev is not None and s["t"] - prev["t"] < every - 0.5 and s is not samples[-1]:
            continue
        st = s.get("stats", {})
        drops = sum(v for k, v in st.items() if k.startswith("drop_"))
        if prev is not None:
            dt = s["t"] - prev["t"] or 1
            cpu = "%.0f" % ((s["cpu_s"] - prev["cpu_s"]) / dt * 100) if s["cpu_s"] is not None else "—"
            pst = prev.get("stats", {})
            fin = "%.0f" % ((st.get("from_guest_frames", 0) - pst.get("from_guest_frames", 0)) / dt)
            fout = "%.0f" % ((st.get("to_guest_frames", 0) - pst.get("to_guest_frames", 0)) / dt)
        else:
            cpu = fin = fout = "—"
        rows.append(["%.0f" % s["t"], "%.1f" % (s["rss_kib"] / 1024) if s["rss_kib"] else "—",
                     str(s["fds"]), cpu, fin, fout, str(drops)])
        prev = s
    return ["t s", "RSS MiB", "fds", "CPU %", "from guest fr/s", "to guest fr/s", "drops"], rows


def _fmt_rows(head, rows):
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(head)]
    line = lambda cols: "  ".join(c.rjust(w) for c, w in zip(cols, widths))
    return "\n".join([line(head)] + [line(r) for r in rows])


def _md_rows(head, rows):
    return "\n".join(["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
                     + ["| " + " | ".join(r) + " |" for r in rows])


def main(args, rig_class):
    seconds = args.soak * 60
    if seconds < 30:
        log("soak: at least 0.5 minutes (the warm-up is a third of the run)")
        return 2
    outdir = begin(args.out, "slirpnet-soak")
    rig = rig_class(args, outdir)
    mtu = args.mtu[0] if len(args.mtu) == 1 else 1500
    be = backends.SlirpnetPlugin(rig)
    ctl = os.path.join(rig.sockdir, "soak-ctl.sock")
    be.more_options = ",control=%s" % ctl
    meta = machine_meta(rig.helper)
    meta.update({"soak_seconds": seconds, "mtu": mtu, "udp_rate": UDP_RATE, "bulk_bytes": BULK_BYTES,
                 "burst": [BURST_CONNS, BURST_BYTES, BURST_PAUSE]})
    log("soak: %g min of mixed traffic through %s (MTU %d); logs in %s" % (args.soak, be.name, mtu, outdir))
    session = Session("soak")
    samples, clients, bridge, helper_alive, servers = [], {}, {}, False, []
    stats = _Stats(ctl)
    try:
        with session:
            rig.ns = netns.make_host("host")
            be.setup(mtu)
            measures.start_servers(rig, be, servers)
            sampler = measures.Sampler(be.helper_pids, extra=stats).start()
            procs = {}
            try:
                for name, argv in _clients(be, seconds):
                    path = os.path.join(rig.logdir, "soak-%s.json" % name)
                    with open(path, "w") as f:
                        procs[name] = (subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=f,
                                                        stderr=subprocess.STDOUT), path)
                deadline = time.monotonic() + seconds + 180
                for name, (p, path) in procs.items():
                    try:
                        rc = p.wait(max(1, deadline - time.monotonic()))
                    except subprocess.TimeoutExpired:
                        p.kill()
                        rc = p.wait()
                    out = None
                    with open(path) as f:
                        for line in f.read().splitlines()[::-1]:
                            try:
                                out = json.loads(line)
                                break
                            except ValueError:
                                continue
                    clients[name] = {"exit": rc, "result": out, "problem": _client_ok(name, rc, out)}
            finally:
                for p, _ in procs.values():
                    if p.poll() is None:
                        p.kill()
                        p.wait()
                sampler.sample()  # the state once the traffic has ended
                samples = sampler.stop()
            helper_alive = bool(be.helper_pids())
        if session.error:
            clients["rig"] = {"exit": None, "result": None, "problem": str(session.error)}
    except (RigError, OSError) as e:
        clients["rig"] = {"exit": None, "result": None, "problem": str(e)}
    finally:
        stats.close()
        for s in reversed(servers):
            rig.procs.stop(s)
        be.teardown()  # the bridge prints its counters as it exits
        bridge = _bridge_stats(rig.logdir, be)
        rig.close()
    session.stamp(meta)
    problems = judge(samples, clients, bridge, helper_alive, seconds) if not session.interrupted else ["interrupted"]

    every = 1 if seconds <= 120 else 10 if seconds <= 1200 else 60
    head, rows = _table(samples, every)
    summary = _summary(samples, clients, bridge, seconds)
    print(_fmt_rows(head, rows))
    print("\n" + "\n".join(summary))
    print("\nsoak: " + ("PASSED" if not problems else "FAILED:\n  " + "\n  ".join(problems)))
    with open(os.path.join(outdir, "soak.json"), "w") as f:
        json.dump({"meta": meta, "problems": problems, "clients": clients, "bridge": bridge,
                   "samples": samples}, f, indent=1)
    with open(os.path.join(outdir, "soak.md"), "w") as f:
        f.write("# slirpnet soak, %s\n\n%g min, MTU %d; kernel %s, %d CPUs, load %s at start, %s at end; "
                "slirpnet %s.\n\n%s\n\n%s\n\nVerdict: %s\n" % (
                    meta["date"], args.soak, mtu, meta["kernel"], meta["cpus"],
                    "/".join(meta["loadavg_start"]), "/".join(meta["loadavg_end"]), meta["slirpnet"],
                    "\n".join("- " + s for s in summary), _md_rows(head, rows),
                    "passed" if not problems else "FAILED: " + "; ".join(problems)))
    log("soak: %s/soak.md and soak.json written (%d s)" % (outdir, meta["elapsed_s"]))
    if session.interrupted:
        return 130
    return 1 if problems else 0


def _summary(samples, clients, bridge, seconds):
    """Lines: the helper's peaks per third, CPU, then each flow's result."""
    out = []
    n = len(samples)
    if n >= 3:
        during = [s for s in samples if s["t"] <= seconds] or samples
        n = len(during)
        thirds = [during[:n // 3], during[n // 3: 2 * n // 3], during[2 * n // 3:]]
        rss = ["%.1f" % (max(s["rss_kib"] or 0 for s in t) / 1024) for t in thirds]
        fds = [str(max(s["fds"] or 0 for s in t)) for t in thirds]
        out.append("helper peak RSS per third (warm-up, middle, last): %s MiB; peak fds: %s"
                   % (" / ".join(rss), " / ".join(fds)))
        if samples[-1]["cpu_s"] is not None and samples[0]["cpu_s"] is not None:
            out.append("helper CPU: %.0f%% of one core on average"
                       % ((samples[-1]["cpu_s"] - samples[0]["cpu_s"]) / max(1, samples[-1]["t"] - samples[0]["t"]) * 100))
        st = [s["stats"] for s in samples if "stats" in s]
        if st:
            drops = {k: st[-1][k] - st[0].get(k, 0) for k in st[-1] if k.startswith("drop_")}
            out.append("helper drop counters over the run: %s" % (
                ", ".join("%s=%d" % kv for kv in sorted(drops.items()) if kv[1]) or "all 0"))
    for name, c in clients.items():
        r = c["result"] or {}
        if name.startswith(("bulk", "burst")):
            d = "%s connections verified (%d failed), %.2f GB up, %.2f GB down, %.2f/%.2f Gbit/s" % (
                r.get("completed"), r.get("failed", 0), r.get("bytes_up", 0) / 1e9,
                r.get("bytes_down", 0) / 1e9, r.get("gbps_up", 0), r.get("gbps_down", 0))
        elif name.startswith("rr"):
            d = "%s round trips, p50 %s µs, p99 %s µs" % (r.get("transactions"), r.get("median_us"), r.get("p99_us"))
        elif name.startswith("churn"):
            ps = r.get("per_second") or [0]
            d = "%s connections, %s conn/s (per second %s–%s), %s failed" % (
                r.get("connections"), r.get("per_sec"), min(ps), max(ps), r.get("failed"))
        elif name.startswith("udp"):
            d = "%s datagrams, %s answered, %s lost, p50 %s µs, p99 %s µs" % (
                r.get("sent"), r.get("received"), r.get("lost"), r.get("median_us"), r.get("p99_us"))
        else:
            d = ""
        out.append("%s: %s%s" % (name, d, " — " + c["problem"] if c["problem"] else ""))
    if bridge:
        out.append("tap bridge: %d frames to the helper, %d to the guest, backend full %d times, "
                   "tap write errors %d" % (bridge.get("to_backend_frames", 0), bridge.get("to_guest_frames", 0),
                                             bridge.get("backend_full", 0), bridge.get("tap_write_errors", 0)))
    return out
