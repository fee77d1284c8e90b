# SPDX-License-Identifier: BSD-2-Clause
"""consts.py - libslirp's default addresses, the harness's timeouts, and small address helpers."""

import os
import socket

__all__ = ["GW_MAC", "GUEST_MAC", "GW_IP", "DNS_IP", "GUEST_IP", "GW_IP6", "GUEST_IP6",
           "GUEST_LL6", "BCAST_MAC", "SCALE", "POSITIVE_TIMEOUT", "NEGATIVE_TIMEOUT",
           "special_mac", "slirp_mac6", "timeout_or", "free_port", "free_ports"]

GW_MAC = "52:55:0a:00:02:02"       # libslirp: 52:55 + vhost address
GUEST_MAC = "52:54:00:12:34:56"
GW_IP = "10.0.2.2"
DNS_IP = "10.0.2.3"
GUEST_IP = "10.0.2.15"
GW_IP6 = "fec0::2"
GUEST_IP6 = "fec0::5054:ff:fe12:3456"
GUEST_LL6 = "fe80::5054:ff:fe12:3456"
BCAST_MAC = "ff:ff:ff:ff:ff:ff"

# Positive waits (a frame must come) and negative ones (none may come), both scaled by
# $SLIRPNET_TIMEOUT_SCALE for slow machines.
SCALE = float(os.environ.get("SLIRPNET_TIMEOUT_SCALE", "1") or 1)
POSITIVE_TIMEOUT = 3.0 * SCALE
NEGATIVE_TIMEOUT = 0.5 * SCALE


def special_mac(ip):
    """The MAC libslirp uses for one of its own IPv4 addresses (52:55:IP:IP:IP:IP)."""
    return "52:55:" + ":".join("%02x" % int(b) for b in ip.split("."))


def slirp_mac6(ip6):
    """The source MAC libslirp uses for IPv6 frames from ip6 (52:56 + last 4 bytes)."""
    raw = socket.inet_pton(socket.AF_INET6, ip6)
    return "52:56:" + ":".join("%02x" % b for b in raw[12:])


def timeout_or(value, default):
    """value in seconds as a float, or default when it is None."""
    return default if value is None else value * 1.0


def free_port(kind=socket.SOCK_STREAM):
    """An ephemeral port on 127.0.0.1 that was free a moment ago (bind 0, close)."""
    s = socket.socket(socket.AF_INET, kind)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def free_ports(n, kind=socket.SOCK_STREAM):
    """n different ports as free_port() picks them."""
    ports = []
    while len(ports) < n:
        port = free_port(kind)
        if port not in ports:
            ports.append(port)
    return ports
