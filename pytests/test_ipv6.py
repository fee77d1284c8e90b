# SPDX-License-Identifier: BSD-2-Clause
"""IPv6 on the guest link: router advertisements and echo to the gateway (all answered
inside libslirp)."""

from harness import (ICMPv6ND_NS, ICMPv6ND_RA, IPv6, Ether, GW_IP6, assert_alive, icmp6_echo,
                     router_solicit, stats_delta)
from scapy.layers.inet6 import ICMPv6EchoReply, ICMPv6NDOptPrefixInfo


def is_ra(p):
    return ICMPv6ND_RA in p


def test_router_solicitation_answered(peer):
    p = peer()
    p.send(router_solicit(p))
    ra = p.expect(is_ra, desc="router advertisement")
    pi = ra[ICMPv6NDOptPrefixInfo]
    assert pi.prefix == "fec0::" and pi.prefixlen == 64
    assert ra[IPv6].hlim == 255
    assert ra[IPv6].src.startswith("fe80::")


def test_ipv6_net(peer):
    p = peer("ipv6-net=fd00:1234::/64")
    p.send(router_solicit(p))
    ra = p.expect(is_ra, desc="router advertisement")
    assert ra[ICMPv6NDOptPrefixInfo].prefix == "fd00:1234::"
    assert ra[ICMPv6NDOptPrefixInfo].prefixlen == 64


def test_ipv6_off_no_ra(peer):
    p = peer("ipv6=off")
    p.noise = []          # an RA is exactly what must not come
    before = p.stats()
    p.send(router_solicit(p))
    p.expect_none(lambda x: IPv6 in x, timeout=1.0, desc="any IPv6 frame")
    # libslirp got the solicitation and ignored it; IPv4 still answers
    assert stats_delta(before, p.stats())["from_guest_frames"] == 1
    assert_alive(p)


def test_echo6_to_gateway(peer):
    p = peer()
    p.send(icmp6_echo(p, id=0x77, seq=2, payload=b"ping6 slirpnet"))
    r = p.expect(lambda x: ICMPv6EchoReply in x, desc="ICMPv6 echo reply")
    assert r[ICMPv6EchoReply].id == 0x77 and r[ICMPv6EchoReply].seq == 2
    assert r[ICMPv6EchoReply].data == b"ping6 slirpnet"
    assert r[IPv6].src == GW_IP6 and r[IPv6].dst == p.guest_ip6
    assert r[Ether].dst == p.guest_mac


def test_echo6_to_custom_host(peer):
    p = peer("ipv6-net=fd00:1234::/64,ipv6-host=fd00:1234::5", prime=False)
    p.guest_ip6 = "fd00:1234::5054:ff:fe12:3456"
    p.guest_ip6s.add(p.guest_ip6)
    p.prime()
    p.send(icmp6_echo(p, dst="fd00:1234::5", seq=3))
    r = p.expect(lambda x: ICMPv6EchoReply in x, desc="ICMPv6 echo reply")
    assert r[IPv6].src == "fd00:1234::5"


def test_slirp_resolves_guest_ipv6(peer):
    """Unannounced guest: libslirp sends a neighbour solicitation, the harness answers,
    and the held echo reply is delivered."""
    p = peer(prime=False)
    p.send(icmp6_echo(p, id=0x78, seq=4))
    r = p.expect(lambda x: ICMPv6EchoReply in x, desc="ICMPv6 echo reply")
    assert r[ICMPv6EchoReply].id == 0x78
    ns = [d for _, direction, d in p.log if direction == "rx"
          and Ether(d).haslayer(ICMPv6ND_NS)]
    assert ns, "expected libslirp to solicit the guest's address"
