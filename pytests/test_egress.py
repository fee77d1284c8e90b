# SPDX-License-Identifier: BSD-2-Clause
"""The egress policy (allow=/deny=, egress-default=, policy=strict, control egress-*): each
verdict on TCP SYN, UDP and ICMP echo, IPv4 and IPv6, answered before libslirp sees it.

Network safety: denied destinations are TEST-NET (192.0.2.0/24, 198.51.100.0/24,
2001:db8::/32), 169.254.169.254 or the gateway; a denied packet never reaches libslirp, so
none of them is ever contacted.  Allowed traffic goes only to the gateway, which libslirp
maps to servers of the test on 127.0.0.1 and ::1."""

import os
import socket
import subprocess

import pytest

from harness import (ICMP, IP, TCP, UDP, Ether, IPv6, Raw, GW_IP, GW_IP6, ControlError,
                     assert_alive, assert_alive6, read_pcap, stats_delta, udp_to)
from scapy.layers.inet6 import ICMPv6DestUnreach, ICMPv6EchoRequest

GW_MAC6 = "52:56:00:00:00:02"   # the MAC libslirp answers for GW_IP6 with
EGRESS = ("drop_egress_tcp", "drop_egress_udp", "drop_egress_icmp")


def syn(p, dst, dport, sport=47000, seq=1000):
    if ":" in dst:
        return (Ether(src=p.guest_mac, dst=GW_MAC6) / IPv6(src=p.guest_ip6, dst=dst)
                / TCP(sport=sport, dport=dport, flags="S", seq=seq))
    return (Ether(src=p.guest_mac, dst=p.gw_mac) / IP(src=p.guest_ip, dst=dst)
            / TCP(sport=sport, dport=dport, flags="S", seq=seq))


def udp(p, dst, dport, sport=47100, payload=b"egress?"):
    if ":" in dst:
        return (Ether(src=p.guest_mac, dst=GW_MAC6) / IPv6(src=p.guest_ip6, dst=dst)
                / UDP(sport=sport, dport=dport) / Raw(load=payload))
    return udp_to(p, dport, payload, dst=dst, sport=sport)


def echo(p, dst, seq=7):
    if ":" in dst:
        return (Ether(src=p.guest_mac, dst=GW_MAC6) / IPv6(src=p.guest_ip6, dst=dst)
                / ICMPv6EchoRequest(id=0xE6, seq=seq, data=b"egress-ping"))
    return (Ether(src=p.guest_mac, dst=p.gw_mac) / IP(src=p.guest_ip, dst=dst)
            / ICMP(type=8, id=0xE4, seq=seq) / Raw(load=b"egress-ping"))


def is_rst_for(p, dst, dport, sport=47000, seq=1000):
    """The RST+ACK that refuses syn(p, dst, dport, sport, seq), from dst:dport."""
    ipl = IPv6 if ":" in dst else IP

    def fn(x):
        return (TCP in x and ipl in x and x[ipl].src == dst and x[TCP].sport == dport
                and x[TCP].dport == sport and x[TCP].flags == "RA" and x[TCP].ack == seq + 1
                and x[Ether].dst == p.guest_mac)
    fn.__name__ = "rst_from_%s_%d" % (dst, dport)
    return fn


def is_prohibited_for(p, dst, proto):
    """ICMP 3/13 or ICMPv6 1/1 from the gateway quoting a packet of proto to dst."""
    def fn(x):
        if ":" in dst:
            return (ICMPv6DestUnreach in x and x[IPv6].src == GW_IP6 and x[ICMPv6DestUnreach].code == 1
                    and x[ICMPv6DestUnreach].payload.dst == dst and x[ICMPv6DestUnreach].payload.nh == proto)
        return (ICMP in x and x[IP].src == GW_IP and x[IP].dst == p.guest_ip and x[ICMP].type == 3
                and x[ICMP].code == 13 and x[ICMP].payload.dst == dst and x[ICMP].payload.proto == proto)
    fn.__name__ = "prohibited_%s_proto_%d" % (dst, proto)
    return fn


def egress_delta(before, after):
    return stats_delta(before, after, EGRESS)


class Server6:
    """A TCP listener and a UDP socket on ::1 (the gateway's IPv6 address reaches them)."""

    def __init__(self):
        self.tcp = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        self.tcp.bind(("::1", 0))
        self.tcp.listen(4)
        self.tcp.setblocking(False)
        self.udp = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        self.udp.bind(("::1", 0))
        self.udp.settimeout(3.0)
        self.tcp_port = self.tcp.getsockname()[1]
        self.udp_port = self.udp.getsockname()[1]

    def accepted(self):
        try:
            self.tcp.accept()[0].close()
            return True
        except BlockingIOError:
            return False

    def close(self):
        self.tcp.close()
        self.udp.close()


@pytest.fixture
def server6():
    try:
        s = Server6()
    except OSError as e:
        pytest.skip("no IPv6 loopback: %s" % e)
    yield s
    s.close()


@pytest.fixture
def ctl_path(helper_path):
    path = os.environ.get("SLIRPNET_CTL") or os.path.join(os.path.dirname(helper_path), "slirpnet-ctl")
    if not os.path.exists(path):
        pytest.fail("slirpnet-ctl not found at %s (build it, or set SLIRPNET_CTL)" % path)
    return path


def test_denied_tcp_ipv4_gets_rst_and_never_reaches_the_server(peer, tcp_echo, udp_echo):
    p = peer("deny=tcp/192.0.2.0/24,deny=tcp/%s:%d" % (GW_IP, tcp_echo.port))
    before = p.stats()
    p.send(syn(p, "192.0.2.1", 80))
    p.expect(is_rst_for(p, "192.0.2.1", 80))
    p.send(syn(p, GW_IP, tcp_echo.port, sport=47001))
    p.expect(is_rst_for(p, GW_IP, tcp_echo.port, sport=47001))
    after = p.stats()
    assert egress_delta(before, after) == {"drop_egress_tcp": 2}
    # nothing reached libslirp: the server on 127.0.0.1 saw no connection
    assert "from_guest_frames" not in stats_delta(before, after)
    assert tcp_echo.accepted == 0
    # allowed traffic through the same gateway still flows
    p.send(udp_to(p, udp_echo.port, b"allowed", sport=47002))
    p.expect(lambda x: UDP in x and x[UDP].dport == 47002, desc="UDP echo (allowed)")
    assert tcp_echo.accepted == 0


def test_denied_tcp_ipv6_gets_rst(direct, server6):
    p = direct("deny=tcp/[2001:db8::/32]:1-1023,deny=tcp/[%s]:%d" % (GW_IP6, server6.tcp_port))
    before = p.stats()
    p.send(syn(p, "2001:db8::1", 443))
    p.expect(is_rst_for(p, "2001:db8::1", 443))
    p.send(syn(p, GW_IP6, server6.tcp_port, sport=47003))
    p.expect(is_rst_for(p, GW_IP6, server6.tcp_port, sport=47003))
    assert egress_delta(before, p.stats()) == {"drop_egress_tcp": 2}
    assert not server6.accepted()
    # allowed: UDP to the same gateway reaches ::1
    p.send(udp(p, GW_IP6, server6.udp_port, payload=b"allowed6"))
    data, _ = server6.udp.recvfrom(100)
    assert data == b"allowed6"
    assert_alive6(p)


@pytest.mark.parametrize("dst", ["198.51.100.7", "2001:db8::7"], ids=["ipv4", "ipv6"])
def test_denied_udp_gets_prohibited(direct, dst):
    p = direct("deny=udp/198.51.100.0/24:53,deny=[2001:db8::/32]:53")
    before = p.stats()
    p.send(udp(p, dst, 53))
    r = p.expect(is_prohibited_for(p, dst, 17))
    assert egress_delta(before, p.stats()) == {"drop_egress_udp": 1}
    if ":" not in dst:
        assert r[ICMP].payload.payload.dport == 53     # the quote: IP header + 8 bytes
    assert_alive(p)
    assert_alive6(p)


@pytest.mark.parametrize("dst", ["192.0.2.9", "2001:db8::9"], ids=["ipv4", "ipv6"])
def test_denied_echo_gets_prohibited(direct, dst):
    p = direct("deny=icmp/192.0.2.0/24,deny=icmp/2001:db8::/32")
    before = p.stats()
    p.send(echo(p, dst))
    p.expect(is_prohibited_for(p, dst, 58 if ":" in dst else 1))
    assert egress_delta(before, p.stats()) == {"drop_egress_icmp": 1}
    assert_alive(p)          # the gateway's own echo is not denied by those rules
    assert_alive6(p)


def test_first_match_wins_and_default_deny(direct, udp_echo, tcp_echo):
    p = direct("allow=udp/%s:%d,deny=udp/%s,egress-default=deny,allow=icmp/%s"
               % (GW_IP, udp_echo.port, GW_IP, GW_IP))
    p.send(udp_to(p, udp_echo.port, b"first rule", sport=47010))
    p.expect(lambda x: UDP in x and x[UDP].dport == 47010, desc="UDP echo (first rule allows)")
    p.send(udp_to(p, udp_echo.port + 1 if udp_echo.port < 65535 else 1, b"second", sport=47011))
    p.expect(is_prohibited_for(p, GW_IP, 17))
    # no rule for TCP: the default refuses it
    p.send(syn(p, GW_IP, tcp_echo.port, sport=47012))
    p.expect(is_rst_for(p, GW_IP, tcp_echo.port, sport=47012))
    assert tcp_echo.accepted == 0
    assert_alive(p)


def test_strict_policy(direct, tcp_echo, udp_echo):
    p = direct("policy=strict")
    before = p.stats()
    p.send(syn(p, "169.254.169.254", 80))
    p.expect(is_rst_for(p, "169.254.169.254", 80))
    p.send(udp(p, "169.254.169.254", 80))
    p.expect(is_prohibited_for(p, "169.254.169.254", 17))
    p.send(echo(p, "169.254.169.254"))
    p.expect(is_prohibited_for(p, "169.254.169.254", 1))
    p.send(syn(p, "fe80::1", 80))
    p.expect(is_rst_for(p, "fe80::1", 80))
    # the host's loopback through the gateway, and directly
    p.send(syn(p, GW_IP, tcp_echo.port, sport=47020))
    p.expect(is_rst_for(p, GW_IP, tcp_echo.port, sport=47020))
    p.send(udp_to(p, udp_echo.port, b"strict", sport=47021))
    p.expect(is_prohibited_for(p, GW_IP, 17))
    p.send(syn(p, "127.0.0.1", tcp_echo.port, sport=47022))
    p.expect(is_rst_for(p, "127.0.0.1", tcp_echo.port, sport=47022))
    p.send(syn(p, "::1", 22, sport=47023))
    p.expect(is_rst_for(p, "::1", 22, sport=47023))
    # an IPv4-mapped address is IPv4 to the host: 127.0.0.1 through IPv6 is denied as well
    p.send(syn(p, "::ffff:127.0.0.1", tcp_echo.port, sport=47024))
    p.expect(is_rst_for(p, "::ffff:127.0.0.1", tcp_echo.port, sport=47024))
    assert egress_delta(before, p.stats()) == {"drop_egress_tcp": 6, "drop_egress_udp": 2,
                                               "drop_egress_icmp": 1}
    assert tcp_echo.accepted == 0 and udp_echo.received == []
    assert_alive(p)           # libslirp itself still answers the gateway's echo
    assert_alive6(p)


def test_strict_rules_listed_and_loopback_conflict(ctlpeer, direct):
    p, c = ctlpeer("policy=strict,deny=192.0.2.0/24")
    listing = c.call("egress-list")
    assert listing["policy"] == "strict" and listing["default"] == "allow"
    rules = [r["rule"] for r in listing["rules"]]
    assert "deny=169.254.0.0/16" in rules and "deny=fe80::/10" in rules
    assert "deny=127.0.0.0/8" in rules and "deny=::1/128" in rules
    assert rules[-1] == "deny=192.0.2.0/24" and listing["rules"][-1]["origin"] == "option"
    assert {r["origin"] for r in listing["rules"][:-1]} == {"policy"}
    assert_alive(p)


def test_rules_over_the_control_socket(ctlpeer, udp_echo, tcp_echo):
    p, c = ctlpeer()
    assert c.call("egress-list") == {"rules": [], "default": "allow", "policy": "open"}
    p.send(udp_to(p, udp_echo.port, b"before", sport=47030))
    p.expect(lambda x: UDP in x and x[UDP].dport == 47030, desc="UDP echo before the rule")
    added = c.call("egress-add", deny="udp/%s:%d" % (GW_IP, udp_echo.port))
    assert added["rule"] == "deny=udp/%s/32:%d" % (GW_IP, udp_echo.port) and added["position"] == 0
    tcp = c.call("egress-add", rule="deny=tcp/192.0.2.0/24", position=0)
    assert tcp["position"] == 0
    listing = c.call("egress-list")["rules"]
    assert [r["id"] for r in listing] == [tcp["id"], added["id"]]
    assert {r["origin"] for r in listing} == {"control"}
    p.send(udp_to(p, udp_echo.port, b"denied", sport=47031))
    p.expect(is_prohibited_for(p, GW_IP, 17))
    p.send(syn(p, "192.0.2.3", 22, sport=47032))
    p.expect(is_rst_for(p, "192.0.2.3", 22, sport=47032))
    st = c.call("stats")
    assert st["drop_egress_udp"] == 1 and st["drop_egress_tcp"] == 1
    removed = c.call("egress-remove", id=added["id"])
    assert removed["id"] == added["id"]
    p.send(udp_to(p, udp_echo.port, b"after", sport=47033))
    p.expect(lambda x: UDP in x and x[UDP].dport == 47033, desc="UDP echo after the removal")
    assert [d for d, _ in udp_echo.received] == [b"before", b"after"]
    with pytest.raises(ControlError) as e:
        c.call("egress-remove", id=added["id"])
    assert str(added["id"]) in str(e.value)
    # a bad rule is refused naming the key and the value
    with pytest.raises(ControlError) as e:
        c.call("egress-add", deny="192.0.2.0/33")
    assert "InvalidArgument" in str(e.value) and "deny" in str(e.value) and "'33'" in str(e.value)
    with pytest.raises(ControlError) as e:
        c.call("egress-add", deny="192.0.2.0/24", allow="192.0.2.0/24")
    assert "exactly one" in str(e.value)
    assert_alive(p)


def test_slirpnet_ctl_egress(ctlpeer, ctl_path):
    p, c = ctlpeer()

    def run(*args):
        return subprocess.run([ctl_path, "-s", c.path] + list(args), capture_output=True, text=True,
                              timeout=10)
    r = run("egress-add", "deny=tcp/198.51.100.0/24:80", "position=0")
    assert r.returncode == 0 and "egress rule 1 added: deny=tcp/198.51.100.0/24:80" in r.stdout, r
    r = run("egress-list")
    assert r.returncode == 0 and "deny=tcp/198.51.100.0/24:80" in r.stdout and "default: allow" in r.stdout, r
    r = run("egress-remove", "1")
    assert r.returncode == 0 and "removed" in r.stdout, r
    r = run("egress-add", "allow=[2001:db8::/32]:99999")
    assert r.returncode == 1 and "allow" in r.stderr and "99999" in r.stderr, r
    assert_alive(p)


def test_bad_rules_refused_at_start(helper_path):
    for opt, part in [("--deny=192.0.2.0/33", "'33'"), ("--allow=tcp/[2001:db8::/32", "']'"),
                      ("--egress-default=drop", "'drop'"), ("--policy=paranoid", "'paranoid'")]:
        r = subprocess.run([helper_path, opt, "--socket", "/nonexistent/egress.sock"], capture_output=True,
                           text=True, timeout=10)
        key = opt[2:].split("=")[0]
        assert r.returncode != 0 and key in r.stderr and part in r.stderr, (opt, r.stderr)


def test_capture_shows_the_refusals(captured):
    p = captured("ipv6=off,deny=tcp/192.0.2.0/24,deny=udp/198.51.100.0/24")
    p.send(syn(p, "192.0.2.1", 80))
    p.expect(is_rst_for(p, "192.0.2.1", 80))
    p.send(udp(p, "198.51.100.1", 5000))
    p.expect(is_prohibited_for(p, "198.51.100.1", 17))
    assert_alive(p)
    p.flush(0.3)
    p.close()
    _, recs = read_pcap(p.capture.path)
    frames = [Ether(r.data) for r in recs]
    assert any(TCP in f and f[TCP].flags == "RA" and f[IP].src == "192.0.2.1" for f in frames)
    assert any(ICMP in f and f[ICMP].type == 3 and f[ICMP].code == 13 for f in frames)
    # and the guest's refused packets themselves
    assert any(TCP in f and f[TCP].flags == "S" and f[IP].dst == "192.0.2.1" for f in frames)


@pytest.mark.parametrize("ipv6", [False, True], ids=["ipv4", "ipv6"])
def test_truncated_headers_do_not_crash(direct, ipv6):
    # restrict=on: nothing that might pass the policy leaves for the host
    p = direct("restrict=on,deny=192.0.2.0/24,deny=2001:db8::/32")
    before = p.stats()
    dst = "2001:db8::5" if ipv6 else "192.0.2.5"
    for proto in (6, 17, 1, 58):
        full = bytes(syn(p, dst, 80) if proto == 6 else udp(p, dst, 80) if proto == 17 else echo(p, dst))
        hdr = 14 + (40 if ipv6 else 20)
        for cut in range(14, hdr + 8):
            p.send(full[:cut])
        # an IP header claiming the transport protocol, with nothing after it
        if ipv6:
            raw = Ether(src=p.guest_mac, dst=GW_MAC6) / IPv6(src=p.guest_ip6, dst=dst, nh=proto, plen=0)
        else:
            raw = Ether(src=p.guest_mac, dst=p.gw_mac) / IP(src=p.guest_ip, dst=dst, proto=proto)
        p.send(raw)
    # IPv4 first fragments too short to show the ports are refused outright
    if not ipv6:
        frag = bytes(Ether(src=p.guest_mac, dst=p.gw_mac) / IP(src=p.guest_ip, dst="10.0.2.2", proto=17,
                                                                 flags="MF", id=77) / Raw(b"abcd"))
        p.send(frag)
    after = p.stats()
    assert_alive(p)
    assert_alive6(p)
    assert p.helper_status() is None
    # nothing was answered as refused but the (complete) echo requests, and the
    # truncated ones libslirp dropped itself, as without a policy
    assert after["drop_egress_tcp"] == before["drop_egress_tcp"]
    assert after["drop_egress_udp"] == before["drop_egress_udp"]


def test_loopback_off_keeps_the_host_loopback_out(peer, udp_echo, tcp_echo):
    p = peer("loopback=off")
    p.send(udp_to(p, udp_echo.port, b"to the host?", sport=47040))
    p.expect_none(lambda x: UDP in x and x[UDP].dport == 47040, timeout=1.0, desc="UDP echo from the host")
    p.send(syn(p, GW_IP, tcp_echo.port, sport=47041))
    p.expect_none(lambda x: TCP in x and x[TCP].dport == 47041 and x[TCP].flags == "SA", timeout=1.0,
                  desc="SYN-ACK from the host")
    assert udp_echo.received == [] and tcp_echo.accepted == 0
    assert_alive(p)          # the gateway itself still answers


def test_outbound_addr_binds_outgoing_sockets(direct, udp_echo):
    p = direct("outbound-addr=127.0.0.1,outbound-addr6=::1")
    p.send(udp_to(p, udp_echo.port, b"bound", sport=47050))
    p.expect(lambda x: UDP in x and x[UDP].dport == 47050, desc="UDP echo")
    assert udp_echo.received[0][1][0] == "127.0.0.1"
