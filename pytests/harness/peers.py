# SPDX-License-Identifier: BSD-2-Clause
"""peers.py - the guest's end of the link (Peer: send/expect) over -S (DirectPeer), --socket (StreamPeer), --dgram/--fd (DgramPeer)."""

import errno as errno_mod
import fcntl
import os
import select
import socket
import struct
import subprocess
import tempfile
import termios
import time
from collections import deque

from .config import decode_status, encode_config, parse_options
from .consts import (GUEST_IP, GUEST_IP6, GUEST_LL6, GUEST_MAC, GW_IP, NEGATIVE_TIMEOUT,
                     POSITIVE_TIMEOUT, SCALE, special_mac, timeout_or)
from .frames import gratuitous_arp
from .layers import (ARP, Ether, ICMPv6ND_NA, ICMPv6ND_NS, ICMPv6NDOptDstLLAddr, IPv6,
                     PcapWriter, Raw)
from .match import compile_match, describe_match, is_router_advert
from .sandbox import give_to_helper
from .procs import (default_helper, describe_status, peek_child_status, read_log, remove_file,
                    wait_child)
from .stats import signal_stats

__all__ = ["Peer", "HelperRefused", "DirectPeer", "StreamPeer", "DgramPeer", "QEMU_MAX_FRAME",
           "MIN_FRAME", "bound_dgram", "fd_helper", "make_peer"]

QEMU_MAX_FRAME = 69632      # QEMU's NET_BUFSIZE: the largest frame on its stream/dgram netdevs
MIN_FRAME = 60              # ETH_ZLEN: frames to QEMU are padded to this


class Peer:
    """One guest link endpoint.  Subclasses implement _send_raw, _pump, close."""

    POSITIVE_TIMEOUT = POSITIVE_TIMEOUT
    NEGATIVE_TIMEOUT = NEGATIVE_TIMEOUT
    MAX_QUEUE = 4096

    def __init__(self, guest_mac=GUEST_MAC, guest_ip=GUEST_IP, gw_ip=GW_IP, gw_mac=None,
                 prime=True):
        self.prime_on_start = prime
        self.guest_mac = guest_mac
        self.guest_ip = guest_ip
        self.gw_ip = gw_ip
        self.gw_mac = gw_mac or special_mac(gw_ip)
        self.guest_ip6 = GUEST_IP6
        self.guest_ll6 = GUEST_LL6
        self.guest_ips = {guest_ip}
        self.guest_ip6s = {GUEST_IP6, GUEST_LL6}
        self.auto_reply = True
        self.noise = [is_router_advert]
        self.log = []            # (time, "tx"/"rx", bytes)
        self.queue = deque()     # (time, packet) not yet consumed by expect()
        self._raw_in = []        # raw frames received but not yet ingested
        self.name = type(self).__name__
        self.closed = False
        # expect() calls that got their frame, and expect_none() calls: a test whose
        # negative checks are not paired with a positive one proves nothing on a dead
        # link (conftest.py fails it).
        self.positive_checks = 0
        self.negative_checks = 0

    # -- to implement ----------------------------------------------------------------
    def _send_raw(self, data):
        raise NotImplementedError

    def _pump(self, timeout):
        """Wait up to timeout for frames; append raw bytes to self._raw_in."""
        raise NotImplementedError

    def close(self):
        raise NotImplementedError

    def helper_pid(self):
        raise NotImplementedError

    def helper_log(self):
        return ""

    def helper_status(self):
        """The helper's exit status if it has ended (Popen style), else None."""
        pid = self.helper_pid()
        return peek_child_status(pid) if pid else None

    log_path = None              # the helper's log file, when this peer made one

    def cleanup_files(self):
        """Remove the helper's log file (conftest.py calls this after the artifacts)."""
        if self.log_path:
            remove_file(self.log_path)

    def _readable(self, timeout, ended):
        """Wait up to timeout (at most 0.2 s) for self.sock to become readable; False when
        it does not or the link has ended (ended: then a short sleep stands for the wait)."""
        if ended:
            time.sleep(max(0.0, min(timeout, 0.05)))
            return False
        try:
            r, _, _ = select.select([self.sock], [], [], max(0.0, min(timeout, 0.2)))
        except (OSError, ValueError):
            return False
        return bool(r)

    def _started(self):
        if self.prime_on_start:
            self.prime()

    def prime(self):
        """Announce the guest like a real one would (gratuitous ARP, unsolicited NA) so
        libslirp knows its MAC and needs no ARP/NDP round trip before replying."""
        self.send(gratuitous_arp(self))
        for ip6 in sorted(self.guest_ip6s):
            try:
                self.send(Ether(src=self.guest_mac, dst="33:33:00:00:00:01")
                          / IPv6(src=ip6, dst="ff02::1", hlim=255)
                          / ICMPv6ND_NA(tgt=ip6, R=0, S=0, O=1)
                          / ICMPv6NDOptDstLLAddr(lladdr=self.guest_mac))
            except OSError as e:   # e.g. EMSGSIZE with a tiny mtu: IPv6 is off anyway
                if e.errno != errno_mod.EMSGSIZE:
                    raise
        # Let the helper read them before anything else happens (e.g. a hostfwd
        # datagram that would otherwise race the announcement).
        self.wait_sent()

    # -- sending -----------------------------------------------------------------------
    def send(self, frame):
        """Send one frame (scapy packet or bytes); returns what the transport returned."""
        data = bytes(frame)
        self.log.append((time.time(), "tx", data))
        return self._send_raw(data)

    # -- receiving ---------------------------------------------------------------------
    def set_guest_ip(self, ip):
        self.guest_ips.discard(self.guest_ip)
        self.guest_ip = ip
        self.guest_ips.add(ip)

    def _ingest(self):
        raws, self._raw_in = self._raw_in, []
        for ts, data in raws:
            self.log.append((ts, "rx", data))
            try:
                pkt = Ether(data)
            except Exception:
                pkt = Raw(load=data)
            pkt.time = ts
            if self.auto_reply and self._auto_answer(pkt):
                continue
            self.queue.append((ts, pkt))
            while len(self.queue) > self.MAX_QUEUE:
                self.queue.popleft()

    def _auto_answer(self, p):
        """Answer ARP who-has / NDP NS for the guest's addresses; True if handled."""
        try:
            if ARP in p and p[ARP].op == 1 and p[ARP].pdst in self.guest_ips:
                a = p[ARP]
                self.send(Ether(src=self.guest_mac, dst=a.hwsrc)
                          / ARP(op=2, hwsrc=self.guest_mac, psrc=a.pdst,
                                hwdst=a.hwsrc, pdst=a.psrc))
                return True
            if ICMPv6ND_NS in p:
                tgt = socket.inet_pton(socket.AF_INET6, p[ICMPv6ND_NS].tgt)
                mine = {socket.inet_pton(socket.AF_INET6, a) for a in self.guest_ip6s}
                if tgt in mine:
                    src6 = p[IPv6].src
                    dst6 = src6 if src6 != "::" else "ff02::1"
                    self.send(Ether(src=self.guest_mac, dst=p[Ether].src)
                              / IPv6(src=p[ICMPv6ND_NS].tgt, dst=dst6, hlim=255)
                              / ICMPv6ND_NA(tgt=p[ICMPv6ND_NS].tgt, R=0, S=1, O=1)
                              / ICMPv6NDOptDstLLAddr(lladdr=self.guest_mac))
                    return True
        except (IndexError, AttributeError, struct.error, OSError, ValueError):
            return False
        return False

    def pump(self, timeout=0.0):
        """Receive (and auto-answer) for up to timeout seconds."""
        self._pump(timeout)
        self._ingest()

    def _take(self, fn):
        for i, (ts, pkt) in enumerate(self.queue):
            if fn(pkt):
                del self.queue[i]
                return pkt
        return None

    def poll(self, match=None, timeout=None):
        """Return the first queued/arriving frame matching match, or None after timeout."""
        fn = compile_match(match)
        timeout = timeout_or(timeout, self.POSITIVE_TIMEOUT)
        deadline = time.monotonic() + timeout
        self._pump(0)
        self._ingest()
        while True:
            pkt = self._take(fn)
            if pkt is not None:
                return pkt
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            self._pump(remaining)
            self._ingest()

    def expect(self, match, timeout=None, desc=None):
        """Wait for a frame matching match and return it; AssertionError on timeout."""
        timeout = timeout_or(timeout, self.POSITIVE_TIMEOUT)
        start = time.time()
        pkt = self.poll(match, timeout)
        if pkt is None:
            raise AssertionError(self._failure(
                "expected frame did not arrive within %.1f s" % timeout,
                describe_match(match, desc), start))
        self.positive_checks += 1
        return pkt

    def expect_none(self, match=None, timeout=None, desc=None):
        """Assert that no frame matching match (noise excluded) arrives within timeout.
        Pair it with a positive check on the same peer (assert_alive, or any expect()):
        a dead link passes every negative check."""
        self.negative_checks += 1
        timeout = timeout_or(timeout, self.NEGATIVE_TIMEOUT)
        base = compile_match(match)
        noise = list(self.noise)

        def fn(p):
            return base(p) and not any(n(p) for n in noise)
        start = time.time()
        pkt = self.poll(fn, timeout)
        if pkt is not None:
            raise AssertionError(self._failure(
                "unexpected frame arrived:\n" + pkt.show(dump=True),
                "no frame matching: " + describe_match(match, desc), start))

    def flush(self, timeout=0.0):
        """Pump for timeout, then drop every queued frame; returns them."""
        self.pump(timeout)
        out = [p for _, p in self.queue]
        self.queue.clear()
        return out

    def _failure(self, what, expected, start):
        lines = ["%s on %s" % (what, self.describe()), "=== EXPECTED ===", expected.rstrip()]
        queued_before = [(ts, p) for ts, p in self.queue if ts < start]
        rx = [(ts, data) for ts, d, data in self.log if d == "rx" and ts >= start]
        if queued_before:
            lines.append("=== STILL QUEUED FROM BEFORE THE WAIT ===")
            for ts, p in queued_before:
                lines.append("  %+.3f %s" % (ts - start, p.summary()))
        lines.append("=== RECEIVED DURING THE WAIT (%d frames, oldest first) ===" % len(rx))
        if not rx:
            lines.append("  (nothing)")
        for ts, data in rx:
            try:
                s = Ether(data).summary()
            except Exception:
                s = "%d bytes: %s" % (len(data), data[:32].hex())
            lines.append("  %+.3f %4d B %s" % (ts - start, len(data), s))
        try:
            status = self.helper_status()
        except Exception:
            status = None
        if status is not None:
            lines.append("=== HELPER %s ===" % describe_status(status).upper())
        log = self.helper_log()
        if log:
            lines.append("=== HELPER LOG (tail) ===")
            lines.extend(log.splitlines()[-15:])
        return "\n".join(lines)

    def describe(self):
        return self.name

    # -- helper process ------------------------------------------------------------------
    def link_fd(self):
        """Our end of the link (for SIOCOUTQ), or None when there is no such socket."""
        return None

    def wait_sent(self, timeout=None):
        """Wait until the helper has read every frame we sent (our socket's SIOCOUTQ is
        0), so counters asked for afterwards include them."""
        timeout = timeout_or(timeout, self.POSITIVE_TIMEOUT)
        deadline = time.monotonic() + timeout
        buf = bytearray(4)
        fd = self.link_fd()
        if fd is None or fd < 0:
            return False
        while True:
            try:
                fcntl.ioctl(fd, termios.TIOCOUTQ, buf)
            except OSError:
                return False
            if struct.unpack("i", buf)[0] == 0:
                return True
            if time.monotonic() > deadline:
                return False
            self.pump(0.005)

    def stats(self, timeout=None):
        """SIGUSR1 the helper and return its counters (dict) from the new stats line;
        waits first until the helper has read everything we sent."""
        timeout = timeout_or(timeout, self.POSITIVE_TIMEOUT)
        pid = self.helper_pid()
        assert pid, "no helper pid for %s" % self.describe()
        self.wait_sent(timeout)
        return signal_stats(pid, self.helper_log, timeout, lambda: self.pump(0.02))

    def write_pcap(self, path):
        with PcapWriter(path, linktype=1, sync=True) as w:
            w.write_header(None)   # write_packet() alone does not write the file header
            for ts, _, data in self.log:
                w.write_packet(data, sec=int(ts), usec=int((ts % 1) * 1e6))

    def write_summary(self, path):
        with open(path, "w") as f:
            f.write("# %s\n" % self.describe())
            t0 = self.log[0][0] if self.log else 0
            for ts, d, data in self.log:
                try:
                    s = Ether(data).summary()
                except Exception:
                    s = data[:32].hex()
                f.write("%9.3f %s %5d %s\n" % (ts - t0, d, len(data), s))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class HelperRefused(AssertionError):
    pass


class DirectPeer(Peer):
    """Spawn `slirpnet -S FD` on a SOCK_SEQPACKET socketpair and talk the wire protocol.

    options: 'k=v,...' string or [(k, v)] pairs sent in the config message.
    args: extra helper command-line arguments.  raw_config: bytes sent instead of the
    encoded config.  expect_ok: raise HelperRefused when the helper refuses.
    After construction: .ok, .error (the status), .proc (Popen), .sock.
    """

    def __init__(self, options="", helper=None, args=(), version=1, raw_config=None,
                 expect_ok=True, status_timeout=None, **kw):
        super().__init__(**kw)
        self.helper = helper or default_helper()
        self.options = parse_options(options)
        self.expect_clean_exit = True
        self.returncode = None
        self.ok, self.error = None, None
        fd, self.log_path = tempfile.mkstemp(prefix="slirpnet-helper-", suffix=".log")
        self._logf = os.fdopen(fd, "w")
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.sock = ours
        try:
            self.proc = subprocess.Popen(
                [self.helper, "-S", str(theirs.fileno())] + list(args),
                pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL,
                stdout=self._logf, stderr=self._logf)
        finally:
            theirs.close()
        self.name = "DirectPeer(pid %d, %s)" % (self.proc.pid, self.spec_text())
        if raw_config is None:
            raw_config = encode_config(self.options, version)
        if raw_config is not False:
            self.sock.send(raw_config)
            self._read_status(timeout_or(status_timeout, 5.0 * SCALE))
            if expect_ok and not self.ok:
                err = self.error
                self.close()
                raise HelperRefused("helper refused %r: %s" % (self.spec_text(), err))
            if self.ok:
                self._started()

    def spec_text(self):
        return ",".join(k + ("=" + v if v else "") for k, v in self.options)

    def _read_status(self, timeout):
        r, _, _ = select.select([self.sock], [], [], timeout)
        if not r:
            raise AssertionError("no status from helper within %.1f s; log:\n%s"
                                 % (timeout, self.helper_log()))
        data = self.sock.recv(65536)
        if not data:
            self.ok, self.error = False, "helper closed the socket without a status"
        else:
            self.ok, self.error = decode_status(data)
        self.status_raw = data

    def _send_raw(self, data):
        try:
            return self.sock.send(data)
        except (BrokenPipeError, ConnectionResetError) as e:
            rc = wait_child(self.proc, 1)
            raise AssertionError("send failed (%s): the helper %s; log:\n%s"
                                 % (e, describe_status(rc), self.helper_log())) from e

    def _pump(self, timeout):
        if not self._readable(timeout, self.closed):
            return
        while True:
            try:
                data = self.sock.recv(65536 + 64, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return
            except OSError:
                self.dead = True
                time.sleep(min(timeout, 0.05))
                return
            if not data:
                # EOF: the helper is gone; avoid spinning on a readable socket
                self.dead = True
                time.sleep(min(timeout, 0.05))
                return
            self._raw_in.append((time.time(), data))

    dead = False

    def helper_pid(self):
        return self.proc.pid

    def link_fd(self):
        return self.sock.fileno()

    def helper_status(self):
        return self.proc.poll() if self.returncode is None else self.returncode

    def helper_log(self):
        return read_log(self._logf, self.log_path)

    def wait_exit(self, timeout=None):
        """Wait for the helper to exit; returns its status or None on timeout."""
        rc = wait_child(self.proc, timeout_or(timeout, self.POSITIVE_TIMEOUT))
        if rc is not None:
            self.returncode = rc
        return rc

    def close(self, timeout=None):
        """Close our end and reap the helper (killed if it outlives timeout)."""
        if not self.closed:
            self.closed = True
            try:
                self.sock.close()
            except OSError:
                pass
        if self.returncode is None:
            rc = self.wait_exit(timeout)
            if rc is None:
                self.proc.kill()
                self.proc.wait()
                self.returncode = "timeout"
        try:
            self._logf.close()
        except OSError:
            pass
        return self.returncode


# --------------------------------------------------------------------------------------
# The QEMU side of the helper's other transports (--socket, --dgram, --fd)

class _QemuPeer(Peer):
    """QEMU's end of a helper started apart (HelperProc): our socket and that helper."""

    def __init__(self, sock, helper=None, **kw):
        super().__init__(**kw)
        self.sock = sock
        self.helper = helper
        self.eof = False
        self.name = "%s(%s)" % (type(self).__name__, helper.pid if helper else "?")

    def helper_pid(self):
        return self.helper.pid if self.helper else None

    def helper_log(self):
        return self.helper.log() if self.helper else ""

    def close(self):
        if not self.closed:
            self.closed = True
            self.sock.close()


class StreamPeer(_QemuPeer):
    """A connected SOCK_STREAM socket speaking QEMU's length-prefixed framing."""

    def __init__(self, sock, helper=None, **kw):
        super().__init__(sock, helper, **kw)
        self.buf = b""
        self.lengths = []          # wire length of every frame received, in order

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
        if not self._readable(timeout, self.eof):
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


class DgramPeer(_QemuPeer):
    """A datagram socket: connected (socketpair) or bound, sending to `dest`.
    (The helper's replies in --dgram mode come from a second, unbound socket.)"""

    def __init__(self, sock, dest=None, helper=None, **kw):
        super().__init__(sock, helper, **kw)
        self.dest = dest
        self.senders = []          # source address of every datagram received

    def _send_raw(self, data):
        if self.dest is None:
            return self.sock.send(data)
        return self.sock.sendto(data, self.dest)

    def _pump(self, timeout):
        if not self._readable(timeout, self.eof):
            return
        while True:
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


def bound_dgram(workdir, name):
    """A SOCK_DGRAM socket bound to workdir/name (a --dgram peer the helper can answer)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(os.path.join(workdir, name))
    # The helper answers by connecting to it, also once its sandbox has dropped root.
    give_to_helper(os.path.join(workdir, name))
    return s


def fd_helper(helpers, kind, extra=()):
    """`slirpnet --fd N` on one end of a socketpair of type kind; returns (helper, peer)
    with a StreamPeer (SOCK_STREAM) or DgramPeer on our end.  helpers makes the HelperProc
    from (args, pass_fds=...): the conftest fixture of that name, or HelperProc itself."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, kind)
    try:
        h = helpers(["--fd", str(theirs.fileno())] + list(extra), pass_fds=[theirs.fileno()])
    finally:
        theirs.close()
    if kind == socket.SOCK_STREAM:
        return h, StreamPeer(ours, h)
    return h, DgramPeer(ours, None, h)


def make_peer(kind, options="", **kw):
    """'plugin' -> PluginPeer('slirp,' + options); 'direct' -> DirectPeer(options)."""
    if kind == "plugin":
        from .plugin import PluginPeer
        spec = "slirp" + ("," + options if options else "")
        return PluginPeer(spec, **kw)
    if kind == "direct":
        return DirectPeer(options, **kw)
    raise ValueError(kind)
