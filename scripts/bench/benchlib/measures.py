# SPDX-License-Identifier: BSD-2-Clause
"""measures.py - the servers and the client runs: TCP throughput + CPU, request/response, connect rate, UDP."""

import json
import os
import signal
import statistics
import subprocess
import threading
import time

from . import proc
from .backends import GUEST_IPERF, GUEST_PROBE, GUEST_VERIFY, HOST_IPERF, HOST_PROBE, HOST_VERIFY
from .proc import RigError, listening, wait_for

# Run by default (no --measures).
MEASURES = ["tcp", "rr", "crr", "udp"]
# Only when named in --measures: a 60-second connect/close storm with the helper's RSS and fds
# sampled each second (churn); 1000 concurrent verified connections (many); a 1 GiB verified
# transfer with a connect/close loop beside it (xfer).
OPT_IN_MEASURES = ["churn", "many", "xfer"]
ALL_MEASURES = MEASURES + OPT_IN_MEASURES
# Integrity checks: a failure is a failure, never retried.
NO_RETRY = {"many", "xfer"}
MANY_CONNS = 1000
MANY_BYTES = "128K"  # each way, per connection
XFER_BYTES = "1G"
# g2h: the guest's client talks to a server on the host's loopback through the gateway.
# h2g: a host client talks to a server in the guest through a port forward.
DIRECTIONS = ["g2h", "h2g"]
UDP_PAYLOAD = 64  # bytes: small datagrams make it a packets-per-second test


class MeasureError(Exception):
    """One client run failed (the backend stalled, refused, or reset)."""


def start_servers(rig, be, servers):
    """iperf3, the echo probe and the verify server on both sides, bound where each
    direction's client expects.

    Appends each to servers as soon as it runs, so the caller stops them even on failure."""
    sides = [("host", be.host_ns, be.host_bind, HOST_IPERF, HOST_PROBE, HOST_VERIFY),
             ("guest", be.guest, be.guest_addr, GUEST_IPERF, GUEST_PROBE, GUEST_VERIFY)]
    for side, ns, addr, iperf_port, probe_port, verify_port in sides:
        ip3 = rig.procs.start("%s-iperf3-%s" % (be.name, side), ns.exec(
            ["iperf3", "-s", "-B", addr, "-p", str(iperf_port)]))
        servers.append(ip3)
        servers.append(rig.procs.start("%s-netprobe-%s" % (be.name, side), ns.exec(
            [rig.netprobe, "serve", addr, str(probe_port)]), ready_line="ready"))
        servers.append(rig.procs.start("%s-vserve-%s" % (be.name, side), ns.exec(
            [rig.netprobe, "vserve", addr, str(verify_port)]), ready_line="ready"))
        wait_for(lambda: listening(ip3.pid, iperf_port), 10, "iperf3 server on %s" % side)


def _client(be, direction, port_host, port_guest):
    """(namespace, address, port, source) of a client for this direction."""
    if direction == "g2h":
        return be.guest, be.server_from_guest, port_host, None
    addr, port = be.to_guest(port_guest)
    return be.host_ns, addr, port, be.host_client_src


def _run_json(argv, timeout):
    try:
        cp = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                            timeout=timeout)
    except subprocess.TimeoutExpired:
        raise MeasureError("no result within %.0f s" % timeout)
    try:
        out = json.loads(cp.stdout)
    except ValueError:
        raise MeasureError("exit %d: %s" % (cp.returncode, (cp.stderr or cp.stdout).strip()[-300:]))
    if out.get("error"):
        raise MeasureError(out["error"])
    return out


def _iperf(rig, be, direction, seconds, extra):
    ns, addr, port, src = _client(be, direction, HOST_IPERF, GUEST_IPERF)
    argv = ["iperf3", "-c", addr, "-p", str(port), "-t", str(seconds), "--json",
            "--connect-timeout", "3000"] + extra
    if src:
        argv += ["-B", src]
    return _run_json(ns.exec(argv), seconds + 20)


class _Profile:
    """perf record on the backend's processes for the duration of one client run (--profile)."""

    def __init__(self, rig, be, label):
        self.p = None
        pids = proc.descendants(be.roots)
        if not rig.profile or not pids:
            return
        self.data = os.path.join(rig.outdir, "perf-%s.data" % label)
        self.report = os.path.join(rig.outdir, "perf-%s.txt" % label)
        self.p = subprocess.Popen(["perf", "record", "-q", "-g", "-F", "999", "-o", self.data, "-p",
                                   ",".join(map(str, pids))],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)

    def finish(self):
        if not self.p:
            return
        self.p.send_signal(signal.SIGINT)
        try:
            self.p.wait(30)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            return
        cp = proc.run(["perf", "report", "--stdio", "--no-children", "-i", self.data,
                       "--sort", "comm,dso,symbol", "--percent-limit", "1"], timeout=120, check=False)
        with open(self.report, "w") as f:
            f.write(cp.stdout)


def tcp(rig, be, direction, seconds):
    """iperf3 TCP bulk transfer; CPU seconds of the backend's processes per GB received."""
    prof = _Profile(rig, be, "%s-mtu%d-tcp-%s" % (be.name, be.mtu, direction))
    before = proc.cpu_snapshot(be.roots)
    try:
        out = _iperf(rig, be, direction, seconds, ["-C", rig.cc])
    finally:
        after = proc.cpu_snapshot(be.roots)
        prof.finish()
    recv = out["end"]["sum_received"]
    cpu, per = proc.cpu_delta(before, after)
    gb = recv["bytes"] / 1e9
    values = {"gbps": recv["bits_per_second"] / 1e9}
    if be.roots:
        values["cpu_s_per_gb"] = cpu / gb if gb else None
    return values, {"bytes": recv["bytes"], "retransmits": out["end"]["sum_sent"].get("retransmits"),
                    "cpu_s": round(cpu, 3), "cpu_by_process": {k: round(v, 3) for k, v in per.items()}}


def udp(rig, be, direction, seconds):
    """iperf3 UDP flood of small datagrams, unlimited rate; packets per second received."""
    out = _iperf(rig, be, direction, seconds, ["-u", "-b", "0", "-l", str(UDP_PAYLOAD)])
    s = out["end"]["sum"]
    received = s["packets"] - s["lost_packets"]
    return {"kpps": received / s["seconds"] / 1e3}, {"sent": s["packets"], "lost_percent": s["lost_percent"]}


def _probe(rig, be, direction, argv_tail, seconds):
    ns, addr, port, src = _client(be, direction, HOST_PROBE, GUEST_PROBE)
    mode = argv_tail[0]
    argv = [rig.netprobe, mode, addr, str(port), str(seconds)] + argv_tail[1:]
    if src:
        argv.append(src)
    return _run_json(ns.exec(argv), seconds + 20)


def rr(rig, be, direction, seconds):
    """1-byte TCP request/response on one connection: round-trip latency."""
    out = _probe(rig, be, direction, ["rr", "1"], seconds)
    return {"p50_us": out["median_us"], "p99_us": out["p99_us"]}, {"transactions": out["transactions"]}


def crr(rig, be, direction, seconds):
    """connect, 1-byte exchange, close: new TCP connections per second."""
    out = _probe(rig, be, direction, ["crr"], seconds)
    return {"conn_per_s": out["per_sec"]}, {"failed": out["failed"]}


class Sampler:
    """Every `interval` seconds, in a thread: the summed VmRSS (KiB), open fds and CPU seconds
    of the processes pids() returns, and extra() (e.g. the helper's counters) when given.
    samples: [{"t": seconds since start, "rss_kib", "fds", "cpu_s", ...extra()}]."""

    def __init__(self, pids, interval=1.0, extra=None):
        self.pids, self.interval, self.extra = pids, interval, extra
        self.samples = []
        self.errors = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self.t0 = time.monotonic()
        self._thread.start()
        return self

    def sample(self):
        pids = self.pids()
        rss = [proc.rss_kib(p) for p in pids]
        fds = [proc.fd_count(p) for p in pids]
        cpu = [proc.cpu_seconds(p) for p in pids]
        s = {"t": round(time.monotonic() - self.t0, 2),
             "rss_kib": sum(v for v in rss if v is not None) if pids else None,
             "fds": sum(v for v in fds if v is not None) if pids else None,
             "cpu_s": round(sum(v for v in cpu if v is not None), 3) if pids else None}
        if self.extra:
            try:
                s.update(self.extra())
            except Exception as e:  # noqa: BLE001 - a sample missed is recorded, not fatal
                self.errors.append("%.0f s: %s" % (s["t"], e))
        self.samples.append(s)

    def _run(self):
        next_t = time.monotonic()
        while not self._stop.is_set():
            self.sample()
            next_t += self.interval
            self._stop.wait(max(0.0, next_t - time.monotonic()))

    def stop(self):
        self._stop.set()
        self._thread.join(10)
        return self.samples


def _mean(xs):
    return statistics.mean(xs) if xs else None


def churn_summary(series, samples):
    """The churn figures from crr's per-second counts and the sampler's samples."""
    rss = [s["rss_kib"] for s in samples if s["rss_kib"] is not None]
    fds = [s["fds"] for s in samples if s["fds"] is not None]
    return {
        "churn_per_s": _mean(series),
        "churn_first10": _mean(series[:10]), "churn_last10": _mean(series[-10:]),
        "churn_min_s": min(series) if series else None, "churn_max_s": max(series) if series else None,
        "churn_rss_mib": max(rss) / 1024 if rss else None,
        "churn_fds": max(fds) if fds else None,
    }


def churn(rig, be, direction, seconds):
    """connect, 1 byte each way, the server closes, then the client, at full rate for
    `seconds` (crr --server-close), with the backend's network process's RSS and fds sampled
    each second: does the rate hold, does memory stay bounded while closed connections
    linger? The server closing first is what makes them linger: the backend's end of the
    guest's connection is then the one in TIME_WAIT (with a client that closes first, as in
    the crr measure, libslirp frees each at once)."""
    sampler = Sampler(be.helper_pids).start()
    try:
        out = _probe(rig, be, direction, ["crr", "--server-close"], seconds)
    finally:
        samples = sampler.stop()
    series = out.get("per_second", [])
    values = churn_summary(series, samples)
    return values, {"failed": out["failed"], "connections": out["connections"],
                    "last_error": out.get("last_error"), "per_second": series,
                    "rss_kib": [s["rss_kib"] for s in samples], "fds": [s["fds"] for s in samples],
                    "cpu_s": [s["cpu_s"] for s in samples]}


def _verify(rig, be, direction, args, timeout):
    """The verify client (netprobe verify ... against the side's vserve) run to completion."""
    ns, addr, port, src = _client(be, direction, HOST_VERIFY, GUEST_VERIFY)
    argv = [rig.netprobe, "verify", addr, str(port)] + args
    if src:
        argv += ["--src", src]
    out = _run_json(ns.exec(argv), timeout + 30)
    if out.get("failed") or not out.get("completed"):
        raise MeasureError("%s of %s connections failed: %s" % (
            out.get("failed"), out.get("connections"), out.get("first_error", "?")))
    return out


def many(rig, be, direction, seconds):
    """MANY_CONNS connections opened at once, each moving MANY_BYTES both ways, SHA-256
    checked on both ends: every one must complete intact."""
    out = _verify(rig, be, direction, ["--conns", str(MANY_CONNS), "--up", MANY_BYTES, "--down",
                                       MANY_BYTES, "--timeout", "240"], 240)
    return ({"many_completed": out["completed"], "many_seconds": out["seconds"]},
            {"bytes_up": out["bytes_up"], "bytes_down": out["bytes_down"]})


def _churn_beside(rig, be):
    """A crr loop from the guest to the host's echo server, until stopped (SIGTERM): the
    connection that churns while a transfer runs. Returns (Popen, log path)."""
    log = os.path.join(rig.logdir, "%s-churn-beside.json" % be.tag)
    f = open(log, "w")
    p = subprocess.Popen(be.guest.exec([rig.netprobe, "crr", be.server_from_guest, str(HOST_PROBE), "3600"]),
                         stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT)
    f.close()
    return p, log


def _stop_churn(p, log):
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    try:
        with open(log) as f:
            return json.loads(f.read().strip().splitlines()[-1])
    except (OSError, ValueError, IndexError):
        return {}


def xfer(rig, be, direction, seconds):
    """XFER_BYTES one way on one connection (g2h: guest to host; h2g: host to guest), SHA-256
    of both ends compared, while the guest opens and closes connections beside it."""
    churner, log = _churn_beside(rig, be)
    try:
        out = _verify(rig, be, direction, ["--up", XFER_BYTES, "--timeout", "600"], 600)
    finally:
        beside = _stop_churn(churner, log)
    if not beside.get("connections"):
        raise MeasureError("the connect/close loop beside the transfer made no connection: %s" % beside)
    return ({"xfer_gbps": out["gbps_up"]},
            {"bytes": out["bytes_up"], "sha256": out["sha256_up"], "seconds": out["seconds"],
             "churn_beside": {k: beside.get(k) for k in ("connections", "failed", "per_sec")}})


FUNCTIONS = {"tcp": tcp, "rr": rr, "crr": crr, "udp": udp, "churn": churn, "many": many, "xfer": xfer}


def measure(rig, be, name, direction, seconds, retries=1):
    """Run one cell; a failed run is retried once (a stall is an error, a slow run is a value),
    except the integrity checks (NO_RETRY): there any failure stands."""
    last = None
    if name in NO_RETRY:
        retries = 0
    for _ in range(retries + 1):
        try:
            return FUNCTIONS[name](rig, be, direction, seconds)
        except (MeasureError, RigError, KeyError, TypeError, ZeroDivisionError) as e:
            last = "%s: %s" % (type(e).__name__, e)
    raise MeasureError(last)
