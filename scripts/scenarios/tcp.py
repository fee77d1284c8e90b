# SPDX-License-Identifier: BSD-2-Clause
"""tcp: a guest connection to the gateway reaches a TCP echo server on 127.0.0.1: handshake, data, FIN."""

from harness import TcpConn

OPTIONS = "ipv6=off"


def run(peer, ctx):
    port = ctx.tcp_echo()
    conn = TcpConn.connect(peer, peer.gw_ip, port)
    conn.send(b"hello through slirpnet\n")
    assert conn.recv(23) == b"hello through slirpnet\n"
    conn.close()
    conn.wait_fin()
    ctx.note("echoed 23 bytes through 127.0.0.1:%d" % port)
