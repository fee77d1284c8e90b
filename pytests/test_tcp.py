# SPDX-License-Identifier: BSD-2-Clause
"""TCP from the guest (scapy client) to servers on the host's loopback via 10.0.2.2."""

from harness import IP, TCP, Ether, GW_IP, GW_MAC, TcpConn, free_port


def test_handshake_data_and_fin_both_ways(peer, tcp_echo):
    p = peer()
    c = TcpConn.connect(p, GW_IP, tcp_echo.port)
    synack = c.synack
    assert str(synack[TCP].flags) == "SA"
    assert synack[IP].src == GW_IP and synack[IP].dst == p.guest_ip
    assert synack[Ether].src == GW_MAC and synack[Ether].dst == p.guest_mac
    assert synack[TCP].sport == tcp_echo.port
    assert any(o[0] == "MSS" for o in synack[TCP].options)

    c.send(b"hello over slirp\n")
    assert c.recv(17) == b"hello over slirp\n"
    c.send(b"second line\n")
    assert c.recv(12) == b"second line\n"

    c.close()                                  # our FIN, acknowledged
    assert tcp_echo.closed_by_client.wait(3)   # the server saw EOF ...
    c.wait_fin()                               # ... closed, and its FIN reached us
    assert c.fin_rcvd
    assert bytes(tcp_echo.data) == b"hello over slirp\nsecond line\n"
    assert tcp_echo.accepted == 1
    assert tcp_echo.peers[0][0] == "127.0.0.1"


def test_bulk_echo(peer, tcp_echo):
    p = peer()
    c = TcpConn.connect(p, GW_IP, tcp_echo.port)
    data = bytes((i * 31 + 7) & 0xFF for i in range(64 * 1024))
    c.send(data, timeout=10)
    got = c.recv(len(data), timeout=10)
    assert got == data
    c.close()
    c.wait_fin()


def test_server_closes_first(peer, tcp_server):
    banner = b"220 slirpnet test server\r\n"

    def handler(conn, server):
        conn.sendall(banner)
        # close immediately: FIN towards the guest

    srv = tcp_server(handler)
    p = peer()
    c = TcpConn.connect(p, GW_IP, srv.port)
    assert c.recv_all() == banner
    c.close()


def test_refused_port_gets_rst(peer):
    p = peer()
    port = free_port()  # nothing listens there
    c = TcpConn(p, p.guest_ip, 45000, GW_IP, port)
    c._tx("S", seq=c.iss)
    r = p.expect(lambda x: c.is_mine(x) and "R" in str(x[TCP].flags), desc="RST")
    assert "S" not in str(r[TCP].flags)
