# SPDX-License-Identifier: BSD-2-Clause
"""layers.py - scapy, set up so that nothing is resolved on a real interface, and the layers the tests use."""

import logging

logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
logging.getLogger("scapy.loading").setLevel(logging.ERROR)

from scapy.config import conf  # noqa: E402

conf.verb = 0

from scapy.packet import Packet, Raw, Padding, NoPayload  # noqa: E402
from scapy.layers.l2 import Ether, ARP  # noqa: E402
from scapy.layers.inet import IP, UDP, TCP, ICMP  # noqa: E402
from scapy.layers.inet6 import (  # noqa: E402
    IPv6,
    ICMPv6ND_NS,
    ICMPv6ND_NA,
    ICMPv6ND_RA,
    ICMPv6ND_RS,
    ICMPv6NDOptDstLLAddr,
    ICMPv6NDOptPrefixInfo,
    ICMPv6NDOptSrcLLAddr,
    ICMPv6EchoReply,
    ICMPv6EchoRequest,
)
from scapy.layers.dhcp import BOOTP, DHCP  # noqa: E402
from scapy.utils import PcapWriter, mac2str  # noqa: E402

__all__ = ["Packet", "Raw", "Padding", "NoPayload", "Ether", "ARP", "IP", "UDP", "TCP", "ICMP",
           "IPv6", "ICMPv6ND_NS", "ICMPv6ND_NA", "ICMPv6ND_RA", "ICMPv6ND_RS",
           "ICMPv6NDOptDstLLAddr", "ICMPv6NDOptPrefixInfo", "ICMPv6NDOptSrcLLAddr",
           "ICMPv6EchoReply", "ICMPv6EchoRequest", "BOOTP", "DHCP", "PcapWriter", "mac2str"]


def _never_resolve(*_args, **_kw):
    """Scapy must never ARP/ND on a real interface to fill in an Ether dst: an unset
    dst stays broadcast (and templates leave it out of comparisons)."""
    return None


conf.neighbor.resolve = _never_resolve
conf.raise_no_dst_mac = False
