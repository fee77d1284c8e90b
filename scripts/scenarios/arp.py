# SPDX-License-Identifier: BSD-2-Clause
"""arp: the guest resolves the gateway and the DNS address; a gratuitous ARP goes unanswered."""

from harness import ARP, arp_who_has, gratuitous_arp

OPTIONS = "ipv6=off"


def run(peer, ctx):
    for ip in (peer.gw_ip, "10.0.2.3"):        # ARP only: no DNS query is ever sent
        peer.send(arp_who_has(ip, peer))
        r = peer.expect(lambda x: ARP in x and x[ARP].op == 2 and x[ARP].psrc == ip,
                        desc="ARP reply for " + ip)
        ctx.note("%s is-at %s" % (ip, r[ARP].hwsrc))
    peer.send(gratuitous_arp(peer))
    peer.expect_none(lambda x: ARP in x and x[ARP].op == 2, desc="answer to a gratuitous ARP")
