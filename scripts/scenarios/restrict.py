# SPDX-License-Identifier: BSD-2-Clause
"""restrict: with restrict=on the guest's TCP and UDP go nowhere; ping to the gateway and DHCP still work."""

from harness import TCP, UDP, TcpConn, dhcp_lease, dhcp_options, icmp_echo, icmp_echo_reply_from, udp_to

OPTIONS = "restrict=on,ipv6=off"


def run(peer, ctx):
    tcp_port = ctx.tcp_echo()
    udp_port = ctx.udp_echo()
    c = TcpConn(peer, peer.guest_ip, 46000, peer.gw_ip, tcp_port)
    c._tx("S", seq=c.iss, options=[("MSS", 1460)])
    peer.expect_none(lambda x: c.is_mine(x) and "S" in str(x[TCP].flags), timeout=1.0,
                     desc="SYN-ACK from the restricted gateway")
    peer.send(udp_to(peer, udp_port, b"should not pass", sport=43000))
    peer.expect_none(lambda x: UDP in x and x[UDP].dport == 43000, timeout=1.0)
    assert ctx.servers_saw_nothing(), "a host server saw traffic despite restrict=on"
    peer.send(icmp_echo(peer, seq=1))
    peer.expect(icmp_echo_reply_from(peer, seq=1))
    _, ack = dhcp_lease(peer)
    assert 3 not in dhcp_options(ack), "restricted DHCP offered a router"
    ctx.note("TCP and UDP blocked; ping and DHCP (no router) answered")
