# SPDX-License-Identifier: BSD-2-Clause
"""The helper's wire protocol (PROTOCOL.md), driven directly on a socketpair."""

import os
import signal
import socket
import subprocess
import time

import pytest

from harness import (ICMP, UDP, decode_status, dhcp_lease, dhcp_options, icmp_echo,
                     icmp_echo_reply_from, parse_stats, signal_stats, udp_to, wait_from_guest)


def test_status_ok(direct):
    d = direct("restrict=on")
    assert (d.ok, d.error) == (True, "")
    # the status is one (bs) record and nothing else precedes the frames
    assert decode_status(d.status_raw) == (True, "")


def test_refusal_then_exit_1(direct):
    d = direct("mtu=70000", expect_ok=False)
    assert d.ok is False
    assert "mtu" in d.error and "70000" in d.error
    assert d.wait_exit(3) == 1


def test_wrong_version(direct):
    d = direct("restrict=on", version=3, expect_ok=False)
    assert d.ok is False
    assert "version" in d.error
    assert d.wait_exit(3) == 1


@pytest.mark.parametrize("raw", [b"", b"\x00", b"garbage that is not a gvariant",
                                 bytes(range(256)) * 4],
                         ids=["empty", "nul", "text", "binary"])
def test_malformed_config(direct, raw):
    d = direct(raw_config=raw, expect_ok=False)
    assert d.ok is False, "helper accepted a malformed config %r" % raw[:16]
    assert d.error
    assert d.wait_exit(3) == 1


def test_eof_before_config(helper_path):
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    proc = subprocess.Popen([helper_path, "-S", str(b.fileno())], pass_fds=[b.fileno()],
                            stderr=subprocess.PIPE)
    b.close()
    a.close()
    try:
        rc = proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail("helper did not exit after EOF before the config")
    assert rc != 0


def test_close_ends_helper_with_status_0(direct):
    d = direct()
    d.send(icmp_echo(d, seq=1))
    d.expect(icmp_echo_reply_from(d, seq=1))
    t0 = time.monotonic()
    d.sock.close()
    d.closed = True
    assert d.wait_exit(2) == 0
    assert time.monotonic() - t0 < 2
    st = parse_stats(d.helper_log())
    assert st is not None, "no stats line at exit"
    assert st["from_guest_frames"] >= 1 and st["to_guest_frames"] >= 1


def test_sigterm_exits_0(direct):
    d = direct()
    os.kill(d.proc.pid, signal.SIGTERM)
    assert d.wait_exit(2) == 0


def test_stats_count_frames(direct):
    d = direct()
    d.send(icmp_echo(d, seq=1))
    d.expect(icmp_echo_reply_from(d, seq=1))   # also primes ARP
    before = d.stats()
    sizes = []
    for seq in range(2, 7):
        f = bytes(icmp_echo(d, seq=seq, payload=b"s" * (seq * 10)))
        sizes.append(len(f))
        d.send(f)
        d.expect(icmp_echo_reply_from(d, seq=seq))
    after = d.stats()
    assert after["from_guest_frames"] - before["from_guest_frames"] == 5
    assert after["from_guest_bytes"] - before["from_guest_bytes"] == sum(sizes)
    assert after["to_guest_frames"] - before["to_guest_frames"] == 5
    assert after["to_guest_bytes"] - before["to_guest_bytes"] >= sum(sizes)
    for k in ("drop_oversize", "drop_runt", "drop_to_guest_full", "drop_to_guest_error"):
        assert after[k] == 0, (k, after)


def test_command_line_options_come_first(direct, helper_path):
    """Options on the helper's command line apply, then the message's (here: both)."""
    d = direct("hostname=fromconfig", args=["-o", "restrict=on"])
    _, ack = dhcp_lease(d)
    o = dhcp_options(ack)
    assert o[12] == b"fromconfig"
    assert 3 not in o, "restrict=on from the command line was not applied"


def test_bad_fd_argument(helper_path):
    r = subprocess.run([helper_path, "-S", "97"], capture_output=True, timeout=5)
    assert r.returncode != 0
    assert b"97" in r.stderr


def test_fd_not_a_seqpacket_socket(helper_path):
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        r = subprocess.run([helper_path, "-S", str(b.fileno())], pass_fds=[b.fileno()],
                           capture_output=True, timeout=5)
    finally:
        a.close()
        b.close()
    assert r.returncode != 0
    assert b"SEQPACKET" in r.stderr.upper()


def test_no_fd(helper_path):
    r = subprocess.run([helper_path], capture_output=True, timeout=5)
    assert r.returncode != 0
    assert b"-S" in r.stderr


# --------------------------------------------------------------------------------------
# A parent that stops reading: the helper drops and counts, never blocks

# The kernel's default send buffer instead of the helper's 4 MiB, which would absorb
# the whole burst (SO_SNDBUF doubles it: 212992 bytes).
SMALL_SNDBUF = "sndbuf=106496"


def stats_without_reading(d, timeout=5.0):
    """SIGUSR1 and the new stats line, without reading the link (Peer.stats() pumps it)."""
    return signal_stats(d.proc.pid, d.helper_log, timeout)


def wait_rx(d, frames, timeout=20.0):
    """Poll the counters (without reading) until the helper has taken `frames` frames from the guest."""
    return wait_from_guest(lambda: stats_without_reading(d), frames, timeout)


def test_full_parent_drops_and_counts(direct):
    """3000 echoes sent while we read nothing: the replies that do not fit in the socket
    are dropped whole and counted (drop_to_guest_full), every echo is still taken in, and
    once we read again the helper answers; replies received + dropped == echoes sent."""
    d = direct("ipv6=off," + SMALL_SNDBUF)
    d.send(icmp_echo(d, seq=0))
    d.expect(icmp_echo_reply_from(d, seq=0))
    d.flush(0.1)
    base = stats_without_reading(d)
    n, payload = 3000, bytes(range(256)) * 5 + bytes(120)      # 1400 bytes
    for seq in range(1, n + 1):
        d.sock.send(bytes(icmp_echo(d, seq=seq, payload=payload)))   # not logged: 4 MB
    st = wait_rx(d, base["from_guest_frames"] + n)
    assert d.helper_status() is None, "the helper died: " + d.helper_log()
    sent = st["to_guest_frames"] - base["to_guest_frames"]
    dropped = st["drop_to_guest_full"] - base["drop_to_guest_full"]
    assert dropped > 0, st
    # Up to one batch of replies (SeqpacketLink::kBatch) may still wait in the helper's
    # slots for the socket to drain: neither sent nor dropped yet.
    assert n - 32 <= sent + dropped <= n, (sent, dropped, st)
    assert st["drop_to_guest_error"] == 0, st
    if "pauses" in st:
        assert st["pauses"] > base["pauses"], st
    # now read until quiet: every reply intact and once
    seqs = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        r = d.poll(lambda x: ICMP in x and x[ICMP].type == 0, timeout=1.0)
        if r is None:
            break
        assert bytes(r[ICMP].payload) == payload, r.summary()
        seqs.append(r[ICMP].seq)
    assert len(set(seqs)) == len(seqs) and set(seqs) <= set(range(1, n + 1))
    end = d.stats()
    total_sent = end["to_guest_frames"] - base["to_guest_frames"]
    total_dropped = end["drop_to_guest_full"] - base["drop_to_guest_full"]
    assert len(seqs) == total_sent, (len(seqs), end)
    assert total_sent + total_dropped == n, (total_sent, total_dropped, end)
    d.send(icmp_echo(d, seq=n + 1, payload=b"after the flood"))
    d.expect(icmp_echo_reply_from(d, seq=n + 1, payload=b"after the flood"))
    after = d.stats()
    assert after["to_guest_frames"] == end["to_guest_frames"] + 1, after
    assert after["drop_to_guest_full"] == end["drop_to_guest_full"], after


def test_full_parent_host_input_resumes(direct, udp_echo):
    """A UDP echo flood (host -> guest traffic) while we read nothing: the helper stays
    up, drops and counts what does not fit, and once we read again host input flows:
    a new UDP echo makes the round trip."""
    d = direct("ipv6=off," + SMALL_SNDBUF)
    d.send(udp_to(d, udp_echo.port, b"warm up", sport=41000))
    d.expect(lambda x: UDP in x and x[UDP].dport == 41000)
    d.flush(0.1)
    base = stats_without_reading(d)
    n = 2000
    for i in range(n):
        d.sock.send(bytes(udp_to(d, udp_echo.port, b"%06d" % i + bytes(1394), sport=41001)))
    wait_rx(d, base["from_guest_frames"] + n)
    # the echo server got them all (loopback); give libslirp time to take the echoes
    deadline = time.monotonic() + 10
    while len(udp_echo.received) < n + 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    st = stats_without_reading(d)
    assert d.helper_status() is None, "the helper died: " + d.helper_log()
    sent = st["to_guest_frames"] - base["to_guest_frames"]
    dropped = st["drop_to_guest_full"] - base["drop_to_guest_full"]
    assert sent < n, ("every echo fitted: the parent was never full", st)
    assert dropped > 0 or st.get("pauses", 0) > base.get("pauses", 0), st
    got = 0
    while d.poll(lambda x: UDP in x and x[UDP].dport == 41001, timeout=1.0) is not None:
        got += 1
    assert got <= n and got >= sent, (got, st)
    for i in range(3):
        d.send(udp_to(d, udp_echo.port, b"after %d" % i, sport=41002 + i))
        d.expect(lambda x, i=i: UDP in x and x[UDP].dport == 41002 + i
                 and bytes(x[UDP].payload) == b"after %d" % i)
    d.send(icmp_echo(d, seq=7))
    d.expect(icmp_echo_reply_from(d, seq=7))
