# SPDX-License-Identifier: BSD-2-Clause
"""frames.py - frames as the guest sends them (every builder sets Ether src/dst), and IPv4 fragments both ways."""

import random

from .consts import BCAST_MAC, GUEST_IP, GUEST_MAC, GW_IP6, GW_MAC
from .layers import (ARP, ICMP, IP, UDP, Ether, ICMPv6EchoRequest, ICMPv6ND_RS,
                     ICMPv6NDOptSrcLLAddr, IPv6, Raw)

__all__ = ["eth", "arp_who_has", "gratuitous_arp", "icmp_echo", "icmp_echo_reply_from",
           "udp_to", "router_solicit", "icmp6_echo", "expect_datagram", "fragments"]


def eth(peer=None, dst=GW_MAC, src=None, **kw):
    src = src or (peer.guest_mac if peer is not None else GUEST_MAC)
    return Ether(src=src, dst=dst, **kw)


def arp_who_has(pdst, peer=None, psrc=None, src=None):
    src = src or (peer.guest_mac if peer else GUEST_MAC)
    psrc = psrc or (peer.guest_ip if peer else GUEST_IP)
    return Ether(src=src, dst=BCAST_MAC) / ARP(
        op=1, hwsrc=src, psrc=psrc, hwdst="00:00:00:00:00:00", pdst=pdst)


def gratuitous_arp(peer):
    return Ether(src=peer.guest_mac, dst=BCAST_MAC) / ARP(
        op=1, hwsrc=peer.guest_mac, psrc=peer.guest_ip, hwdst="00:00:00:00:00:00",
        pdst=peer.guest_ip)


def icmp_echo(peer, dst=None, id=0x1234, seq=1, payload=b"slirpnet-ping", ttl=64):
    dst = dst or peer.gw_ip
    return (Ether(src=peer.guest_mac, dst=peer.gw_mac)
            / IP(src=peer.guest_ip, dst=dst, ttl=ttl)
            / ICMP(type=8, id=id, seq=seq) / Raw(load=payload))


def icmp_echo_reply_from(peer, src=None, id=0x1234, seq=1, payload=None):
    """Template matching the echo reply to icmp_echo()."""
    tmpl = (Ether(dst=peer.guest_mac)
            / IP(src=src or peer.gw_ip, dst=peer.guest_ip)
            / ICMP(type=0, id=id, seq=seq))
    if payload is not None:
        tmpl = tmpl / Raw(load=payload)
    return tmpl


def udp_to(peer, dport, payload, dst=None, sport=None):
    sport = sport or random.randint(20000, 30000)
    return (Ether(src=peer.guest_mac, dst=peer.gw_mac)
            / IP(src=peer.guest_ip, dst=dst or peer.gw_ip)
            / UDP(sport=sport, dport=dport) / Raw(load=payload))


def router_solicit(peer):
    return (Ether(src=peer.guest_mac, dst="33:33:00:00:00:02")
            / IPv6(src=peer.guest_ll6, dst="ff02::2", hlim=255)
            / ICMPv6ND_RS() / ICMPv6NDOptSrcLLAddr(lladdr=peer.guest_mac))


def icmp6_echo(peer, dst=GW_IP6, id=0x4321, seq=1, payload=b"slirpnet-ping6", dst_mac=None):
    return (Ether(src=peer.guest_mac, dst=dst_mac or "52:56:00:00:00:02")
            / IPv6(src=peer.guest_ip6, dst=dst)
            / ICMPv6EchoRequest(id=id, seq=seq, data=payload))


def expect_datagram(peer, match, timeout=None, desc="IPv4 fragment"):
    """Collect the fragments of one IPv4 datagram (frames matching match, which should
    select on src/proto) and reassemble it; returns (fragments, IP payload bytes)."""
    frags, got, total = [], 0, None
    while total is None or got < total:
        f = peer.expect(lambda x: IP in x and match(x), timeout, desc=desc)
        ip = f[IP]
        data = bytes(ip.payload)[: ip.len - ip.ihl * 4]
        frags.append((ip.frag * 8, data, f))
        got += len(data)
        if not (int(ip.flags) & 1):          # MF clear: this is the last fragment
            total = ip.frag * 8 + len(data)
    buf = bytearray(total)
    for off, data, _ in frags:
        buf[off: off + len(data)] = data
    return [f for _, _, f in frags], bytes(buf)


def fragments(frame, size):
    """Split an Ether/IP frame into Ether/IP fragment frames of at most size IP bytes."""
    from scapy.layers.inet import fragment
    e = frame[Ether]
    return [Ether(src=e.src, dst=e.dst) / f
            for f in fragment(frame[IP], fragsize=size - frame[IP].ihl * 4 if frame[IP].ihl
                              else size - 20)]
