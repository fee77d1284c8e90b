# SPDX-License-Identifier: BSD-2-Clause
"""ARP: libslirp answers who-has for its own addresses, and resolves the guest."""

import pytest

from harness import (ARP, Ether, BCAST_MAC, DNS_IP, GW_IP, GW_MAC, arp_who_has,
                     icmp_echo, icmp_echo_reply_from, special_mac)


def is_arp_reply_for(ip):
    def fn(p):
        return ARP in p and p[ARP].op == 2 and p[ARP].psrc == ip
    fn.__name__ = "arp_reply_for_%s" % ip
    return fn


@pytest.mark.parametrize("target", [GW_IP, DNS_IP], ids=["gateway", "dns"])
def test_who_has_answered(peer, target):
    p = peer()
    p.send(arp_who_has(target, p))
    r = p.expect(is_arp_reply_for(target))
    # libslirp answers for each of its addresses with 52:55:<ip>; the gateway's is
    # 52:55:0a:00:02:02.
    mac = special_mac(target)
    if target == GW_IP:
        assert mac == GW_MAC
    assert r[ARP].op == 2
    assert r[ARP].hwsrc == mac
    assert r[ARP].psrc == target
    assert r[ARP].hwdst == p.guest_mac
    assert r[ARP].pdst == p.guest_ip
    assert r[ARP].ptype == 0x0800 and r[ARP].hwlen == 6 and r[ARP].plen == 4
    assert r[Ether].src == mac
    assert r[Ether].dst == p.guest_mac
    assert r[Ether].type == 0x0806


@pytest.mark.parametrize("target", ["10.0.2.77", "192.168.1.1", "127.0.0.1"])
def test_who_has_other_addresses_unanswered(peer, target):
    p = peer()
    p.send(arp_who_has(target, p))
    p.expect_none(lambda x: ARP in x and x[ARP].op == 2, desc="ARP reply")
    # the helper is still fine
    p.send(arp_who_has(GW_IP, p))
    p.expect(is_arp_reply_for(GW_IP))


def test_slirp_resolves_guest(peer):
    """With auto-reply off we see libslirp's who-has for the guest, answer it by hand,
    and the held packet (an echo reply) is then delivered."""
    p = peer(prime=False)
    p.auto_reply = False
    p.send(icmp_echo(p, seq=7))
    req = p.expect(lambda x: ARP in x and x[ARP].op == 1, desc="ARP who-has from slirp")
    assert req[Ether].dst == BCAST_MAC
    assert req[Ether].src == GW_MAC
    assert req[ARP].hwsrc == GW_MAC
    assert req[ARP].psrc == GW_IP
    assert req[ARP].pdst == p.guest_ip
    p.send(Ether(src=p.guest_mac, dst=GW_MAC)
           / ARP(op=2, hwsrc=p.guest_mac, psrc=p.guest_ip, hwdst=GW_MAC, pdst=GW_IP))
    r = p.expect(icmp_echo_reply_from(p, seq=7))
    assert r[Ether].dst == p.guest_mac


def test_auto_reply_answers_who_has(peer):
    """The harness's automatic ARP answer is what lets the reply through."""
    p = peer(prime=False)
    p.send(icmp_echo(p, seq=9))
    p.expect(icmp_echo_reply_from(p, seq=9))
    arp_tx = [d for _, direction, d in p.log if direction == "tx" and Ether(d).haslayer(ARP)]
    assert arp_tx, "expected the harness to have answered slirp's who-has"
    a = Ether(arp_tx[0])[ARP]
    assert a.op == 2 and a.psrc == p.guest_ip and a.hwsrc == p.guest_mac
