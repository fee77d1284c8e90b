# SPDX-License-Identifier: BSD-2-Clause
"""test_transports.py - the QEMU-facing transports of the helper, driven from Python (no QEMU).

  --socket PATH   UNIX stream, 4-byte big-endian length + frame (-netdev stream)
  --dgram PATH    UNIX datagram, one frame per datagram, replies to the sender (-netdev dgram)
  --fd N          an inherited connected socket, framed by its SO_TYPE

The classes here (HelperProc, StreamPeer, DgramPeer) are also used by test_libvirt.py and
test_guest.py.  Everything stays on AF_UNIX sockets in a private temporary directory.
"""

import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time

import pytest

import harness
from harness import (ARP, ICMP, IP, Ether, GW_IP, GW_MAC, arp_who_has, icmp_echo,
                     icmp_echo_reply_from)

QEMU_MAX_FRAME = 69632      # QEMU's NET_BUFSIZE
# The kernel's default socket send buffer (the helper doubles nothing: SO_SNDBUF does),
# instead of the helper's 4 MiB, for tests that must fill the link.
SMALL_SNDBUF = "--sndbuf=106496"
MIN_FRAME = 60              # ETH_ZLEN: frames to QEMU are padded to this
SCALE = harness._SCALE


def helper_path():
    path = os.environ.get("SLIRPNET_HELPER")
    if not path:
        pytest.fail("SLIRPNET_HELPER is not set: point it at the built slirpnet helper "
                    "(e.g. SLIRPNET_HELPER=/tmp/build/plugin/slirpnet)", pytrace=False)
    if not os.access(path, os.X_OK):
        pytest.fail("SLIRPNET_HELPER=%s is not an executable; build first" % path, pytrace=False)
    return path


# --------------------------------------------------------------------------------------
# The helper process

class HelperProc:
    """`slirpnet ARGS` with stderr to a log file; waits for the 'ready on' line on stdout."""

    def __init__(self, args, pass_fds=(), wait_ready=True, ready_timeout=5.0):
        self.args = [helper_path()] + list(args)
        fd, self.log_path = tempfile.mkstemp(prefix="slirpnet-helper-", suffix=".log")
        self._logf = os.fdopen(fd, "w")
        self.proc = subprocess.Popen(self.args, pass_fds=tuple(pass_fds),
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=self._logf)
        self.pid = self.proc.pid
        self.returncode = None
        self.ready_line = None
        if wait_ready:
            self.wait_ready(ready_timeout * SCALE)

    def wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        line = b""
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            r, _, _ = select.select([self.proc.stdout], [], [], max(0.0, left))
            if not r:
                self.kill()
                raise AssertionError("helper %s: no ready line within %.1f s; log:\n%s"
                                     % (self.args, timeout, self.log()))
            ch = os.read(self.proc.stdout.fileno(), 1)
            if not ch:
                rc = self.wait(2)
                raise AssertionError("helper %s exited (%s) before it was ready; log:\n%s"
                                     % (self.args, rc, self.log()))
            line += ch
        self.ready_line = line.decode().strip()
        assert self.ready_line.startswith("slirpnet: ready on "), self.ready_line

    def log(self):
        try:
            self._logf.flush()
        except ValueError:
            pass
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def alive(self):
        return self.proc.poll() is None

    def wait(self, timeout=None):
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        return self.returncode

    def stop(self, timeout=5.0):
        """SIGTERM (only this helper) and reap it; returns its exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        rc = self.wait(timeout * SCALE)
        if rc is None:
            self.kill()
            rc = "timeout"
        return rc

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.returncode = self.proc.wait()

    def stats(self, timeout=3.0):
        before = self.log().count("stats:")
        os.kill(self.pid, signal.SIGUSR1)
        deadline = time.monotonic() + timeout * SCALE
        while time.monotonic() < deadline:
            text = self.log()
            if text.count("stats:") > before:
                return harness.parse_stats(text)
            time.sleep(0.02)
        raise AssertionError("no stats line after SIGUSR1; log:\n" + self.log())

    def close(self):
        if self.proc.poll() is None:
            self.kill()
        if self.proc.stdout:
            self.proc.stdout.close()
        try:
            self._logf.close()
        except OSError:
            pass
        try:
            os.unlink(self.log_path)
        except OSError:
            pass


# --------------------------------------------------------------------------------------
# Peers: the QEMU side of each framing, on harness.Peer (expect/poll/auto-ARP)

class StreamPeer(harness.Peer):
    """A connected SOCK_STREAM socket speaking QEMU's length-prefixed framing."""

    def __init__(self, sock, helper=None, **kw):
        super().__init__(**kw)
        self.sock = sock
        self.helper = helper
        self.buf = b""
        self.eof = False
        self.lengths = []          # wire length of every frame received, in order
        self.name = "StreamPeer(%s)" % (helper.pid if helper else "?")

    @classmethod
    def connect(cls, path, helper=None, **kw):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(5)
        s.connect(path)
        return cls(s, helper, **kw)

    def _send_raw(self, data):
        self.sock.sendall(struct.pack(">I", len(data)) + data)
        return len(data)

    def send_wire(self, raw, chunk=None, delay=0.0):
        """Send raw wire bytes (headers included), optionally in chunks of `chunk` bytes."""
        if not chunk:
            self.sock.sendall(raw)
            return
        for i in range(0, len(raw), chunk):
            self.sock.sendall(raw[i:i + chunk])
            if delay:
                time.sleep(delay)

    def _pump(self, timeout):
        if self.eof:
            time.sleep(max(0.0, min(timeout, 0.05)))
            return
        try:
            r, _, _ = select.select([self.sock], [], [], max(0.0, min(timeout, 0.2)))
        except (OSError, ValueError):
            return
        if not r:
            return
        try:
            data = self.sock.recv(1 << 20, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.eof = True
            return
        self.buf += data
        now = time.time()
        while len(self.buf) >= 4:
            (n,) = struct.unpack(">I", self.buf[:4])
            assert n <= QEMU_MAX_FRAME, "helper sent a length of %d" % n
            if len(self.buf) < 4 + n:
                break
            self.lengths.append(n)
            self._raw_in.append((now, self.buf[4:4 + n]))
            self.buf = self.buf[4 + n:]

    def wait_eof(self, timeout=3.0):
        deadline = time.monotonic() + timeout * SCALE
        while not self.eof and time.monotonic() < deadline:
            self._pump(deadline - time.monotonic())
        return self.eof

    def helper_pid(self):
        return self.helper.pid if self.helper else None

    def helper_log(self):
        return self.helper.log() if self.helper else ""

    def close(self):
        if not self.closed:
            self.closed = True
            self.sock.close()


class DgramPeer(harness.Peer):
    """A datagram socket: connected (socketpair) or bound, sending to `dest`.
    (The helper's replies in --dgram mode come from a second, unbound socket.)"""

    def __init__(self, sock, dest=None, helper=None, **kw):
        super().__init__(**kw)
        self.sock = sock
        self.dest = dest
        self.helper = helper
        self.senders = []          # source address of every datagram received
        self.eof = False
        self.name = "DgramPeer(%s)" % (helper.pid if helper else "?")

    def _send_raw(self, data):
        if self.dest is None:
            return self.sock.send(data)
        return self.sock.sendto(data, self.dest)

    def _pump(self, timeout):
        if self.eof:
            time.sleep(max(0.0, min(timeout, 0.05)))
            return
        try:
            r, _, _ = select.select([self.sock], [], [], max(0.0, min(timeout, 0.2)))
        except (OSError, ValueError):
            return
        while r:
            try:
                data, addr = self.sock.recvfrom(1 << 17, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return
            except OSError:
                self.eof = True
                return
            if not data and self.sock.type == socket.SOCK_SEQPACKET:
                self.eof = True
                return
            self.senders.append(addr)
            self._raw_in.append((time.time(), data))

    def helper_pid(self):
        return self.helper.pid if self.helper else None

    def helper_log(self):
        return self.helper.log() if self.helper else ""

    def close(self):
        if not self.closed:
            self.closed = True
            self.sock.close()


# --------------------------------------------------------------------------------------
# Fixtures

@pytest.fixture
def workdir():
    """A short private directory (UNIX socket paths are limited to 107 bytes)."""
    d = tempfile.mkdtemp(prefix="sn-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def helpers(request):
    """Factory for HelperProc; every helper still running at teardown is stopped (SIGTERM)
    and must exit 0.  The logs of a failed test are printed."""
    made = []

    def make(args, **kw):
        h = HelperProc(args, **kw)
        made.append(h)
        return h
    yield make
    problems = []
    for h in made:
        was_alive = h.alive()
        rc = h.stop()
        if was_alive and rc != 0:
            problems.append("helper %s exited with %s at teardown; log:\n%s" % (h.args, rc, h.log()))
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        for h in made:
            print("--- helper %s log:\n%s" % (h.args, h.log()))
    for h in made:
        h.close()
    assert not problems, "\n".join(problems)


@pytest.fixture
def peers():
    made = []

    def track(p):
        made.append(p)
        return p
    yield track
    for p in made:
        p.close()


def arp_check(p):
    """ARP who-has for the gateway; returns the raw bytes of the reply."""
    p.send(arp_who_has(GW_IP, p))
    r = p.expect(Ether(dst=p.guest_mac) / ARP(op=2, psrc=GW_IP, hwsrc=GW_MAC, pdst=p.guest_ip))
    return bytes(r)


def ping_check(p, seq=1, payload=b"slirpnet-transport"):
    p.send(icmp_echo(p, dst=GW_IP, seq=seq, payload=payload))
    r = p.expect(icmp_echo_reply_from(p, src=GW_IP, seq=seq, payload=payload))
    return bytes(r)


def short_ping_check(p, seq=0x55):
    """An echo with a 4-byte payload: libslirp's reply is a 46-byte frame, which must reach
    QEMU padded to 60 with zeros.  (libslirp 4.7 already sends ARP replies as 64 bytes.)"""
    p.send(icmp_echo(p, dst=GW_IP, seq=seq, payload=b"tiny"))
    r = p.expect(icmp_echo_reply_from(p, src=GW_IP, seq=seq, payload=b"tiny"))
    raw = bytes(r)
    real = 14 + r[IP].len
    assert real == 46, "unexpected reply size %d" % real
    assert len(raw) == MIN_FRAME, "frame of %d bytes, expected padding to %d" % (len(raw), MIN_FRAME)
    assert raw[real:] == bytes(MIN_FRAME - real), "padding is not zero: %s" % raw[real:].hex()
    return raw


# --------------------------------------------------------------------------------------
# --socket PATH

@pytest.fixture
def stream_helper(helpers, workdir):
    path = os.path.join(workdir, "s.sock")

    def start(*extra, **kw):
        h = helpers(["--socket", path] + list(extra), **kw)
        h.path = path
        return h
    return start


def test_stream_arp_padded_and_icmp(stream_helper, peers):
    h = stream_helper()
    assert h.ready_line == "slirpnet: ready on " + h.path
    p = peers(StreamPeer.connect(h.path, h))
    arp_check(p)
    short_ping_check(p)
    assert p.lengths[-1] == MIN_FRAME       # the length prefix says 60 too
    ping_check(p)
    st = h.stats()
    assert st["from_guest_frames"] >= 2 and st["to_guest_frames"] >= 2


def test_stream_split_byte_by_byte(stream_helper, peers):
    h = stream_helper()
    p = peers(StreamPeer.connect(h.path, h))
    frame = bytes(arp_who_has(GW_IP, p))
    p.send_wire(struct.pack(">I", len(frame)) + frame, chunk=1, delay=0.002)
    p.expect(Ether() / ARP(op=2, psrc=GW_IP, hwsrc=GW_MAC))
    # and a frame split right inside its length prefix
    frame = bytes(icmp_echo(p, seq=7, payload=b"split"))
    wire = struct.pack(">I", len(frame)) + frame
    p.send_wire(wire[:2])
    time.sleep(0.05)
    p.send_wire(wire[2:9])
    time.sleep(0.05)
    p.send_wire(wire[9:])
    p.expect(icmp_echo_reply_from(p, seq=7, payload=b"split"))


def test_stream_batched_frames(stream_helper, peers):
    h = stream_helper()
    p = peers(StreamPeer.connect(h.path, h))
    a = bytes(arp_who_has(GW_IP, p))
    b = bytes(icmp_echo(p, seq=11, payload=b"batched"))
    c = bytes(icmp_echo(p, seq=12, payload=b"batched2"))
    p.send_wire(b"".join(struct.pack(">I", len(f)) + f for f in (a, b, c)))
    p.expect(Ether() / ARP(op=2, psrc=GW_IP))
    p.expect(icmp_echo_reply_from(p, seq=11, payload=b"batched"))
    p.expect(icmp_echo_reply_from(p, seq=12, payload=b"batched2"))


def test_stream_zero_length_ignored(stream_helper, peers):
    h = stream_helper()
    p = peers(StreamPeer.connect(h.path, h))
    frame = bytes(arp_who_has(GW_IP, p))
    p.send_wire(b"\0\0\0\0" * 3 + struct.pack(">I", len(frame)) + frame + b"\0\0\0\0")
    p.expect(Ether() / ARP(op=2, psrc=GW_IP))
    ping_check(p)
    assert not p.eof
    st = h.stats()
    assert st["drop_runt"] == 0, st


def test_stream_largest_length_accepted_but_dropped_by_mtu(stream_helper, peers):
    """69632 is QEMU's limit: the connection stays, the frame counts as oversize (MTU 1500)."""
    h = stream_helper()
    p = peers(StreamPeer.connect(h.path, h))
    big = bytes(Ether(src=p.guest_mac, dst=GW_MAC, type=0x0800)) + bytes(QEMU_MAX_FRAME - 14)
    p.send_wire(struct.pack(">I", len(big)) + big)
    arp_check(p)
    assert not p.eof
    assert h.stats()["drop_oversize"] == 1


def test_stream_oversize_length_closes_and_relistens(stream_helper, peers):
    h = stream_helper()
    p = peers(StreamPeer.connect(h.path, h))
    arp_check(p)
    p.send_wire(struct.pack(">I", QEMU_MAX_FRAME + 1) + b"x" * 64)
    assert p.wait_eof(), "helper kept a connection whose framing is lost"
    assert "69633-byte frame" in h.log()
    assert h.alive()
    q = peers(StreamPeer.connect(h.path, h))
    arp_check(q)
    ping_check(q)


def test_stream_second_client_refused(stream_helper, peers):
    h = stream_helper()
    first = peers(StreamPeer.connect(h.path, h))
    arp_check(first)
    second = peers(StreamPeer.connect(h.path, h))
    assert second.wait_eof(), "second client was not closed"
    assert "refused a second client" in h.log()
    # the first one is undisturbed
    ping_check(first, seq=2)
    arp_check(first)
    assert not first.eof


def test_stream_reconnect(stream_helper, peers):
    h = stream_helper()
    for i in range(3):
        p = peers(StreamPeer.connect(h.path, h))
        arp_check(p)
        ping_check(p, seq=i + 1)
        p.close()
        time.sleep(0.1)
    assert h.alive()
    assert h.log().count("listening again") == 3


def test_stream_one_off(stream_helper, peers):
    h = stream_helper("--one-off")
    p = peers(StreamPeer.connect(h.path, h))
    arp_check(p)
    p.close()
    assert h.wait(3 * SCALE) == 0, h.log()
    assert not os.path.exists(h.path), "socket not unlinked at exit"
    assert "stats:" in h.log()


def test_stream_pid_file_and_cleanup(stream_helper, workdir):
    pidfile = os.path.join(workdir, "helper.pid")
    h = stream_helper("--pid", pidfile)
    with open(pidfile) as f:
        assert int(f.read().strip()) == h.pid   # written by the helper itself: no fork
    assert os.path.exists(h.path)
    # listening before 'ready': a connect right after the line succeeds
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(h.path)
    s.close()
    assert h.stop() == 0
    assert not os.path.exists(h.path)
    assert not os.path.exists(pidfile)


def test_stream_stale_socket_replaced_live_one_refused(helpers, workdir):
    path = os.path.join(workdir, "s.sock")
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(path)
    stale.close()                       # leaves a socket file nobody listens on
    h = helpers(["--socket", path])
    p = StreamPeer.connect(path, h)
    arp_check(p)
    p.close()
    # a second helper on the same live path must fail clearly and leave the first alone
    h2 = helpers(["--socket", path], wait_ready=False)
    assert h2.wait(5 * SCALE) == 1
    assert "in use" in h2.log()
    # h2's probe was a connection too (accepted, then closed): let h notice it left
    deadline = time.monotonic() + 3 * SCALE
    while h.log().count("client left") < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    q = StreamPeer.connect(path, h)
    arp_check(q)
    q.close()


def test_stream_not_a_socket(helpers, workdir):
    path = os.path.join(workdir, "file")
    open(path, "w").close()
    h = helpers(["--socket", path], wait_ready=False)
    assert h.wait(5 * SCALE) == 1
    assert "not a socket" in h.log()
    assert os.path.exists(path)


def test_stream_slow_reader_drops_whole_frames(stream_helper, peers):
    """A peer that does not read: the bounded queue fills, frames are dropped whole and
    counted, and once the peer reads again every frame it gets is intact."""
    h = stream_helper(SMALL_SNDBUF)
    p = peers(StreamPeer.connect(h.path, h))
    arp_check(p)
    payload = bytes(1400)
    n = 3000                            # ~4.3 MB of replies: more than socket + 2 MiB queue
    wire = b"".join(struct.pack(">I", len(f)) + f for f in
                    (bytes(icmp_echo(p, seq=i & 0xffff, payload=payload)) for i in range(n)))
    p.send_wire(wire)
    # wait until the helper has processed everything it was sent
    deadline = time.monotonic() + 20 * SCALE
    while time.monotonic() < deadline:
        st = h.stats()
        if st["from_guest_frames"] >= n + 1:
            break
        time.sleep(0.1)
    assert st["from_guest_frames"] >= n + 1, st
    assert st["drop_to_guest_full"] > 0, st
    # now drain: every frame parses, and frames sent = frames received
    got = 0
    deadline = time.monotonic() + 20 * SCALE
    while time.monotonic() < deadline:
        p.pump(0.3)
        got = sum(1 for _, pk in p.queue if ICMP in pk and pk[ICMP].type == 0)
        if got + 1 >= st["to_guest_frames"]:   # +1: the ARP reply already consumed
            break
    replies = [pk for _, pk in p.queue if ICMP in pk]
    assert all(len(bytes(pk[ICMP].payload)) >= 1400 for pk in replies)
    st2 = h.stats()
    assert got + 1 == st2["to_guest_frames"], (got, st2)
    assert got + st2["drop_to_guest_full"] == n, (got, st2)
    ping_check(p, seq=0xfff0)


def test_stream_stats_and_sigterm(stream_helper, peers):
    h = stream_helper()
    p = peers(StreamPeer.connect(h.path, h))
    arp_check(p)
    assert h.stop() == 0
    st = harness.parse_stats(h.log())
    assert st and st["from_guest_frames"] >= 1 and st["to_guest_frames"] >= 1


# --------------------------------------------------------------------------------------
# --dgram PATH

def bound_dgram(workdir, name):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(os.path.join(workdir, name))
    return s


def test_dgram_replies_to_sender(helpers, peers, workdir):
    path = os.path.join(workdir, "h.sock")
    h = helpers(["--dgram", path])
    assert h.ready_line == "slirpnet: ready on " + path
    a = peers(DgramPeer(bound_dgram(workdir, "qa.sock"), dest=path, helper=h))
    arp_check(a)
    short_ping_check(a)
    ping_check(a)
    # another sender takes over: replies follow the last one
    b = peers(DgramPeer(bound_dgram(workdir, "qb.sock"), dest=path, helper=h))
    ping_check(b, seq=5)
    assert a.poll(ICMP, timeout=0.3) is None
    ping_check(a, seq=6)
    assert h.stop() == 0
    assert not os.path.exists(path)


def test_dgram_drops_until_a_peer_is_known(helpers, peers, workdir):
    path = os.path.join(workdir, "h.sock")
    h = helpers(["--dgram", path])
    # an unbound sender has no address: its frame is taken, the reply is dropped and counted
    anon = peers(DgramPeer(socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM), dest=path, helper=h))
    anon.send(arp_who_has(GW_IP, anon))
    assert anon.poll(ARP, timeout=0.3) is None
    st = h.stats()
    assert st["from_guest_frames"] == 1 and st["to_guest_frames"] == 0 and st["drop_to_guest_error"] == 1, st
    assert "unbound socket" in h.log()
    a = peers(DgramPeer(bound_dgram(workdir, "qa.sock"), dest=path, helper=h))
    arp_check(a)
    # QEMU goes away and comes back on the same path (a dgram netdev can restart freely)
    a.close()
    os.unlink(os.path.join(workdir, "qa.sock"))
    time.sleep(0.1)
    a2 = peers(DgramPeer(bound_dgram(workdir, "qa.sock"), dest=path, helper=h))
    arp_check(a2)
    ping_check(a2)
    assert h.alive()


def test_dgram_oversize_counted(helpers, peers, workdir):
    path = os.path.join(workdir, "h.sock")
    h = helpers(["--dgram", path])
    a = peers(DgramPeer(bound_dgram(workdir, "qa.sock"), dest=path, helper=h))
    a.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 18)
    a.send(bytes(Ether(src=a.guest_mac, dst=GW_MAC, type=0x0800)) + bytes(9000))
    arp_check(a)
    assert h.stats()["drop_oversize"] == 1


@pytest.mark.parametrize("mode", ["bound", "fd"])
def test_dgram_slow_reader_queues_then_drops(helpers, peers, workdir, mode):
    """A peer that does not read: the kernel queue fills (10 datagrams for an unconnected
    receiver), then the helper's frame queue, then frames are dropped whole and counted.
    Once the peer reads, the queue drains (POLLOUT wake-up) and every frame is intact."""
    if mode == "bound":
        path = os.path.join(workdir, "h.sock")
        h = helpers(["--dgram", path, SMALL_SNDBUF])
        p = peers(DgramPeer(bound_dgram(workdir, "qa.sock"), dest=path, helper=h))
    else:
        h, p = fd_helper(helpers, socket.SOCK_DGRAM, [SMALL_SNDBUF])
        peers(p)
    arp_check(p)
    n = 2000                            # ~2.9 MB of replies: more than the 1 MiB queue
    payload = bytes(1400)
    frames = [bytes(icmp_echo(p, seq=i, payload=payload)) for i in range(n)]
    for f in frames:
        p.sock.send(f) if p.dest is None else p.sock.sendto(f, p.dest)
    deadline = time.monotonic() + 20 * SCALE
    while time.monotonic() < deadline:
        st = h.stats()
        if st["from_guest_frames"] >= n + 1:
            break
        time.sleep(0.1)
    assert st["from_guest_frames"] >= n + 1, st
    assert st["drop_to_guest_full"] > 0, st
    deadline = time.monotonic() + 20 * SCALE
    got = 0
    while time.monotonic() < deadline and got + 1 < st["to_guest_frames"]:
        p.pump(0.3)
        got = sum(1 for _, pk in p.queue if ICMP in pk and pk[ICMP].type == 0)
    st2 = h.stats()
    assert got + 1 == st2["to_guest_frames"], (got, st2)
    assert got + st2["drop_to_guest_full"] == n, (got, st2)
    assert st2["drop_to_guest_error"] == 0, st2
    ping_check(p, seq=0xfff0)


# --------------------------------------------------------------------------------------
# --fd N

FD_TYPES = [socket.SOCK_STREAM, socket.SOCK_DGRAM, socket.SOCK_SEQPACKET]
FD_IDS = ["stream", "dgram", "seqpacket"]


def fd_helper(helpers, kind, extra=()):
    ours, theirs = socket.socketpair(socket.AF_UNIX, kind)
    try:
        h = helpers(["--fd", str(theirs.fileno())] + list(extra), pass_fds=[theirs.fileno()])
    finally:
        theirs.close()
    if kind == socket.SOCK_STREAM:
        return h, StreamPeer(ours, h)
    return h, DgramPeer(ours, None, h)


@pytest.mark.parametrize("kind", FD_TYPES, ids=FD_IDS)
def test_fd_framing(helpers, peers, kind):
    h, p = fd_helper(helpers, kind)
    peers(p)
    assert h.ready_line.startswith("slirpnet: ready on fd ")
    arp_check(p)
    short_ping_check(p)
    ping_check(p)
    ping_check(p, seq=2, payload=bytes(1000))


@pytest.mark.parametrize("kind", [socket.SOCK_STREAM, socket.SOCK_SEQPACKET],
                         ids=["stream", "seqpacket"])
def test_fd_peer_close_exits_0(helpers, kind):
    h, p = fd_helper(helpers, kind)
    arp_check(p)
    p.close()
    assert h.wait(3 * SCALE) == 0, h.log()


def test_fd_dgram_peer_gone_noticed_on_send(helpers):
    """A datagram peer that exits is only seen when a send is refused; then the helper
    exits 0.  A hostfwd'ed UDP datagram makes libslirp send (an ARP request) on demand."""
    port = harness.free_port(socket.SOCK_DGRAM)
    h, p = fd_helper(helpers, socket.SOCK_DGRAM, ["--hostfwd=udp:127.0.0.1:%d-:9" % port])
    arp_check(p)
    p.close()
    time.sleep(0.2)
    assert h.alive()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        u.sendto(b"wake up", ("127.0.0.1", port))
    assert h.wait(3 * SCALE) == 0, h.log()
    assert "peer closed the connection" in h.log()


def test_fd_stream_oversize_exits_1(helpers):
    h, p = fd_helper(helpers, socket.SOCK_STREAM)
    p.send_wire(struct.pack(">I", QEMU_MAX_FRAME + 1))
    assert h.wait(3 * SCALE) == 1, h.log()
    assert "69633-byte frame" in h.log()
    p.close()


def test_fd_not_a_socket(helpers):
    r, w = os.pipe()
    try:
        h = helpers(["--fd", str(r)], pass_fds=[r], wait_ready=False)
    finally:
        os.close(r)
        os.close(w)
    assert h.wait(5 * SCALE) == 1
    assert "not a socket" in h.log()


def test_transport_usage_errors(helpers, workdir):
    for args, text in [([], "no guest link given"),
                       (["--socket", os.path.join(workdir, "a"), "--dgram", os.path.join(workdir, "b")],
                        "more than one guest link"),
                       (["--dgram", os.path.join(workdir, "b"), "--one-off"], "--one-off"),
                       (["--socket", os.path.join(workdir, "a"), "--mtu=12"], "mtu")]:
        h = helpers(args, wait_ready=False)
        assert h.wait(5 * SCALE) == 2, (args, h.log())
        assert text in h.log(), (args, h.log())
