# SPDX-License-Identifier: BSD-2-Clause
"""test_vhost_user.py - `slirpnet --vhost-user PATH` driven by a Python front-end (harness.VhostUserPeer: QEMU + the guest's virtio-net driver, no VM).

The peer maps guest memory from a memfd, lays out split rings and speaks the vhost-user
messages QEMU 7.2 sends; frames then travel through the rings as a guest's would. The
tests cover the network through it (ARP, ICMP, DHCP, TCP to a 127.0.0.1 server, the
hostfwd), the virtio-net offloads and receive buffers, the lifecycle of front-ends, and a
hostile guest: malformed rings stop that queue (logged, counted in vhost_queue_stops), a
chain the helper cannot take is dropped (drop_vhost_chain) and malformed messages close
the connection; the helper lives on and serves the next front-end.
"""

import os
import re
import socket
import struct
import tempfile
import time

import pytest

from harness import (GPA_BASE, GW_IP, ICMP, IP, RX_QUEUE, SCALE, TCP, TX_QUEUE, UDP, UVA_BASE,
                     VHOST_USER, VRING_DESC_F_INDIRECT, VRING_DESC_F_NEXT, VRING_DESC_F_WRITE,
                     ControlClient, Ether, FROM_GUEST_OUTCOMES, TcpConn, VhostUserPeer,
                     VhostUserRefused, VnetHdr, arp_check,
                     complete_partial_csum, dhcp_lease, feature_mask, free_port,
                     hostfwd_download, hostfwd_exchange, host_connect, icmp_echo,
                     icmp_echo_reply_from, ping_check, stats_delta, tcp_csum_ok, tso_frame, udp_to)
from harness.vhost_user import DEFAULT_FEATURES

MTU_FRAME = 1514
NO_GUEST_TSO = DEFAULT_FEATURES & ~feature_mask("GUEST_TSO4", "GUEST_TSO6")
NO_MRG = DEFAULT_FEATURES & ~feature_mask("MRG_RXBUF")
NO_OFFLOADS = feature_mask("VERSION_1", "MRG_RXBUF", "RING_EVENT_IDX", "PROTOCOL_FEATURES")


def pattern(n, seed=7):
    return bytes((i * 31 + seed) & 0xFF for i in range(n))


# --------------------------------------------------------------------------------------
# fixtures

@pytest.fixture
def vhost_helper(helpers, workdir):
    """Factory: vhost_helper(*extra_args) -> HelperProc of `slirpnet --vhost-user PATH`
    (h.path; h.ctl: the control socket path given with control=True)."""
    path = os.path.join(workdir, "vu.sock")

    def start(*extra, control=False, **kw):
        args = ["--vhost-user", path]
        ctl = None
        if control:
            ctl = os.path.join(workdir, "ctl.sock")
            args.append("--control=" + ctl)
        h = helpers(args + list(extra), **kw)
        h.path, h.ctl = path, ctl
        return h
    return start


@pytest.fixture
def vhost(peers, vhost_helper, request):
    """Factory: vhost(h=None, *extra_args, **VhostUserPeer kwargs) -> a connected
    VhostUserPeer (on helper h, or on a new `--vhost-user` helper given extra_args),
    disconnected at teardown. A failed test leaves each peer's frames in
    $SLIRPNET_ARTIFACTS/<test>[-N].pcap (the helpers fixture prints the logs)."""
    made = []

    def connect(h=None, *extra, **kw):
        if h is None:
            h = vhost_helper(*extra)
        p = peers(VhostUserPeer(h.path, proc=h, **kw))
        made.append(p)
        return p
    yield connect
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        d = os.environ.get("SLIRPNET_ARTIFACTS") or os.path.join(tempfile.gettempdir(),
                                                                 "slirpnet-artifacts")
        os.makedirs(d, exist_ok=True)
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name).strip("_")
        for i, p in enumerate(made):
            if p.log:
                p.write_pcap(os.path.join(d, name + ("-%d" % (i + 1) if i else "") + ".pcap"))


def ctl_stats(h):
    with ControlClient(h.ctl) as c:
        return c.call("stats")


def wait_log(h, pattern_, count=1, timeout=3.0):
    """Wait until the helper's log has count lines matching the regex; returns them."""
    rx = re.compile(pattern_)
    deadline = time.monotonic() + timeout * SCALE
    while True:
        lines = [ln for ln in h.log().splitlines() if rx.search(ln)]
        if len(lines) >= count or time.monotonic() > deadline:
            assert len(lines) >= count, "no %d log lines matching %r; log:\n%s" % (
                count, pattern_, h.log())
            return lines
        time.sleep(0.02)


def connect_when_listening(vhost, h, timeout=3.0, **kw):
    """vhost(h, **kw), again while the helper still refuses it as a second front-end (it
    has not yet seen the previous one leave; its log lines for that are rate-limited)."""
    deadline = time.monotonic() + timeout * SCALE
    while True:
        try:
            return vhost(h, **kw)
        except VhostUserRefused:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def wait_counter(h, name, at_least, timeout=3.0):
    deadline = time.monotonic() + timeout * SCALE
    while True:
        st = ctl_stats(h)
        if st[name] >= at_least or time.monotonic() > deadline:
            return st
        time.sleep(0.05)


def helper_fds(h):
    """The helper's fds a front-end can leave behind: {fd: kind} of its UNIX sockets,
    eventfds and memfds (libslirp's TCP/UDP sockets, which outlive a front-end by design,
    are left out)."""
    with open("/proc/net/unix") as f:
        unix = {ln.split()[6] for ln in list(f)[1:] if len(ln.split()) > 6}
    out = {}
    for fd in os.listdir("/proc/%d/fd" % h.pid):
        try:
            target = os.readlink("/proc/%d/fd/%s" % (h.pid, fd))
        except OSError:
            continue
        m = re.fullmatch(r"socket:\[(\d+)\]", target)
        if m and m.group(1) in unix:
            out[fd] = "unix socket"
        elif "eventfd" in target or "memfd:" in target:
            out[fd] = target
    return out


def wait_fds(h, idle):
    """The helper's fds of helper_fds() return to what they were when idle (the
    front-ends' sockets, eventfds and memfds closed); AssertionError after 2 s."""
    deadline = time.monotonic() + 2 * SCALE
    while len(helper_fds(h)) != len(idle) and time.monotonic() < deadline:
        time.sleep(0.05)
    now = helper_fds(h)
    assert len(now) == len(idle), "the helper had %s when idle, now %s" % (idle, now)


def echo_through(p, port, n, mss=1460, timeout=20):
    c = TcpConn.connect(p, GW_IP, port)
    c.mss = mss
    data = pattern(n)
    c.send(data, timeout=timeout)
    got = c.recv(len(data), timeout=timeout)
    assert got == data, "the echo differs from the %d bytes sent" % n
    c.close()
    c.wait_fin()
    return c


def frames_from(p, port):
    """(VnetHdr, frame) of the TCP frames the guest received from the gateway's port."""
    out = []
    for hdr, f in p.vnet_rx:
        e = Ether(f)
        if TCP in e and e[IP].src == GW_IP and e[TCP].sport == port:
            out.append((hdr, f))
    return out


# --------------------------------------------------------------------------------------
# the network through the rings

def test_features_offered(vhost):
    p = vhost()
    want = feature_mask("VERSION_1", "MRG_RXBUF", "CSUM", "GUEST_CSUM", "HOST_TSO4", "HOST_TSO6",
                        "GUEST_TSO4", "GUEST_TSO6", "RING_EVENT_IDX", "PROTOCOL_FEATURES")
    assert p.offered & want == want, "offered %#x lacks %#x" % (p.offered, want & ~p.offered)
    assert not p.offered & feature_mask("RING_INDIRECT_DESC", "CTRL_VQ"), hex(p.offered)
    assert p.has_protocol("REPLY_ACK"), hex(p.offered_protocol)
    arp_check(p)


def test_arp_and_ping(vhost):
    p = vhost()
    arp_check(p)
    ping_check(p, seq=1)
    ping_check(p, seq=2, payload=b"p" * 1400)
    # every frame came with a call: a guest that sleeps on its interrupt gets them
    assert p.missed_calls == 0, "%d used entries came without a call" % p.missed_calls
    for hdr, _ in p.vnet_rx:
        assert (hdr.flags, hdr.gso_type, hdr.num_buffers) == (0, 0, 1), hdr


def test_dhcp_lease(vhost):
    p = vhost()
    dhcp_lease(p)
    assert p.guest_ip == "10.0.2.15", p.guest_ip
    ping_check(p)


def test_tcp_to_loopback_server(vhost, tcp_echo):
    p = vhost()
    echo_through(p, tcp_echo.port, 64 * 1024)
    st = p.stats()
    assert st["drop_vnet_hdr"] == 0 and st["drop_vhost_chain"] == 0, st


def test_hostfwd_inbound(vhost):
    port = free_port()
    p = vhost(None, "--hostfwd=tcp:127.0.0.1:%d-:5001" % port)
    hostfwd_exchange(p, port, 5001)


def test_hostfwd_download_large(vhost):
    port = free_port()
    p = vhost(None, "--hostfwd=tcp:127.0.0.1:%d-:5002" % port)
    hostfwd_download(p, port, 5002, pattern(512 * 1024), timeout=30)


@pytest.mark.parametrize("variant", ["split-header", "no-event-idx", "two-regions", "queue-64",
                                     "no-reply-ack", "no-protocol-features"])
def test_driver_variants(vhost, tcp_echo, variant):
    """Layouts a driver may choose: the header in a descriptor of its own, notifications
    without EVENT_IDX (NO_NOTIFY / NO_INTERRUPT), guest memory in two regions, a small
    queue (the TX ring wraps many times); front-ends without REPLY_ACK (no message waits)
    or without protocol features at all (the rings start enabled, no SET_VRING_ENABLE)."""
    kw = {"split-header": dict(tx_split_header=True),
          "no-event-idx": dict(features=DEFAULT_FEATURES & ~feature_mask("RING_EVENT_IDX")),
          "two-regions": dict(regions=2),
          "queue-64": dict(queue_size=64, tx_slots=8),
          "no-reply-ack": dict(protocol_features=0),
          "no-protocol-features": dict(
              features=DEFAULT_FEATURES & ~feature_mask("PROTOCOL_FEATURES"))}[variant]
    p = vhost(**kw)
    ping_check(p)
    echo_through(p, tcp_echo.port, 200 * 1024)
    assert p.missed_calls == 0, "%d used entries came without a call" % p.missed_calls


def test_vm_stop_and_resume(vhost, tcp_echo):
    """QEMU stops the VM (GET_VRING_BASE) and resumes it (the same rings from those
    bases); an open TCP connection goes on."""
    p = vhost()
    c = TcpConn.connect(p, GW_IP, tcp_echo.port)
    c.send(pattern(20000))
    assert c.recv(20000) == pattern(20000)
    bases = p.stop_queues()
    assert bases[TX_QUEUE] == p.rings[TX_QUEUE].avail_idx, bases
    # stopped: the helper takes nothing from the rings
    p.send(icmp_echo(p, seq=41))
    p.expect_none(icmp_echo_reply_from(p, seq=41))
    p.restart_queues(bases)
    # resumed: what the guest queued meanwhile goes out
    p.expect(icmp_echo_reply_from(p, seq=41))
    c.send(pattern(30000, 3))
    assert c.recv(30000) == pattern(30000, 3)
    ping_check(p)


def test_device_reset_new_rings(vhost, tcp_echo):
    """The guest's driver resets the device: new rings at other addresses, from index 0."""
    p = vhost()
    ping_check(p, seq=1)
    old = p.rings[TX_QUEUE].desc
    p.reset_device()
    assert p.rings[TX_QUEUE].desc != old
    ping_check(p, seq=2)
    echo_through(p, tcp_echo.port, 64 * 1024)


@pytest.mark.parametrize("seal", ["qemu", "allow", "none"])
def test_guest_memory_sealing(vhost_helper, vhost, seal):
    """A memfd that allows sealing is sealed against shrinking by the helper (a front-end
    shrinking it later would make the helper fault); QEMU's own sealed memfd and one that
    cannot be sealed (seal=off) are served too, the latter with a log line."""
    import fcntl
    h = vhost_helper()
    p = vhost(h, seal=seal)
    ping_check(p)
    if seal == "none":
        wait_log(h, r"cannot be sealed against shrinking")
        return
    assert fcntl.fcntl(p.mem.fd, fcntl.F_GET_SEALS) & fcntl.F_SEAL_SHRINK
    with pytest.raises(PermissionError):
        os.ftruncate(p.mem.fd, 4096)
    ping_check(p, seq=2)
    assert "cannot be sealed" not in h.log()


def test_get_vring_base_reports_taken_chains(vhost):
    p = vhost()
    for seq in range(5):
        ping_check(p, seq=seq)
    assert p.wait_sent()
    tx = p.rings[TX_QUEUE]
    assert p.get_vring_base(TX_QUEUE) == tx.avail_idx, "GET_VRING_BASE of tx"


# --------------------------------------------------------------------------------------
# offloads and receive buffers

def test_tso_from_guest(vhost, tcp_echo):
    """A guest with HOST_TSO4 sends 60000-byte GSO segments: they reach the server whole."""
    p = vhost()
    p.tso_tx = True
    echo_through(p, tcp_echo.port, 256 * 1024, mss=60000)
    st = p.stats()
    assert st["from_guest_gso"] >= 4, st
    assert st["drop_vnet_hdr"] == 0, st


def test_gso_to_guest_whole(vhost, tcp_echo):
    """With GUEST_TSO4 libslirp's large segments reach the guest as GSO frames whose
    partial checksum completes correctly."""
    p = vhost()
    p.tso_tx = True
    echo_through(p, tcp_echo.port, 256 * 1024, mss=60000)
    st = p.stats()
    assert st["to_guest_gso"] >= 1, st
    big = [(h, f) for h, f in frames_from(p, tcp_echo.port) if len(f) > MTU_FRAME]
    assert big, "no frame above the link MTU came back"
    for h, f in big:
        assert h.gso_type == VnetHdr.GSO_TCPV4 and h.flags & VnetHdr.F_NEEDS_CSUM, h
        assert 0 < h.gso_size <= 1460 and (h.csum_start, h.csum_offset) == (34, 16), h
        assert tcp_csum_ok(complete_partial_csum(h, f)), "bad partial checksum: %r" % h
    # the big frames spanned several 4 KiB buffers (MRG_RXBUF)
    assert max(p.rx_buffers) > 1, p.rx_buffers


def test_without_guest_tso_segments_are_cut(vhost, tcp_echo):
    p = vhost(features=NO_GUEST_TSO)
    p.tso_tx = True
    echo_through(p, tcp_echo.port, 256 * 1024, mss=60000)
    frames = frames_from(p, tcp_echo.port)
    sizes = [len(f) for _, f in frames]
    assert max(sizes) <= MTU_FRAME, \
        "frames above the MTU without GUEST_TSO4: %s" % sorted(sizes)[-5:]
    assert all(h.gso_type == VnetHdr.GSO_NONE for h, _ in frames)
    st = p.stats()
    assert st["to_guest_split"] >= 1 and st["to_guest_gso"] == 0, st


def test_partial_checksum_from_guest_completed(vhost, tcp_echo):
    """Every TCP frame of the guest carries NEEDS_CSUM and only the pseudo-header sum:
    libslirp checks TCP checksums, so the echo only comes back if the helper completed them."""
    p = vhost()
    p.csum_tx = True
    echo_through(p, tcp_echo.port, 32 * 1024)
    # and a frame whose partial checksum the helper is *not* told about is dropped:
    # the pseudo-header sum is not a valid checksum (the test above proves something)
    c = TcpConn.connect(p, GW_IP, tcp_echo.port)
    seg = bytes(c.segment("PA", payload=b"unchecked"))
    _, bad = tso_frame(seg)
    p.csum_tx = False
    assert not tcp_csum_ok(bad)
    p.send_with_vnet_hdr(VnetHdr(), bad)
    p.expect_none(lambda x: TCP in x and x[TCP].sport == tcp_echo.port and len(x[TCP].payload) > 0,
                  timeout=0.5)
    c.send(b"checked")
    assert c.recv(7) == b"checked"


def test_guest_csum_frames_complete(vhost, tcp_echo):
    """Frames to a GUEST_CSUM guest that carry NEEDS_CSUM complete to a valid checksum;
    the others are valid as they are."""
    p = vhost()
    echo_through(p, tcp_echo.port, 64 * 1024)
    frames = frames_from(p, tcp_echo.port)
    assert frames
    for h, f in frames:
        if h.flags & VnetHdr.F_NEEDS_CSUM:
            f = complete_partial_csum(h, f)
        assert tcp_csum_ok(f), h


def test_no_offloads(vhost, tcp_echo):
    p = vhost(features=NO_OFFLOADS)
    echo_through(p, tcp_echo.port, 128 * 1024)
    for h, f in frames_from(p, tcp_echo.port):
        assert len(f) <= MTU_FRAME, len(f)
        assert (h.flags, h.gso_type, h.gso_size) == (0, 0, 0), h
        assert tcp_csum_ok(f)
    st = p.stats()
    assert st["to_guest_gso"] == 0 and st["from_guest_gso"] == 0, st


def test_mrg_rxbuf_small_buffers(vhost, tcp_echo):
    """1 KiB receive buffers: a 1442-byte echo reply takes two, a GSO frame dozens; the
    frames come out whole."""
    p = vhost(rx_buf_size=1024)
    payload = pattern(1400)
    p.send(icmp_echo(p, seq=9, payload=payload))
    r = p.expect(icmp_echo_reply_from(p, seq=9, payload=payload))
    assert p.rx_buffers[-1] == 2, p.rx_buffers
    assert p.vnet_rx[-1][0].num_buffers == 2
    assert bytes(r[ICMP].payload) == payload
    p.tso_tx = True
    echo_through(p, tcp_echo.port, 256 * 1024, mss=60000)
    assert max(p.rx_buffers) >= 10, "no frame spanned 10 buffers: %s" % sorted(p.rx_buffers)[-5:]


@pytest.mark.parametrize("chain", [1, 5])
def test_without_mrg_rxbuf_big_buffers(vhost, tcp_echo, chain):
    """Without MRG_RXBUF every frame takes one chain (num_buffers 1): a 66 KiB buffer, or
    a chain of five 16 KiB descriptors (Linux's "big packets")."""
    kw = dict(rx_chain=5, rx_buf_size=16384) if chain > 1 else {}
    p = vhost(features=NO_MRG, **kw)
    p.tso_tx = True
    echo_through(p, tcp_echo.port, 256 * 1024, mss=60000)
    frames = frames_from(p, tcp_echo.port)
    assert max(len(f) for _, f in frames) > 16384, "no frame needed more than one descriptor"
    bad = [h for h, _ in p.vnet_rx if h.num_buffers != 1]
    assert not bad, "num_buffers must be 1 without MRG_RXBUF: %r" % bad[:3]


def test_rx_ring_full_then_refilled(vhost, tcp_echo):
    """Only 24 receive buffers of 4 KiB (enough for one 64 KiB GSO frame): the helper
    waits for the guest to give more (a 256 KiB echo still arrives whole)."""
    p = vhost(rx_bufs=24)
    echo_through(p, tcp_echo.port, 256 * 1024)


# --------------------------------------------------------------------------------------
# lifecycle

def test_disconnect_then_second_front_end(vhost_helper, vhost, tcp_echo):
    h = vhost_helper()
    fds_idle = helper_fds(h)
    p1 = vhost(h)
    c = TcpConn.connect(p1, GW_IP, tcp_echo.port)
    c.send(b"one")
    assert c.recv(3) == b"one"
    p1.disconnect()
    wait_log(h, r"front-end left .*listening again")
    p2 = vhost(h)
    ping_check(p2)
    echo_through(p2, tcp_echo.port, 64 * 1024)
    assert h.alive()
    p2.disconnect()
    wait_log(h, r"listening again", count=2)
    wait_fds(h, fds_idle)


def test_one_off_exits_when_the_front_end_leaves(vhost_helper, vhost):
    h = vhost_helper("--one-off")
    p = vhost(h)
    ping_check(p)
    p.disconnect()
    assert h.wait(5 * SCALE) == 0, "helper: %s; log:\n%s" % (h.proc.poll(), h.log())
    assert not os.path.exists(h.path), "the socket file stayed"


def test_second_concurrent_front_end_refused(vhost_helper, vhost):
    h = vhost_helper()
    p1 = vhost(h)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(3 * SCALE)
        s.connect(h.path)
        s.sendall(struct.pack("<III", VHOST_USER["GET_FEATURES"], 1, 0))
        try:
            data = s.recv(64)
        except ConnectionResetError:
            data = b""
        assert data == b"", "the second front-end got an answer: %r" % data
    finally:
        s.close()
    wait_log(h, r"refused a second vhost-user front-end")
    ping_check(p1)


def test_front_end_killed_mid_message(vhost_helper, vhost):
    """A front-end that dies halfway through a message (QEMU killed) leaves the helper
    listening."""
    h = vhost_helper()
    p1 = vhost(h, setup=False)
    p1.send_raw(struct.pack("<III", VHOST_USER["SET_FEATURES"], 1, 8) + b"\1\0")
    p1.disconnect()
    wait_log(h, r"listening again")
    ping_check(vhost(h))


# --------------------------------------------------------------------------------------
# a hostile guest: malformed rings

def _queue_stop(h, p, before, qname, reason):
    st = wait_counter(h, "vhost_queue_stops", before["vhost_queue_stops"] + 1)
    assert st["vhost_queue_stops"] == before["vhost_queue_stops"] + 1, (before, st)
    line = wait_log(h, r"queue %s stopped: .*%s" % (re.escape(qname), reason))
    assert h.alive(), "the helper died; log:\n" + h.log()
    return st, line


def _tx_case(p, case):
    """Publish a malformed chain on the TX queue."""
    r = p.rings[TX_QUEUE]
    free = p.free_desc(TX_QUEUE)
    frame = bytes(12) + bytes(icmp_echo(p, seq=77, payload=b"hostile"))
    p.mem.write(p.scratch, frame)
    buf = p.mem.gpa(p.scratch)
    outside = GPA_BASE + p.mem.size + 0x1000
    if case == "loop":
        a, b = free[0], free[1]
        r.write_desc(a, buf, len(frame), VRING_DESC_F_NEXT, b)
        r.write_desc(b, buf, 8, VRING_DESC_F_NEXT, a)
        r.put_avail(a)
    elif case == "next-out-of-range":
        p.send_chain(TX_QUEUE, [(buf, len(frame), VRING_DESC_F_NEXT, r.num + 5)], kick=False)
    elif case == "address-outside-memory":
        p.send_chain(TX_QUEUE, [(outside, 100, 0)], kick=False)
    elif case == "address-straddles-the-end":
        p.send_chain(TX_QUEUE, [(GPA_BASE + p.mem.size - 16, 100, 0)], kick=False)
    elif case == "head-out-of-range":
        r.write_desc(free[0], buf, len(frame), 0, 0)
        r.put_avail(r.num + 3)
    elif case == "avail-idx-jump":
        r.write_desc(free[0], buf, len(frame), 0, 0)
        r.set_avail_idx(r.avail_idx + r.num + 1)
    elif case == "indirect":
        p.mem.write(p.scratch + 4096, struct.pack("<QIHH", buf, len(frame), 0, 0))
        p.send_chain(TX_QUEUE, [(p.mem.gpa(p.scratch + 4096), 16, VRING_DESC_F_INDIRECT)],
                     kick=False)
    elif case == "writable-before-readable":
        p.send_chain(TX_QUEUE, [(buf, 12, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT),
                                (buf + 12, len(frame) - 12, 0)], kick=False)
    elif case == "chain-longer-than-queue":
        # every descriptor of the queue in one line, the last one back to the first
        n = r.num
        for i in range(n):
            r.write_desc(i, buf, 1, VRING_DESC_F_NEXT, (i + 1) % n)
        r.put_avail(0)
    else:
        raise ValueError(case)
    p.kick(TX_QUEUE)


TX_CASES = {
    "loop": r"longer than the queue",
    "next-out-of-range": r"next",
    "address-outside-memory": r"buffer 0x",
    "address-straddles-the-end": r"buffer 0x",
    "head-out-of-range": r"head",
    "avail-idx-jump": r"available index",
    "indirect": r"indirect",
    "writable-before-readable": r"readable after a writable",
    "chain-longer-than-queue": r"longer than the queue",
}


@pytest.mark.parametrize("case", sorted(TX_CASES))
def test_malformed_tx_ring_stops_the_queue(vhost_helper, vhost, case):
    """The TX queue stops with a log line and vhost_queue_stops; the helper lives, the
    RX queue still delivers (a hostfwd SYN reaches the guest), and the next front-end
    works."""
    port = free_port()
    h = vhost_helper("--hostfwd=tcp:127.0.0.1:%d-:5003" % port, control=True)
    fds_idle = helper_fds(h)
    p = vhost(h, queue_size=64, tx_slots=8)
    ping_check(p)
    before = ctl_stats(h)
    _tx_case(p, case)
    st, _ = _queue_stop(h, p, before, "1 (tx)", TX_CASES[case])
    assert p.vring_error(TX_QUEUE) == 1, "the TX queue's error eventfd was not signalled"
    assert p.vring_error(RX_QUEUE) == 0
    assert st["from_guest_frames"] == before["from_guest_frames"], \
        "a frame of the broken ring was taken"
    # the RX queue still works: libslirp's SYN for a hostfwd connection reaches the guest
    conn = host_connect(port)
    try:
        p.expect(lambda x: TCP in x and x[TCP].dport == 5003 and str(x[TCP].flags) == "S",
                 desc="hostfwd SYN on the RX queue after the TX queue stopped")
    finally:
        conn.close()
    # the stopped queue takes nothing more
    p.send(icmp_echo(p, seq=78))
    p.expect_none(icmp_echo_reply_from(p, seq=78))
    p.disconnect()
    wait_log(h, r"listening again")
    p2 = vhost(h)
    ping_check(p2)
    p2.disconnect()
    wait_log(h, r"listening again", count=2)
    wait_fds(h, fds_idle)


RX_CASES = {
    "head-out-of-range": r"head",
    "address-outside-memory": r"buffer 0x",
    "readable-rx-buffer": r"",
    "avail-idx-jump": r"available index",
}


@pytest.mark.parametrize("case", sorted(RX_CASES))
def test_malformed_rx_ring_stops_the_queue(vhost_helper, vhost, case):
    """The RX ring is broken when the helper has a frame for the guest: queue 0 stops
    (logged, counted), the TX queue still takes frames, the next front-end works."""
    h = vhost_helper(control=True)
    p = vhost(h, rx_post=False)
    r = p.rings[RX_QUEUE]
    free = p.free_desc(RX_QUEUE)
    outside = GPA_BASE + p.mem.size + 0x1000
    buf = p.mem.gpa(p.scratch)
    if case == "head-out-of-range":
        r.write_desc(free[0], buf, 4096, VRING_DESC_F_WRITE)
        r.put_avail(r.num + 3)
    elif case == "address-outside-memory":
        r.write_desc(free[0], outside, 4096, VRING_DESC_F_WRITE)
        r.put_avail(free[0])
    elif case == "readable-rx-buffer":
        # a device-readable buffer where the device must write: not a place for a frame
        r.write_desc(free[0], buf, 4096, 0)
        r.put_avail(free[0])
        p.raw_heads.add(free[0])
    elif case == "avail-idx-jump":
        r.set_avail_idx(r.num + 7)
    p.kick(RX_QUEUE)
    before = ctl_stats(h)
    p.send(icmp_echo(p, seq=5))         # its reply needs the RX ring
    if case == "readable-rx-buffer":
        # either a stopped queue or a dropped chain is right; nothing may be written there
        deadline = time.monotonic() + 3 * SCALE
        while time.monotonic() < deadline:
            st = ctl_stats(h)
            if st["vhost_queue_stops"] > before["vhost_queue_stops"] or \
                    st["drop_vhost_chain"] > before["drop_vhost_chain"]:
                break
            time.sleep(0.05)
        assert st["vhost_queue_stops"] > before["vhost_queue_stops"] or \
            st["drop_vhost_chain"] > before["drop_vhost_chain"], (before, st)
        assert p.mem.read(p.scratch, 4096) == bytes(4096), "the helper wrote into a readable buffer"
    else:
        _queue_stop(h, p, before, "0 (rx)", RX_CASES[case])
    # TX still takes frames
    before = ctl_stats(h)
    p.send(icmp_echo(p, seq=6))
    assert p.wait_sent(), "the TX queue stopped too"
    st = ctl_stats(h)
    assert st["from_guest_frames"] == before["from_guest_frames"] + 1, (before, st)
    p.disconnect()
    wait_log(h, r"listening again")
    ping_check(vhost(h))


def test_chain_with_too_many_segments_dropped_queue_goes_on(vhost_helper, vhost):
    """A valid chain of 300 one-byte-ish descriptors (more than the helper's 256 iovecs)
    is dropped and counted; the queue goes on (the same front-end pings)."""
    h = vhost_helper(control=True)
    p = vhost(h, queue_size=1024)
    ping_check(p, seq=1)
    frame = bytes(12) + bytes(icmp_echo(p, seq=2, payload=pattern(400)))
    p.mem.write(p.scratch, frame)
    n = 300
    step = len(frame) // n
    descs = []
    for i in range(n):
        off = i * step
        ln = step if i < n - 1 else len(frame) - off
        descs.append((p.mem.gpa(p.scratch + off), ln, VRING_DESC_F_NEXT if i < n - 1 else 0))
    before = ctl_stats(h)
    p.send_chain(TX_QUEUE, descs)
    st = wait_counter(h, "drop_vhost_chain", before["drop_vhost_chain"] + 1)
    keys = FROM_GUEST_OUTCOMES + ("drop_vhost_chain", "vhost_queue_stops")
    assert stats_delta(before, st, keys) == {"drop_vhost_chain": 1}, stats_delta(before, st, keys)
    ping_check(p, seq=3)
    assert p.raw_returned and p.raw_returned[0][1] == 0, "the dropped chain was not given back"


@pytest.mark.parametrize("case,counter", [("too-short", "drop_vnet_hdr"),
                                          ("oversized", "drop_oversize")])
def test_bad_length_chain_dropped(vhost_helper, vhost, case, counter):
    """A TX chain shorter than the virtio-net header, or longer than any frame, is dropped
    and counted like a bad frame on the other transports; the queue goes on."""
    h = vhost_helper(control=True)
    p = vhost(h)
    ping_check(p, seq=1)
    buf = p.mem.gpa(p.scratch)
    before = ctl_stats(h)
    if case == "too-short":                 # shorter than the virtio-net header
        p.send_chain(TX_QUEUE, [(buf, 6, 0)])
    else:                                   # more than any frame (12 + 100000 bytes)
        p.mem.write(p.scratch, bytes(12) + bytes(icmp_echo(p, seq=3)))
        p.send_chain(TX_QUEUE, [(buf, 50012, VRING_DESC_F_NEXT), (buf, 50000, 0)])
    st = wait_counter(h, counter, before[counter] + 1)
    keys = FROM_GUEST_OUTCOMES + ("drop_vhost_chain", "vhost_queue_stops")
    assert stats_delta(before, st, keys) == {counter: 1}, stats_delta(before, st, keys)
    ping_check(p, seq=4)
    assert [n for _, n in p.raw_returned] == [0], "the dropped chain was not given back"


# --------------------------------------------------------------------------------------
# a hostile front-end: malformed messages

def _msg_setup(p, steps):
    if "negotiate" in steps:
        p.negotiate()
    if "mem" in steps:
        p.set_mem_table()
    if "ring" in steps:
        p.make_ring(RX_QUEUE)
    if "num" in steps:
        p.call("SET_VRING_NUM", p.vring_state(RX_QUEUE, p.rings[RX_QUEUE].num))


def _send_with_pipe(p, req, payload):
    r, w = os.pipe()
    try:
        p.send_msg(req, payload, [r])
    finally:
        os.close(r)
        os.close(w)


def _bad_regions(p, n):
    step = p.mem.size // 8
    return [(GPA_BASE + i * step, step, UVA_BASE + i * step, (i % 8) * step) for i in range(n)]


MSG_CASES = {
    # name: (setup steps, send(p), regex naming the request and the problem)
    "truncated-payload": ("negotiate", lambda p: p.send_msg("SET_FEATURES", b"\0" * 4),
                          r"SET_FEATURES: 4-byte payload"),
    "truncated-vring-addr": ("negotiate mem",
                             lambda p: p.send_msg("SET_VRING_ADDR", struct.pack("<IIQ", 0, 0, 0)),
                             r"SET_VRING_ADDR: 16-byte payload"),
    "unknown-request": ("negotiate", lambda p: p.send_msg(999, b""), r"request \(999\)"),
    "oversized-size": ("negotiate", lambda p: p.send_msg("SET_FEATURES", b"", size=0x7FFFFFFF),
                       r"SET_FEATURES: 2147483647-byte payload"),
    "mem-table-0-regions": ("negotiate",
                            lambda p: p.send_msg("SET_MEM_TABLE", p.mem_table_payload([])),
                            r"SET_MEM_TABLE: 0 regions"),
    "mem-table-9-regions": ("negotiate",
                            lambda p: p.send_msg("SET_MEM_TABLE",
                                                 p.mem_table_payload(_bad_regions(p, 9)),
                                                 [p.mem.fd] * 9),
                            r"SET_MEM_TABLE: .*(9 regions|296-byte payload|file descriptors)"),
    "mem-table-9-regions-8-fds": ("negotiate",
                                  lambda p: p.send_msg("SET_MEM_TABLE",
                                                       p.mem_table_payload(_bad_regions(p, 9)),
                                                       [p.mem.fd] * 8),
                                  r"SET_MEM_TABLE: (9 regions|296-byte payload)"),
    "mem-table-fd-mismatch": ("negotiate",
                              lambda p: p.send_msg("SET_MEM_TABLE",
                                                   p.mem_table_payload(_bad_regions(p, 2)),
                                                   [p.mem.fd]),
                              r"SET_MEM_TABLE: 1 file descriptors? for 2"),
    "mem-table-beyond-the-file": ("negotiate",
                                  lambda p: p.send_msg("SET_MEM_TABLE", p.mem_table_payload(
                                      [(GPA_BASE, p.mem.size * 2, UVA_BASE, 0)]), [p.mem.fd]),
                                  r"SET_MEM_TABLE"),
    "vring-num-not-power-of-two": ("negotiate mem",
                                   lambda p: p.send_msg("SET_VRING_NUM", p.vring_state(0, 100)),
                                   r"SET_VRING_NUM.*100"),
    "vring-num-too-big": ("negotiate mem",
                          lambda p: p.send_msg("SET_VRING_NUM", p.vring_state(0, 65536)),
                          r"SET_VRING_NUM.*65536"),
    "vring-addr-outside-memory": ("negotiate mem ring num",
                                  lambda p: p.send_msg("SET_VRING_ADDR", p.vring_addr(
                                      0, desc=UVA_BASE + p.mem.size + 0x1000)),
                                  r"SET_VRING_ADDR.*queue 0"),
    "vring-addr-before-mem-table": ("negotiate ring num",
                                    lambda p: p.send_msg("SET_VRING_ADDR", p.vring_addr(0)),
                                    r"SET_VRING_ADDR: before any SET_MEM_TABLE"),
    "vring-index-out-of-range": ("negotiate mem",
                                 lambda p: p.send_msg("SET_VRING_NUM", p.vring_state(7, 256)),
                                 r"SET_VRING_NUM: queue 7"),
    "features-not-offered": ("", lambda p: p.send_msg("SET_FEATURES", struct.pack(
        "<Q", feature_mask("VERSION_1", "RING_INDIRECT_DESC"))),
        r"SET_FEATURES: features .*not offered"),
    "version-0": ("", lambda p: p.send_msg("GET_FEATURES", b"", flags=0),
                  r"GET_FEATURES: protocol version 0"),
    "mem-table-pipe-fd": ("negotiate", lambda p: _send_with_pipe(
        p, "SET_MEM_TABLE", p.mem_table_payload()), r"SET_MEM_TABLE: memory region 0: not a memfd"),
    "mem-table-offset-overflow": ("negotiate", lambda p: p.send_msg(
        "SET_MEM_TABLE", p.mem_table_payload([(GPA_BASE, p.mem.size, UVA_BASE,
                                               0xFFFFFFFFFFFFF000)]), [p.mem.fd]),
        r"SET_MEM_TABLE: memory region 0: .*overflows"),
    "mem-table-gpa-wraps": ("negotiate", lambda p: p.send_msg(
        "SET_MEM_TABLE", p.mem_table_payload([(0xFFFFFFFFFFFFF000, p.mem.size, UVA_BASE, 0)]),
        [p.mem.fd]), r"SET_MEM_TABLE: memory region 0: .*overflows"),
    "vring-addr-misaligned": ("negotiate mem ring num",
                              lambda p: p.send_msg("SET_VRING_ADDR", p.vring_addr(
                                  0, desc=p.mem.uva(p.rings[0].desc) + 8)),
                              r"SET_VRING_ADDR.*queue 0.*align"),
    "vring-kick-without-fd": ("negotiate mem",
                              lambda p: p.send_msg("SET_VRING_KICK", struct.pack("<Q", 0)),
                              r"SET_VRING_KICK: 0 file descriptors"),
    "vring-kick-polling": ("negotiate mem",
                           lambda p: p.send_msg("SET_VRING_KICK", struct.pack("<Q", 0x100)),
                           r"SET_VRING_KICK: polling"),
    "vring-enable-2": ("negotiate mem",
                       lambda p: p.send_msg("SET_VRING_ENABLE", p.vring_state(0, 2)),
                       r"SET_VRING_ENABLE: state 2"),
    "reply-flag-set": ("", lambda p: p.send_msg("GET_FEATURES", b"", flags=0x5),
                       r"GET_FEATURES: a reply where a request"),
}


@pytest.mark.parametrize("case", sorted(MSG_CASES))
def test_malformed_message_closes_the_connection(vhost_helper, vhost, case):
    steps, send, problem = MSG_CASES[case]
    h = vhost_helper(control=True)
    fds_idle = helper_fds(h)
    p = vhost(h, setup=False)
    _msg_setup(p, steps.split())
    send(p)
    assert p.wait_closed(3 * SCALE), "the helper kept the connection open; log:\n" + h.log()
    # the request is named (with its number: "SET_FEATURES (2): ...")
    problem = re.sub(r"\b([A-Z][A-Z_]{3,}):", r"\1( \\(\\d+\\))?:", problem)
    wait_log(h, r"vhost-user front-end on .*: (unknown )?%s.*closing the connection" % problem)
    wait_log(h, r"listening again")
    p.disconnect()
    assert h.alive()
    # the next front-end works
    p2 = vhost(h)
    ping_check(p2)
    p2.disconnect()
    wait_log(h, r"listening again", count=2)
    # and nothing of the two connections stayed open in the helper
    wait_fds(h, fds_idle)


# --------------------------------------------------------------------------------------
# more of a hostile or unusual front-end

def test_mtu_65520_whole_frames(vhost):
    """At mtu=65520 a 65042-byte echo goes out in one TX chain and its reply comes back
    whole over MRG_RXBUF buffers, neither fragmented nor cut."""
    p = vhost(None, "--mtu=65520")
    payload = pattern(65000)
    p.send(icmp_echo(p, seq=3, payload=payload))
    r = p.expect(icmp_echo_reply_from(p, seq=3), timeout=5)
    assert r[IP].flags.MF == 0 and r[IP].frag == 0, "the reply was fragmented"
    assert bytes(r[ICMP].payload) == payload
    assert p.rx_buffers[-1] >= 16, p.rx_buffers[-1]


def test_mem_table_replaced_while_running(vhost, tcp_echo):
    """QEMU sends a new memory table when guest memory changes (hotplug): the same memory
    as two regions now; the rings, at the same addresses, go on."""
    p = vhost()
    c = TcpConn.connect(p, GW_IP, tcp_echo.port)
    c.send(b"before")
    assert c.recv(6) == b"before"
    half = p.mem.size // 2
    p.set_mem_table([(GPA_BASE, half, UVA_BASE, 0), (GPA_BASE + half, half, UVA_BASE + half, half)])
    c.send(pattern(40000))
    assert c.recv(40000) == pattern(40000)


def test_mem_table_without_the_rings(vhost_helper, vhost):
    """A new memory table that no longer maps the rings: the helper refuses it or stops
    the queues, and never touches unmapped memory; the next front-end works."""
    h = vhost_helper(control=True)
    p = vhost(h)
    ping_check(p)
    before = ctl_stats(h)
    half = p.mem.size // 2
    table = [(GPA_BASE + half, half, UVA_BASE + half, half)]   # the rings are in the first half
    closed = False
    try:
        p.set_mem_table(table)
    except AssertionError:       # refused (REPLY_ACK) or the connection closed
        closed = True
    if not closed:
        p.send(icmp_echo(p, seq=9))
        st = wait_counter(h, "vhost_queue_stops", before["vhost_queue_stops"] + 1)
        assert st["vhost_queue_stops"] > before["vhost_queue_stops"] or p.wait_closed(1), (
            "the rings stayed in use without a mapping; log:\n" + h.log())
    assert h.alive()
    p.disconnect()
    wait_log(h, r"listening again")
    ping_check(vhost(h))


def test_random_ring_contents(vhost_helper, vhost):
    """Twenty front-ends fill their descriptor tables and available rings with random
    bytes (a fixed seed) and kick both queues; the helper survives every one (its control
    socket answers) and then serves a clean front-end."""
    import random
    rnd = random.Random(12)
    h = vhost_helper(control=True)
    for i in range(20):
        p = connect_when_listening(vhost, h, queue_size=64, tx_slots=8, prime=False)
        for q in (RX_QUEUE, TX_QUEUE):
            r = p.rings[q]
            p.mem.write(r.desc, bytes(rnd.getrandbits(8) for _ in range(16 * r.num)))
            # half of the addresses land in guest memory, so that chains go on a while
            for d in range(r.num):
                if rnd.random() < 0.5:
                    struct.pack_into("<Q", p.mem.map, r.desc + 16 * d,
                                     GPA_BASE + rnd.randrange(p.mem.size))
            p.mem.write(r.avail + 4, bytes(rnd.getrandbits(8) for _ in range(2 * r.num)))
            r.set_avail_idx(r.avail_idx + rnd.randrange(1, 2 * r.num))
            p.kick(q)
        p.send(icmp_echo(p, seq=i)) if rnd.random() < 0.5 else None
        time.sleep(0.05)
        st = ctl_stats(h)
        assert h.alive(), "iteration %d killed the helper; log:\n%s" % (i, h.log())
        p.disconnect()
    assert st["vhost_queue_stops"] >= 10, st
    ping_check(connect_when_listening(vhost, h))


def test_front_end_that_never_reads_replies(vhost_helper, vhost):
    """Requests pipelined without reading a reply fill the helper's socket buffer: the
    helper must not block on it (its control socket answers); it drops that front-end."""
    h = vhost_helper(control=True)
    p = vhost(h, setup=False)
    p.sock.setblocking(False)
    batch = struct.pack("<III", VHOST_USER["GET_FEATURES"], 1, 0) * 100
    deadline = time.monotonic() + 5 * SCALE
    while time.monotonic() < deadline:
        try:
            p.sock.send(batch)
        except BlockingIOError:
            time.sleep(0.01)
        except OSError:          # EPIPE / ECONNRESET: the helper closed it
            break
    start = time.monotonic()
    st = ctl_stats(h)
    assert time.monotonic() - start < 1.0 * SCALE and "from_guest_frames" in st
    wait_log(h, r"GET_FEATURES.*reply could not be sent.*closing the connection")
    p.disconnect()
    ping_check(connect_when_listening(vhost, h))


def _udp_rcvbuf_errors():
    """UDP datagrams the kernel dropped for a full socket buffer (/proc/net/snmp)."""
    with open("/proc/net/snmp") as f:
        rows = [ln.split() for ln in f if ln.startswith("Udp:")]
    return int(dict(zip(rows[0][1:], rows[1][1:]))["RcvbufErrors"])


def test_udp_burst_accounting(vhost_helper, vhost, udp_echo):
    """1000 datagrams through a 64-entry TX ring: the helper takes every one (the ring
    waits, it never loses); each echo either reaches the guest or is counted dropped."""
    h = vhost_helper(control=True)
    p = vhost(h, queue_size=64, tx_slots=16)
    ping_check(p)
    before = ctl_stats(h)
    rcvbuf_before = _udp_rcvbuf_errors()
    n = 1000
    for i in range(n):
        p.send(udp_to(p, udp_echo.port, b"burst %04d" % i, sport=40000))
    assert p.wait_sent(10 * SCALE), "the helper did not take every TX chain"
    deadline = time.monotonic() + 5 * SCALE
    got = set()
    while time.monotonic() < deadline:
        pk = p.poll(lambda x: UDP in x and x[UDP].dport == 40000, timeout=0.3)
        if pk is None:
            st = ctl_stats(h)
            if len(got) + st["drop_to_guest_full"] - before["drop_to_guest_full"] >= n:
                break
            continue
        got.add(bytes(pk[UDP].payload)[:10])
    st = ctl_stats(h)
    assert st["from_guest_frames"] - before["from_guest_frames"] == n, (before, st)
    assert len(udp_echo.received) == n, "the server got %d of %d" % (len(udp_echo.received), n)
    dropped = st["drop_to_guest_full"] - before["drop_to_guest_full"]
    # While the guest's ring is full the helper stops reading the host (back-pressure):
    # echoes then wait in, and may overflow, libslirp's UDP socket buffer in the kernel,
    # outside the helper's counters (UDP RcvbufErrors, system-wide).
    kernel_drops = _udp_rcvbuf_errors() - rcvbuf_before
    assert n - kernel_drops <= len(got) + dropped <= n, \
        "echoes received %d + dropped %d, %d lost in the kernel, of %d" % (len(got), dropped, kernel_drops, n)
    assert len(got) >= n // 2, "only %d echoes reached the guest" % len(got)
    ping_check(p)  # the RX queue did not stall


def test_rx_queue_disabled_then_enabled(vhost):
    """SET_VRING_ENABLE 0 on RX: nothing is written to the guest; enabled again, frames
    flow (a reply sent meanwhile may be dropped, never written while disabled)."""
    p = vhost()
    ping_check(p, seq=1)
    used = p.rings[RX_QUEUE].used_idx()
    p.enable_queue(RX_QUEUE, 0)
    p.send(icmp_echo(p, seq=2))
    p.expect_none(icmp_echo_reply_from(p, seq=2))
    assert p.rings[RX_QUEUE].used_idx() == used, "the helper wrote a disabled RX ring"
    p.enable_queue(RX_QUEUE, 1)
    p.kick(RX_QUEUE)
    ping_check(p, seq=3)


BAD_HEADERS = {
    # name: (features, header) - each is refused by the offload code the transports share
    # (NEEDS_CSUM from a guest without CSUM is taken leniently, as Linux's tun does)
    "gso-without-host-tso": (NO_OFFLOADS | feature_mask("CSUM"),
                             VnetHdr(flags=1, gso_type=VnetHdr.GSO_TCPV4, hdr_len=54,
                                     gso_size=1000, csum_start=34, csum_offset=16)),
    "csum-start-beyond-frame": (DEFAULT_FEATURES, VnetHdr(flags=1, csum_start=4000,
                                                          csum_offset=16)),
    "gso-udp": (DEFAULT_FEATURES, VnetHdr(flags=1, gso_type=VnetHdr.GSO_UDP, hdr_len=42,
                                          gso_size=1000, csum_start=34, csum_offset=6)),
}


@pytest.mark.parametrize("case", sorted(BAD_HEADERS))
def test_bad_vnet_header_dropped(vhost, tcp_echo, case):
    features, hdr = BAD_HEADERS[case]
    p = vhost(features=features)
    c = TcpConn.connect(p, GW_IP, tcp_echo.port)
    before = p.stats()
    frame = bytes(c.segment("PA", payload=pattern(3000 if hdr.gso_type else 100)))
    p.send_with_vnet_hdr(hdr, frame)
    st = p.stats()
    keys = FROM_GUEST_OUTCOMES + ("drop_vhost_chain", "vhost_queue_stops")
    assert stats_delta(before, st, keys) == {"drop_vnet_hdr": 1}, stats_delta(before, st, keys)
    c.send(b"fine")
    assert c.recv(4) == b"fine"
