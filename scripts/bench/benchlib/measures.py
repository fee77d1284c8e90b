# SPDX-License-Identifier: BSD-2-Clause
"""measures.py - the servers and the client runs: TCP throughput + CPU, request/response, connect rate, UDP."""

import json
import os
import signal
import subprocess

from . import proc
from .backends import GUEST_IPERF, GUEST_PROBE, HOST_IPERF, HOST_PROBE
from .proc import RigError, listening, wait_for

MEASURES = ["tcp", "rr", "crr", "udp"]
# g2h: the guest's client talks to a server on the host's loopback through the gateway.
# h2g: a host client talks to a server in the guest through a port forward.
DIRECTIONS = ["g2h", "h2g"]
UDP_PAYLOAD = 64  # bytes: small datagrams make it a packets-per-second test


class MeasureError(Exception):
    """One client run failed (the backend stalled, refused, or reset)."""


def start_servers(rig, be, servers):
    """iperf3 and the echo probe on both sides, bound where each direction's client expects.

    Appends each to servers as soon as it runs, so the caller stops them even on failure."""
    sides = [("host", be.host_ns, be.host_bind, HOST_IPERF, HOST_PROBE),
             ("guest", be.guest, be.guest_addr, GUEST_IPERF, GUEST_PROBE)]
    for side, ns, addr, iperf_port, probe_port in sides:
        ip3 = rig.procs.start("%s-iperf3-%s" % (be.name, side), ns.exec(
            ["iperf3", "-s", "-B", addr, "-p", str(iperf_port)]))
        servers.append(ip3)
        servers.append(rig.procs.start("%s-netprobe-%s" % (be.name, side), ns.exec(
            [rig.netprobe, "serve", addr, str(probe_port)]), ready_line="ready"))
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


FUNCTIONS = {"tcp": tcp, "rr": rr, "crr": crr, "udp": udp}


def measure(rig, be, name, direction, seconds, retries=1):
    """Run one cell; a failed run is retried once (a stall is an error, a slow run is a value)."""
    last = None
    for _ in range(retries + 1):
        try:
            return FUNCTIONS[name](rig, be, direction, seconds)
        except (MeasureError, RigError, KeyError, TypeError, ZeroDivisionError) as e:
            last = "%s: %s" % (type(e).__name__, e)
    raise MeasureError(last)
