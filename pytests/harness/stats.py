# SPDX-License-Identifier: BSD-2-Clause
"""stats.py - the helper's counters: their names, its "stats:" log line (asked for by SIGUSR1), and what changed between two readings."""

import os
import re
import signal
import time

__all__ = ["STATS_RE", "STATS_COUNTERS", "DROP_COUNTERS", "FROM_GUEST_OUTCOMES", "parse_stats",
           "stats_delta", "signal_stats", "wait_from_guest"]

STATS_RE = re.compile(r"stats:((?:\s+\w+=\d+)+)")
# The helper's counters, in the order of its "stats:" line (the control socket's "stats"
# reply has the same names as top-level keys).  from_guest: frames the guest sent;
# to_guest: frames for the guest.
STATS_COUNTERS = ("from_guest_frames", "from_guest_bytes", "to_guest_frames", "to_guest_bytes",
                  "drop_oversize", "drop_runt", "drop_fragment", "drop_to_guest_full",
                  "drop_to_guest_error", "drop_vnet_hdr", "pauses", "from_guest_gso",
                  "to_guest_gso", "to_guest_split", "refused_peers", "drop_foreign_sender",
                  "drop_egress_tcp", "drop_egress_udp", "drop_egress_icmp", "guest_resets",
                  "frag_reassembled", "drop_frag_overlap", "drop_frag_timeout", "drop_frag_limit",
                  "frag_held", "frag_held_bytes", "drop_flow_limit_tcp", "drop_flow_limit_udp",
                  "drop_flow_limit_icmp", "vhost_queue_stops", "drop_vhost_chain")
DROP_COUNTERS = tuple(k for k in STATS_COUNTERS if k.startswith("drop_"))
# Every frame the guest sends lands in exactly one of these: taken, dropped and why, or (a
# fragment) still held for reassembly: frag_held is a gauge, so a delta over these adds up to
# the frames sent in between.
FROM_GUEST_OUTCOMES = ("from_guest_frames", "drop_runt", "drop_oversize", "drop_fragment",
                       "drop_vnet_hdr", "drop_egress_tcp", "drop_egress_udp", "drop_egress_icmp",
                       "drop_frag_overlap", "drop_frag_timeout", "drop_frag_limit", "frag_held",
                       "drop_flow_limit_tcp", "drop_flow_limit_udp", "drop_flow_limit_icmp")


def parse_stats(text):
    """Parse the last 'stats: k=v ...' line of text into a dict of ints (None if none)."""
    found = STATS_RE.findall(text)
    if not found:
        return None
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", found[-1])}


def stats_delta(before, after, keys=STATS_COUNTERS):
    """{counter: after - before} for the counters that changed (of keys), e.g. to assert
    that a frame moved exactly one counter: ``stats_delta(a, b) == {"drop_runt": 1}``.
    Works on SIGUSR1 readings (peer.stats()) and control-socket "stats" replies alike."""
    return {k: after[k] - before[k] for k in keys if after[k] != before[k]}


def signal_stats(pid, log, timeout, idle=lambda: time.sleep(0.02)):
    """SIGUSR1 to the helper pid, then its counters from the new "stats:" line of log() (a
    function returning the helper's log so far); idle() runs between looks (e.g. to pump
    the link).  AssertionError when no line comes within timeout seconds."""
    before = log().count("stats:")
    os.kill(pid, signal.SIGUSR1)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log()
        if text.count("stats:") > before:
            st = parse_stats(text)
            if st is not None:
                return st
        idle()
    raise AssertionError("helper %d wrote no stats line within %.1f s after SIGUSR1; log:\n%s"
                         % (pid, timeout, log()))


def wait_from_guest(stats, frames, timeout):
    """Read the counters with stats() every 0.1 s until the helper has taken `frames` frames
    from the guest, for at most timeout seconds; the last reading (asserted to be there)."""
    deadline = time.monotonic() + timeout
    while True:
        st = stats()
        if st["from_guest_frames"] >= frames or time.monotonic() > deadline:
            assert st["from_guest_frames"] >= frames, st
            return st
        time.sleep(0.1)
