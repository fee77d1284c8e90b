# SPDX-License-Identifier: BSD-2-Clause
"""test_transports.py - the QEMU-facing transports of the helper, driven from Python (no QEMU).

  --socket PATH   UNIX stream, 4-byte big-endian length + frame (-netdev stream)
  --dgram PATH    UNIX datagram, one frame per datagram, replies to the sender (-netdev dgram)
  --fd N          an inherited connected socket, framed by its SO_TYPE

The peers (StreamPeer, DgramPeer) and HelperProc are in the harness package; the fixtures
(helpers, stream_helper, peers, workdir) in conftest.py.  Everything stays on AF_UNIX
sockets in a private temporary directory.
"""

import os
import select
import socket
import struct
import threading
import time

import pytest

import harness
from harness import (ARP, ICMP, MIN_FRAME, QEMU_MAX_FRAME, SCALE, SMALL_SNDBUF, Ether,
                     GW_IP, GW_MAC, DgramPeer, StreamPeer, arp_check, arp_who_has, bound_dgram,
                     TcpConn, fd_helper, hostfwd_exchange, icmp_echo, icmp_echo_reply_from,
                     listener_inodes, ping_check, short_ping_check, wait_from_guest)


def drain_echo_replies(p, to_guest_frames):
    """Pump p until it holds an echo reply for every frame the helper sent it but the ARP
    reply (consumed before), or 20 s pass; the number of echo replies it holds."""
    got = 0
    deadline = time.monotonic() + 20 * SCALE
    while time.monotonic() < deadline:
        p.pump(0.3)
        got = sum(1 for _, pk in p.queue if ICMP in pk and pk[ICMP].type == 0)
        if got + 1 >= to_guest_frames:
            break
    return got


# --------------------------------------------------------------------------------------
# --socket PATH

def test_stream_arp_padded_and_icmp(stream_helper, peers):
    h = stream_helper()
    assert h.ready_line == "slirpnet: ready on " + h.path
    p = peers(StreamPeer.connect(h.path, h))
    arp_check(p)
    short_ping_check(p)
    assert p.lengths[-1] == MIN_FRAME       # the length prefix says 60 too
    ping_check(p)
    st = h.stats()
    assert st["from_guest_frames"] >= 2 and st["to_guest_frames"] >= 2


def test_stream_split_byte_by_byte(stream_helper, peers):
    h = stream_helper()
    p = peers(StreamPeer.connect(h.path, h))
    frame = bytes(arp_who_has(GW_IP, p))
    p.send_wire(struct.pack(">I", len(frame)) + frame, chunk=1, delay=0.002)
    p.expect(Ether() / ARP(op=2, psrc=GW_IP, hwsrc=GW_MAC))
    # and a frame split right inside its length prefix
    frame = bytes(icmp_echo(p, seq=7, payload=b"split"))
    wire = struct.pack(">I", len(frame)) + frame
    p.send_wire(wire[:2])
    time.sleep(0.05)
    p.send_wire(wire[2:9])
    time.sleep(0.05)
    p.send_wire(wire[9:])
    p.expect(icmp_echo_reply_from(p, seq=7, payload=b"split"))


def test_stream_batched_frames(stream_helper, peers):
    h = stream_helper()
    p = peers(StreamPeer.connect(h.path, h))
    a = bytes(arp_who_has(GW_IP, p))
    b = bytes(icmp_echo(p, seq=11, payload=b"batched"))
    c = bytes(icmp_echo(p, seq=12, payload=b"batched2"))
    p.send_wire(b"".join(struct.pack(">I", len(f)) + f for f in (a, b, c)))
    p.expect(Ether() / ARP(op=2, psrc=GW_IP))
    p.expect(icmp_echo_reply_from(p, seq=11, payload=b"batched"))
    p.expect(icmp_echo_reply_from(p, seq=12, payload=b"batched2"))


def test_stream_zero_length_ignored(stream_helper, peers):
    h = stream_helper()
    p = peers(StreamPeer.connect(h.path, h))
    frame = bytes(arp_who_has(GW_IP, p))
    p.send_wire(b"\0\0\0\0" * 3 + struct.pack(">I", len(frame)) + frame + b"\0\0\0\0")
    p.expect(Ether() / ARP(op=2, psrc=GW_IP))
    ping_check(p)
    assert not p.eof
    st = h.stats()
    assert st["drop_runt"] == 0, st


def test_stream_largest_length_accepted_but_dropped_by_mtu(stream_helper, peers):
    """69632 is QEMU's limit: the connection stays, the frame counts as oversize (MTU 1500)."""
    h = stream_helper()
    p = peers(StreamPeer.connect(h.path, h))
    big = bytes(Ether(src=p.guest_mac, dst=GW_MAC, type=0x0800)) + bytes(QEMU_MAX_FRAME - 14)
    p.send_wire(struct.pack(">I", len(big)) + big)
    arp_check(p)
    assert not p.eof
    assert h.stats()["drop_oversize"] == 1


def test_stream_oversize_length_closes_and_relistens(stream_helper, peers):
    h = stream_helper()
    p = peers(StreamPeer.connect(h.path, h))
    arp_check(p)
    p.send_wire(struct.pack(">I", QEMU_MAX_FRAME + 1) + b"x" * 64)
    assert p.wait_eof(), "helper kept a connection whose framing is lost"
    assert "69633-byte frame" in h.log()
    assert h.alive()
    q = peers(StreamPeer.connect(h.path, h))
    arp_check(q)
    ping_check(q)


def test_stream_second_client_refused(stream_helper, peers):
    h = stream_helper()
    first = peers(StreamPeer.connect(h.path, h))
    arp_check(first)
    second = peers(StreamPeer.connect(h.path, h))
    assert second.wait_eof(), "second client was not closed"
    assert "refused a second client" in h.log()
    # the first one is undisturbed
    ping_check(first, seq=2)
    arp_check(first)
    assert not first.eof


def test_stream_reconnect(stream_helper, peers):
    h = stream_helper()
    for i in range(3):
        p = peers(StreamPeer.connect(h.path, h))
        arp_check(p)
        ping_check(p, seq=i + 1)
        p.close()
        time.sleep(0.1)
    assert h.alive()
    assert h.log().count("listening again") == 3


def test_stream_one_off(stream_helper, peers):
    h = stream_helper("--one-off")
    p = peers(StreamPeer.connect(h.path, h))
    arp_check(p)
    p.close()
    assert h.wait(3 * SCALE) == 0, h.log()
    assert not os.path.exists(h.path), "socket not unlinked at exit"
    assert "stats:" in h.log()


def test_stream_pid_file_and_cleanup(stream_helper, workdir):
    pidfile = os.path.join(workdir, "helper.pid")
    h = stream_helper("--pid", pidfile)
    with open(pidfile) as f:
        assert int(f.read().strip()) == h.pid   # written by the helper itself: no fork
    assert os.path.exists(h.path)
    # listening before 'ready': a connect right after the line succeeds
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(h.path)
    s.close()
    assert h.stop() == 0
    assert not os.path.exists(h.path)
    assert not os.path.exists(pidfile)


def test_stream_stale_socket_replaced_live_one_refused(helpers, workdir):
    path = os.path.join(workdir, "s.sock")
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(path)
    stale.close()                       # leaves a socket file nobody listens on
    h = helpers(["--socket", path])
    p = StreamPeer.connect(path, h)
    arp_check(p)
    p.close()
    # a second helper on the same live path must fail clearly and leave the first alone
    h2 = helpers(["--socket", path], wait_ready=False)
    assert h2.wait(5 * SCALE) == 1
    assert "in use" in h2.log()
    # h2's probe was a connection too (accepted, then closed): let h notice it left
    deadline = time.monotonic() + 3 * SCALE
    while h.log().count("client left") < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    q = StreamPeer.connect(path, h)
    arp_check(q)
    q.close()


def test_stream_not_a_socket(helpers, workdir):
    path = os.path.join(workdir, "file")
    open(path, "w").close()
    h = helpers(["--socket", path], wait_ready=False)
    assert h.wait(5 * SCALE) == 1
    assert "not a socket" in h.log()
    assert os.path.exists(path)


def test_stream_slow_reader_drops_whole_frames(stream_helper, peers):
    """A peer that does not read: the bounded queue fills, frames are dropped whole and
    counted, and once the peer reads again every frame it gets is intact."""
    h = stream_helper(SMALL_SNDBUF)
    p = peers(StreamPeer.connect(h.path, h))
    arp_check(p)
    payload = bytes(1400)
    n = 3000                            # ~4.3 MB of replies: more than socket + 2 MiB queue
    wire = b"".join(struct.pack(">I", len(f)) + f for f in
                    (bytes(icmp_echo(p, seq=i & 0xffff, payload=payload)) for i in range(n)))
    p.send_wire(wire)
    # wait until the helper has processed everything it was sent
    st = wait_from_guest(h.stats, n + 1, 20 * SCALE)
    assert st["drop_to_guest_full"] > 0, st
    # now drain: every frame parses, and frames sent = frames received
    got = drain_echo_replies(p, st["to_guest_frames"])
    replies = [pk for _, pk in p.queue if ICMP in pk]
    assert all(len(bytes(pk[ICMP].payload)) >= 1400 for pk in replies)
    st2 = h.stats()
    assert got + 1 == st2["to_guest_frames"], (got, st2)
    assert got + st2["drop_to_guest_full"] == n, (got, st2)
    ping_check(p, seq=0xfff0)


def test_stream_stats_and_sigterm(stream_helper, peers):
    h = stream_helper()
    p = peers(StreamPeer.connect(h.path, h))
    arp_check(p)
    assert h.stop() == 0
    st = harness.parse_stats(h.log())
    assert st and st["from_guest_frames"] >= 1 and st["to_guest_frames"] >= 1


def _held_connection_server(tcp_server):
    """A TcpServer echoing on each connection; .ended is set when a connection ends from
    the guest's side (EOF or reset)."""
    ended = threading.Event()

    def handler(conn, server):
        while not server._stop.is_set():
            r, _, _ = select.select([conn], [], [], 0.05)
            if not r:
                continue
            try:
                data = conn.recv(65536)
            except ConnectionResetError:
                data = b""
            if not data:
                ended.set()
                return
            conn.sendall(data)
    srv = tcp_server(handler)
    srv.ended = ended
    return srv


def _client_then_another(h, peers, srv, during=None):
    """Client 1 opens a guest connection to srv through the gateway (and runs during(p1))
    and leaves; client 2 connects once the helper listens again. Returns (client 2,
    client 1's TcpConn)."""
    p1 = peers(StreamPeer.connect(h.path, h))
    c1 = TcpConn.connect(p1, GW_IP, srv.port)
    c1.send(b"one")
    assert c1.recv(3) == b"one"
    if during:
        during(p1)
    p1.close()
    deadline = time.monotonic() + 5 * SCALE
    while "listening again" not in h.log() and time.monotonic() < deadline:
        time.sleep(0.02)
    return peers(StreamPeer.connect(h.path, h)), c1


def test_stream_new_client_resets_previous_connections(stream_helper, peers, tcp_server):
    """A new --socket client is a new guest: the previous one's TCP connections are reset
    (the host peer sees them end), nothing of them reaches the new client, the hostfwd
    listener stays the same socket and the new client opens connections as usual."""
    port = harness.free_port()
    h = stream_helper("--hostfwd=tcp:127.0.0.1:%d-:5001" % port)
    inode = listener_inodes(h.pid, {port}).get(port)
    assert inode is not None
    srv = _held_connection_server(tcp_server)
    held = {}

    def hostfwd_connection(p1):             # and a connection in through the hostfwd
        held["host"] = host = harness.host_connect(port)
        held["guest"] = guest = TcpConn.accept(p1, 5001)
        host.sendall(b"in")
        assert guest.recv(2) == b"in"
    p2, c1 = _client_then_another(h, peers, srv, hostfwd_connection)
    assert srv.ended.wait(5 * SCALE), "the host server still holds client 1's connection"
    try:
        assert held["host"].recv(1) == b"", "data on a reset hostfwd connection"
    except ConnectionResetError:
        pass                                # what the reset gives
    held["host"].close()
    p2.expect_none(lambda f: c1.is_mine(f) or held["guest"].is_mine(f), timeout=1.0,
                   desc="a frame of client 1's connections")
    assert listener_inodes(h.pid, {port}).get(port) == inode, "the hostfwd listener was re-opened"
    c2 = TcpConn.connect(p2, GW_IP, srv.port)
    c2.send(b"two")
    assert c2.recv(3) == b"two"
    hostfwd_exchange(p2, port, 5001)
    assert p2.stats()["guest_resets"] == 1
    assert "reset 2 TCP connection(s)" in h.log()


def test_stream_keep_state_inherits_connections(stream_helper, peers, tcp_server):
    """socket-keep-state=on: the new client inherits client 1's connection and goes on."""
    h = stream_helper("--socket-keep-state=on")
    srv = _held_connection_server(tcp_server)
    p2, c1 = _client_then_another(h, peers, srv)
    assert not srv.ended.wait(1.0), "client 1's connection was ended"
    c1.peer = p2                        # the same guest, back on a new client
    c1.send(b"again")
    assert c1.recv(5) == b"again"
    assert p2.stats()["guest_resets"] == 0


# --------------------------------------------------------------------------------------
# --dgram PATH

def test_dgram_locks_in_its_first_peer(helpers, peers, workdir):
    path = os.path.join(workdir, "h.sock")
    h = helpers(["--dgram", path])
    assert h.ready_line == "slirpnet: ready on " + path
    a = peers(DgramPeer(bound_dgram(workdir, "qa.sock"), dest=path, helper=h))
    arp_check(a)
    short_ping_check(a)
    ping_check(a)
    # another sender is refused: it could otherwise inject frames and draw the replies
    b = peers(DgramPeer(bound_dgram(workdir, "qb.sock"), dest=path, helper=h))
    before = h.stats()
    b.send(icmp_echo(b, seq=5))
    assert b.poll(ICMP, timeout=0.3) is None
    st = h.stats()
    assert st["drop_foreign_sender"] == before["drop_foreign_sender"] + 1, st
    assert st["from_guest_frames"] == before["from_guest_frames"], st
    assert "qb.sock" in h.log()
    ping_check(a, seq=6)
    assert h.stop() == 0
    assert not os.path.exists(path)


def test_dgram_drops_until_a_peer_is_known(helpers, peers, workdir):
    path = os.path.join(workdir, "h.sock")
    h = helpers(["--dgram", path])
    # an unbound sender has no address to reply to: it cannot be the peer, its frame is dropped
    anon = peers(DgramPeer(socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM), dest=path, helper=h))
    anon.send(arp_who_has(GW_IP, anon))
    assert anon.poll(ARP, timeout=0.3) is None
    st = h.stats()
    assert st["from_guest_frames"] == 0 and st["drop_foreign_sender"] == 1, st
    assert "unbound socket" in h.log()
    a = peers(DgramPeer(bound_dgram(workdir, "qa.sock"), dest=path, helper=h))
    arp_check(a)
    # QEMU goes away and comes back on the same path (a dgram netdev can restart freely)
    a.close()
    os.unlink(os.path.join(workdir, "qa.sock"))
    time.sleep(0.1)
    a2 = peers(DgramPeer(bound_dgram(workdir, "qa.sock"), dest=path, helper=h))
    arp_check(a2)
    ping_check(a2)
    assert h.alive()


def test_dgram_oversize_counted(helpers, peers, workdir):
    path = os.path.join(workdir, "h.sock")
    h = helpers(["--dgram", path])
    a = peers(DgramPeer(bound_dgram(workdir, "qa.sock"), dest=path, helper=h))
    a.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 18)
    a.send(bytes(Ether(src=a.guest_mac, dst=GW_MAC, type=0x0800)) + bytes(9000))
    arp_check(a)
    assert h.stats()["drop_oversize"] == 1


@pytest.mark.parametrize("mode", ["bound", "fd"])
def test_dgram_slow_reader_queues_then_drops(helpers, peers, workdir, mode):
    """A peer that does not read: the kernel queue fills (10 datagrams for an unconnected
    receiver), then the helper's frame queue, then frames are dropped whole and counted.
    Once the peer reads, the queue drains (POLLOUT wake-up) and every frame is intact."""
    if mode == "bound":
        path = os.path.join(workdir, "h.sock")
        h = helpers(["--dgram", path, SMALL_SNDBUF])
        p = peers(DgramPeer(bound_dgram(workdir, "qa.sock"), dest=path, helper=h))
    else:
        h, p = fd_helper(helpers, socket.SOCK_DGRAM, [SMALL_SNDBUF])
        peers(p)
    arp_check(p)
    n = 2000                            # ~2.9 MB of replies: more than the 1 MiB queue
    payload = bytes(1400)
    frames = [bytes(icmp_echo(p, seq=i, payload=payload)) for i in range(n)]
    for f in frames:
        p.sock.send(f) if p.dest is None else p.sock.sendto(f, p.dest)
    st = wait_from_guest(h.stats, n + 1, 20 * SCALE)
    assert st["drop_to_guest_full"] > 0, st
    got = drain_echo_replies(p, st["to_guest_frames"])
    st2 = h.stats()
    assert got + 1 == st2["to_guest_frames"], (got, st2)
    assert got + st2["drop_to_guest_full"] == n, (got, st2)
    assert st2["drop_to_guest_error"] == 0, st2
    ping_check(p, seq=0xfff0)


# --------------------------------------------------------------------------------------
# --fd N

FD_TYPES = [socket.SOCK_STREAM, socket.SOCK_DGRAM, socket.SOCK_SEQPACKET]
FD_IDS = ["stream", "dgram", "seqpacket"]


@pytest.mark.parametrize("kind", FD_TYPES, ids=FD_IDS)
def test_fd_framing(helpers, peers, kind):
    h, p = fd_helper(helpers, kind)
    peers(p)
    assert h.ready_line.startswith("slirpnet: ready on fd ")
    arp_check(p)
    short_ping_check(p)
    ping_check(p)
    ping_check(p, seq=2, payload=bytes(1000))


@pytest.mark.parametrize("kind", [socket.SOCK_STREAM, socket.SOCK_SEQPACKET],
                         ids=["stream", "seqpacket"])
def test_fd_peer_close_exits_0(helpers, kind):
    h, p = fd_helper(helpers, kind)
    arp_check(p)
    p.close()
    assert h.wait(3 * SCALE) == 0, h.log()


def test_fd_dgram_peer_gone_noticed_on_send(helpers):
    """A datagram peer that exits is only seen when a send is refused; then the helper
    exits 0.  A hostfwd'ed UDP datagram makes libslirp send (an ARP request) on demand."""
    port = harness.free_port(socket.SOCK_DGRAM)
    h, p = fd_helper(helpers, socket.SOCK_DGRAM, ["--hostfwd=udp:127.0.0.1:%d-:9" % port])
    arp_check(p)
    p.close()
    time.sleep(0.2)
    assert h.alive()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        u.sendto(b"wake up", ("127.0.0.1", port))
    assert h.wait(3 * SCALE) == 0, h.log()
    assert "peer closed the connection" in h.log()


def test_fd_stream_oversize_exits_1(helpers):
    h, p = fd_helper(helpers, socket.SOCK_STREAM)
    p.send_wire(struct.pack(">I", QEMU_MAX_FRAME + 1))
    assert h.wait(3 * SCALE) == 1, h.log()
    assert "69633-byte frame" in h.log()
    p.close()


def test_fd_not_a_socket(helpers):
    r, w = os.pipe()
    try:
        h = helpers(["--fd", str(r)], pass_fds=[r], wait_ready=False)
    finally:
        os.close(r)
        os.close(w)
    assert h.wait(5 * SCALE) == 1
    assert "not a socket" in h.log()


def test_transport_usage_errors(helpers, workdir):
    for args, text in [([], "no guest link given"),
                       (["--socket", os.path.join(workdir, "a"), "--dgram", os.path.join(workdir, "b")],
                        "more than one guest link"),
                       (["--dgram", os.path.join(workdir, "b"), "--one-off"], "--one-off"),
                       (["--socket", os.path.join(workdir, "a"), "--mtu=12"], "mtu")]:
        h = helpers(args, wait_ready=False)
        assert h.wait(5 * SCALE) == 2, (args, h.log())
        assert text in h.log(), (args, h.log())
