# SPDX-License-Identifier: BSD-2-Clause
"""ping: three ICMP echo requests to the gateway, answered inside libslirp."""

from harness import icmp_echo, icmp_echo_reply_from

OPTIONS = "ipv6=off"


def run(peer, ctx):
    for seq in (1, 2, 3):
        peer.send(icmp_echo(peer, seq=seq))
        peer.expect(icmp_echo_reply_from(peer, seq=seq))
    ctx.note("3 echo replies from " + peer.gw_ip)
