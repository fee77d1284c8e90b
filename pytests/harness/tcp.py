# SPDX-License-Identifier: BSD-2-Clause
"""tcp.py - a minimal guest-side TCP (TcpConn) and the host side of a hostfwd (hostfwd_exchange)."""

import random
import socket
import time

from .consts import timeout_or
from .layers import IP, TCP, Ether, IPv6, Raw

__all__ = ["MOD32", "seq_add", "seq_lt", "seq_le", "tcp_payload", "TcpConn", "TcpConn6", "host_connect",
           "recv_exact", "hostfwd_download", "hostfwd_exchange"]

MOD32 = 1 << 32


def seq_add(a, n):
    return (a + n) % MOD32


def seq_lt(a, b):
    return ((a - b) % MOD32) > (MOD32 >> 1)


def seq_le(a, b):
    return a == b or seq_lt(a, b)


def tcp_payload(p):
    """TCP payload bytes of an IPv4 or IPv6 packet, without Ethernet padding."""
    t = p[TCP]
    if IP in p:
        dlen = p[IP].len - p[IP].ihl * 4 - t.dataofs * 4
    else:   # IPv6 without extension headers, as libslirp sends
        dlen = p[IPv6].plen - t.dataofs * 4
    return bytes(t)[t.dataofs * 4: t.dataofs * 4 + max(0, dlen)]


class TcpConn:
    """A minimal TCP endpoint on the guest side of a Peer (IPv4; TcpConn6 for IPv6).

    TcpConn.connect(peer, dst_ip, dport)  active open through slirp (e.g. to 10.0.2.2)
    TcpConn.accept(peer, port)            passive open: answer slirp's SYN (hostfwd)
    conn.send(data)     send and wait until everything is acknowledged
    conn.recv(n)        wait for n bytes (ACKing as they come); conn.recv_all() until FIN
    conn.close()        send FIN and wait for its ACK;  conn.wait_fin() waits for theirs
    """

    IP = IP                          # the network layer: IP or IPv6

    def __init__(self, peer, local_ip, local_port, remote_ip, remote_port, mss=1460,
                 window=65535):
        self.peer = peer
        self.local_ip, self.local_port = local_ip, local_port
        self.remote_ip, self.remote_port = remote_ip, remote_port
        self.mss = mss
        self.window = window
        self.iss = random.randrange(MOD32)
        self.snd_una = self.snd_nxt = self.iss
        self.snd_wnd = 1
        self.rcv_nxt = None
        self.rx = bytearray()
        self.unacked = bytearray()   # sent data from snd_una (without SYN/FIN)
        self.fin_rcvd = False
        self.fin_sent = False
        self.rst = False
        self.segments_in = []

    # -- frames --------------------------------------------------------------------------
    def is_mine(self, p):
        ip = self.IP
        return (ip in p and TCP in p and p[ip].src == self.remote_ip
                and p[ip].dst == self.local_ip and p[TCP].sport == self.remote_port
                and p[TCP].dport == self.local_port)

    def segment(self, flags, seq=None, payload=b"", options=None):
        t = TCP(sport=self.local_port, dport=self.remote_port, flags=flags,
                seq=self.snd_nxt if seq is None else seq,
                ack=self.rcv_nxt if (self.rcv_nxt is not None and "A" in flags) else 0,
                window=self.window, options=options or [])
        frame = (Ether(src=self.peer.guest_mac, dst=self.peer.gw_mac)
                 / self.IP(src=self.local_ip, dst=self.remote_ip) / t)
        if payload:
            frame = frame / Raw(load=payload)
        return frame

    def _tx(self, flags, seq=None, payload=b"", options=None):
        self.peer.send(self.segment(flags, seq, payload, options))

    def _input(self, p):
        self.segments_in.append(p)
        t = p[TCP]
        flags = str(t.flags)
        if "R" in flags:
            self.rst = True
            return
        if "A" in flags and seq_lt(self.snd_una, t.ack) and seq_le(t.ack, self.snd_nxt):
            acked = (t.ack - self.snd_una) % MOD32
            # SYN and FIN take a sequence number but are not in self.unacked
            data_acked = min(acked, len(self.unacked))
            del self.unacked[:data_acked]
            self.snd_una = t.ack
        if "A" in flags:
            self.snd_wnd = t.window
        if "S" in flags:
            # retransmitted SYN(-ACK): our ACK was lost or late; ACK again
            self._tx("A")
            return
        data = tcp_payload(p)
        fin = "F" in flags
        if not data and not fin:
            return
        if self.rcv_nxt is not None and t.seq == self.rcv_nxt:
            self.rx += data
            self.rcv_nxt = seq_add(self.rcv_nxt, len(data))
            if fin and not self.fin_rcvd:
                self.rcv_nxt = seq_add(self.rcv_nxt, 1)
                self.fin_rcvd = True
        self._tx("A")  # ACK new data, or duplicate ACK for anything out of order

    def _wait(self, cond, timeout, what, retransmit=False):
        timeout = timeout_or(timeout, self.peer.POSITIVE_TIMEOUT)
        start = time.time()
        deadline = time.monotonic() + timeout
        last_progress = time.monotonic()
        una = self.snd_una
        while not cond():
            if self.rst:
                raise AssertionError(self.peer._failure(
                    "connection reset while waiting for " + what, self.describe(), start))
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(self.peer._failure(
                    "timed out after %.1f s waiting for %s" % (timeout, what),
                    self.describe(), start))
            p = self.peer.poll(self.is_mine, min(remaining, 0.25))
            if p is not None:
                self._input(p)
            if self.snd_una != una:
                una, last_progress = self.snd_una, time.monotonic()
            elif retransmit and time.monotonic() - last_progress > 1.0:
                self._retransmit()
                last_progress = time.monotonic()

    def _retransmit(self):
        data = bytes(self.unacked)
        seq = self.snd_una
        for off in range(0, len(data), self.mss):
            chunk = data[off: off + self.mss]
            self._tx("PA", seq=seq, payload=chunk)
            seq = seq_add(seq, len(chunk))
        if self.fin_sent and seq_lt(self.snd_una, self.snd_nxt) and \
                (self.snd_nxt - self.snd_una) % MOD32 == len(data) + 1:
            self._tx("FA", seq=seq)

    def describe(self):
        return ("TCP %s:%d <-> %s:%d snd_una=%d snd_nxt=%d rcv_nxt=%s rx=%d fin_rcvd=%s"
                % (self.local_ip, self.local_port, self.remote_ip, self.remote_port,
                   self.snd_una, self.snd_nxt, self.rcv_nxt, len(self.rx), self.fin_rcvd))

    # -- opening ---------------------------------------------------------------------------
    @classmethod
    def connect(cls, peer, remote_ip, remote_port, local_port=None, timeout=None, **kw):
        """Active open from the guest; returns the established connection."""
        local_port = local_port or random.randint(32768, 60999)
        local_ip = peer.guest_ip if cls.IP is IP else peer.guest_ip6
        c = cls(peer, local_ip, local_port, remote_ip, remote_port, **kw)
        c._tx("S", seq=c.iss, options=[("MSS", c.mss)])
        c.snd_nxt = seq_add(c.iss, 1)
        synack = peer.expect(lambda p: c.is_mine(p) and ("S" in str(p[TCP].flags)
                                                        or "R" in str(p[TCP].flags)),
                             timeout, desc="SYN-ACK for " + c.describe())
        if "R" in str(synack[TCP].flags):
            raise AssertionError("connection to %s:%d refused (RST)\n%s"
                                 % (remote_ip, remote_port, synack.show(dump=True)))
        assert "A" in str(synack[TCP].flags), synack.show(dump=True)
        assert synack[TCP].ack == c.snd_nxt, \
            "SYN-ACK acks %d, expected %d" % (synack[TCP].ack, c.snd_nxt)
        c.synack = synack
        c.rcv_nxt = seq_add(synack[TCP].seq, 1)
        c.snd_una = synack[TCP].ack
        c.snd_wnd = synack[TCP].window
        c._tx("A")
        return c

    @classmethod
    def accept(cls, peer, port, timeout=None, local_ip=None, **kw):
        """Passive open: wait for slirp's SYN to local_ip:port, answer, wait for ACK."""
        ip = cls.IP
        local_ip = local_ip or (peer.guest_ip if ip is IP else peer.guest_ip6)
        syn = peer.expect(lambda p: ip in p and TCP in p and p[ip].dst == local_ip
                          and p[TCP].dport == port and str(p[TCP].flags) == "S",
                          timeout, desc="SYN to %s:%d" % (local_ip, port))
        c = cls(peer, local_ip, port, syn[ip].src, syn[TCP].sport, **kw)
        c.syn = syn
        c.rcv_nxt = seq_add(syn[TCP].seq, 1)
        c._tx("SA", seq=c.iss, options=[("MSS", c.mss)])
        c.snd_nxt = seq_add(c.iss, 1)
        c._wait(lambda: c.snd_una == c.snd_nxt, timeout, "ACK of our SYN-ACK")
        return c

    # -- data --------------------------------------------------------------------------------
    def send(self, data, timeout=None):
        """Send data (segmented by mss, within the peer's window); wait for its ACK."""
        data = bytes(data)
        off = 0
        timeout = timeout_or(timeout, self.peer.POSITIVE_TIMEOUT)
        deadline = time.monotonic() + timeout
        while off < len(data):
            in_flight = len(self.unacked)
            room = max(self.snd_wnd, 1) - in_flight
            if room <= 0:
                self._wait(lambda: len(self.unacked) < max(self.snd_wnd, 1),
                           max(0.1, deadline - time.monotonic()), "window space",
                           retransmit=True)
                continue
            chunk = data[off: off + min(self.mss, room)]
            self._tx("PA", payload=chunk)
            self.unacked += chunk
            self.snd_nxt = seq_add(self.snd_nxt, len(chunk))
            off += len(chunk)
        self._wait(lambda: self.snd_una == self.snd_nxt,
                   max(0.1, deadline - time.monotonic()), "ACK of sent data",
                   retransmit=True)

    def recv(self, n, timeout=None):
        """Wait until n bytes arrived; return (and consume) them."""
        self._wait(lambda: len(self.rx) >= n or self.fin_rcvd, timeout,
                   "%d bytes of data" % n)
        assert len(self.rx) >= n, "FIN after %d of %d bytes" % (len(self.rx), n)
        out = bytes(self.rx[:n])
        del self.rx[:n]
        return out

    def recv_all(self, timeout=None):
        """Wait for the peer's FIN; return all data received (consumed)."""
        self.wait_fin(timeout)
        out = bytes(self.rx)
        self.rx.clear()
        return out

    def wait_fin(self, timeout=None):
        self._wait(lambda: self.fin_rcvd, timeout, "FIN")

    def close(self, timeout=None):
        """Send FIN (with ACK) and wait until it is acknowledged."""
        if not self.fin_sent:
            self._tx("FA")
            self.fin_sent = True
            self.snd_nxt = seq_add(self.snd_nxt, 1)
        self._wait(lambda: self.snd_una == self.snd_nxt, timeout, "ACK of our FIN",
                   retransmit=True)


class TcpConn6(TcpConn):
    """TcpConn over IPv6 (the guest's SLAAC address by default; mss 1440 fits MTU 1500)."""

    IP = IPv6

    def __init__(self, *args, mss=1440, **kw):
        super().__init__(*args, mss=mss, **kw)


def host_connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=3)
    s.settimeout(3)
    return s


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            break
        buf += chunk
    return buf


def hostfwd_download(p, port, guest_port, data, timeout=15, **conn_kw):
    """Host client -> 127.0.0.1:port sends data; the guest accepts at guest_port (TcpConn
    keyword arguments such as mss=) and must receive it all. Returns the TcpConn."""
    h = host_connect(port)
    try:
        c = TcpConn.accept(p, guest_port, **conn_kw)
        h.sendall(data)
        got = c.recv(len(data), timeout=timeout)
        assert got == data, "the guest received %d bytes that differ from the %d sent" % (
            len(got), len(data))
        return c
    finally:
        h.close()


def hostfwd_exchange(p, port, guest_port):
    """Host client -> 127.0.0.1:port; accept on the guest side at guest_port; data and
    FIN both ways.  Returns the guest-side TcpConn."""
    h = host_connect(port)
    try:
        c = TcpConn.accept(p, guest_port)
        syn = c.syn
        assert syn[IP].dst == p.guest_ip and syn[TCP].dport == guest_port
        assert syn[IP].src == p.gw_ip    # the host's loopback appears as the gateway
        assert syn[Ether].src == p.gw_mac and syn[Ether].dst == p.guest_mac
        assert str(syn[TCP].flags) == "S"

        h.sendall(b"from host\n")
        assert c.recv(10) == b"from host\n"
        c.send(b"from guest\n")
        assert recv_exact(h, 11) == b"from guest\n"

        h.shutdown(socket.SHUT_WR)       # host FIN -> guest
        c.wait_fin()
        c.close()                        # guest FIN -> host sees EOF
        assert h.recv(1) == b""
    finally:
        h.close()
    return c
