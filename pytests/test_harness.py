# SPDX-License-Identifier: BSD-2-Clause
"""Self-tests of the harness package that need no helper: matching, decoding, encoding."""

import os

import pytest

import harness
from harness import (ARP, ICMP, IP, TCP, UDP, Ether, Raw, decode_dns_names, decode_status,
                     encode_config, packet_matches, parse_options, parse_stats, seq_add,
                     seq_lt, STATS_COUNTERS)


def test_template_matching():
    pkt = Ether(bytes(Ether(src="52:55:0a:00:02:02", dst="52:54:00:12:34:56")
                      / IP(src="10.0.2.2", dst="10.0.2.15") / ICMP(type=0, id=5, seq=9)
                      / Raw(load=b"abc")))
    assert packet_matches(Ether(dst="52:54:00:12:34:56") / IP(src="10.0.2.2"), pkt)
    assert packet_matches(Ether(dst="52:54:00:12:34:56".upper()), pkt)  # MAC case
    assert packet_matches(Ether() / IP() / ICMP(id=5, seq=9) / Raw(load=b"abc"), pkt)
    assert not packet_matches(Ether() / IP() / ICMP(id=5, seq=8), pkt)
    assert not packet_matches(Ether() / IP() / UDP(), pkt)
    assert not packet_matches(Ether() / IP() / ICMP() / Raw(load=b"abd"), pkt)
    assert not packet_matches(Ether() / ARP(), pkt)


def test_template_raw_vs_padding():
    pkt = Ether(bytes(Ether(src="52:55:0a:00:02:02", dst="52:54:00:12:34:56")
                      / IP(src="10.0.2.2", dst="10.0.2.15") / UDP(sport=1, dport=2)
                      / b"x") + b"\0" * 20)
    assert packet_matches(Ether() / IP() / UDP(sport=1) / Raw(load=b"x"), pkt)


def test_tcp_flags_match():
    pkt = Ether(bytes(Ether(src="52:55:0a:00:02:02", dst="52:54:00:12:34:56")
                      / IP(src="10.0.2.2", dst="10.0.2.15") / TCP(flags="SA")))
    assert packet_matches(Ether() / IP() / TCP(flags="SA"), pkt)
    assert not packet_matches(Ether() / IP() / TCP(flags="S"), pkt)


def test_dns_names_plain_and_compressed():
    plain = b"\x04corp\x07example\x04test\x00\x03lab\x07example\x04test\x00"
    assert decode_dns_names(plain) == ["corp.example.test", "lab.example.test"]
    # second name: "lab" + pointer to offset 5 ("example.test")
    comp = b"\x04corp\x07example\x04test\x00\x03lab\xc0\x05"
    assert decode_dns_names(comp) == ["corp.example.test", "lab.example.test"]
    with pytest.raises(ValueError):
        decode_dns_names(b"\xc0\x00")


def test_parse_options():
    assert parse_options("a=1,open,hostfwd=tcp::1-:2;udp::3-:4") == [
        ("a", "1"), ("open", ""), ("hostfwd", "tcp::1-:2;udp::3-:4")]
    assert parse_options([("k", 1)]) == [("k", "1")]
    assert parse_options("") == []


def test_parse_stats():
    """Today's line: the 14 counters named by direction, in the helper's order; the last
    line of the text wins."""
    first = " ".join("%s=%d" % (k, i) for i, k in enumerate(STATS_COUNTERS))
    last = " ".join("%s=%d" % (k, 1000 + i) for i, k in enumerate(STATS_COUNTERS))
    text = ("slirpnet[7]: INFO: stats: " + first + "\n"
            "slirpnet[7]: INFO: something else\n"
            "slirpnet[7]: INFO: stats: " + last + "\n")
    st = parse_stats(text)
    assert list(st) == list(STATS_COUNTERS)
    assert st["from_guest_frames"] == 1000 and st["to_guest_split"] == 1013
    assert st["drop_to_guest_full"] == 1007 and st["drop_vnet_hdr"] == 1009
    assert parse_stats("nothing") is None


def test_parse_stats_literal_line():
    """A line as the helper writes it (plugin/helper/stats.hpp), as a literal."""
    line = ("slirpnet[4242]: message: stats: from_guest_frames=12 "
            "from_guest_bytes=3456 to_guest_frames=7 to_guest_bytes=890 drop_oversize=1 "
            "drop_runt=2 drop_fragment=3 drop_to_guest_full=4 drop_to_guest_error=5 "
            "drop_vnet_hdr=6 pauses=8 from_guest_gso=9 to_guest_gso=10 to_guest_split=11\n")
    assert parse_stats(line) == {
        "from_guest_frames": 12, "from_guest_bytes": 3456, "to_guest_frames": 7,
        "to_guest_bytes": 890, "drop_oversize": 1, "drop_runt": 2, "drop_fragment": 3,
        "drop_to_guest_full": 4, "drop_to_guest_error": 5, "drop_vnet_hdr": 6, "pauses": 8,
        "from_guest_gso": 9, "to_guest_gso": 10, "to_guest_split": 11}


def test_gvariant_config_roundtrip():
    from gi.repository import GLib
    data = encode_config("restrict=on,open,hostfwd=tcp::1-:2")
    v = GLib.Variant.new_from_bytes(GLib.VariantType("(ua(ss))"), GLib.Bytes(data), False)
    assert v.unpack() == (1, [("restrict", "on"), ("open", ""), ("hostfwd", "tcp::1-:2")])
    st = GLib.Variant("(bs)", (False, "mtu: bad")).get_data_as_bytes().get_data()
    assert decode_status(st) == (False, "mtu: bad")


def test_seq_arithmetic():
    assert seq_add(0xFFFFFFFF, 2) == 1
    assert seq_lt(0xFFFFFFF0, 5)
    assert not seq_lt(5, 0xFFFFFFF0)


def test_failure_message_lists_frames():
    class FakePeer(harness.Peer):
        def _send_raw(self, data):
            return len(data)

        def _pump(self, timeout):
            if not getattr(self, "fed", False):
                self.fed = True
                self._raw_in.append((0.0 + __import__("time").time(), bytes(
                    Ether(src="52:55:0a:00:02:02", dst="52:54:00:12:34:56")
                    / IP(src="10.0.2.2", dst="10.0.2.15") / ICMP(type=3))))

        def close(self):
            pass

    p = FakePeer()
    with pytest.raises(AssertionError) as e:
        p.expect(Ether() / IP() / ICMP(type=0), timeout=0.05)
    msg = str(e.value)
    assert "=== EXPECTED ===" in msg and "###[ ICMP ]###" in msg
    assert "dest-unreach" in msg or "ICMP" in msg.split("=== RECEIVED")[1]
    with pytest.raises(AssertionError):
        p.expect_none(ICMP, timeout=0.05)


def test_split_helper_and_helper_env(monkeypatch):
    """helper=PATH in a plugin spec is the harness's: taken out of the spec; the variable
    the plugin reads is set only inside helper_env, and restored (or removed) after."""
    assert harness.split_helper("slirp,restrict=on,helper=/x/slirpnet,mtu=9000") == (
        "slirp,restrict=on,mtu=9000", "/x/slirpnet")
    assert harness.split_helper("slirp,,mtu=1500") == ("slirp,,mtu=1500", None)
    monkeypatch.setenv("SLIRPNET_HELPER", "/before")
    with harness.helper_env("/during"):
        assert os.environ["SLIRPNET_HELPER"] == "/during"
    assert os.environ["SLIRPNET_HELPER"] == "/before"
    monkeypatch.delenv("SLIRPNET_HELPER")
    with harness.helper_env("/during"):
        assert os.environ["SLIRPNET_HELPER"] == "/during"
    assert "SLIRPNET_HELPER" not in os.environ


def test_stats_delta():
    before = dict.fromkeys(STATS_COUNTERS, 5)
    after = dict(before, drop_runt=7, from_guest_frames=6)
    assert harness.stats_delta(before, after) == {"from_guest_frames": 1, "drop_runt": 2}
    assert harness.DROP_COUNTERS == ("drop_oversize", "drop_runt", "drop_fragment",
                                     "drop_to_guest_full", "drop_to_guest_error",
                                     "drop_vnet_hdr", "drop_foreign_sender", "drop_egress_tcp",
                                     "drop_egress_udp", "drop_egress_icmp", "drop_frag_overlap",
                                     "drop_frag_timeout", "drop_frag_limit", "drop_flow_limit_tcp",
                                     "drop_flow_limit_udp", "drop_flow_limit_icmp", "drop_vhost_chain")
