# SPDX-License-Identifier: BSD-2-Clause
"""UDP from the guest to a server on the host's loopback, through the gateway address."""

import pytest

from harness import IP, UDP, Ether, GW_IP, GW_MAC, udp_to


def udp_reply(p, sport, port):
    def fn(x):
        return (UDP in x and x[IP].src == GW_IP and x[IP].dst == p.guest_ip
                and x[UDP].sport == port and x[UDP].dport == sport)
    fn.__name__ = "udp_from_%s:%d_to_%d" % (GW_IP, port, sport)
    return fn


@pytest.mark.parametrize("size", [1, 100, 1472])
def test_echo_via_gateway(peer, udp_echo, size):
    p = peer()
    payload = bytes((i * 7) & 0xFF for i in range(size))
    sport = 40000 + size
    p.send(udp_to(p, udp_echo.port, payload, sport=sport))
    r = p.expect(udp_reply(p, sport, udp_echo.port))
    assert bytes(r[UDP].payload)[:size] == payload
    assert r[UDP].len == 8 + size
    assert r[IP].src == GW_IP and r[IP].dst == p.guest_ip
    assert r[Ether].src == GW_MAC and r[Ether].dst == p.guest_mac
    # the server saw it from the host loopback
    assert [d for d, _ in udp_echo.received] == [payload]
    assert udp_echo.received[0][1][0] == "127.0.0.1"


def test_several_datagrams_same_flow(peer, udp_echo):
    p = peer()
    sport = 41234
    for i in range(5):
        p.send(udp_to(p, udp_echo.port, b"dgram-%d" % i, sport=sport))
    got = []
    for _ in range(5):
        r = p.expect(udp_reply(p, sport, udp_echo.port))
        got.append(bytes(r[UDP].payload)[:7])
    assert sorted(got) == sorted(b"dgram-%d" % i for i in range(5))
    # one flow: the server saw a single source port
    assert len({addr for _, addr in udp_echo.received}) == 1


def test_udp_checksum_valid(peer, udp_echo):
    p = peer()
    p.send(udp_to(p, udp_echo.port, b"checksum me", sport=42000))
    r = p.expect(udp_reply(p, 42000, udp_echo.port))
    ck = r[UDP].chksum
    ip = r[IP].copy()
    ip[UDP].chksum = None
    ip.len = None
    assert IP(bytes(ip))[UDP].chksum == ck
