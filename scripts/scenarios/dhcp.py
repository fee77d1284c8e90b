# SPDX-License-Identifier: BSD-2-Clause
"""dhcp: DISCOVER, OFFER, REQUEST, ACK from libslirp's DHCP server."""

import socket

from harness import BOOTP, dhcp_lease, dhcp_options

OPTIONS = "ipv6=off,hostname=scenario,domainname=example.test"


def run(peer, ctx):
    offer, ack = dhcp_lease(peer)
    opts = dhcp_options(ack)
    ctx.note("leased %s, router %s, dns %s, hostname %s" % (
        ack[BOOTP].yiaddr, socket.inet_ntoa(opts[3]), socket.inet_ntoa(opts[6]),
        opts.get(12, b"").decode()))
