# SPDX-License-Identifier: BSD-2-Clause
"""dhcp.py - DHCP from the guest (DISCOVER to ACK), its options decoded, and RFC 1035 name lists."""

import random
import socket

from .consts import BCAST_MAC
from .layers import BOOTP, DHCP, IP, UDP, Ether, mac2str

__all__ = ["DHCP_MAGIC", "DHCP_TYPES", "dhcp_options", "dhcp_type", "decode_dns_names",
           "dhcp_frame", "is_dhcp_reply", "dhcp_lease"]

DHCP_MAGIC = b"\x63\x82\x53\x63"
DHCP_TYPES = {1: "discover", 2: "offer", 3: "request", 4: "decline", 5: "ack", 6: "nak",
              7: "release", 8: "inform"}


def dhcp_options(p):
    """Raw DHCP options of a BOOTP packet as {code: bytes} (parsed by hand)."""
    raw = bytes(p[UDP].payload)
    body = raw[236:]
    assert body[:4] == DHCP_MAGIC, "no DHCP magic cookie"
    out = {}
    i = 4
    while i < len(body):
        code = body[i]
        if code == 0:
            i += 1
            continue
        if code == 255:
            break
        ln = body[i + 1]
        out[code] = out.get(code, b"") + body[i + 2: i + 2 + ln]  # RFC 3396 concatenation
        i += 2 + ln
    return out


def dhcp_type(p):
    try:
        return DHCP_TYPES.get(dhcp_options(p).get(53, b"\0")[0])
    except (AssertionError, IndexError):
        return None


def decode_dns_names(data):
    """Decode a sequence of RFC 1035 names (with compression pointers) to strings."""
    names = []
    pos = 0
    while pos < len(data):
        labels = []
        p = pos
        jumped = False
        end = None
        hops = 0
        while True:
            if p >= len(data):
                raise ValueError("truncated name")
            ln = data[p]
            if ln == 0:
                if not jumped:
                    end = p + 1
                break
            if ln & 0xC0 == 0xC0:
                if p + 1 >= len(data):
                    raise ValueError("truncated pointer")
                if not jumped:
                    end = p + 2
                p = ((ln & 0x3F) << 8) | data[p + 1]
                jumped = True
                hops += 1
                if hops > 64:
                    raise ValueError("pointer loop")
                continue
            labels.append(data[p + 1: p + 1 + ln].decode("ascii"))
            p += 1 + ln
        names.append(".".join(labels))
        pos = end
    return names


def dhcp_frame(peer, msgtype, xid, extra=()):
    opts = [("message-type", msgtype)] + list(extra) + ["end"]
    return (Ether(src=peer.guest_mac, dst=BCAST_MAC)
            / IP(src="0.0.0.0", dst="255.255.255.255")
            / UDP(sport=68, dport=67)
            / BOOTP(op=1, chaddr=mac2str(peer.guest_mac) + b"\0" * 10, xid=xid, flags=0)
            / DHCP(options=opts))


def is_dhcp_reply(xid, kind):
    def fn(p):
        return (BOOTP in p and p[BOOTP].op == 2 and p[BOOTP].xid == xid
                and dhcp_type(p) == kind)
    fn.__name__ = "dhcp_%s(xid=%#x)" % (kind, xid)
    return fn


def dhcp_lease(peer, xid=None, timeout=None, params=(1, 3, 6, 12, 15, 119)):
    """DISCOVER -> OFFER -> REQUEST -> ACK; returns (offer, ack) and adopts the address."""
    xid = xid or random.randrange(1, 1 << 31)
    prl = ("param_req_list", list(params))
    peer.send(dhcp_frame(peer, "discover", xid, [prl]))
    offer = peer.expect(is_dhcp_reply(xid, "offer"), timeout)
    yiaddr = offer[BOOTP].yiaddr
    server = socket.inet_ntoa(dhcp_options(offer).get(54, socket.inet_aton(peer.gw_ip)))
    peer.send(dhcp_frame(peer, "request", xid,
                         [("requested_addr", yiaddr), ("server_id", server), prl]))
    ack = peer.expect(is_dhcp_reply(xid, "ack"), timeout)
    peer.set_guest_ip(ack[BOOTP].yiaddr)
    return offer, ack
