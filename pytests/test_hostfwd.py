# SPDX-License-Identifier: BSD-2-Clause
"""hostfwd: connections to 127.0.0.1:PORT reach the guest side as SYNs to 10.0.2.15."""

import socket

from harness import IP, UDP, Ether, GUEST_IP, GW_IP, GW_MAC, free_port, free_ports, hostfwd_exchange


def test_qemu_syntax(peer):
    port = free_port()
    p = peer("hostfwd=tcp:127.0.0.1:%d-:8080" % port)
    hostfwd_exchange(p, port, 8080)


def test_explicit_guest_address(peer):
    port = free_port()
    p = peer("hostfwd=tcp:127.0.0.1:%d-10.0.2.15:2222" % port)
    hostfwd_exchange(p, port, 2222)


def test_bhyve_syntax_two_rules_and_open(peer):
    p1, p2 = free_ports(2)
    p = peer("open,hostfwd=tcp:127.0.0.1:%d-:8080;tcp:127.0.0.1:%d-:8081" % (p1, p2))
    hostfwd_exchange(p, p1, 8080)
    hostfwd_exchange(p, p2, 8081)


def test_repeated_hostfwd_keys(peer):
    p1, p2 = free_ports(2)
    p = peer("hostfwd=tcp:127.0.0.1:%d-:7001,hostfwd=tcp:127.0.0.1:%d-:7002" % (p1, p2))
    hostfwd_exchange(p, p2, 7002)
    hostfwd_exchange(p, p1, 7001)


def test_udp_forward(peer):
    port = free_port(socket.SOCK_DGRAM)
    p = peer("hostfwd=udp:127.0.0.1:%d-:5555" % port)
    h = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    h.settimeout(3)
    try:
        h.sendto(b"udp from host", ("127.0.0.1", port))
        r = p.expect(lambda x: UDP in x and x[IP].dst == GUEST_IP and x[UDP].dport == 5555,
                     desc="forwarded datagram to 10.0.2.15:5555")
        assert bytes(r[UDP].payload)[:13] == b"udp from host"
        assert r[IP].src == GW_IP
        # reply from the guest goes back to the host client
        p.send(Ether(src=p.guest_mac, dst=GW_MAC)
               / IP(src=GUEST_IP, dst=r[IP].src)
               / UDP(sport=5555, dport=r[UDP].sport) / b"udp from guest")
        data, addr = h.recvfrom(100)
        assert data == b"udp from guest"
        assert addr == ("127.0.0.1", port)
    finally:
        h.close()


def test_port_in_use_fails(plugin, direct):
    """A hostfwd whose host port is taken makes init fail, naming the rule."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    port = s.getsockname()[1]
    try:
        rule = "tcp:127.0.0.1:%d-:22" % port
        pl = plugin("slirp,hostfwd=" + rule, expect_ok=False)
        assert pl.init_rc == -1
        assert "hostfwd" in pl.error and str(port) in pl.error, pl.error
        d = direct("hostfwd=" + rule, expect_ok=False)
        assert d.ok is False
        assert "hostfwd" in d.error and str(port) in d.error, d.error
        assert d.wait_exit(3) == 1
    finally:
        s.close()
