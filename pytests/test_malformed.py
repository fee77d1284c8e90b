# SPDX-License-Identifier: BSD-2-Clause
"""Runt, truncated and random frames are dropped (and counted); the helper stays up.

Every test here uses restrict=on so that nothing random can leave for the host."""

import errno
import random

from harness import (ARP, IP, TCP, UDP, Ether, BCAST_MAC, GW_IP, GW_MAC, icmp_echo, fragments,
                     icmp_echo_reply_from)

RESTRICTED = "restrict=on,ipv6=off"


def alive(p, seq=1000):
    p.send(icmp_echo(p, seq=seq))
    p.expect(icmp_echo_reply_from(p, seq=seq))


def test_runts_dropped_and_counted_direct(direct):
    p = direct(RESTRICTED)
    before = p.stats()
    for n in (1, 5, 13):
        p.send(b"\x52" * n)
    after = p.stats()
    assert after["drop_runt"] == before["drop_runt"] + 3
    assert after["from_guest_frames"] == before["from_guest_frames"]
    alive(p)


def test_runts_through_plugin(plugin):
    p = plugin("slirp," + RESTRICTED)
    before = p.stats()
    for n in (1, 5, 13):
        ret, err = p.be_send(b"\x52" * n)
        # either refused by the plugin or dropped by the helper, never fatal
        assert ret == n or (ret == -1 and err in (errno.EINVAL, errno.EMSGSIZE)), (ret, err)
    st = p.stats()
    assert st["from_guest_frames"] == before["from_guest_frames"]
    alive(p)


def test_empty_record_does_not_end_the_link_direct(direct):
    """A zero-length record is a runt, not an EOF: the helper must keep running."""
    p = direct(RESTRICTED)
    p.send(b"")
    assert p.wait_exit(0.5) is None, "helper exited (status %r) after an empty frame; log:\n%s" \
        % (p.returncode, p.helper_log())
    alive(p)
    assert p.stats()["drop_runt"] >= 1


def test_empty_frame_through_plugin(plugin):
    """send() of an empty frame is refused or dropped, and the backend keeps working."""
    p = plugin("slirp," + RESTRICTED)
    ret, err = p.be_send(b"")
    assert ret == 0 or (ret == -1 and err in (errno.EINVAL, errno.EMSGSIZE)), (ret, err)
    p.pump(0.3)
    assert p.dead_errno is None, "backend reported the helper gone after an empty frame"
    alive(p)


def truncated_frames(p):
    good = bytes(icmp_echo(p, seq=5))
    yield good[:14]                                   # Ethernet header only
    yield good[:20]                                   # IPv4 header cut short
    yield good[:34]                                   # IPv4 header, no ICMP
    yield bytes(Ether(src=p.guest_mac, dst=GW_MAC) / IP(src=p.guest_ip, dst=GW_IP, ihl=2)
                / (b"\0" * 20))                         # ihl too small
    yield bytes(Ether(src=p.guest_mac, dst=GW_MAC) / IP(src=p.guest_ip, dst=GW_IP, len=1400)
                / UDP(sport=1, dport=9) / b"short")   # IP length beyond the frame
    yield bytes(Ether(src=p.guest_mac, dst=GW_MAC) / IP(src=p.guest_ip, dst=GW_IP, version=6)
                / (b"\0" * 30))                         # version mismatch
    yield bytes(Ether(src=p.guest_mac, dst=GW_MAC) / IP(src=p.guest_ip, dst=GW_IP)
                / TCP(sport=1, dport=80, dataofs=15) / (b"\0" * 4))  # TCP offset too big
    yield bytes(Ether(src=p.guest_mac, dst=BCAST_MAC, type=0x0806) / b"\x00\x01\x08\x00")
    yield bytes(Ether(src=p.guest_mac, dst=BCAST_MAC) / ARP(op=1, pdst=GW_IP, hwlen=16,
                                                          psrc=p.guest_ip, hwsrc=p.guest_mac))
    yield bytes(Ether(src=p.guest_mac, dst=GW_MAC, type=0x86dd)) + b"\x60" + b"\0" * 10
    yield bytes(Ether(src=p.guest_mac, dst=GW_MAC, type=0x88f8) / (b"\0" * 40))  # NC-SI
    yield bytes(Ether(src=p.guest_mac, dst=GW_MAC, type=0x88f8))               # NC-SI, empty


def test_truncated_and_malformed(peer):
    p = peer(RESTRICTED)
    for f in truncated_frames(p):
        p.send(f)
    alive(p)


def test_random_frames(peer):
    """Deterministic garbage: random payloads behind plausible and random ethertypes."""
    p = peer(RESTRICTED)
    rng = random.Random(0x51199)
    types = [0x0800, 0x0806, 0x86DD, 0x88F8, 0x8100, 0x1234, 0xFFFF]
    for i in range(300):
        n = rng.randint(14, 1514)
        body = bytes(rng.getrandbits(8) for _ in range(n - 14))
        etype = rng.choice(types) if i % 4 else rng.getrandbits(16)
        dst = GW_MAC if i % 3 else BCAST_MAC
        frame = bytes(Ether(src=p.guest_mac, dst=dst, type=etype)) + body
        p.send(frame[:n])
        if i % 50 == 49:
            p.flush(0)   # keep our own queue short; replies (e.g. RSTs) are fine
    alive(p, seq=2000)
    p.flush(0)


def test_random_ipv4_headers(peer):
    """Valid Ethernet and IPv4 header fields, random protocol/flags/options/payload."""
    p = peer(RESTRICTED)
    rng = random.Random(4242)
    for i in range(200):
        proto = rng.choice([1, 6, 17, 2, 47, rng.getrandbits(8)])
        ip = IP(src=p.guest_ip, dst=rng.choice([GW_IP, "10.0.2.3", "10.0.2.99"]),
                proto=proto, flags=rng.getrandbits(3), frag=rng.getrandbits(4),
                ttl=rng.randint(0, 3), id=rng.getrandbits(16))
        body = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 200)))
        p.send(Ether(src=p.guest_mac, dst=GW_MAC) / ip / body)
        if i % 50 == 49:
            p.flush(0)
    alive(p, seq=3000)


def test_fragment_fuzz(peer):
    """IPv4 fragment trains cut, shuffled, duplicated and corrupted at random: libslirp 4.7
    crashes when ip_reass() sees a non-first fragment first, so the helper's guard must
    hold whatever the order or the header damage (checksum, lengths, TTL, version)."""
    p = peer(RESTRICTED)
    rng = random.Random(0xF4A6)
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
    alive(p, seq=4000)
    assert p.stats()["drop_fragment"] > 0
