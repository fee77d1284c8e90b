# SPDX-License-Identifier: BSD-2-Clause
"""DHCP: DISCOVER -> OFFER -> REQUEST -> ACK with the configured parameters."""

import socket

from harness import (BOOTP, IP, UDP, Ether, GW_IP, decode_dns_names, dhcp_frame, dhcp_lease,
                     dhcp_options, icmp_echo, icmp_echo_reply_from, is_dhcp_reply)


def ip4(b):
    return socket.inet_ntoa(b)


def check_reply(r, p, xid, yiaddr, server):
    assert r[BOOTP].op == 2
    assert r[BOOTP].xid == xid
    assert r[BOOTP].yiaddr == yiaddr
    assert r[BOOTP].siaddr == server
    assert r[BOOTP].chaddr[:6] == bytes.fromhex(p.guest_mac.replace(":", ""))
    assert r[IP].src == server
    assert r[UDP].sport == 67 and r[UDP].dport == 68


def test_lease_defaults(peer):
    p = peer()
    xid = 0x1234abcd
    offer, ack = dhcp_lease(p, xid=xid)
    for r in (offer, ack):
        check_reply(r, p, xid, "10.0.2.15", GW_IP)
        o = dhcp_options(r)
        assert ip4(o[1]) == "255.255.255.0"       # subnet mask
        assert ip4(o[3]) == GW_IP                  # router
        assert ip4(o[6]) == "10.0.2.3"             # DNS server
        assert ip4(o[54]) == GW_IP                 # server identifier
        lease = int.from_bytes(o[51], "big")
        assert lease == 86400, "lease time %d" % lease
        assert 12 not in o and 15 not in o and 119 not in o
        assert 26 not in o                         # MTU 1500: nothing to announce, as QEMU
    assert dhcp_options(offer)[53] == b"\x02"
    assert dhcp_options(ack)[53] == b"\x05"
    # the address works: ping the gateway from it
    p.send(icmp_echo(p))
    p.expect(icmp_echo_reply_from(p))


def test_hostname_domain_dnssearch(peer):
    p = peer("hostname=guest1,domainname=example.test,"
             "dnssearch=corp.example.test,dnssearch=lab.example.test")
    offer, ack = dhcp_lease(p)
    o = dhcp_options(ack)
    assert o[12] == b"guest1"
    assert o[15] == b"example.test"
    # option 119 (RFC 3397): RFC 1035 names, libslirp 4.7 uses compression pointers
    assert decode_dns_names(o[119]) == ["corp.example.test", "lab.example.test"]


def test_custom_net_and_dhcpstart(peer):
    p = peer("net=10.9.0.0/24,dhcpstart=10.9.0.50", guest_ip="10.9.0.50", gw_ip="10.9.0.2")
    offer, ack = dhcp_lease(p)
    for r in (offer, ack):
        assert r[BOOTP].yiaddr == "10.9.0.50"
        o = dhcp_options(r)
        assert ip4(o[1]) == "255.255.255.0"
        assert ip4(o[3]) == "10.9.0.2"
        assert ip4(o[6]) == "10.9.0.3"
        assert r[IP].src == "10.9.0.2"
    assert p.guest_ip == "10.9.0.50"
    p.send(icmp_echo(p, dst="10.9.0.2"))
    r = p.expect(icmp_echo_reply_from(p, src="10.9.0.2"))
    assert r[Ether].src == "52:55:0a:09:00:02"


def test_net_with_16_bit_mask(peer):
    p = peer("net=172.20.0.0/16", guest_ip="172.20.0.15", gw_ip="172.20.0.2")
    offer, ack = dhcp_lease(p)
    o = dhcp_options(ack)
    assert ack[BOOTP].yiaddr == "172.20.0.15"
    assert ip4(o[1]) == "255.255.0.0"
    assert ip4(o[3]) == "172.20.0.2"
    assert ip4(o[6]) == "172.20.0.3"


def test_second_client_gets_next_address(peer):
    p = peer()
    _, ack1 = dhcp_lease(p, xid=1)
    assert ack1[BOOTP].yiaddr == "10.0.2.15"
    p.guest_mac = "52:54:00:12:34:57"
    _, ack2 = dhcp_lease(p, xid=2)
    assert ack2[BOOTP].yiaddr == "10.0.2.16"


def test_request_for_foreign_address_is_nakd(peer):
    p = peer()
    xid = 77
    p.send(dhcp_frame(p, "request", xid, [("requested_addr", "10.0.2.200"),
                                          ("server_id", GW_IP)]))
    r = p.expect(is_dhcp_reply(xid, "nak"))
    assert dhcp_options(r)[53] == b"\x06"


def test_large_mtu_is_announced(peer):
    """libslirp 4.7 sends no interface-MTU option; slirpnet adds option 26 when the link's
    MTU is not 1500, so a guest picks up mtu=65520 (or 9000) by itself, as with passt."""
    p = peer("mtu=9000")
    offer, ack = dhcp_lease(p, xid=0x5151)
    for r in (offer, ack):
        o = dhcp_options(r)
        assert int.from_bytes(o[26], "big") == 9000, o
        assert ip4(o[3]) == GW_IP                  # the rest is intact
        assert r[UDP].chksum == 0                  # cleared, not left stale
    assert r[IP].len == len(r[IP])                 # same length as libslirp made it
