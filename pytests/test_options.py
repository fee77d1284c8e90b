# SPDX-License-Identifier: BSD-2-Clause
"""Option parsing: bad options are refused naming key and value, good ones take effect."""

import socket

import pytest

from harness import (ARP, BOOTP, IP, UDP, arp_who_has, assert_alive6, child_pids,
                     decode_dns_names, dhcp_lease, dhcp_options, icmp_echo, icmp_echo_reply_from,
                     open_fds, special_mac, stats_delta, udp_to)

# (options, words the error must contain)
BAD_OPTIONS = [
    ("mtu=70000", ["mtu", "70000"]),
    ("mtu=67", ["mtu", "67"]),
    ("mtu=abc", ["mtu", "abc"]),
    ("mru=12", ["mru", "12"]),
    ("hostfwd=tcp::70000-:22", ["hostfwd", "70000"]),
    ("hostfwd=tcp:127.0.0.1:2222-:0", ["hostfwd", "0"]),
    ("hostfwd=tcp:127.0.0.1:x-:22", ["hostfwd", "x"]),
    ("hostfwd=sctp:127.0.0.1:2222-:22", ["hostfwd", "sctp"]),
    ("hostfwd=tcp:300.0.0.1:2222-:22", ["hostfwd", "300.0.0.1"]),
    ("hostfwd=tcp:127.0.0.1:2222-:22;tcp::99999-:23", ["hostfwd", "99999"]),
    ("bogus=1", ["bogus"]),
    ("frobnicate", ["frobnicate"]),
    ("net=10.0.2.0/33", ["net", "10.0.2.0/33"]),
    ("net=notanip", ["net", "notanip"]),
    ("net=10.0.2.0/255.0.255.0", ["net", "255.0.255.0"]),
    ("restrict=maybe", ["restrict", "maybe"]),
    ("open=sometimes", ["open", "sometimes"]),
    ("ipv6=v6", ["ipv6", "v6"]),
    ("ipv4=2", ["ipv4", "2"]),
    ("host=10.0.3.2", ["host", "10.0.3.2"]),
    ("dhcpstart=192.168.9.9", ["dhcpstart", "192.168.9.9"]),
    ("dhcpstart=10.0.2.300", ["dhcpstart", "10.0.2.300"]),
    ("dns=dns.example", ["dns", "dns.example"]),
    ("ipv6-net=fd00::/127", ["ipv6-net", "127"]),
    ("ipv6-host=fec0::zz", ["ipv6-host", "fec0::zz"]),
    ("domainname=bad domain!", ["domainname", "bad domain!"]),
    ("dnssearch=bad..name", ["dnssearch", "bad..name"]),
    ("tftp=/nonexistent/dir", ["tftp", "/nonexistent/dir"]),
]
BAD_IDS = [o for o, _ in BAD_OPTIONS]


def assert_names(msg, words):
    assert msg, "no error message"
    for w in words:
        assert w in msg, "error %r does not mention %r" % (msg, w)


@pytest.mark.parametrize("options,words", BAD_OPTIONS, ids=BAD_IDS)
def test_bad_options_plugin(plugin, helper_path, options, words):
    plugin("slirp," + options, expect_ok=False)   # warm-up: lazily created GLib state
    fds = open_fds()
    p = plugin("slirp," + options, expect_ok=False)
    assert p.init_rc == -1
    assert_names(p.error, words)
    assert child_pids(helper_path) == [], "a helper process was left behind"
    assert open_fds() == fds, "fds leaked by a failed init"


@pytest.mark.parametrize("options,words", BAD_OPTIONS, ids=BAD_IDS)
def test_bad_options_direct(direct, options, words):
    d = direct(options, expect_ok=False)
    assert d.ok is False
    assert_names(d.error, words)
    assert d.wait_exit(3) == 1


@pytest.mark.parametrize("spec,words", [
    ("bogus,restrict=on", ["bogus", "slirp"]),
    ("tap", ["tap", "slirp"]),
    ("", ["slirp"]),
    (",mtu=1500", ["slirp"]),
])
def test_unknown_backend(plugin, helper_path, spec, words):
    p = plugin(spec, expect_ok=False)
    assert p.init_rc == -1
    assert_names(p.error, words)
    assert child_pids(helper_path) == []


def test_empty_option_in_spec(plugin):
    p = plugin("slirp,,mtu=1500", expect_ok=False)
    assert p.init_rc == -1 and p.error


GOOD_SPECS = [
    "",
    "restrict=on",
    "restrict=off,open",
    "hostname=h1,domainname=d.test,dnssearch=x.test,dnssearch=y.test",
    "tftp=/,bootfile=pxelinux.0,tftp-server-name=10.0.2.2",
    "ipv6=off,mtu=576",
    "ipv4=off,ipv6=on",
    "ipv6-net=fd00:1::/64,ipv6-host=fd00:1::2,ipv6-dns=fd00:1::3",
    "mtu=65520",
    "mtu=68,ipv6=off",
    "net=192.168.76.0/255.255.255.0,host=192.168.76.1,dns=192.168.76.53,dhcpstart=192.168.76.100",
    "net=10.0.0.0",
]


@pytest.mark.parametrize("options", GOOD_SPECS)
def test_good_options_accepted(peer, options):
    p = peer(options)
    assert p.ok


def test_host_address(peer):
    p = peer("host=10.0.2.5", gw_ip="10.0.2.5")
    p.send(arp_who_has("10.0.2.5", p))
    r = p.expect(lambda x: ARP in x and x[ARP].op == 2 and x[ARP].psrc == "10.0.2.5")
    assert r[ARP].hwsrc == special_mac("10.0.2.5")
    p.send(arp_who_has("10.0.2.2", p))
    p.expect_none(lambda x: ARP in x and x[ARP].op == 2 and x[ARP].psrc == "10.0.2.2")
    p.send(icmp_echo(p, dst="10.0.2.5", seq=4))
    p.expect(icmp_echo_reply_from(p, src="10.0.2.5", seq=4))
    _, ack = dhcp_lease(p)
    assert socket.inet_ntoa(dhcp_options(ack)[3]) == "10.0.2.5"


def test_net_host_bits_dropped(peer):
    """As QEMU (and libvirt's <ip address='10.0.2.15' prefix='24'/>): net=10.0.2.1/24
    means the 10.0.2.0/24 network."""
    p = peer("net=10.0.2.1/24")
    _, ack = dhcp_lease(p)
    assert ack[BOOTP].yiaddr == "10.0.2.15"
    assert socket.inet_ntoa(dhcp_options(ack)[3]) == "10.0.2.2"


def test_dns_address(peer):
    p = peer("dns=10.0.2.4")
    p.send(arp_who_has("10.0.2.4", p))
    r = p.expect(lambda x: ARP in x and x[ARP].op == 2 and x[ARP].psrc == "10.0.2.4")
    assert r[ARP].hwsrc == special_mac("10.0.2.4")
    _, ack = dhcp_lease(p)
    assert socket.inet_ntoa(dhcp_options(ack)[6]) == "10.0.2.4"


def test_bootfile_and_tftp_server_name(peer):
    p = peer("bootfile=pxelinux.0,tftp-server-name=boot.example.test")
    _, ack = dhcp_lease(p)
    assert ack[BOOTP].file.rstrip(b"\0") == b"pxelinux.0"
    assert dhcp_options(ack)[66] == b"boot.example.test"


def test_tftp_serves_directory(peer, tmp_path):
    content = b"slirpnet tftp test file\n" * 3
    (tmp_path / "boot.txt").write_bytes(content)
    p = peer("restrict=on,tftp=%s" % tmp_path)
    rrq = b"\x00\x01" + b"boot.txt\x00" + b"octet\x00"
    p.send(udp_to(p, 69, rrq, sport=49999))
    r = p.expect(lambda x: UDP in x and x[UDP].dport == 49999, desc="TFTP DATA")
    data = bytes(r[UDP].payload)[: r[UDP].len - 8]
    assert data[:4] == b"\x00\x03\x00\x01", data[:4]      # DATA, block 1
    assert data[4:] == content
    # acknowledge so libslirp closes the session
    p.send(udp_to(p, r[UDP].sport, b"\x00\x04\x00\x01", sport=49999))


def test_ipv4_off(peer):
    p = peer("ipv4=off,ipv6=on")
    before = p.stats()
    p.send(arp_who_has("10.0.2.2", p))
    p.send(icmp_echo(p, seq=8))
    p.expect_none(lambda x: ARP in x or IP in x, desc="any IPv4/ARP answer")
    # both reached libslirp, which ignored them; IPv6 still answers
    assert stats_delta(before, p.stats()).get("from_guest_frames") == 2
    assert_alive6(p)


def test_repeatable_keys_accumulate_in_order(peer):
    """Repeatable keys accumulate (two dnssearch), in the order given."""
    p = peer("dnssearch=b.test,dnssearch=a.test")
    _, ack = dhcp_lease(p)
    assert decode_dns_names(dhcp_options(ack)[119]) == ["b.test", "a.test"]
