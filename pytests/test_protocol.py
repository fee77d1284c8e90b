# SPDX-License-Identifier: BSD-2-Clause
"""The helper's wire protocol (PROTOCOL.md), driven directly on a socketpair."""

import os
import signal
import socket
import subprocess
import time

import pytest

from harness import (decode_status, dhcp_lease, dhcp_options, icmp_echo,
                     icmp_echo_reply_from, parse_stats)


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
    d = direct("restrict=on", version=2, expect_ok=False)
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
    assert st["rx_frames"] >= 1 and st["tx_frames"] >= 1


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
    assert after["rx_frames"] - before["rx_frames"] == 5
    assert after["rx_bytes"] - before["rx_bytes"] == sum(sizes)
    assert after["tx_frames"] - before["tx_frames"] == 5
    assert after["tx_bytes"] - before["tx_bytes"] >= sum(sizes)
    for k in ("drop_oversize", "drop_runt", "drop_tx_full", "drop_tx_error"):
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
