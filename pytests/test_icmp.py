# SPDX-License-Identifier: BSD-2-Clause
"""ICMP echo to libslirp's own addresses (answered inside libslirp, never sent out)."""

import pytest

from harness import ICMP, IP, Ether, DNS_IP, GW_IP, GW_MAC, icmp_echo, icmp_echo_reply_from


@pytest.mark.parametrize("dst", [GW_IP, DNS_IP], ids=["gateway", "dns"])
def test_echo_answered(peer, dst):
    p = peer()
    payload = bytes(range(56))
    p.send(icmp_echo(p, dst=dst, id=0xbeef, seq=3, payload=payload))
    r = p.expect(icmp_echo_reply_from(p, src=dst, id=0xbeef, seq=3))
    assert r[ICMP].type == 0 and r[ICMP].code == 0
    assert r[ICMP].id == 0xbeef and r[ICMP].seq == 3
    assert bytes(r[ICMP].payload)[:len(payload)] == payload
    assert r[IP].src == dst and r[IP].dst == p.guest_ip
    assert r[Ether].src == GW_MAC and r[Ether].dst == p.guest_mac
    # checksums as sent are valid
    ic = r[ICMP].copy()
    ck = ic.chksum
    ic.chksum = None
    assert ICMP(bytes(ic)).chksum == ck
    ipc = r[IP].copy()
    ck = ipc.chksum
    ipc.chksum = None
    assert IP(bytes(ipc)).chksum == ck


def test_echo_sequence(peer):
    p = peer()
    for seq in range(1, 11):
        p.send(icmp_echo(p, seq=seq, payload=b"x" * seq))
    for seq in range(1, 11):
        p.expect(icmp_echo_reply_from(p, seq=seq, payload=b"x" * seq))


def test_echo_with_template_payload(peer):
    p = peer()
    p.send(icmp_echo(p, seq=5, payload=b"hello slirp"))
    p.expect(icmp_echo_reply_from(p, seq=5, payload=b"hello slirp"))
