# SPDX-License-Identifier: BSD-2-Clause
"""test_offload.py - virtio-net offloads through the plugin ABI: TSO in, GSO out, cutting to the link MTU, bad headers.

After set_cap(features, hdr_len) every frame carries a virtio-net header (netbe.h). The
peer plays a virtio NIC whose guest uses TSO (PluginPeer.tso_tx): large TCP frames go out
as GSO frames with a partial checksum; frames coming back have their header in
peer.vnet_rx. Traffic goes only to servers on 127.0.0.1 through the gateway (10.0.2.2;
tests that connect out run without restrict=on, as test_tcp.py does) or hostfwd.
"""

import errno
import socket
import time

import pytest

from harness import (ARP, BCAST_MAC, GW_IP, F_ALL_OFFLOADS, F_HOST_TSO4, F_HOST_TSO6, IP, TCP, DirectPeer,
                     Ether, IPv6, PluginPeer, Raw, TcpConn, VnetHdr, tso_frame,
                     complete_partial_csum, expect_datagram, free_port, hostfwd_download, icmp_echo,
                     icmp_echo_reply_from, tcp_csum_ok, udp_to)

MTU_FRAME = 1514


def pattern(n, seed=7):
    return bytes((i * 31 + seed) & 0xFF for i in range(n))


def tcp_from(p, port):
    """The (header, frame) pairs of TCP frames received from the gateway's port."""
    out = []
    for hdr, f in p.vnet_rx:
        e = Ether(f)
        if TCP in e and e[IP].src == GW_IP and e[TCP].sport == port:
            out.append((hdr, f))
    return out


def echo_through(p, port, n, mss):
    c = TcpConn.connect(p, GW_IP, port)
    c.mss = mss                      # the guest's TSO: segments of up to mss bytes
    data = pattern(n)
    c.send(data, timeout=15)
    assert c.recv(len(data), timeout=15) == data
    c.close()
    c.wait_fin()


@pytest.mark.parametrize("hdr_len", [10, 12])
def test_plain_frames_carry_a_zero_header(plugin, hdr_len):
    p = plugin("slirp,restrict=on")
    p.use_vnet_hdr(0, hdr_len)
    base = p.stats()
    p.send(icmp_echo(p, seq=1))
    p.expect(icmp_echo_reply_from(p, seq=1))
    st = p.stats()
    # the helper counts frame bytes, never the header, both ways
    assert st["to_guest_bytes"] - base["to_guest_bytes"] == sum(len(f) for _, f in p.vnet_rx), st
    assert st["from_guest_bytes"] - base["from_guest_bytes"] == len(bytes(icmp_echo(p, seq=1))), st
    assert p.vnet_rx
    for hdr, _frame in p.vnet_rx:
        assert (hdr.flags, hdr.gso_type, hdr.gso_size) == (0, 0, 0)
        assert hdr.num_buffers == (1 if hdr_len == 12 else 0)


def test_header_lengths_are_counted_by_peek_and_recv(plugin):
    p = plugin("slirp,restrict=on", auto_drain=False)
    p.use_vnet_hdr(0, 12)
    p.send(icmp_echo(p, seq=2, payload=b"x" * 100))
    n = 0
    for _ in range(300):
        p.iterate()
        n, _err = p.be_peek()
        if n:
            break
        time.sleep(0.01)
    assert n == 12 + 14 + 20 + 8 + 100
    ret, err, data = p.be_recv(n)
    assert ret == n and IP in Ether(data[12:])


def test_tso_in_and_gso_out(plugin, tcp_echo):
    """64 KiB guest segments reach the host whole; libslirp's large segments come back
    as GSO frames for a guest with GUEST_TSO4 + GUEST_CSUM."""
    p = plugin("slirp")
    p.use_vnet_hdr(F_ALL_OFFLOADS)
    p.tso_tx = True
    echo_through(p, tcp_echo.port, 256 * 1024, mss=60000)
    st = p.stats()
    assert st["from_guest_gso"] >= 4, st
    assert st["to_guest_gso"] >= 1, st
    assert st["drop_vnet_hdr"] == 0, st
    big = [(h, f) for h, f in tcp_from(p, tcp_echo.port) if len(f) > MTU_FRAME]
    assert big, "no frame above the link MTU came back"
    for h, f in big:
        assert (h.gso_type, h.flags, h.gso_size) == (VnetHdr.GSO_TCPV4, VnetHdr.F_NEEDS_CSUM, 1460), h
        assert (h.csum_start, h.csum_offset, h.hdr_len) == (34, 16, 54), h
        assert tcp_csum_ok(complete_partial_csum(h, f)), "bad partial checksum: %r" % h


def test_no_set_cap_means_plain_link_frames(plugin, tcp_echo):
    p = plugin("slirp")
    c = TcpConn.connect(p, GW_IP, tcp_echo.port)
    data = pattern(96 * 1024)
    c.send(data, timeout=15)
    assert c.recv(len(data), timeout=15) == data
    sizes = [len(bytes(f)) for f in c.segments_in]
    assert max(sizes) <= MTU_FRAME, sizes


def test_withdrawn_tso_cuts_segments_of_an_open_connection(plugin, tcp_echo):
    p = plugin("slirp")
    p.use_vnet_hdr(F_ALL_OFFLOADS)
    c = TcpConn.connect(p, GW_IP, tcp_echo.port)
    p.use_vnet_hdr(0)                # e.g. the guest's driver was reset
    data = pattern(64 * 1024)
    c.send(data, timeout=15)
    assert c.recv(len(data), timeout=15) == data
    assert all(len(f) <= MTU_FRAME for _, f in tcp_from(p, tcp_echo.port))
    # libslirp still makes 32 KiB segments on this connection: the helper cut them
    assert p.stats()["to_guest_split"] > 0


def test_hostfwd_connection_gets_gso_segments(plugin):
    """For connections libslirp opens (hostfwd) it honours the guest's MSS, which the
    helper raises for a GUEST_TSO guest."""
    port = free_port()
    p = plugin("slirp,restrict=on,hostfwd=tcp:127.0.0.1:%d-:5001" % port)
    p.use_vnet_hdr(F_ALL_OFFLOADS)
    p.stats()                        # the helper has taken the features
    hostfwd_download(p, port, 5001, pattern(200 * 1024, seed=3))
    gso = [hd for hd, f in p.vnet_rx if hd.gso_type == VnetHdr.GSO_TCPV4]
    assert gso and all(hd.gso_size == 1460 for hd in gso), gso[:3]


def test_large_udp_to_a_guest_is_fragmented(plugin):
    port = free_port(socket.SOCK_DGRAM)
    p = plugin("slirp,restrict=on,hostfwd=udp:127.0.0.1:%d-:5555" % port)
    p.use_vnet_hdr(F_ALL_OFFLOADS)
    p.stats()                        # the helper has taken the features
    payload = pattern(4000, seed=11)
    h = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        h.sendto(payload, ("127.0.0.1", port))
        frags, data = expect_datagram(p, lambda x: x[IP].proto == 17 and x[IP].src == GW_IP)
    finally:
        h.close()
    assert len(frags) >= 3
    assert all(len(bytes(f)) <= MTU_FRAME for f in frags)
    assert data[8:] == payload
    assert p.stats()["to_guest_split"] >= 3


def test_bad_headers_are_dropped_and_counted(plugin):
    p = plugin("slirp,restrict=on")
    p.use_vnet_hdr(F_ALL_OFFLOADS)
    base = p.stats()["drop_vnet_hdr"]
    # UFO was never offered
    p.send_with_vnet_hdr(VnetHdr(gso_type=VnetHdr.GSO_UDP, gso_size=1000),
                         udp_to(p, 9, b"u" * 100, dst=GW_IP))
    # checksum fields outside the frame
    p.send_with_vnet_hdr(VnetHdr(flags=VnetHdr.F_NEEDS_CSUM, csum_start=5000, csum_offset=16),
                         icmp_echo(p, seq=5))
    p.send_with_vnet_hdr(VnetHdr(flags=VnetHdr.F_NEEDS_CSUM, csum_start=34, csum_offset=60000),
                         icmp_echo(p, seq=6))
    p.expect_none(icmp_echo_reply_from(p, seq=5))
    assert p.stats()["drop_vnet_hdr"] == base + 3
    p.send(icmp_echo(p, seq=7))      # and the link still works
    p.expect(icmp_echo_reply_from(p, seq=7))


def _gso_misuse_frames(p, port):
    """Frames a guest might mark GSO_TCPV4 although they are no whole IPv4 TCP segment;
    each is larger than the link's mru, which only a real GSO frame may be."""
    big = b"u" * 3000
    return {
        "udp": bytes(udp_to(p, port, big, dst=GW_IP)),
        "arp": bytes(Ether(src=p.guest_mac, dst=BCAST_MAC) / ARP(op=1, psrc=p.guest_ip, pdst=GW_IP)
                     / Raw(load=big)),
        "tcp-fragment": bytes(Ether(src=p.guest_mac, dst=p.gw_mac)
                              / IP(src=p.guest_ip, dst=GW_IP, flags="MF", id=77)
                              / TCP(sport=40000, dport=port, flags="S") / Raw(load=big)),
        "ipv6-tcp-as-tcpv4": bytes(Ether(src=p.guest_mac, dst=p.gw_mac)
                                   / IPv6(src="fec0::15", dst="fec0::2")
                                   / TCP(sport=40000, dport=port, flags="S") / Raw(load=big)),
    }


@pytest.mark.parametrize("kind", ["udp", "arp", "tcp-fragment", "ipv6-tcp-as-tcpv4"])
def test_gso_type_on_a_frame_that_is_no_tcp_segment_is_dropped(plugin, udp_echo, kind):
    """GSO lets a frame be 64 KiB instead of mru: it is honoured only for a whole TCP
    segment of the IP version the GSO type names."""
    p = plugin("slirp")
    p.use_vnet_hdr(F_ALL_OFFLOADS)
    base = p.stats()
    p.send_with_vnet_hdr(VnetHdr(gso_type=VnetHdr.GSO_TCPV4, gso_size=1460),
                         _gso_misuse_frames(p, udp_echo.port)[kind])
    st = p.stats()
    assert st["drop_vnet_hdr"] == base["drop_vnet_hdr"] + 1, st
    assert st["from_guest_frames"] == base["from_guest_frames"], st
    time.sleep(0.3)
    assert udp_echo.received == []


def test_gso_without_negotiated_host_tso_is_dropped(plugin, udp_echo):
    """A guest that never took HOST_TSO4/6 sends no GSO frames; one that does is dropped,
    even for a TCP segment (a plain frame of the same size is over mru as well)."""
    p = plugin("slirp")
    p.use_vnet_hdr(F_ALL_OFFLOADS & ~(F_HOST_TSO4 | F_HOST_TSO6))
    base = p.stats()
    p.send_with_vnet_hdr(VnetHdr(gso_type=VnetHdr.GSO_TCPV4, gso_size=1460),
                         _gso_misuse_frames(p, udp_echo.port)["udp"])
    hdr, tso = tso_frame(Ether(src=p.guest_mac, dst=p.gw_mac) / IP(src=p.guest_ip, dst=GW_IP)
                         / TCP(sport=40001, dport=udp_echo.port, flags="A") / Raw(load=b"t" * 3000))
    p.send_with_vnet_hdr(hdr, tso)
    st = p.stats()
    assert st["drop_vnet_hdr"] == base["drop_vnet_hdr"] + 2, st
    assert st["from_guest_frames"] == base["from_guest_frames"], st
    time.sleep(0.3)
    assert udp_echo.received == []
    p.send(icmp_echo(p, seq=9))      # and the link still works
    p.expect(icmp_echo_reply_from(p, seq=9))


def test_gso_frame_larger_than_64k_is_refused(plugin):
    p = plugin("slirp,restrict=on", auto_drain=False)
    p.use_vnet_hdr(F_ALL_OFFLOADS)
    hdr = bytes(VnetHdr(gso_type=VnetHdr.GSO_TCPV4, gso_size=1460))
    assert p.be_send(hdr + bytes(14 + 65536)) == (-1, errno.EMSGSIZE)
    assert p.be_send(bytes(12) + bytes(MTU_FRAME + 1)) == (-1, errno.EMSGSIZE)
    assert p.be_send(bytes(12) + bytes(13)) == (-1, errno.EINVAL)


@pytest.mark.parametrize("record", [b"\x00" * 5, b"\x80" + b"\x00" * 11 + b"\x01"],
                         ids=["shorter-than-header", "short-set-features"])
def test_malformed_records_on_the_v2_wire(helper_path, record):
    """A peer speaking wire version 2 directly: records the plugin never makes are
    dropped and counted, and the helper goes on."""
    d = DirectPeer("restrict=on", helper=helper_path, version=2, prime=False)
    try:
        d._send_raw(record)
        st = d.stats()
        assert st["drop_vnet_hdr"] == 1, st
    finally:
        d.close()


FAKE_HELPER = r'''#!/usr/bin/python3
# A stand-in for the slirpnet helper: answers the config, then queues two frames for
# the plugin: a GSO frame (which an emulator without GUEST_TSO cannot take) and a plain one.
import socket, sys, time
from gi.repository import GLib
s = socket.socket(fileno=3)
s.setblocking(True)   # the plugin's socketpair is non-blocking
s.recv(1 << 20)
s.send(GLib.Variant("(bs)", (True, "")).get_data_as_bytes().get_data())
gso = bytes([0, 1]) + bytes(10) + b"G" * 60          # gso_type TCPV4
plain = bytes(12) + b"P" * 42
s.send(gso)
s.send(plain)
while s.recv(1 << 17):
    pass
'''


def test_peek_and_recv_agree_on_skipped_frames(lib_path, tmp_path):
    """A frame the negotiated features exclude (a GSO frame queued before a reset) is
    skipped by peek_recvlen as by recv: the length peeked is the frame received."""
    fake = tmp_path / "fake-helper"
    fake.write_text(FAKE_HELPER)
    fake.chmod(0o755)
    p = PluginPeer("slirp", lib=lib_path, helper=str(fake), auto_drain=False, rx=False,
                   prime=False)
    try:
        n = p.wait_peek()
        assert n == 42, "peek_recvlen reported %d (the GSO frame is 60)" % n
        ret, err, data = p.be_recv(n)
        assert (ret, data) == (42, b"P" * 42)
        assert p.be_peek() == (0, 0)
    finally:
        p.close()
