# SPDX-License-Identifier: BSD-2-Clause
"""IP fragments from the guest: the helper reassembles IPv4 and IPv6 datagrams itself and
hands libslirp whole ones only (plugin/helper/packet/ip_reassembly.hpp).

libslirp 4.7's own reassembly crashes (SIGBUS) on a non-first fragment it holds no queue
for, and the old guard in front of it could be beaten by three sequences (a reserved-flag
packet, a re-sent first fragment, a first fragment re-sent after the last); each must
leave the helper alive and a normal fragmented datagram must still get through. Out of
order trains are reassembled, overlaps drop the datagram (RFC 5722), exact duplicates are
ignored, memory stays bounded under a flood of first fragments, and IPv6 fragments (which
libslirp 4.7 drops) reach the host."""

import socket
import threading

import pytest

from harness import (GW_IP, GW_IP6, IP, UDP, Ether, ICMP, IPv6, Raw, assert_alive,
                     expect_datagram, icmp_echo)
from harness.sandbox import proc_status
from scapy.layers.inet6 import IPv6ExtHdrFragment

GW_MAC6 = "52:56:00:00:00:02"     # libslirp's IPv6 gateway MAC (harness.icmp6_echo's)


# --------------------------------------------------------------------------------------
# frames

def udp4(p, dport, payload, ident, sport=40000, dst=GW_IP):
    """A whole Ether/IPv4/UDP datagram (checksums computed), to be cut with frag4."""
    return Ether(bytes(Ether(src=p.guest_mac, dst=p.gw_mac)
                       / IP(src=p.guest_ip, dst=dst, id=ident) / UDP(sport=sport, dport=dport)
                       / Raw(payload)))


def frag4(whole, offset, size, more=None, flags=0):
    """The fragment of whole carrying its IP payload [offset, offset + size); MF unless it
    reaches the end (or as more= says); flags= adds raw flag bits (4 = reserved)."""
    ip = whole[IP]
    body = bytes(ip.payload)
    if more is None:
        more = offset + size < len(body)
    return (Ether(src=whole[Ether].src, dst=whole[Ether].dst)
            / IP(src=ip.src, dst=ip.dst, id=ip.id, proto=ip.proto, ttl=ip.ttl,
                 flags=flags | (1 if more else 0), frag=offset // 8)
            / Raw(body[offset:offset + size]))


def train4(whole, step):
    """whole cut into fragments of step bytes of IP payload (a multiple of 8)."""
    n = len(bytes(whole[IP].payload))
    return [frag4(whole, off, min(step, n - off)) for off in range(0, n, step)]


def expect_udp_echo(p, sport, payload):
    """The echo server's reply to the datagram sent from sport, reassembled; its payload
    checked."""
    _, data = expect_datagram(p, lambda x: x[IP].proto == 17 and x[IP].src == GW_IP,
                              desc="the UDP echo (or a fragment of it)")
    udp = UDP(data)
    assert udp.dport == sport and bytes(udp.payload) == payload, udp.summary()


def halves(whole):
    """whole in two fragments."""
    n = len(bytes(whole[IP].payload))
    return train4(whole, ((n + 1) // 2 + 7) // 8 * 8)


def send_all(p, frames):
    for f in frames:
        p.send(f)


def normal_datagram_gets_through(p, udp_echo, ident=0x7777, sport=40777):
    """A fragmented UDP datagram in order, echoed: the helper and reassembly still work."""
    payload = bytes((i * 11) & 0xFF for i in range(3000))
    send_all(p, train4(udp4(p, udp_echo.port, payload, ident, sport=sport), 1480))
    expect_udp_echo(p, sport, payload)
    assert p.helper_status() is None, "the helper died"


def rss_kib(pid):
    return int(proc_status(pid)["VmRSS"].split()[0])


# --------------------------------------------------------------------------------------
# the three sequences that beat the old guard (libslirp 4.7 crashed on each)

def test_reserved_flag_packet_between_fragments(peer, udp_echo):
    """first fragment, a packet of the same id with only the reserved flag (libslirp took it
    for a fragment and freed its queue), last fragment: the reserved one is dropped
    (drop_fragment), the datagram is whole."""
    p = peer()
    payload = bytes(range(256)) * 8
    whole = udp4(p, udp_echo.port, payload, 0x1001, sport=41001)
    first, last = halves(whole)
    before = p.stats()
    p.send(first)
    p.send(frag4(whole, 0, 64, more=False, flags=4))        # reserved flag alone
    p.send(last)
    expect_udp_echo(p, 41001, payload)
    delta = p.stats()
    assert delta["drop_fragment"] - before["drop_fragment"] == 1
    assert delta["frag_reassembled"] - before["frag_reassembled"] == 1
    normal_datagram_gets_through(p, udp_echo)


def test_first_fragment_resent(peer, udp_echo):
    """The first fragment twice, then the last: the copy is ignored, one datagram."""
    p = peer()
    payload = bytes(range(200)) * 10
    whole = udp4(p, udp_echo.port, payload, 0x1002, sport=41002)
    first, last = halves(whole)
    before = p.stats()
    send_all(p, [first, first, last])
    expect_udp_echo(p, 41002, payload)
    after = p.stats()
    assert after["drop_fragment"] - before["drop_fragment"] == 1
    assert after["from_guest_frames"] - before["from_guest_frames"] == 2
    assert len(udp_echo.received) == 1
    normal_datagram_gets_through(p, udp_echo)


def test_resent_first_fragment_does_not_extend_the_timeout(direct, udp_echo):
    """frag-timeout counts from the first arrival: a re-sent first fragment does not extend
    it (the old guard's timer was refreshed, libslirp's was not)."""
    import time
    p = direct("frag-timeout=1")
    payload = bytes(range(100)) * 20
    whole = udp4(p, udp_echo.port, payload, 0x1003, sport=41003)
    first, last = halves(whole)
    p.send(first)
    p.stats()                                 # the helper has it
    time.sleep(0.6)
    p.send(first)
    p.stats()
    time.sleep(0.6)                           # 1.2 s after the first, 0.6 s after the copy
    before = p.stats()
    p.send(last)                              # expires the datagram, starts another
    after = p.stats()
    assert after["drop_frag_timeout"] - before["drop_frag_timeout"] == 1
    assert after["frag_held"] == 1
    p.expect_none(lambda x: UDP in x and x[UDP].dport == 41003, desc="an echo of the expired datagram")
    assert udp_echo.received == []
    normal_datagram_gets_through(p, udp_echo)


def test_first_fragment_resent_after_the_last(peer, udp_echo):
    """first, last (a hole between: the old guard ended the train, libslirp kept its queue),
    the first again (the guard reopened a train), the middle (libslirp completed the
    datagram), the last again (the guard let it through to no queue: libslirp 4.7 crashed).
    Now: the copy of the first is ignored, the middle makes the datagram whole (one echo),
    and the late last is held as a new datagram."""
    p = peer()
    payload = bytes(range(250)) * 12
    whole = udp4(p, udp_echo.port, payload, 0x1004, sport=41004)
    first, middle, last = frag4(whole, 0, 1000), frag4(whole, 1000, 1000), frag4(whole, 2000, 1008)
    before = p.stats()
    send_all(p, [first, last, first, middle])
    expect_udp_echo(p, 41004, payload)
    p.send(last)
    after = p.stats()
    assert p.helper_status() is None, "the helper died"
    assert after.get("frag_held") == 1, after
    assert after["drop_fragment"] - before["drop_fragment"] == 1
    assert len(udp_echo.received) == 1
    normal_datagram_gets_through(p, udp_echo)


# --------------------------------------------------------------------------------------
# orders, overlaps, duplicates

@pytest.mark.parametrize("order", ["reversed", "shuffled", "last-first"])
def test_out_of_order_train_is_reassembled(peer, udp_echo, order):
    p = peer()
    payload = bytes((i * 13 + 5) & 0xFF for i in range(6000))
    frags = train4(udp4(p, udp_echo.port, payload, 0x2001, sport=42001), 1200)
    if order == "reversed":
        frags.reverse()
    elif order == "shuffled":
        frags = frags[2:] + frags[:2]
        frags[0], frags[-1] = frags[-1], frags[0]
    else:
        frags = frags[-1:] + frags[:-1]
    before = p.stats()
    send_all(p, frags)
    expect_udp_echo(p, 42001, payload)
    after = p.stats()
    assert after["from_guest_frames"] - before["from_guest_frames"] == len(frags)
    assert after["frag_reassembled"] - before["frag_reassembled"] == 1
    assert after["frag_held"] == 0 and after["frag_held_bytes"] == 0
    assert udp_echo.received[0][0] == payload


def test_largest_udp_datagram(peer, udp_echo):
    """65507 bytes of UDP payload (a 65535-byte IP packet) in 45 fragments, the last first:
    libslirp takes the reassembled frame, far above the MTU (slirp_input grows its mbuf),
    and the echo comes back whole."""
    p = peer()
    payload = bytes((i * 7 + (i >> 8)) & 0xFF for i in range(65507))
    frags = train4(udp4(p, udp_echo.port, payload, 0x2010, sport=42010), 1480)
    assert len(frags) == 45
    send_all(p, frags[-1:] + frags[:-1])
    expect_udp_echo(p, 42010, payload)
    assert udp_echo.received[0][0] == payload


def test_overlapping_fragments_drop_the_datagram(peer, udp_echo):
    p = peer()
    payload = bytes(range(256)) * 12
    whole = udp4(p, udp_echo.port, payload, 0x2002, sport=42002)
    before = p.stats()
    p.send(frag4(whole, 0, 1024))
    p.send(frag4(whole, 1016, 1024))           # 8 bytes over the first
    p.send(frag4(whole, 2040, len(payload) + 8 - 2040))
    p.expect_none(lambda x: UDP in x and x[UDP].dport == 42002, desc="an echo of an overlapping datagram")
    after = p.stats()
    assert after["drop_frag_overlap"] - before["drop_frag_overlap"] == 2
    assert after["frag_held"] - before["frag_held"] == 1   # the last starts a new datagram
    assert udp_echo.received == []
    normal_datagram_gets_through(p, udp_echo)


def test_duplicate_fragments_are_ignored(peer, udp_echo):
    p = peer()
    payload = bytes(range(256)) * 12
    frags = train4(udp4(p, udp_echo.port, payload, 0x2003, sport=42003), 1024)
    before = p.stats()
    send_all(p, [frags[0], frags[1], frags[1], frags[0]] + frags[2:])
    expect_udp_echo(p, 42003, payload)
    after = p.stats()
    assert after["drop_fragment"] - before["drop_fragment"] == 2
    assert after["drop_frag_overlap"] == before["drop_frag_overlap"]
    assert len(udp_echo.received) == 1


def test_ping_with_fragments(peer):
    """ping -s 3000 to the gateway: the echo goes in as three fragments, out of order too."""
    p = peer()
    for seq, reverse in ((1, False), (2, True)):
        payload = bytes((i * 3 + seq) & 0xFF for i in range(3000))
        frame = Ether(bytes(icmp_echo(p, seq=seq, payload=payload)))
        frame[IP].id = 0x3000 + seq
        frame = Ether(bytes(frame))
        frags = train4(frame, 1480)
        assert len(frags) == 3
        send_all(p, reversed(frags) if reverse else frags)
        _, data = expect_datagram(p, lambda x: x[IP].proto == 1 and x[IP].src == GW_IP)
        icmp = ICMP(data)
        assert icmp.type == 0 and icmp.seq == seq and bytes(icmp.payload) == payload


def test_egress_policy_judges_the_whole_datagram(direct, udp_echo):
    """deny= sees the reassembled datagram: refused once (an ICMP prohibited), counted for
    each fragment; a fragmented datagram to an allowed port goes through."""
    p = direct("deny=udp/%s:%d" % (GW_IP, udp_echo.port))
    payload = bytes(3000)
    frags = train4(udp4(p, udp_echo.port, payload, 0x2020, sport=42020), 1480)
    frags.reverse()
    before = p.stats()
    send_all(p, frags)
    r = p.expect(lambda x: ICMP in x and x[ICMP].type == 3 and x[ICMP].code == 13,
                 desc="ICMP administratively prohibited")
    assert r[IP].dst == p.guest_ip
    after = p.stats()
    assert after["drop_egress_udp"] - before["drop_egress_udp"] == len(frags)
    assert udp_echo.received == []
    allowed = direct()
    other = bytes(range(256)) * 10
    send_all(allowed, train4(udp4(allowed, udp_echo.port, other, 0x2021, sport=42021), 1480))
    expect_udp_echo(allowed, 42021, other)


# --------------------------------------------------------------------------------------
# bounds

def test_flood_of_first_fragments_stays_bounded(direct, udp_echo):
    """20000 first fragments with fresh ids, then 200 datagrams of 40 fragments that never
    complete: counters show the bounds were hit (datagrams at once, bytes held), the
    helper's RSS stays within a few MiB of where it started (libslirp 4.7's reassembly,
    which took them before, kept every one for 30 s), and a normal datagram gets through."""
    p = direct()
    pid = p.helper_pid()
    normal_datagram_gets_through(p, udp_echo, ident=0x6000, sport=43000)  # warmed up
    rss0 = rss_kib(pid)
    payload = bytes(1480)
    template = bytearray(bytes(frag4(udp4(p, 9, payload + bytes(8), 0), 0, 1480)))

    def send_with_id(ident, offset=0):
        f = bytearray(template)
        f[18:20] = ident.to_bytes(2, "big")
        f[20:22] = (0x2000 | offset // 8).to_bytes(2, "big")
        f[24:26] = b"\0\0"
        s = sum(int.from_bytes(f[14 + i:16 + i], "big") for i in range(0, 20, 2))
        while s >> 16:
            s = (s & 0xFFFF) + (s >> 16)
        f[24:26] = (~s & 0xFFFF).to_bytes(2, "big")
        p.send(bytes(f))

    for i in range(20000):
        send_with_id(i % 60000 + 1)
        if i % 500 == 499:
            p.flush(0)
    st = p.stats()
    assert 0 < st["frag_held"] <= 256, st
    assert st["drop_frag_limit"] >= 20000 - 256, st
    for ident in range(200):
        for k in range(40):
            send_with_id(61000 + ident, offset=k * 1480)
        p.flush(0)
    st = p.stats()
    assert st["frag_held_bytes"] <= 4 << 20, st
    assert st["frag_held_bytes"] > 3 << 20, st         # the bytes were the bound this time
    grown = rss_kib(pid) - rss0
    assert grown < 12 * 1024, "helper RSS grew by %d KiB under the flood" % grown
    normal_datagram_gets_through(p, udp_echo)


def test_frag_mem_zero_drops_every_fragment(direct, udp_echo):
    p = direct("frag-mem=0")
    payload = bytes(2000)
    frags = train4(udp4(p, udp_echo.port, payload, 0x4001, sport=44001), 1024)
    before = p.stats()
    send_all(p, frags)
    p.expect_none(lambda x: UDP in x and x[UDP].dport == 44001, desc="an echo")
    after = p.stats()
    assert after["drop_frag_limit"] - before["drop_frag_limit"] == len(frags)
    assert udp_echo.received == []
    assert_alive(p)


@pytest.mark.parametrize("opt,part", [("frag-mem=4096", "'4096'"), ("frag-mem=1x", "'1x'"),
                                      ("frag-timeout=0", "'0'"), ("frag-timeout=601", "'601'")])
def test_bad_fragment_options_are_refused(helper_path, opt, part):
    import subprocess
    r = subprocess.run([helper_path, "--" + opt, "--socket", "/nonexistent/frag.sock"],
                       capture_output=True, text=True, timeout=10)
    key = opt.split("=")[0]
    assert r.returncode != 0 and key + ":" in r.stderr and part in r.stderr, r.stderr


# --------------------------------------------------------------------------------------
# IPv6: new (libslirp 4.7 drops every IPv6 fragment)

class Udp6Server:
    """A UDP socket on [::1]:<ephemeral> keeping what it receives (fec0::2 reaches it)."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.sock.bind(("::1", 0))
        self.port = self.sock.getsockname()[1]
        self.received = []
        self.got = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while True:
            try:
                data, _ = self.sock.recvfrom(65536)
            except OSError:
                return
            self.received.append(data)
            self.got.set()

    def close(self):
        self.sock.close()


@pytest.fixture
def udp6_server():
    s = Udp6Server()
    yield s
    s.close()


def frags6(p, dport, payload, ident, step, sport=45000):
    """An IPv6/UDP datagram from the guest to the gateway cut into fragments of step bytes."""
    whole = IPv6(bytes(IPv6(src=p.guest_ip6, dst=GW_IP6) / UDP(sport=sport, dport=dport) / Raw(payload)))
    body = bytes(whole.payload)
    out = []
    for off in range(0, len(body), step):
        more = off + step < len(body)
        out.append(Ether(src=p.guest_mac, dst=GW_MAC6)
                   / IPv6(src=p.guest_ip6, dst=GW_IP6, nh=44)
                   / IPv6ExtHdrFragment(nh=17, offset=off // 8, m=int(more), id=ident)
                   / Raw(body[off:off + step]))
    return out


def test_ipv6_fragments_reach_the_host(plugin, udp6_server):
    """A 6000-byte UDP datagram in five fragments, out of order, reaches [::1] whole (the
    plugin runs libslirp at MTU 65520: libslirp 4.7 answers an IPv6 packet longer than its
    own MTU with Packet Too Big)."""
    p = plugin("slirp")
    payload = bytes((i * 17) & 0xFF for i in range(6000))
    frags = frags6(p, udp6_server.port, payload, 0xabcdef, 1232)
    frags.reverse()
    before = p.stats()
    send_all(p, frags)
    assert udp6_server.got.wait(3), "no datagram at [::1]:%d" % udp6_server.port
    assert udp6_server.received == [payload]
    after = p.stats()
    assert after["frag_reassembled"] - before["frag_reassembled"] == 1
    assert after["from_guest_frames"] - before["from_guest_frames"] == len(frags)


def test_ipv6_fragments_within_the_mtu(direct, udp6_server):
    """On a link where libslirp runs at the link MTU: a datagram fragmented below it."""
    p = direct()
    payload = bytes((i * 19) & 0xFF for i in range(1400))
    frags = frags6(p, udp6_server.port, payload, 0x1234, 512)
    send_all(p, [frags[1], frags[2], frags[0]])
    assert udp6_server.got.wait(3), "no datagram at [::1]:%d" % udp6_server.port
    assert udp6_server.received == [payload]
    assert_alive(p)


def test_ipv6_overlap_and_atomic_fragment(direct, udp6_server):
    p = direct()
    payload = bytes(range(200)) * 5
    frags = frags6(p, udp6_server.port, payload, 0x55, 512)
    bad = frags6(p, udp6_server.port, payload, 0x55, 504)[1]     # starts 8 bytes into the first
    before = p.stats()
    send_all(p, [frags[0], bad])
    after = p.stats()
    assert after["drop_frag_overlap"] - before["drop_frag_overlap"] == 2
    # An atomic fragment (offset 0, no M flag, RFC 6946) is the datagram itself.
    atomic = frags6(p, udp6_server.port, b"atomic", 0x56, 512)[0]
    p.send(atomic)
    assert udp6_server.got.wait(3), "the atomic fragment did not reach [::1]"
    assert udp6_server.received == [b"atomic"]
    assert_alive(p)
