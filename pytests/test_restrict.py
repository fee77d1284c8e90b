# SPDX-License-Identifier: BSD-2-Clause
"""restrict=on: nothing leaves for the host, hostfwd still comes in."""

import pytest

from harness import (BOOTP, TCP, UDP, GW_IP, TcpConn, assert_alive, dhcp_lease, dhcp_options,
                     free_port, hostfwd_exchange, icmp_echo, icmp_echo_reply_from, udp_to)


def test_tcp_syn_gets_no_synack(peer, tcp_echo):
    p = peer("restrict=on")
    c = TcpConn(p, p.guest_ip, 46000, GW_IP, tcp_echo.port)
    c._tx("S", seq=c.iss, options=[("MSS", 1460)])
    # libslirp answers a refused SYN with RST; what must never come is a SYN-ACK
    p.expect_none(lambda x: c.is_mine(x) and "S" in str(x[TCP].flags), timeout=1.0,
                  desc="SYN-ACK from the restricted gateway")
    assert tcp_echo.accepted == 0
    assert_alive(p)                       # the link answers: the silence was restrict's


def test_udp_gets_nothing_and_server_sees_nothing(peer, udp_echo):
    p = peer("restrict=on")
    for i in range(3):
        p.send(udp_to(p, udp_echo.port, b"should not pass %d" % i, sport=43000))
    p.expect_none(lambda x: UDP in x and x[UDP].dport == 43000, timeout=1.0,
                  desc="UDP reply")
    assert udp_echo.received == []
    assert_alive(p)


def test_gateway_ping_still_answered(peer):
    # echo to the gateway is answered inside libslirp, restricted or not
    p = peer("restrict=on")
    p.send(icmp_echo(p, seq=2))
    p.expect(icmp_echo_reply_from(p, seq=2))


def test_hostfwd_still_works(peer):
    port = free_port()
    p = peer("restrict=on,hostfwd=tcp:127.0.0.1:%d-:8080" % port)
    hostfwd_exchange(p, port, 8080)


@pytest.mark.parametrize("options, sport", [("restrict", 43001), ("open=off", 43002)],
                         ids=["bare_keyword", "open_off"])
def test_other_spellings_restrict(peer, udp_echo, options, sport):
    p = peer(options)
    p.send(udp_to(p, udp_echo.port, b"nope", sport=sport))
    p.expect_none(lambda x: UDP in x and x[UDP].dport == sport, desc="UDP reply")
    assert udp_echo.received == []
    assert_alive(p)


def test_restrict_off_allows(peer, udp_echo):
    p = peer("restrict=off")
    p.send(udp_to(p, udp_echo.port, b"yes", sport=43003))
    p.expect(lambda x: UDP in x and x[UDP].dport == 43003, desc="UDP reply")


def test_dhcp_offers_no_router_or_dns(peer):
    p = peer("restrict=on")
    _, ack = dhcp_lease(p)
    o = dhcp_options(ack)
    assert ack[BOOTP].yiaddr == "10.0.2.15"
    assert 1 in o
    assert 3 not in o and 6 not in o, "restricted DHCP must not offer a router or DNS"
