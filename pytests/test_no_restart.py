# SPDX-License-Identifier: BSD-2-Clause
"""test_no_restart.py - libslirp is started once: offloads taken or withdrawn with connections open change nothing but the frames.

On a link that negotiates virtio-net offloads (the plugin, wire version 2) libslirp runs at
a large MTU from the start, and each of its segments reaches the guest whole (GSO) or cut
to the link MTU, frame by frame, as the features in effect say. So renegotiating offloads
keeps every connection (IPv4 and IPv6) and every hostfwd listener's socket.
Traffic goes only to 127.0.0.1 / ::1 through hostfwd rules (restrict=on).
"""

import socket

import pytest

from harness import (F_ALL_OFFLOADS, F_CSUM, F_HOST_TSO4, GUEST_IP6, TCP, Ether,
                     TcpConn, TcpConn6, VnetHdr, free_port, hostfwd_download, listener_inodes, router_solicit, tcp_csum_ok)
from scapy.layers.inet6 import ICMPv6ND_RA, ICMPv6NDOptMTU

MTU_FRAME = 1514


def pattern(n, seed=7):
    return bytes((i * 31 + seed) & 0xFF for i in range(n))


def exchange(host, conn, n, seed):
    """host -> guest n bytes, then guest -> host n bytes, on one open connection."""
    data = pattern(n, seed)
    host.sendall(data)
    assert conn.recv(n, timeout=15)[-n:] == data
    conn.rx.clear()
    conn.send(data[::-1], timeout=15)
    got = b""
    while len(got) < n:
        chunk = host.recv(n - len(got))
        assert chunk, "the host side saw the connection close"
        got += chunk
    assert got == data[::-1]


def test_renegotiating_offloads_keeps_connections_and_listeners(plugin):
    p4, p6 = free_port(), free_port()
    p = plugin("slirp,restrict=on,hostfwd=tcp:127.0.0.1:%d-:5001,hostfwd=tcp:[::1]:%d-[%s]:5002"
               % (p4, p6, GUEST_IP6))
    p.use_vnet_hdr(0)
    pid = p.helper_pid()
    before = listener_inodes(pid, {p4, p6})
    assert set(before) == {p4, p6}, before
    # with no connection open (where a restart would have been "safe") as well
    p.use_vnet_hdr(F_ALL_OFFLOADS)
    p.use_vnet_hdr(0)
    assert listener_inodes(pid, {p4, p6}) == before, "a hostfwd listener was re-opened"

    h4 = socket.create_connection(("127.0.0.1", p4), timeout=10)
    c4 = TcpConn.accept(p, 5001)
    h6 = socket.create_connection(("::1", p6), timeout=10)
    c6 = TcpConn6.accept(p, 5002)
    try:
        exchange(h4, c4, 20000, 1)
        exchange(h6, c6, 20000, 2)
        for features in (F_ALL_OFFLOADS, 0, F_ALL_OFFLOADS):
            p.use_vnet_hdr(features)
            exchange(h4, c4, 60000, 3)
            exchange(h6, c6, 60000, 4)
        assert listener_inodes(pid, {p4, p6}) == before, "a hostfwd listener was re-opened"
        # the listeners still accept new connections
        h4b = socket.create_connection(("127.0.0.1", p4), timeout=10)
        c4b = TcpConn.accept(p, 5001)
        exchange(h4b, c4b, 1000, 5)
        h4b.close()
    finally:
        h4.close()
        h6.close()
    assert "restart" not in p.helper_log()


def test_offloads_taken_on_an_open_connection_apply_at_once(plugin):
    """No restart needed: a GUEST_TSO guest gets GSO frames on a connection it opened
    before taking the offloads."""
    port = free_port()
    p = plugin("slirp,restrict=on,hostfwd=tcp:127.0.0.1:%d-:5001" % port)
    p.use_vnet_hdr(0)
    h = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        c = TcpConn.accept(p, 5001, mss=60000)
        p.use_vnet_hdr(F_ALL_OFFLOADS)   # taken with the connection open
        data = pattern(256 * 1024, seed=9)
        h.sendall(data)
        assert c.recv(len(data), timeout=15) == data
    finally:
        h.close()
    gso = [hd for hd, f in p.vnet_rx if hd.gso_type == VnetHdr.GSO_TCPV4]
    assert gso and all(hd.gso_size == 1460 for hd in gso), gso[:3]
    assert p.stats()["to_guest_gso"] == len(gso)


@pytest.mark.parametrize("features", [F_CSUM | F_HOST_TSO4, 0], ids=["host-tso-only", "none"])
def test_without_guest_tso_frames_fit_the_link(plugin, features):
    """A guest that did not take GUEST_TSO gets frames of at most MTU + 14, each with a
    valid checksum and no GSO marking, whatever size libslirp's segments are."""
    port = free_port()
    p = plugin("slirp,restrict=on,hostfwd=tcp:127.0.0.1:%d-:5001" % port)
    p.use_vnet_hdr(features)
    # mss=60000: libslirp may send large segments; the link must cut them
    hostfwd_download(p, port, 5001, pattern(256 * 1024, seed=5), mss=60000)
    frames = [(hd, f) for hd, f in p.vnet_rx if TCP in Ether(f) and Ether(f)[TCP].dport == 5001]
    assert frames
    for hd, f in frames:
        assert len(f) <= MTU_FRAME and hd.gso_type == 0 and hd.flags == 0, (len(f), hd)
        assert tcp_csum_ok(f)
    st = p.stats()
    assert st["to_guest_gso"] == 0 and st["to_guest_split"] > 0, st


def test_router_advertisement_announces_the_link_mtu(plugin):
    """libslirp runs at a large MTU on an offloading link: what it announces in its RAs
    (if anything) must still be the link's MTU, or the guest would send too large frames."""
    p = plugin("slirp,restrict=on")
    p.use_vnet_hdr(0)
    p.send(router_solicit(p))
    ra = p.expect(lambda x: ICMPv6ND_RA in x, desc="router advertisement")
    if ICMPv6NDOptMTU in ra:
        assert ra[ICMPv6NDOptMTU].mtu == 1500, ra.show(dump=True)
