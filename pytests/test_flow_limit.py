# SPDX-License-Identifier: BSD-2-Clause
"""max-flows=: a bound on the sockets libslirp holds for the guest. Past it a new TCP
connection gets a RST, a UDP datagram that would open a new flow and an echo request that
would open a socket get ICMP unreachable (administratively prohibited), each counted;
existing flows keep working, and once libslirp frees closed connections new ones succeed.
The helper's RLIMIT_NOFILE follows the limit.

Network safety: every flow goes to the gateway (the host's 127.0.0.1) or to 127.0.0.1."""

import resource
import socket
import subprocess
import time

import pytest

from harness import (ICMP, IP, TCP, UDP, Ether, Raw, GUEST_IP, GW_IP, TcpConn, assert_alive,
                     free_port, host_connect, hostfwd_exchange, stats_delta, udp_to)

LIMIT = ("drop_flow_limit_tcp", "drop_flow_limit_udp", "drop_flow_limit_icmp")
MAX = 8


@pytest.fixture
def limited(ctlpeer):
    """Factory: limited(extra="") -> (DirectPeer with max-flows=8 and control=, ControlClient)."""
    return lambda extra="": ctlpeer("max-flows=%d%s" % (MAX, "," + extra if extra else ""))


def syn(p, dport, sport, seq=1000):
    return (Ether(src=p.guest_mac, dst=p.gw_mac) / IP(src=p.guest_ip, dst=GW_IP)
            / TCP(sport=sport, dport=dport, flags="S", seq=seq))


def is_rst_for(p, dport, sport, seq=1000):
    def fn(x):
        return (TCP in x and IP in x and x[IP].src == GW_IP and x[TCP].sport == dport
                and x[TCP].dport == sport and "R" in str(x[TCP].flags) and x[TCP].ack == seq + 1
                and x[Ether].dst == p.guest_mac)
    fn.__name__ = "rst_to_port_%d" % sport
    return fn


def is_prohibited(p, dst, proto):
    def fn(x):
        return (ICMP in x and x[IP].src == GW_IP and x[IP].dst == p.guest_ip and x[ICMP].type == 3
                and x[ICMP].code == 13 and x[ICMP].payload.dst == dst and x[ICMP].payload.proto == proto)
    fn.__name__ = "prohibited_%s_proto_%d" % (dst, proto)
    return fn


def is_udp_reply(sport):
    def fn(x):
        return UDP in x and x[UDP].dport == sport
    fn.__name__ = "udp_reply_to_%d" % sport
    return fn


def flows(c):
    return c.call("stats")["flows"]


def wait_flows(c, p, want, timeout=30.0):
    """Until the flows gauge is want (libslirp frees closed connections on its timers)."""
    deadline = time.monotonic() + timeout
    while True:
        n = flows(c)
        if n == want or time.monotonic() > deadline:
            assert n == want, "flows=%d, expected %d after %.0f s" % (n, want, timeout)
            return
        p.pump(0.2)


def limit_delta(before, after):
    return stats_delta(before, after, LIMIT)


def test_tcp_past_the_limit_gets_rst(limited, tcp_echo):
    p, c = limited()
    conns = [TcpConn.connect(p, GW_IP, tcp_echo.port, local_port=41000 + i) for i in range(MAX)]
    assert flows(c) == MAX
    st = c.call("stats")
    assert st["max_flows"] == MAX, st
    before = p.stats()
    p.send(syn(p, tcp_echo.port, 41100))
    p.expect(is_rst_for(p, tcp_echo.port, 41100))
    assert limit_delta(before, p.stats()) == {"drop_flow_limit_tcp": 1}
    assert tcp_echo.accepted == MAX          # the refused SYN never reached libslirp
    # the flows in place keep working, and the gateway still answers echo
    for i, conn in enumerate(conns):
        conn.send(b"still here %d" % i)
        assert conn.recv(len(b"still here %d" % i)) == b"still here %d" % i
    assert_alive(p)
    # closed, then freed by libslirp: room for new connections again
    for conn in conns:
        conn.close()
    for conn in conns:
        conn.wait_fin()
    wait_flows(c, p, 0)
    again = TcpConn.connect(p, GW_IP, tcp_echo.port, local_port=41200)
    again.send(b"again")
    assert again.recv(5) == b"again"
    assert flows(c) == 1


def test_udp_new_flows_past_the_limit_get_unreachable(limited, udp_echo):
    p, c = limited()
    for i in range(MAX):
        p.send(udp_to(p, udp_echo.port, b"flow %d" % i, sport=42000 + i))
        p.expect(is_udp_reply(42000 + i))
    assert flows(c) == MAX
    before = p.stats()
    p.send(udp_to(p, udp_echo.port, b"one too many", sport=42100))
    p.expect(is_prohibited(p, GW_IP, 17))
    p.expect_none(is_udp_reply(42100), timeout=0.5)
    # a datagram of a flow libslirp holds passes at the limit, to any destination port
    p.send(udp_to(p, udp_echo.port, b"old flow", sport=42003))
    p.expect(is_udp_reply(42003))
    assert limit_delta(before, p.stats()) == {"drop_flow_limit_udp": 1}
    assert flows(c) == MAX


def test_echo_past_the_limit(limited, udp_echo):
    p, c = limited()
    for i in range(MAX):
        p.send(udp_to(p, udp_echo.port, b"flow %d" % i, sport=43000 + i))
        p.expect(is_udp_reply(43000 + i))
    before = p.stats()
    # libslirp would open a socket for this one (127.0.0.1: the host's own loopback)
    p.send(Ether(src=p.guest_mac, dst=p.gw_mac) / IP(src=p.guest_ip, dst="127.0.0.1")
           / ICMP(type=8, id=0xF1, seq=1) / Raw(load=b"ping"))
    p.expect(is_prohibited(p, "127.0.0.1", 1))
    # the gateway answers itself: no socket, never refused
    assert_alive(p)
    assert limit_delta(before, p.stats()) == {"drop_flow_limit_icmp": 1}


def test_rlimit_follows_max_flows(limited):
    p, c = limited("hostfwd=tcp:127.0.0.1:0-:22")
    sb = c.call("version")["sandbox"]
    want = min(resource.getrlimit(resource.RLIMIT_NOFILE)[1], MAX + 1 + 1024)
    assert sb["max_fds"] == want, sb
    assert flows(c) == 0     # the hostfwd listener is no flow
    assert_alive(p)


def test_bad_max_flows_refused_at_start(helper_path):
    for value in ("0", "-1", "x", "2000000"):
        r = subprocess.run([helper_path, "--max-flows=" + value, "--socket", "/nonexistent/flows.sock"],
                           capture_output=True, text=True, timeout=10)
        assert r.returncode != 0 and "max-flows" in r.stderr and repr(value) in r.stderr, (value, r.stderr)


def test_hostfwd_waits_at_the_limit(limited, tcp_echo):
    """At the limit the hostfwd listener accepts nothing: the host's connection waits in
    its backlog, and reaches the guest once a flow ends."""
    port = free_port()
    p, c = limited("hostfwd=tcp:127.0.0.1:%d-:8080" % port)
    conns = [TcpConn.connect(p, GW_IP, tcp_echo.port, local_port=44000 + i) for i in range(MAX)]
    h = host_connect(port)       # the kernel completes it: it waits in the listen backlog
    try:
        p.expect_none(lambda x: TCP in x and x[TCP].dport == 8080, timeout=1.0)
        assert flows(c) == MAX
        conns[0].close()
        conns[0].wait_fin()
        guest = TcpConn.accept(p, 8080)
        h.sendall(b"late")
        assert guest.recv(4) == b"late"
        assert flows(c) == MAX
    finally:
        h.close()


def test_time_wait_is_reclaimed(limited):
    """The host closes first: libslirp sends the guest its FIN and, on the guest's, would
    keep the socket in TIME_WAIT for 10 s; the helper ends it at once."""
    port = free_port()
    p, c = limited("hostfwd=tcp:127.0.0.1:%d-:8080" % port)
    for _ in range(2 * MAX):      # twice the limit: each one is freed before the next
        hostfwd_exchange(p, port, 8080)
        wait_flows(c, p, 0, timeout=2.0)
    assert_alive(p)


def test_udp_hostfwd_replies_pass_at_the_limit(limited, udp_echo):
    """The guest's answers through a UDP hostfwd rule go out by the rule's own socket
    (libslirp matches them by their source): they open no flow, so the limit lets them by."""
    port = free_port(socket.SOCK_DGRAM)
    p, c = limited("hostfwd=udp:127.0.0.1:%d-:5555" % port)
    for i in range(MAX):
        p.send(udp_to(p, udp_echo.port, b"flow %d" % i, sport=44000 + i))
        p.expect(is_udp_reply(44000 + i))
    assert flows(c) == MAX
    before = p.stats()
    h = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    h.settimeout(3)
    try:
        h.sendto(b"query", ("127.0.0.1", port))
        r = p.expect(lambda x: UDP in x and x[IP].dst == GUEST_IP and x[UDP].dport == 5555,
                     desc="forwarded datagram to 10.0.2.15:5555")
        p.send(Ether(src=p.guest_mac, dst=p.gw_mac) / IP(src=GUEST_IP, dst=r[IP].src)
               / UDP(sport=5555, dport=r[UDP].sport) / b"answer")
        data, _ = h.recvfrom(100)
        assert data == b"answer"
    finally:
        h.close()
    assert limit_delta(before, p.stats()) == {}
    # the same port from another guest address would get a socket of its own: refused
    p.send(Ether(src=p.guest_mac, dst=p.gw_mac) / IP(src="10.0.2.16", dst=GW_IP)
           / UDP(sport=5555, dport=udp_echo.port) / b"spoofed")
    p.expect_none(is_udp_reply(5555), timeout=0.5)
    assert limit_delta(before, p.stats()) == {"drop_flow_limit_udp": 1}


def test_max_flows_is_lowered_to_fit_the_descriptor_limit(limited):
    """With fewer descriptors than max-flows= + the reserve, libslirp's accept() would
    fail with EMFILE (and spin on its listener) before the limit engaged: the limit in
    effect is lowered to fit, with a warning."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(1024 + 5, hard), hard))
    try:
        p, c = limited("sandbox=off")       # max-flows=8: 8 + 1024 do not fit in 1029
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert c.call("stats")["max_flows"] == 5
    assert "max-flows=8 does not fit the descriptor limit 1029" in p.helper_log()
    assert_alive(p)
