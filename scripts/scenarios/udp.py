# SPDX-License-Identifier: BSD-2-Clause
"""udp: datagrams to the gateway reach an echo server on the host's 127.0.0.1 and come back."""

from harness import UDP, udp_to

OPTIONS = "ipv6=off"


def run(peer, ctx):
    port = ctx.udp_echo()
    for i in range(3):
        payload = b"scenario datagram %d" % i
        peer.send(udp_to(peer, port, payload, sport=42000 + i))
        r = peer.expect(lambda x: UDP in x and x[UDP].dport == 42000 + i)
        assert bytes(r[UDP].payload)[:len(payload)] == payload
    ctx.note("3 datagrams echoed by 127.0.0.1:%d" % port)
