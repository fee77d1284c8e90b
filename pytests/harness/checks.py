# SPDX-License-Identifier: BSD-2-Clause
"""checks.py - positive checks that a link is up (the gateway answers ARP, ICMP), to pair with every negative one."""

from .frames import arp_who_has, icmp6_echo, icmp_echo, icmp_echo_reply_from
from .layers import ARP, IP, Ether, ICMPv6EchoReply
from .peers import MIN_FRAME

__all__ = ["arp_check", "ping_check", "short_ping_check", "assert_alive", "assert_alive6"]


def arp_check(p):
    """ARP who-has for the gateway (p.gw_ip); returns the raw bytes of the reply."""
    p.send(arp_who_has(p.gw_ip, p))
    r = p.expect(Ether(dst=p.guest_mac) / ARP(op=2, psrc=p.gw_ip, hwsrc=p.gw_mac,
                                              pdst=p.guest_ip),
                 desc="ARP reply from the gateway %s (link alive)" % p.gw_ip)
    return bytes(r)


def ping_check(p, seq=1, payload=b"slirpnet-transport"):
    """An echo to the gateway and its reply; returns the raw bytes of the reply."""
    p.send(icmp_echo(p, seq=seq, payload=payload))
    r = p.expect(icmp_echo_reply_from(p, seq=seq, payload=payload))
    return bytes(r)


def short_ping_check(p, seq=0x55):
    """An echo with a 4-byte payload: libslirp's reply is a 46-byte frame, which must reach
    QEMU padded to 60 with zeros.  (libslirp 4.7 already sends ARP replies as 64 bytes.)"""
    p.send(icmp_echo(p, seq=seq, payload=b"tiny"))
    r = p.expect(icmp_echo_reply_from(p, seq=seq, payload=b"tiny"))
    raw = bytes(r)
    real = 14 + r[IP].len
    assert real == 46, "unexpected reply size %d" % real
    assert len(raw) == MIN_FRAME, "frame of %d bytes, expected padding to %d" % (len(raw), MIN_FRAME)
    assert raw[real:] == bytes(MIN_FRAME - real), "padding is not zero: %s" % raw[real:].hex()
    return raw


def assert_alive(p, seq=0xA11E):
    """The link and the helper still work: the gateway answers an echo (IPv4).  Call it
    in every test that asserts that something does *not* come, so that a dead link, which
    answers nothing, cannot pass it."""
    ping_check(p, seq=seq, payload=b"alive?")
    status = p.helper_status()
    assert status is None, "the helper has ended (%r); log:\n%s" % (status, p.helper_log())


def assert_alive6(p, seq=0xA116):
    """assert_alive over IPv6 (for ipv4=off): the gateway answers an ICMPv6 echo."""
    p.send(icmp6_echo(p, id=0xA116, seq=seq, payload=b"alive6?"))
    p.expect(lambda x: ICMPv6EchoReply in x and x[ICMPv6EchoReply].id == 0xA116
             and x[ICMPv6EchoReply].seq == seq, desc="ICMPv6 echo reply (link alive)")
    status = p.helper_status()
    assert status is None, "the helper has ended (%r); log:\n%s" % (status, p.helper_log())
