# SPDX-License-Identifier: BSD-2-Clause
"""mtu/mru: jumbo packets pass both ways; frames over max(mtu, mru) + 14 are dropped."""

import errno

from harness import (ICMP, IP, UDP, Ether, GW_IP, GW_MAC, expect_datagram, fragments,
                     icmp_echo, icmp_echo_reply_from, stats_delta, udp_to)


def oversize_frame(p, total):
    """A well-formed-looking IPv4/UDP frame of exactly `total` bytes."""
    payload = b"\xab" * (total - 14 - 20 - 8)
    f = udp_to(p, 9, payload, sport=50000)
    assert len(bytes(f)) == total
    return f


def test_jumbo_icmp_both_ways(peer):
    p = peer("mtu=9000")
    payload = bytes(i & 0xFF for i in range(9000 - 20 - 8))
    frame = icmp_echo(p, seq=90, payload=payload)
    assert len(bytes(frame)) == 9014
    p.send(frame)
    r = p.expect(icmp_echo_reply_from(p, seq=90), timeout=5)
    assert r[IP].len == 9000
    assert r[IP].flags == 0 or not r[IP].frag, "the reply must not be fragmented"
    assert bytes(r[ICMP].payload)[:len(payload)] == payload
    assert len(bytes(r)) >= 9014


def test_jumbo_udp_echo_both_ways(peer, udp_echo):
    p = peer("mtu=9000")
    payload = bytes((i * 13) & 0xFF for i in range(8972))
    f = udp_to(p, udp_echo.port, payload, sport=50001)
    assert len(bytes(f)) == 9014
    p.send(f)
    r = p.expect(lambda x: UDP in x and x[UDP].dport == 50001, timeout=5,
                 desc="8972-byte UDP echo")
    assert r[IP].len == 9000 and r[IP].frag == 0
    assert bytes(r[UDP].payload)[:8972] == payload
    assert udp_echo.received[0][0] == payload


def test_default_mtu_limit_direct(direct):
    p = direct()
    before = p.stats()
    p.send(oversize_frame(p, 1514))   # exactly mtu + 14: accepted
    p.send(oversize_frame(p, 1515))   # one byte more: dropped
    after = p.stats()
    assert after["drop_oversize"] == before["drop_oversize"] + 1
    assert after["from_guest_frames"] == before["from_guest_frames"] + 1


def test_jumbo_oversize_dropped_and_counted_direct(direct):
    p = direct("mtu=9000")
    before = p.stats()
    p.send(oversize_frame(p, 9015))
    p.send(b"\x00" * 65000)           # far over any limit (and over the helper's buffer)
    after = p.stats()
    assert after["drop_oversize"] == before["drop_oversize"] + 2
    assert after["from_guest_frames"] == before["from_guest_frames"]
    # the helper is still up
    p.send(icmp_echo(p, seq=1))
    p.expect(icmp_echo_reply_from(p, seq=1))


def test_jumbo_oversize_refused_by_plugin(plugin):
    p = plugin("slirp,mtu=9000")
    ret, err = p.be_send(bytes(oversize_frame(p, 9015)))
    assert (ret, err) == (-1, errno.EMSGSIZE)
    ret, err = p.be_send(bytes(oversize_frame(p, 9014)))
    assert ret == 9014
    # still up, and nothing was counted as oversize by the helper
    p.send(icmp_echo(p, seq=1))
    p.expect(icmp_echo_reply_from(p, seq=1))
    assert p.stats()["drop_oversize"] == 0


def test_mru_larger_than_mtu(direct):
    p = direct("mtu=1500,mru=2000")
    before = p.stats()
    p.send(oversize_frame(p, 2014))
    p.send(oversize_frame(p, 2015))
    after = p.stats()
    assert after["from_guest_frames"] == before["from_guest_frames"] + 1
    assert after["drop_oversize"] == before["drop_oversize"] + 1


def test_mru_limit_in_plugin(plugin):
    p = plugin("slirp,mtu=1500,mru=2000")
    assert p.be_send(bytes(oversize_frame(p, 2014)))[0] == 2014
    assert p.be_send(bytes(oversize_frame(p, 2015))) == (-1, errno.EMSGSIZE)


def test_large_mtu_reply_is_fragmented_for_small_mtu(peer):
    """mru=4000 lets a 3000-byte echo in; with mtu=1500 the reply comes back in
    fragments that reassemble to the original payload."""
    p = peer("mtu=1500,mru=4000")
    payload = bytes(i & 0xFF for i in range(3000 - 28))
    p.send(icmp_echo(p, seq=33, payload=payload))
    frags, data = expect_datagram(p, lambda x: x[IP].proto == 1 and x[IP].src == GW_IP)
    assert len(frags) >= 3
    assert all(f[IP].len <= 1500 for f in frags)
    icmp = ICMP(data)
    assert icmp.type == 0 and icmp.seq == 33
    assert bytes(icmp.payload) == payload


def test_fragmented_echo_from_guest(peer):
    """A guest datagram sent as in-order fragments is reassembled by libslirp."""
    p = peer()
    payload = bytes((i * 3) & 0xFF for i in range(2000))
    frame = icmp_echo(p, seq=44, payload=payload)
    frame[IP].id = 4444
    for f in fragments(frame, 1500):
        p.send(f)
    frags, data = expect_datagram(p, lambda x: x[IP].proto == 1 and x[IP].src == GW_IP)
    icmp = ICMP(data)
    assert icmp.type == 0 and icmp.seq == 44 and bytes(icmp.payload) == payload


def test_last_fragment_first_is_reassembled(peer):
    """The same datagram with its last fragment first: libslirp 4.7.0 crashes on a
    non-first fragment it has no queue for, so the helper reassembles the datagram itself
    and libslirp gets it whole."""
    p = peer()
    payload = bytes((i * 5) & 0xFF for i in range(2000))
    frame = icmp_echo(p, seq=45, payload=payload)
    frame[IP].id = 4545
    frags = fragments(frame, 1500)
    assert len(frags) == 2
    before = p.stats()
    for f in reversed(frags):
        p.send(f)
    _, data = expect_datagram(p, lambda x: x[IP].proto == 1 and x[IP].src == GW_IP)
    icmp = ICMP(data)
    assert icmp.type == 0 and icmp.seq == 45 and bytes(icmp.payload) == payload
    delta = stats_delta(before, p.stats())
    assert delta["from_guest_frames"] == 2 and delta["frag_reassembled"] == 1, delta
    assert delta["from_guest_bytes"] == sum(len(bytes(f)) for f in frags), delta


def test_lone_last_fragment_is_held(peer):
    p = peer("restrict=on")
    before = p.stats()
    p.send(Ether(src=p.guest_mac, dst=GW_MAC)
           / IP(src=p.guest_ip, dst=GW_IP, proto=17, frag=9, id=1234) / (b"x" * 60))
    p.expect_none(desc="anything in answer to a lone last fragment")
    assert stats_delta(before, p.stats()) == {"frag_held": 1, "frag_held_bytes": 1024}
    p.send(icmp_echo(p, seq=47))
    p.expect(icmp_echo_reply_from(p, seq=47))
