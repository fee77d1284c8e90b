# SPDX-License-Identifier: BSD-2-Clause
"""servers.py - servers on 127.0.0.1 for guest traffic to reach: a UDP echo and a threaded TCP server."""

import select
import socket
import threading

__all__ = ["UdpEcho", "TcpServer"]


def _each_ready(sock, stop, take):
    """take() each time sock is readable, until the Event stop is set (checked every 50 ms);
    yields what it returns; a take() that fails with OSError is skipped."""
    while not stop.is_set():
        r, _, _ = select.select([sock], [], [], 0.05)
        if not r:
            continue
        try:
            item = take()
        except OSError:
            continue
        yield item


class UdpEcho:
    """UDP echo on 127.0.0.1:<ephemeral>; .received holds (data, addr) of every datagram."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.received = []
        self.echo = True
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="udp-echo")
        self._thread.start()

    def _run(self):
        for data, addr in _each_ready(self.sock, self._stop, lambda: self.sock.recvfrom(65536)):
            self.received.append((data, addr))
            if self.echo:
                try:
                    self.sock.sendto(data, addr)
                except OSError:
                    pass

    def stop(self):
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


class TcpServer:
    """TCP server on 127.0.0.1:<ephemeral>; handler(conn_socket, server) per connection
    (in its own thread).  .accepted counts connections, .data collects bytes received
    by the default echo handler."""

    def __init__(self, handler=None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.handler = handler or TcpServer.echo_handler
        self.accepted = 0
        self.data = bytearray()
        self.peers = []
        self.errors = []
        self.closed_by_client = threading.Event()
        self._stop = threading.Event()
        self._threads = []
        self._conns = []
        self._thread = threading.Thread(target=self._run, daemon=True, name="tcp-server")
        self._thread.start()

    @staticmethod
    def echo_handler(conn, server):
        """Echo until the client half-closes, then close (FIN back)."""
        while not server._stop.is_set():
            r, _, _ = select.select([conn], [], [], 0.05)
            if not r:
                continue
            data = conn.recv(65536)
            if not data:
                server.closed_by_client.set()
                break
            server.data += data
            conn.sendall(data)

    def _serve(self, conn):
        try:
            self.handler(conn, self)
        except Exception as e:
            self.errors.append(e)
        finally:
            conn.close()

    def _run(self):
        for conn, addr in _each_ready(self.sock, self._stop, self.sock.accept):
            self.accepted += 1
            self.peers.append(addr)
            self._conns.append(conn)
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self):
        self._stop.set()
        self._thread.join(2)
        for t in self._threads:
            t.join(2)
        self.sock.close()
