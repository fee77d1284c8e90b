# SPDX-License-Identifier: BSD-2-Clause
"""pcap=FILE, pcap-filter, snaplen: the helper records every frame both ways, tshark reads it."""

import collections
import json
import os
import select
import signal
import socket
import stat
import time

import pytest

from harness import (ARP, GW_IP, GW_MAC, ICMP, IP, LINKTYPE_ETHERNET, PCAP_MAGIC_US, SCALE, UDP,
                     CaptureFile, ControlClient, ControlError, DgramPeer, Ether, StreamPeer, arp_check,
                     arp_who_has, bound_dgram, child_pids, fd_helper, icmp_echo,
                     icmp_echo_reply_from, read_pcap, udp_to)


def ping_and_arp(p, seq=1):
    p.send(arp_who_has(p.gw_ip, p))
    p.expect(lambda x: ARP in x and x[ARP].op == 2)
    p.send(icmp_echo(p, seq=seq))
    p.expect(icmp_echo_reply_from(p, seq=seq))


def logged_frames(p):
    """Every frame the test sent and received (the harness's own log)."""
    return [data for _, d, data in p.log if d in ("tx", "rx")]


@pytest.mark.parametrize("kind", ["direct", "plugin"])
def test_records_every_frame_both_ways(captured, udp_echo, kind):
    """The file holds exactly the frames that crossed the link, in both directions."""
    p = captured("ipv6=off", kind=kind)      # no unsolicited IPv6 frames to race with
    ping_and_arp(p)
    p.send(udp_to(p, udp_echo.port, b"echo me", sport=40000))
    p.expect(lambda x: UDP in x and x[UDP].dport == 40000)
    p.flush(0.3)
    p.close()
    hdr, recs = read_pcap(p.capture.path)
    assert hdr.magic == PCAP_MAGIC_US and (hdr.major, hdr.minor) == (2, 4)
    assert hdr.linktype == LINKTYPE_ETHERNET and hdr.snaplen == 65535
    assert collections.Counter(r.data for r in recs) == collections.Counter(logged_frames(p))
    assert all(r.caplen == r.origlen for r in recs)
    ts = [r.ts for r in recs]
    assert ts == sorted(ts) and abs(ts[0] - p.log[0][0]) < 5
    mix = p.capture.assert_decodes(expect=("arp", "icmp", "udp"), count=len(recs))
    assert mix["eth"] == len(recs)


@pytest.mark.parametrize("form", ["separate", "equals", "dash-o"])
def test_pcap_option_on_the_command_line(direct, tmp_path, form):
    path = str(tmp_path / "cli.pcap")
    args = {"separate": ["--pcap", path], "equals": ["--pcap=" + path],
            "dash-o": ["-o", "pcap=%s,snaplen=200" % path]}[form]
    p = direct("ipv6=off", args=args)
    ping_and_arp(p)
    p.flush(0.2)
    p.close()
    cap = CaptureFile(path)
    assert cap.header().snaplen == (200 if form == "dash-o" else 65535)
    assert len(cap.records()) == len(logged_frames(p))
    cap.assert_decodes(expect=("arp", "icmp"))


def test_flushed_while_running(captured):
    """Frames reach the file within the flush interval, without stopping the helper."""
    p = captured("ipv6=off")
    assert p.capture.records() == []           # the header is on disk from the start
    ping_and_arp(p)
    recs = p.capture.wait_records(4, timeout=1.0)
    assert any(ICMP in Ether(r.data) for r in recs)


def test_file_mode_is_private(captured):
    p = captured()
    mode = stat.S_IMODE(os.stat(p.capture.path).st_mode)
    assert mode == 0o600, oct(mode)


def test_snaplen_cuts_frames(captured, udp_echo):
    p = captured("snaplen=100,ipv6=off")
    p.send(udp_to(p, udp_echo.port, b"y" * 1000, sport=40001))
    p.expect(lambda x: UDP in x and x[UDP].dport == 40001)
    p.close()
    cap = p.capture
    assert cap.header().snaplen == 100
    big = [r for r in cap.records() if r.origlen > 1000]
    assert len(big) == 2, [(r.caplen, r.origlen) for r in cap.records()]
    assert all(r.caplen == 100 and r.origlen == 1042 for r in big)
    cap.assert_decodes(expect=("udp",))


def test_filter_keeps_only_matching_frames(captured):
    p = captured("pcap-filter=icmp,ipv6=off")
    ping_and_arp(p, seq=1)
    p.send(icmp_echo(p, seq=2))
    p.expect(icmp_echo_reply_from(p, seq=2))
    p.close()
    recs = p.capture.records()
    assert len(recs) == 4, len(recs)           # two requests, two replies; no ARP
    mix = p.capture.assert_decodes(expect=("icmp",))
    assert mix["arp"] == 0


def test_filter_sees_whole_frame_despite_snaplen(captured, udp_echo):
    """The filter looks at the whole frame: a match beyond snaplen still counts."""
    p = captured("snaplen=64,pcap-filter=udp and len > 500,ipv6=off")
    p.send(udp_to(p, udp_echo.port, b"z" * 600, sport=40002))
    p.expect(lambda x: UDP in x and x[UDP].dport == 40002)
    p.send(udp_to(p, udp_echo.port, b"small", sport=40003))
    p.expect(lambda x: UDP in x and x[UDP].dport == 40003)
    p.close()
    recs = p.capture.records()
    assert [(r.caplen, r.origlen) for r in recs] == [(64, 642), (64, 642)]


BAD_FILTERS = ["tcp port", "icmp and nosuchproto", "ether host zz:zz:zz:zz:zz:zz", "port 99999"]


@pytest.mark.parametrize("expr", BAD_FILTERS)
def test_bad_filter_refused_direct(direct, tmp_path, expr):
    path = tmp_path / "never.pcap"
    d = direct("pcap=%s,pcap-filter=%s" % (path, expr), expect_ok=False)
    assert d.ok is False
    assert "pcap-filter" in d.error and expr in d.error, d.error
    assert d.wait_exit(3) == 1
    assert not path.exists(), "a capture file was created for a refused config"


@pytest.mark.parametrize("expr", BAD_FILTERS)
def test_bad_filter_refused_plugin(plugin, helper_path, tmp_path, expr):
    p = plugin("slirp,pcap=%s,pcap-filter=%s" % (tmp_path / "x.pcap", expr), expect_ok=False)
    assert p.init_rc == -1
    assert "pcap-filter" in p.error and expr in p.error, p.error
    assert child_pids(helper_path) == []


def test_bad_filter_refused_without_pcap(direct):
    """pcap-filter is also capture-start's default: checked even with no capture."""
    d = direct("pcap-filter=tcp port", expect_ok=False)
    assert d.ok is False and "pcap-filter" in d.error


def test_bad_filter_on_the_command_line(helper_path, tmp_path):
    import subprocess
    # No guest link: the shape check of the option parser still runs first.
    r = subprocess.run([helper_path, "--pcap-filter", "(icmp"], capture_output=True, text=True)
    assert r.returncode == 2 and "pcap-filter" in r.stderr and "(icmp" in r.stderr, r.stderr


@pytest.mark.parametrize("options,words", [
    ("pcap-filter=(icmp", ["pcap-filter", "(icmp", "parentheses"]),
    ("pcap=/nonexistent/dir/x.pcap", ["pcap", "/nonexistent/dir"]),
    ("pcap=-", ["pcap", "stdout"]),
    ("pcap=/tmp", ["pcap", "/tmp", "directory"]),
    ("snaplen=10", ["snaplen", "10"]),
    ("snaplen=300000", ["snaplen", "300000"]),
])
def test_bad_capture_options(plugin, direct, helper_path, options, words):
    """Refused by the option table: in the plugin before any helper runs, and directly."""
    p = plugin("slirp," + options, expect_ok=False)
    assert p.init_rc == -1
    for w in words:
        assert w in p.error, p.error
    assert child_pids(helper_path) == []
    d = direct(options, expect_ok=False)
    assert d.ok is False and all(w in d.error for w in words), d.error


def test_fifo_refused(direct, tmp_path):
    """A FIFO's reader could block the data path: refused at start-up."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    d = direct("pcap=%s" % fifo, expect_ok=False)
    assert d.ok is False and "not a regular file" in d.error, d.error


def test_killed_helper_leaves_whole_records(captured):
    """SIGKILL: the file ends on a record boundary and holds what came >100 ms before."""
    p = captured("ipv6=off")
    p.expect_clean_exit = False
    for seq in range(1, 51):
        p.send(icmp_echo(p, seq=seq, payload=b"k" * 200))
        p.expect(icmp_echo_reply_from(p, seq=seq))
    time.sleep(0.4)                            # > the 100 ms flush interval
    os.kill(p.helper_pid(), signal.SIGKILL)
    assert p.wait_exit(3) == -signal.SIGKILL
    recs = p.capture.records()                 # strict: no partial record at the end
    echoes = [r for r in recs if r.origlen == 14 + 20 + 8 + 200]
    assert len(echoes) >= 100, len(echoes)
    p.capture.assert_decodes(expect=("icmp",), count=len(recs))


def test_killed_mid_burst_is_still_readable(captured):
    """SIGKILL while frames stream in (several buffer-full flushes): still readable."""
    p = captured("ipv6=off")
    p.expect_clean_exit = False
    payload = b"b" * 1200
    for seq in range(1, 3001):
        p.send(icmp_echo(p, seq=seq & 0xFFFF, payload=payload))
        if seq % 200 == 0:
            p.flush()                           # keep our receive queue small
        if seq == 2000:
            os.kill(p.helper_pid(), signal.SIGKILL)
            break
    assert p.wait_exit(3) == -signal.SIGKILL
    recs = p.capture.records()
    assert len(recs) > 500, len(recs)          # 256 KiB buffer: flushed on the way
    p.capture.assert_decodes(expect=("icmp",), count=len(recs))


def test_capture_matches_counters_under_load(captured):
    """Under a steady stream every frame is recorded once: pcap == rx + tx counters."""
    p = captured("ipv6=off")
    n, window = 1000, 25
    for base in range(0, n, window):
        for seq in range(base + 1, base + window + 1):
            p.send(icmp_echo(p, seq=seq, payload=b"f" * 1000))
        for _ in range(window):
            p.expect(lambda x: ICMP in x and x[ICMP].type == 0)
    st = p.stats()
    assert st["drop_to_guest_full"] == 0 and st["drop_to_guest_error"] == 0, st
    p.close()
    assert st["to_guest_frames"] >= n and st["from_guest_frames"] >= n   # plus ARP the harness answers
    assert len(p.capture.records()) == st["from_guest_frames"] + st["to_guest_frames"]


def test_capture_and_control_on_the_stream_transport(stream_helper, peers, tmp_path):
    """Network::create starts capture and control for every transport: here QEMU's
    -netdev stream framing (--socket PATH, 4-byte big-endian length per frame).  --socket
    is a core transport: a helper without it fails here (no skip)."""
    ctl_path = str(tmp_path / "ctl.sock")
    pcap = str(tmp_path / "stream.pcap")
    h = stream_helper("-o", "pcap=%s,control=%s,ipv6=off" % (pcap, ctl_path))
    p = peers(StreamPeer.connect(h.path, h))
    arp_check(p)                                 # ARP request and reply through the framing
    with ControlClient(ctl_path) as c:
        st = c.call("stats")
        assert st["from_guest_frames"] >= 1 and st["to_guest_frames"] >= 1, st
        assert st["capture"]["file"] == pcap
    p.close()
    assert h.stop() == 0, h.log()
    cap = CaptureFile(pcap)
    mix = cap.assert_decodes(expect=("arp",))
    assert mix["arp"] >= 2                      # the request and the reply
    assert not os.path.exists(ctl_path)


# --------------------------------------------------------------------------------------
# Capture on every transport, and frames larger than the link's buffer

# The QEMU-facing transports (-S is the direct/plugin peer above; --socket has its own test).
QEMU_TRANSPORTS = ["dgram-path", "fd-stream", "fd-dgram", "fd-seqpacket"]
FD_KINDS = {"fd-stream": socket.SOCK_STREAM, "fd-dgram": socket.SOCK_DGRAM,
            "fd-seqpacket": socket.SOCK_SEQPACKET}


def start_transport(kind, helpers, workdir, options):
    """The helper on a QEMU-facing transport with `-o options`; returns (helper, peer)."""
    opts = ["-o", options]
    if kind == "dgram-path":
        path = os.path.join(workdir, "h.sock")
        h = helpers(["--dgram", path] + opts)
        return h, DgramPeer(bound_dgram(workdir, "q.sock"), dest=path, helper=h)
    return fd_helper(helpers, FD_KINDS[kind], opts)


def pad60(frames):
    """Counter of frames padded with zeros to 60 bytes: the helper captures frames to a
    QEMU transport before padding them to the minimum, and ours go out unpadded."""
    return collections.Counter(f + bytes(max(0, 60 - len(f))) for f in frames)


@pytest.mark.parametrize("kind", QEMU_TRANSPORTS)
def test_capture_on_qemu_transports(helpers, peers, workdir, tmp_path, kind):
    """pcap= on --dgram PATH and --fd N (each socket type): the ARP and ICMP exchange is
    in the file in both directions, byte for byte what crossed the link, and tshark
    decodes it."""
    pcap = str(tmp_path / "t.pcap")
    h, p = start_transport(kind, helpers, workdir, "pcap=%s,ipv6=off" % pcap)
    peers(p)
    payload = b"capture on " + kind.encode()
    p.send(arp_who_has(GW_IP, p))
    p.expect(Ether(dst=p.guest_mac) / ARP(op=2, psrc=GW_IP, hwsrc=GW_MAC, pdst=p.guest_ip))
    p.send(icmp_echo(p, seq=7, payload=payload))
    p.expect(icmp_echo_reply_from(p, seq=7, payload=payload))
    p.flush(0.2)
    assert h.stop() == 0, h.log()
    hdr, recs = read_pcap(pcap)
    assert hdr.linktype == LINKTYPE_ETHERNET
    # Both directions, each frame once: what we sent as is, what we got (the helper pads
    # frames to the QEMU minimum of 60 bytes after capturing them).
    assert pad60(r.data for r in recs) == pad60(logged_frames(p)), \
        [Ether(r.data).summary() for r in recs]
    pkts = [Ether(r.data) for r in recs]
    who_has = [x for x in pkts if ARP in x and x[ARP].op == 1 and x[ARP].pdst == GW_IP]
    is_at = [x for x in pkts if ARP in x and x[ARP].op == 2 and x[ARP].psrc == GW_IP]
    echo = [x for x in pkts if ICMP in x and x[ICMP].type == 8 and x[IP].dst == GW_IP]
    reply = [x for x in pkts if ICMP in x and x[ICMP].type == 0 and x[IP].src == GW_IP]
    assert (len(who_has), len(is_at), len(echo), len(reply)) == (1, 1, 1, 1), \
        [x.summary() for x in pkts]
    assert bytes(reply[0][ICMP].payload) == payload
    stacks = CaptureFile(pcap).protocols()
    assert len(stacks) == len(recs)
    assert stacks.count("eth:ethertype:ip:icmp:data") == 2, stacks
    assert stacks.count("eth:ethertype:arp") >= 2, stacks   # + the gratuitous ARP


OVERSIZE_TRANSPORTS = ["seqpacket-S", "fd-dgram", "dgram-path"]
OVERSIZE_MARK = b"OVERSIZE"


def oversized(p, size):
    """A frame of `size` bytes with a valid Ethernet header and a recognisable body."""
    head = bytes(Ether(src=p.guest_mac, dst=GW_MAC, type=0x0800))
    body = (OVERSIZE_MARK * (size // len(OVERSIZE_MARK) + 1))[: size - len(head)]
    return head + body


@pytest.mark.parametrize("mtu", [1500, 65520], ids=["mtu1500", "mtu65520"])
@pytest.mark.parametrize("kind", OVERSIZE_TRANSPORTS)
def test_oversized_frames_dropped_not_captured(direct, helpers, peers, workdir, tmp_path,
                                               kind, mtu):
    """Frames larger than the link's buffer (only their length is read) with capture on
    and snaplen=262144: the helper lives on, counts them in drop_oversize, and the file
    holds no record of them - nothing read past the buffer, no heap bytes captured."""
    pcap = str(tmp_path / "o.pcap")
    max_frame = mtu + 14
    options = "pcap=%s,snaplen=262144,ipv6=off,mtu=%d" % (pcap, mtu)
    if kind == "seqpacket-S":
        h, p = None, direct(options)
    else:
        h, p = start_transport(kind, helpers, workdir, options)
        peers(p)
    p.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    sizes = [200000, max_frame + 1] + ([60000] if mtu == 1500 else [])
    big = [oversized(p, n) for n in sizes]
    for f in big:
        assert p.send(f) == len(f)
    for seq in (1, 2):
        p.send(icmp_echo(p, seq=seq, payload=b"still alive %d" % seq))
        p.expect(icmp_echo_reply_from(p, seq=seq, payload=b"still alive %d" % seq))
    st = p.stats() if h is None else h.stats()
    assert st["drop_oversize"] == len(sizes), st
    assert st["from_guest_frames"] >= 2 and st["drop_runt"] == 0, st
    p.flush(0.2)
    rc = p.close() if h is None else h.stop()
    assert rc == 0, p.helper_log()
    hdr, recs = read_pcap(pcap)
    assert hdr.snaplen == 262144
    assert all(r.caplen == r.origlen <= max_frame for r in recs), \
        [(r.caplen, r.origlen) for r in recs if r.origlen > max_frame]
    assert not any(OVERSIZE_MARK in r.data for r in recs)
    sent_big = set(big)
    expected = [f for f in logged_frames(p) if f not in sent_big]
    assert pad60(r.data for r in recs) == pad60(expected)
    CaptureFile(pcap).assert_decodes(expect=("icmp",), count=len(recs))


# ---------------------------------------------------------------------------------------
# capture-start's filter: the pcap-filter option's checks, and compiled off the data path

def heavy_filter(limit=4096):
    """A valid expression just under the length limit that libpcap takes seconds to
    compile and optimise (a chain of "or host A": about 7 s on a 2-core VM). The first
    term matches the guest's pings to the gateway."""
    expr = "host %s" % GW_IP
    i = 0
    while True:
        term = " or host 10.%d.%d.%d" % (1 + i // 62500, i // 250 % 250, 1 + i % 250)
        if len(expr) + len(term) > limit:
            return expr
        expr += term
        i += 1


@pytest.mark.parametrize("expr,words", [
    (heavy_filter(4200), ["filter", "too long", "> 4096"]),   # valid, but too long
    ("icmp\x01", ["filter", "control character", "icmp"]),
    ("icmp\n or arp", ["filter", "control character"]),
    ("(icmp or arp", ["filter", "(icmp or arp", "parentheses"]),
], ids=["too-long", "control-char", "newline", "parentheses"])
def test_capture_start_filter_checked_like_the_option(direct, control_socket, tmp_path, expr, words):
    """The option's shape checks (one function), before libpcap sees the expression: a
    clear InvalidArgument naming the filter, and no file created."""
    p = direct("control=%s,ipv6=off" % control_socket)
    c = ControlClient(control_socket)
    path = tmp_path / "never.pcap"
    with pytest.raises(ControlError) as e:
        c.call("capture-start", file=str(path), filter=expr)
    assert e.value.cls == "InvalidArgument", e.value.desc
    for w in words:
        assert w in e.value.desc, e.value.desc
    assert not path.exists()
    assert c.call("stats")["capture"] is None
    p.send(icmp_echo(p, seq=1))               # still serving
    p.expect(icmp_echo_reply_from(p, seq=1))
    c.close()


def test_heavy_filter_compiles_off_the_data_path(direct, control_socket, tmp_path):
    """A filter that takes seconds to compile does not stall the frames or the other
    control clients: the pings are answered while capture-start waits for its reply, which
    comes once the capture has started. (Before, the loop compiled it: nothing moved until
    the reply.)"""
    p = direct("control=%s,ipv6=off" % control_socket)
    starter = ControlClient(control_socket)
    other = ControlClient(control_socket)
    expr = heavy_filter()
    assert len(expr) <= 4096
    path = str(tmp_path / "heavy.pcap")
    starter.send_raw(json.dumps({"execute": "capture-start", "id": 1,
                                 "arguments": {"file": path, "filter": expr}}).encode() + b"\n")
    # Another client is answered meanwhile: the request above has been read (its client
    # connected first), and the loop is free. (The compile thread runs under the seccomp
    # allowlist: clone with CLONE_THREAD, after glibc's clone3 got ENOSYS.)
    assert other.call("version")["sandbox"]["seccomp"] == "kill"
    with pytest.raises(ControlError) as e:
        other.call("capture-start", file=str(tmp_path / "second.pcap"), filter="icmp")
    assert e.value.cls == "GenericError" and "compiled" in e.value.desc, e.value.desc
    for seq in range(1, 4):
        p.send(icmp_echo(p, seq=seq))
        p.expect(icmp_echo_reply_from(p, seq=seq))
        assert not select.select([starter.sock], [], [], 0)[0] and not starter.buf, \
            "capture-start answered before the frames moved: the filter compiled on the loop"
    # Its reply, once compiled (generous: a slow machine, other jobs).
    reply = starter.read_reply(timeout=120 * SCALE)
    assert reply.get("id") == 1 and "return" in reply, reply
    assert reply["return"]["file"] == path and reply["return"]["filter"] == expr
    p.send(icmp_echo(p, seq=9))
    p.expect(icmp_echo_reply_from(p, seq=9))
    done = other.call("capture-stop")
    assert done["frames"] == 2, done            # the echo and its reply: host 10.0.2.2
    starter.close()
    other.close()
