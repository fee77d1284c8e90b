# SPDX-License-Identifier: BSD-2-Clause
"""Runt, oversized, truncated and random frames: each one is dropped under the counter
that names why (or handed to libslirp, which ignores it), nothing comes back for it, and
the link still works afterwards.

Every frame the guest sends ends in exactly one of FROM_GUEST_OUTCOMES: taken
(from_guest_frames) or dropped by the helper (drop_runt, drop_oversize, drop_fragment,
drop_vnet_hdr, drop_frag_*), or a fragment still held for reassembly (frag_held).  The counters are read with SIGUSR1 after the helper has read everything
sent (peer.stats()).

Every test here uses restrict=on so that nothing random can leave for the host."""

import errno
import random

import pytest

from harness import (ARP, FROM_GUEST_OUTCOMES, F_ALL_OFFLOADS, IP, TCP, UDP, Ether, BCAST_MAC,
                     GW_IP, GW_MAC, VnetHdr, assert_alive, fragments, icmp_echo, stats_delta,
                     udp_to)

RESTRICTED = "restrict=on,ipv6=off"


def sent_since(p, mark):
    """Frames we sent (test and harness auto-replies alike) after log entry `mark`."""
    return sum(1 for _, d, _ in p.log[mark:] if d == "tx")


def assert_every_frame_accounted(p, before, mark):
    """Each frame sent since `mark` is counted once: taken or dropped for a named reason."""
    p.flush(0.3)                    # replies (and the harness's answers to them) first
    sent = sent_since(p, mark)
    after = p.stats()
    delta = stats_delta(before, after)
    outcomes = sum(delta.get(k, 0) for k in FROM_GUEST_OUTCOMES)
    assert outcomes == sent, "%d frames sent, %d counted: %r" % (sent, outcomes, delta)
    return delta


# --------------------------------------------------------------------------------------
# shorter than an Ethernet header: drop_runt (the plugin refuses them itself)

def test_runts_dropped_and_counted_direct(direct):
    p = direct(RESTRICTED)
    before = p.stats()
    for n in (1, 5, 13):
        p.send(b"\x52" * n)
    p.expect_none(desc="anything in answer to a runt")
    assert stats_delta(before, p.stats()) == {"drop_runt": 3}
    assert_alive(p)


def test_runts_refused_by_the_plugin(plugin):
    """send() refuses a frame shorter than an Ethernet header (EINVAL): it never reaches
    the helper, so no counter moves."""
    p = plugin("slirp," + RESTRICTED)
    before = p.stats()
    for n in (1, 5, 13):
        assert p.be_send(b"\x52" * n) == (-1, errno.EINVAL), n
    p.expect_none(desc="anything in answer to a runt")
    assert stats_delta(before, p.stats()) == {}
    assert_alive(p)


def test_empty_record_is_a_runt_not_an_eof_direct(direct):
    """A zero-length record is a runt, not an EOF: the helper counts it and goes on."""
    p = direct(RESTRICTED)
    before = p.stats()
    p.send(b"")
    assert p.wait_exit(0.5) is None, "helper exited (status %r) after an empty frame; log:\n%s" \
        % (p.returncode, p.helper_log())
    assert stats_delta(before, p.stats()) == {"drop_runt": 1}
    assert_alive(p)


def test_empty_frame_refused_by_the_plugin(plugin):
    """send() of an empty frame is refused; the backend keeps working."""
    p = plugin("slirp," + RESTRICTED)
    before = p.stats()
    assert p.be_send(b"") == (-1, errno.EINVAL)
    p.pump(0.3)
    assert p.dead_errno is None, "backend reported the helper gone after an empty frame"
    assert stats_delta(before, p.stats()) == {}
    assert_alive(p)


# --------------------------------------------------------------------------------------
# larger than MTU + 14: drop_oversize (the plugin refuses them itself)

def test_oversize_dropped_and_counted_direct(direct):
    p = direct(RESTRICTED)
    before = p.stats()
    p.send(bytes(Ether(src=p.guest_mac, dst=GW_MAC, type=0x0800)) + bytes(1501))   # 1515
    p.send(bytes(icmp_echo(p, seq=9, payload=bytes(1473))))                        # 1515
    p.expect_none(desc="anything in answer to an oversized frame")
    assert stats_delta(before, p.stats()) == {"drop_oversize": 2}
    assert_alive(p)


def test_oversize_refused_by_the_plugin(plugin):
    p = plugin("slirp," + RESTRICTED)
    before = p.stats()
    assert p.be_send(bytes(icmp_echo(p, seq=9, payload=bytes(1473)))) == (-1, errno.EMSGSIZE)
    p.expect_none(desc="anything in answer to an oversized frame")
    assert stats_delta(before, p.stats()) == {}
    assert_alive(p)


# --------------------------------------------------------------------------------------
# IPv4 fragments libslirp 4.7 would crash on: the helper reassembles them itself
# (test_fragments.py has the rest)

def lone_fragment(p, offset, more, ident):
    """A non-first IPv4 fragment (offset in 8-byte units) whose first one never came."""
    return (Ether(src=p.guest_mac, dst=GW_MAC)
            / IP(src=p.guest_ip, dst=GW_IP, proto=17, id=ident, frag=offset,
                 flags="MF" if more else 0) / (b"x" * 64))


def test_fragment_without_its_first_is_held(peer):
    """libslirp 4.7 crashed on these; now they wait for their first fragment (frag_held)."""
    p = peer(RESTRICTED)
    before = p.stats()
    p.send(lone_fragment(p, 9, more=False, ident=0x1234))    # a lone last fragment
    p.send(lone_fragment(p, 3, more=True, ident=0x1235))     # a lone middle one
    p.expect_none(desc="anything in answer to a lone fragment")
    assert stats_delta(before, p.stats()) == {"frag_held": 2, "frag_held_bytes": 2048}
    assert_alive(p)


def test_fragment_train_in_order_is_taken(peer):
    """An in-order train reaches libslirp as one datagram and is answered."""
    p = peer(RESTRICTED)
    frame = icmp_echo(p, seq=21, payload=bytes(range(256)) * 4)
    frame[IP].id = 0x2121
    frags = fragments(frame, 300)
    before = p.stats()
    for f in frags:
        p.send(f)
    r = p.expect(lambda x: IP in x and x[IP].src == GW_IP and x[IP].proto == 1,
                 desc="the reply to the reassembled echo (or its first fragment)")
    assert r[IP].dst == p.guest_ip
    delta = stats_delta(before, p.stats())
    assert delta["from_guest_frames"] == len(frags) and "drop_fragment" not in delta, delta
    assert delta["frag_reassembled"] == 1, delta


# --------------------------------------------------------------------------------------
# a bad virtio-net header (plugin with offloads negotiated): drop_vnet_hdr

@pytest.mark.parametrize("hdr", [
    VnetHdr(gso_type=VnetHdr.GSO_UDP, gso_size=1000),                        # UFO: not offered
    VnetHdr(flags=VnetHdr.F_NEEDS_CSUM, csum_start=5000, csum_offset=16),    # outside the frame
    VnetHdr(flags=VnetHdr.F_NEEDS_CSUM, csum_start=34, csum_offset=60000),
], ids=["ufo", "csum-start-outside", "csum-offset-outside"])
def test_bad_vnet_header_dropped_and_counted(plugin, hdr):
    p = plugin("slirp," + RESTRICTED)
    p.use_vnet_hdr(F_ALL_OFFLOADS)
    before = p.stats()
    p.send_with_vnet_hdr(hdr, udp_to(p, 9, b"u" * 100, dst=GW_IP) if hdr.gso_type
                         else icmp_echo(p, seq=5))
    p.expect_none(desc="anything in answer to a frame with a bad virtio-net header")
    assert stats_delta(before, p.stats()) == {"drop_vnet_hdr": 1}
    assert_alive(p)


# --------------------------------------------------------------------------------------
# well-sized but malformed: handed to libslirp, which ignores them

def _eth(p, dst=GW_MAC, **kw):
    return Ether(src=p.guest_mac, dst=dst, **kw)


def _ip(p, **kw):
    return _eth(p) / IP(src=p.guest_ip, dst=GW_IP, **kw)


def is_ncsi(x):
    """An NC-SI frame (ethertype 0x88f8)."""
    return Ether in x and x[Ether].type == 0x88F8


# name -> (frame for peer p, libslirp's answer: None or a predicate)
MALFORMED = {
    "eth-header-only": (lambda p: bytes(icmp_echo(p, seq=5))[:14], None),
    "ipv4-header-cut": (lambda p: bytes(icmp_echo(p, seq=5))[:20], None),
    "ipv4-no-icmp": (lambda p: bytes(icmp_echo(p, seq=5))[:34], None),
    "ihl-too-small": (lambda p: bytes(_ip(p, ihl=2) / (b"\0" * 20)), None),
    "ip-len-beyond-frame": (lambda p: bytes(_ip(p, len=1400) / UDP(sport=1, dport=9)
                                            / b"short"), None),
    "version-6-in-ipv4": (lambda p: bytes(_ip(p, version=6) / (b"\0" * 30)), None),
    "tcp-offset-too-big": (lambda p: bytes(_ip(p) / TCP(sport=1, dport=80, dataofs=15)
                                           / (b"\0" * 4)), None),
    "arp-cut": (lambda p: bytes(_eth(p, BCAST_MAC, type=0x0806) / b"\x00\x01\x08\x00"), None),
    "arp-hwlen-16": (lambda p: bytes(_eth(p, BCAST_MAC) / ARP(op=1, pdst=GW_IP, hwlen=16,
                                                              psrc=p.guest_ip,
                                                              hwsrc=p.guest_mac)), None),
    "ipv6-cut": (lambda p: bytes(_eth(p, type=0x86DD)) + b"\x60" + b"\0" * 10, None),
    # NC-SI: libslirp's responder answers any NC-SI command, even all zeros
    "ncsi-zeros": (lambda p: bytes(_eth(p, type=0x88F8) / (b"\0" * 40)), is_ncsi),
    "ncsi-empty": (lambda p: bytes(_eth(p, type=0x88F8)), None),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_frame_taken_and_ignored(peer, name):
    """Long enough for the helper, so libslirp gets it (from_guest_frames), ignores it
    (nothing comes back: not even a frame the harness would answer by itself), and the
    link goes on."""
    p = peer(RESTRICTED)
    p.flush(0.2)
    build, answer = MALFORMED[name]
    frame = build(p)
    before, mark = p.stats(), len(p.log)
    p.send(frame)
    if answer is None:
        p.expect_none(desc="anything in answer to the malformed frame " + name)
    else:
        p.expect(answer, desc="libslirp's answer to " + name)
    p.flush(0.1)
    rx = [data for _, d, data in p.log[mark:] if d == "rx"]
    assert len(rx) == (0 if answer is None else 1), rx
    expected = {"from_guest_frames": 1, "from_guest_bytes": len(frame)}
    if rx:
        expected.update(to_guest_frames=1, to_guest_bytes=len(rx[0]))
    assert stats_delta(before, p.stats()) == expected
    assert_alive(p)


# --------------------------------------------------------------------------------------
# garbage in bulk: every frame is still accounted for, and the helper survives

def test_random_frames(peer):
    """Deterministic garbage: random payloads behind plausible and random ethertypes."""
    p = peer(RESTRICTED)
    rng = random.Random(0x51199)
    types = [0x0800, 0x0806, 0x86DD, 0x88F8, 0x8100, 0x1234, 0xFFFF]
    before, mark = p.stats(), len(p.log)
    for i in range(300):
        n = rng.randint(14, 1514)
        body = bytes(rng.getrandbits(8) for _ in range(n - 14))
        etype = rng.choice(types) if i % 4 else rng.getrandbits(16)
        dst = GW_MAC if i % 3 else BCAST_MAC
        frame = bytes(Ether(src=p.guest_mac, dst=dst, type=etype)) + body
        p.send(frame[:n])
        if i % 50 == 49:
            p.flush(0)   # keep our own queue short; replies (e.g. RSTs) are fine
    assert_every_frame_accounted(p, before, mark)
    assert_alive(p, seq=2000)


def test_random_ipv4_headers(peer):
    """Valid Ethernet and IPv4 header fields, random protocol/flags/options/payload."""
    p = peer(RESTRICTED)
    rng = random.Random(4242)
    before, mark = p.stats(), len(p.log)
    for i in range(200):
        proto = rng.choice([1, 6, 17, 2, 47, rng.getrandbits(8)])
        ip = IP(src=p.guest_ip, dst=rng.choice([GW_IP, "10.0.2.3", "10.0.2.99"]),
                proto=proto, flags=rng.getrandbits(3), frag=rng.getrandbits(4),
                ttl=rng.randint(0, 3), id=rng.getrandbits(16))
        body = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 200)))
        p.send(Ether(src=p.guest_mac, dst=GW_MAC) / ip / body)
        if i % 50 == 49:
            p.flush(0)
    delta = assert_every_frame_accounted(p, before, mark)
    # random flags: the reserved one (and random offsets' bad lengths) are dropped
    assert delta.get("drop_fragment", 0) > 0, delta
    assert_alive(p, seq=3000)


def test_fragment_fuzz(peer):
    """IPv4 fragment trains cut, shuffled, duplicated and corrupted at random: libslirp 4.7
    crashes when ip_reass() sees a non-first fragment first, so the helper reassembles
    them itself whatever the order or the header damage (checksum, lengths, TTL, version)."""
    p = peer(RESTRICTED)
    rng = random.Random(0xF4A6)
    before, mark = p.stats(), len(p.log)
    for train in range(120):
        ident = rng.getrandbits(16)
        whole = (Ether(src=p.guest_mac, dst=GW_MAC) /
                 IP(src=p.guest_ip, dst=rng.choice([GW_IP, "10.0.2.99"]), id=ident,
                    proto=rng.choice([1, 17, 6, 99])) /
                 bytes(rng.getrandbits(8) for _ in range(rng.randint(16, 600))))
        frags = [bytearray(bytes(f)) for f in fragments(whole, rng.choice([28, 36, 84, 148]))]
        if rng.random() < 0.5:
            rng.shuffle(frags)
        if rng.random() < 0.3:
            frags += [bytearray(rng.choice(frags))]             # a duplicate
        if rng.random() < 0.3:
            frags = frags[1:] or frags                          # the first one lost
        for f in frags:
            if rng.random() < 0.15:
                byte = rng.choice([14 + 0, 14 + 2, 14 + 3, 14 + 8, 14 + 10])  # ver/len/ttl/sum
                f[byte] ^= 1 << rng.randint(0, 7)
            p.send(bytes(f))
        if train % 30 == 29:
            p.flush(0)
    delta = assert_every_frame_accounted(p, before, mark)
    assert delta.get("drop_fragment", 0) > 0, delta
    assert_alive(p, seq=4000)
