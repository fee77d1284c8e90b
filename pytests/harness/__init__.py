# SPDX-License-Identifier: BSD-2-Clause
"""harness.py - frame-level test harness for slirpnet (pytest + scapy, no root needed).

slirpnet's guest side is an Ethernet link: one frame per SOCK_SEQPACKET record between
the emulator (libslirpnet.so) and the helper (``slirpnet -S FD``).  This module plays
the guest on that link and lets a test send frames and assert on the frames that come
back, PTF-style.

Peers
-----
``Peer`` is the common interface; two implementations attach to the link:

* ``PluginPeer(spec)`` drives the emulator ABI of ``netbe.h`` through ctypes
  (``SLIRPNET_LIB``).  It owns a private GMainContext that it iterates while waiting;
  the rx callback drains frames into a queue.  The plugin spawns ``SLIRPNET_HELPER``.
* ``DirectPeer(options)`` spawns the helper itself on a socketpair, sends the config
  GVariant ``(ua(ss))`` and reads the ``(bs)`` status, then exchanges frames raw.

Both take QEMU ``-netdev user`` options (``"restrict=on,mtu=9000"``); ``PluginPeer``
takes a whole spec with the backend name (``"slirp,restrict=on"``).

Sending and expecting
---------------------
``peer.send(frame)``                 send a scapy packet or bytes (one frame)
``peer.expect(match, timeout)``      wait for a matching frame, return it (dissected)
``peer.expect_none(match, timeout)`` assert no matching frame arrives in ``timeout``
``peer.poll(match, timeout)``        like expect, but returns None on timeout
``peer.flush()``                     drop queued frames

``match`` is a callable taking a scapy packet, a scapy layer class (``ARP``: any frame
that has it), a packet *template* compared field by field (only fields set explicitly
in the template are compared, layer by layer; ``Raw(load=...)`` compares the payload
bytes), or None (any frame).  Positive waits default to ``POSITIVE_TIMEOUT`` (3 s),
negative ones to ``NEGATIVE_TIMEOUT`` (0.5 s); ``SLIRPNET_TIMEOUT_SCALE`` scales both.
Frames that do not match stay queued for later expects.  Failures raise AssertionError
showing the expected packet dissected and a summary of every frame that arrived.

On start a peer announces the guest as a real one would (gratuitous ARP for
``peer.guest_ip``, unsolicited NA for ``peer.guest_ip6s``; ``prime=False`` skips it), so
libslirp knows the guest's MAC.  The harness also answers ARP who-has for
``peer.guest_ips`` and NDP neighbour solicitations for ``peer.guest_ip6s`` by itself
(set ``peer.auto_reply = False`` to see them).
Negative checks ignore Router Advertisements (libslirp sends them unsolicited); extend
``peer.noise`` with more predicates to ignore other background frames.

Every frame sent and received is recorded in ``peer.log`` as ``(time, "tx"|"rx",
bytes)``; ``write_pcap(path)`` saves it (LINKTYPE_ETHERNET), and conftest.py does so for
failed tests into ``$SLIRPNET_ARTIFACTS``.

Helpers
-------
``TcpConn``        a minimal guest-side TCP: ``TcpConn.connect(peer, ip, port)`` (client,
                   via the gateway) or ``TcpConn.accept(peer, port)`` (answer a hostfwd
                   SYN), then ``send``/``recv``/``recv_all``/``close``/``wait_fin``.
``hostfwd_exchange(peer, host_port, guest_port)``  host client -> hostfwd -> guest
                   acceptor, data and FIN both ways.
``dhcp_lease``     DISCOVER/OFFER/REQUEST/ACK; ``dhcp_options`` decodes options to a
                   dict; ``decode_dns_names`` decodes RFC 1035 name lists (option 119).
``expect_datagram`` collects and reassembles IPv4 fragments; ``fragments`` makes them.
``icmp_echo``, ``udp_to``, ``arp_who_has``, ``router_solicit``, ``icmp6_echo`` and
                   friends build common frames; ``free_port`` picks a loopback port.
``peer.stats()``   waits until the helper has read what we sent (SIOCOUTQ), sends it
                   SIGUSR1 and parses the new ``stats:`` line into a dict.
``peer.helper_log()``, ``peer.helper_status()``  the helper's stderr and exit status.
``PluginPeer.be_send/be_recv/be_peek/be_discard/set_cap/...`` call the C ABI directly
                   and return ``(ret, errno[, data])``.

Example::

    def test_ping(peer):                    # runs through the plugin and the helper
        p = peer("restrict=on")
        p.send(icmp_echo(p, seq=1))
        r = p.expect(icmp_echo_reply_from(p, seq=1))
        assert r[IP].src == GW_IP

Network safety: every builder here sets Ether src/dst explicitly, scapy's neighbour
resolution is switched off on import (an unset Ether dst stays broadcast instead of
ARPing on a real interface), and nothing uses scapy's sr/srp/sendp: frames only travel
on the link to the helper.  Tests reach host services through the gateway (10.0.2.2 ->
127.0.0.1) and hostfwd binds 127.0.0.1; never aim traffic at 10.0.2.3:53 (libslirp
would forward it to the host's resolver), and use restrict=on for random frames.
"""

import ctypes
import ctypes.util
import errno as errno_mod
import fcntl
import logging
import os
import random
import re
import select
import signal
import socket
import struct
import subprocess
import tempfile
import termios
import time
from collections import deque

logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
logging.getLogger("scapy.loading").setLevel(logging.ERROR)

from scapy.config import conf  # noqa: E402

conf.verb = 0

from scapy.packet import Packet, Raw, Padding, NoPayload  # noqa: E402
from scapy.layers.l2 import Ether, ARP  # noqa: E402
from scapy.layers.inet import IP, UDP, TCP, ICMP  # noqa: E402
from scapy.layers.inet6 import (  # noqa: E402
    IPv6,
    ICMPv6ND_NS,
    ICMPv6ND_NA,
    ICMPv6ND_RA,
    ICMPv6ND_RS,
    ICMPv6NDOptDstLLAddr,
    ICMPv6NDOptSrcLLAddr,
    ICMPv6EchoRequest,
)
from scapy.layers.dhcp import BOOTP, DHCP  # noqa: E402
from scapy.utils import PcapWriter, mac2str  # noqa: E402


def _never_resolve(*_args, **_kw):
    """Scapy must never ARP/ND on a real interface to fill in an Ether dst: an unset
    dst stays broadcast (and templates leave it out of comparisons)."""
    return None


conf.neighbor.resolve = _never_resolve
conf.raise_no_dst_mac = False

# --------------------------------------------------------------------------------------
# Constants (libslirp defaults)

GW_MAC = "52:55:0a:00:02:02"       # libslirp: 52:55 + vhost address
GUEST_MAC = "52:54:00:12:34:56"
GW_IP = "10.0.2.2"
DNS_IP = "10.0.2.3"
GUEST_IP = "10.0.2.15"
GW_IP6 = "fec0::2"
GUEST_IP6 = "fec0::5054:ff:fe12:3456"
GUEST_LL6 = "fe80::5054:ff:fe12:3456"
BCAST_MAC = "ff:ff:ff:ff:ff:ff"

_SCALE = float(os.environ.get("SLIRPNET_TIMEOUT_SCALE", "1") or 1)
POSITIVE_TIMEOUT = 3.0 * _SCALE
NEGATIVE_TIMEOUT = 0.5 * _SCALE

STATS_RE = re.compile(r"stats:((?:\s+\w+=\d+)+)")
# The helper's counters, in the order of its "stats:" line (the control socket's "stats"
# reply has the same names as top-level keys).  from_guest: frames the guest sent;
# to_guest: frames for the guest.
STATS_COUNTERS = ("from_guest_frames", "from_guest_bytes", "to_guest_frames", "to_guest_bytes",
                  "drop_oversize", "drop_runt", "drop_fragment", "drop_to_guest_full",
                  "drop_to_guest_error", "drop_vnet_hdr", "pauses", "from_guest_gso",
                  "to_guest_gso", "to_guest_split")


def special_mac(ip):
    """The MAC libslirp uses for one of its own IPv4 addresses (52:55:IP:IP:IP:IP)."""
    return "52:55:" + ":".join("%02x" % int(b) for b in ip.split("."))


def slirp_mac6(ip6):
    """The source MAC libslirp uses for IPv6 frames from ip6 (52:56 + last 4 bytes)."""
    raw = socket.inet_pton(socket.AF_INET6, ip6)
    return "52:56:" + ":".join("%02x" % b for b in raw[12:])


def timeout_or(value, default):
    return default if value is None else value * 1.0


def free_port(kind=socket.SOCK_STREAM):
    """An ephemeral port on 127.0.0.1 that was free a moment ago (bind 0, close)."""
    s = socket.socket(socket.AF_INET, kind)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def parse_stats(text):
    """Parse the last 'stats: k=v ...' line of text into a dict of ints (None if none)."""
    found = STATS_RE.findall(text)
    if not found:
        return None
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", found[-1])}


def parse_options(options):
    """'a=1,open,b=2' or [(k, v), ...] -> [(k, v), ...] (bare keywords get value '')."""
    if options is None:
        return []
    if isinstance(options, str):
        pairs = []
        for item in options.split(","):
            if not item:
                continue
            key, sep, value = item.partition("=")
            pairs.append((key, value if sep else ""))
        return pairs
    return [(str(k), str(v)) for k, v in options]


# --------------------------------------------------------------------------------------
# GVariant config / status (python3-gi)

def _glib():
    try:
        from gi.repository import GLib
    except ImportError as e:  # pragma: no cover - environment problem
        raise RuntimeError("python3-gi is needed for the helper protocol "
                           "(apt-get install python3-gi)") from e
    return GLib


def encode_config(pairs, version=1):
    """Serialize the helper config message: GVariant (ua(ss))."""
    GLib = _glib()
    v = GLib.Variant("(ua(ss))", (version, parse_options(pairs)))
    return v.get_data_as_bytes().get_data()


def decode_status(data):
    """Deserialize the helper's (bs) status message -> (ok, message)."""
    GLib = _glib()
    v = GLib.Variant.new_from_bytes(GLib.VariantType("(bs)"), GLib.Bytes(data), False)
    ok, msg = v.unpack()
    return bool(ok), msg


# --------------------------------------------------------------------------------------
# Packet matching

def _payload_bytes(layer):
    """Bytes of layer (and what follows it) without trailing Ethernet padding."""
    data = bytes(layer)
    pad = layer.getlayer(Padding)
    if pad is not None and len(pad.load):
        data = data[: -len(pad.load)]
    return data


def _field_eq(tl, pl, fld, tval, pval):
    if tval == pval:
        return True
    try:
        return fld.i2m(tl, tval) == fld.i2m(pl, pval)
    except Exception:
        return False


def packet_matches(template, pkt):
    """True when every field set explicitly in template equals pkt's, layer by layer."""
    t, p = template, pkt
    while t is not None and not isinstance(t, NoPayload):
        if p is None or isinstance(p, NoPayload):
            return False
        if isinstance(t, Raw) and not isinstance(p, Raw):
            return _payload_bytes(p) == bytes(t.load)
        if type(t) is not type(p):
            return False
        for name, tval in t.fields.items():
            if tval is None:
                continue
            fld = t.get_field(name)
            if not _field_eq(t, p, fld, tval, p.getfieldval(name)):
                return False
        if isinstance(t, Raw):
            return True
        t, p = t.payload, p.payload
    return True


def template_dump(tmpl):
    """Dissect a template like Packet.show(), but only the fields it sets (the ones
    packet_matches compares); defaults that would need resolving are not touched."""
    lines = []
    layer, depth = tmpl, 0
    while layer is not None and not isinstance(layer, NoPayload):
        pad = "  " * depth
        lines.append("%s###[ %s ]###" % (pad, layer.name))
        for fld in layer.fields_desc:
            if fld.name in layer.fields and layer.fields[fld.name] is not None:
                try:
                    val = fld.i2repr(layer, layer.fields[fld.name])
                except Exception:
                    val = repr(layer.fields[fld.name])
                lines.append("%s  %-10s= %s" % (pad, fld.name, val))
        layer, depth = layer.payload, depth + 1
    lines.append("(fields not shown are not compared)")
    return "\n".join(lines)


def describe_match(match, desc=None):
    if desc:
        return desc
    if match is None:
        return "any frame"
    if isinstance(match, Packet):
        return template_dump(match)
    if isinstance(match, type):
        return "any frame with a %s layer" % match.__name__
    doc = getattr(match, "__doc__", None)
    name = getattr(match, "__name__", repr(match))
    if doc and not isinstance(match, type) and name != "<lambda>":
        return "%s: %s" % (name, doc.strip())
    return name


def compile_match(match):
    if match is None:
        return lambda p: True
    if isinstance(match, Packet):
        return lambda p: packet_matches(match, p)
    if isinstance(match, type) and issubclass(match, Packet):
        return lambda p: match in p
    if callable(match):
        def safe(p):
            try:
                return bool(match(p))
            except (AttributeError, IndexError, KeyError, TypeError, struct.error):
                return False
        return safe
    raise TypeError("match must be None, a Packet, a Packet class or a callable")


def is_router_advert(p):
    """Unsolicited Router Advertisement (libslirp sends them every 200-600 s)."""
    return ICMPv6ND_RA in p


# --------------------------------------------------------------------------------------
# Frame builders (all set Ether src/dst explicitly)

def eth(peer=None, dst=GW_MAC, src=None, **kw):
    src = src or (peer.guest_mac if peer is not None else GUEST_MAC)
    return Ether(src=src, dst=dst, **kw)


def arp_who_has(pdst, peer=None, psrc=None, src=None):
    src = src or (peer.guest_mac if peer else GUEST_MAC)
    psrc = psrc or (peer.guest_ip if peer else GUEST_IP)
    return Ether(src=src, dst=BCAST_MAC) / ARP(
        op=1, hwsrc=src, psrc=psrc, hwdst="00:00:00:00:00:00", pdst=pdst)


def gratuitous_arp(peer):
    return Ether(src=peer.guest_mac, dst=BCAST_MAC) / ARP(
        op=1, hwsrc=peer.guest_mac, psrc=peer.guest_ip, hwdst="00:00:00:00:00:00",
        pdst=peer.guest_ip)


def icmp_echo(peer, dst=None, id=0x1234, seq=1, payload=b"slirpnet-ping", ttl=64):
    dst = dst or peer.gw_ip
    return (Ether(src=peer.guest_mac, dst=peer.gw_mac)
            / IP(src=peer.guest_ip, dst=dst, ttl=ttl)
            / ICMP(type=8, id=id, seq=seq) / Raw(load=payload))


def icmp_echo_reply_from(peer, src=None, id=0x1234, seq=1, payload=None):
    """Template matching the echo reply to icmp_echo()."""
    tmpl = (Ether(dst=peer.guest_mac)
            / IP(src=src or peer.gw_ip, dst=peer.guest_ip)
            / ICMP(type=0, id=id, seq=seq))
    if payload is not None:
        tmpl = tmpl / Raw(load=payload)
    return tmpl


def udp_to(peer, dport, payload, dst=None, sport=None):
    sport = sport or random.randint(20000, 30000)
    return (Ether(src=peer.guest_mac, dst=peer.gw_mac)
            / IP(src=peer.guest_ip, dst=dst or peer.gw_ip)
            / UDP(sport=sport, dport=dport) / Raw(load=payload))


def router_solicit(peer):
    return (Ether(src=peer.guest_mac, dst="33:33:00:00:00:02")
            / IPv6(src=peer.guest_ll6, dst="ff02::2", hlim=255)
            / ICMPv6ND_RS() / ICMPv6NDOptSrcLLAddr(lladdr=peer.guest_mac))


def icmp6_echo(peer, dst=GW_IP6, id=0x4321, seq=1, payload=b"slirpnet-ping6", dst_mac=None):
    return (Ether(src=peer.guest_mac, dst=dst_mac or "52:56:00:00:00:02")
            / IPv6(src=peer.guest_ip6, dst=dst)
            / ICMPv6EchoRequest(id=id, seq=seq, data=payload))


# --------------------------------------------------------------------------------------
# /proc helpers

def child_pids(exe=None, parent=None):
    """PIDs whose parent is `parent` (default: us) and, if exe is given, run that file."""
    parent = os.getpid() if parent is None else parent
    real = os.path.realpath(exe) if exe else None
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                stat = f.read()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid != parent:
                continue
            if real is not None:
                target = os.readlink("/proc/%s/exe" % name)
                if target.endswith(" (deleted)"):
                    target = target[: -len(" (deleted)")]
                if os.path.realpath(target) != real:
                    continue
            out.append(int(name))
        except (OSError, IndexError, ValueError):
            continue
    return sorted(out)


def proc_state(pid):
    """The /proc state letter of pid ('Z' for a zombie), or None when it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def open_fds():
    return sorted(int(x) for x in os.listdir("/proc/self/fd"))


def describe_status(rc):
    """Popen-style return code -> text ('exited with status 1', 'killed by SIGBUS')."""
    if rc is None:
        return "still running"
    if isinstance(rc, int) and rc < 0:
        try:
            return "killed by %s" % signal.Signals(-rc).name
        except ValueError:
            return "killed by signal %d" % -rc
    return "exited with status %s" % rc


def peek_child_status(pid):
    """Exit status of our child pid without reaping it (None while it runs)."""
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return None
    if info is None:
        return None
    if info.si_code == os.CLD_EXITED:
        return info.si_status
    return -info.si_status


# --------------------------------------------------------------------------------------
# Peer base

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
        return pkt

    def expect_none(self, match=None, timeout=None, desc=None):
        """Assert that no frame matching match (noise excluded) arrives within timeout."""
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
        before = self.helper_log().count("stats:")
        os.kill(pid, signal.SIGUSR1)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.helper_log()
            if text.count("stats:") > before:
                st = parse_stats(text)
                if st is not None:
                    return st
            self.pump(0.02)
        raise AssertionError("helper %d wrote no stats line within %.1f s after SIGUSR1;"
                             " log:\n%s" % (pid, timeout, self.helper_log()))

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


def _read_file(path):
    try:
        with open(path, "r", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


# --------------------------------------------------------------------------------------
# DirectPeer: the helper on a socketpair of our own

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
        self.helper = helper or os.environ["SLIRPNET_HELPER"]
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
            self._read_status(timeout_or(status_timeout, 5.0 * _SCALE))
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
            try:
                rc = self.proc.wait(1)
            except subprocess.TimeoutExpired:
                rc = None
            raise AssertionError("send failed (%s): the helper %s; log:\n%s"
                                 % (e, describe_status(rc), self.helper_log())) from e

    def _pump(self, timeout):
        if self.closed:
            time.sleep(max(0.0, min(timeout, 0.05)))
            return
        try:
            r, _, _ = select.select([self.sock], [], [], max(0.0, min(timeout, 0.2)))
        except (OSError, ValueError):
            return
        if not r:
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
        try:
            self._logf.flush()
        except ValueError:
            pass
        return _read_file(self.log_path)

    def wait_exit(self, timeout=None):
        """Wait for the helper to exit; returns its status or None on timeout."""
        try:
            self.returncode = self.proc.wait(timeout_or(timeout, self.POSITIVE_TIMEOUT))
        except subprocess.TimeoutExpired:
            return None
        return self.returncode

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

    def cleanup_files(self):
        try:
            os.unlink(self.log_path)
        except OSError:
            pass


# --------------------------------------------------------------------------------------
# PluginPeer: libslirpnet.so through ctypes

class iovec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


RXCB = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_void_p)

_libs = {}


def load_glib():
    if "glib" not in _libs:
        g = ctypes.CDLL("libglib-2.0.so.0")
        g.g_main_context_new.restype = ctypes.c_void_p
        g.g_main_context_new.argtypes = []
        g.g_main_context_unref.argtypes = [ctypes.c_void_p]
        g.g_main_context_unref.restype = None
        g.g_main_context_iteration.argtypes = [ctypes.c_void_p, ctypes.c_int]
        g.g_main_context_iteration.restype = ctypes.c_int
        _libs["glib"] = g
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.free.argtypes = [ctypes.c_void_p]
        libc.free.restype = None
        _libs["libc"] = libc
    return _libs["glib"]


def load_lib(path=None):
    """Load libslirpnet.so (SLIRPNET_LIB) with the netbe.h prototypes."""
    path = path or os.environ["SLIRPNET_LIB"]
    if path in _libs:
        return _libs[path]
    lib = ctypes.CDLL(path, use_errno=True)
    vp, ssz = ctypes.c_void_p, ctypes.c_ssize_t
    piov = ctypes.POINTER(iovec)
    protos = {
        "slirpnet_netbe_init": (ctypes.c_int, [ctypes.POINTER(vp), ctypes.c_char_p, RXCB,
                                               vp, vp, ctypes.POINTER(vp)]),
        "slirpnet_netbe_cleanup": (None, [vp]),
        "slirpnet_netbe_send": (ssz, [vp, piov, ctypes.c_int]),
        "slirpnet_netbe_peek_recvlen": (ssz, [vp]),
        "slirpnet_netbe_recv": (ssz, [vp, piov, ctypes.c_int]),
        "slirpnet_netbe_rx_discard": (ssz, [vp]),
        "slirpnet_netbe_rx_enable": (None, [vp]),
        "slirpnet_netbe_rx_disable": (None, [vp]),
        "slirpnet_netbe_get_cap": (ctypes.c_uint64, [vp]),
        "slirpnet_netbe_set_cap": (ctypes.c_int, [vp, ctypes.c_uint64, ctypes.c_uint]),
        "slirpnet_netbe_fd": (ctypes.c_int, [vp]),
    }
    for name, (res, args) in protos.items():
        fn = getattr(lib, name)
        fn.restype = res
        fn.argtypes = args
    _libs[path] = lib
    return lib


def make_iov(*chunks):
    """An iovec array over the given bytes/bytearray chunks (kept alive by the result)."""
    bufs = [(ctypes.c_char * max(1, len(c))).from_buffer_copy(bytes(c) or b"\0")
            for c in chunks]
    arr = (iovec * max(1, len(chunks)))()
    for i, (c, b) in enumerate(zip(chunks, bufs)):
        arr[i].iov_base = ctypes.addressof(b)
        arr[i].iov_len = len(c)
    arr._keep = bufs
    return arr


class PluginError(AssertionError):
    pass


class VnetHdr:
    """struct virtio_net_hdr_mrg_rxbuf (little-endian), for PluginPeer.use_vnet_hdr."""
    F_NEEDS_CSUM = 1
    GSO_NONE, GSO_TCPV4, GSO_UDP, GSO_TCPV6 = 0, 1, 3, 4
    FMT = "<BBHHHHH"

    def __init__(self, flags=0, gso_type=0, hdr_len=0, gso_size=0, csum_start=0,
                 csum_offset=0, num_buffers=0):
        self.flags, self.gso_type, self.hdr_len, self.gso_size = flags, gso_type, hdr_len, gso_size
        self.csum_start, self.csum_offset, self.num_buffers = csum_start, csum_offset, num_buffers

    def __bytes__(self):
        return struct.pack(self.FMT, self.flags, self.gso_type, self.hdr_len, self.gso_size,
                           self.csum_start, self.csum_offset, self.num_buffers)

    @classmethod
    def unpack(cls, b):
        b = bytes(b).ljust(12, b"\0")
        return cls(*struct.unpack(cls.FMT, b[:12]))

    def __repr__(self):
        return ("VnetHdr(flags=%d, gso_type=%d, hdr_len=%d, gso_size=%d, csum_start=%d, "
                "csum_offset=%d, num_buffers=%d)" % (self.flags, self.gso_type, self.hdr_len,
                                                     self.gso_size, self.csum_start,
                                                     self.csum_offset, self.num_buffers))


def inet_sum(b, s=0):
    """RFC 1071 one's-complement sum of b added to s, folded to 16 bits (not inverted)."""
    b = bytes(b)
    if len(b) % 2:
        b += b"\0"
    s += sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def tcp_offsets(frame):
    """(l4 offset, is_v6) of an untagged TCP frame over IPv4/IPv6, or None."""
    frame = bytes(frame)
    et = struct.unpack("!H", frame[12:14])[0]
    if et == 0x0800 and frame[23] == 6:
        return 14 + (frame[14] & 0x0F) * 4, False
    if et == 0x86DD and frame[20] == 6:
        return 54, True
    return None


def tcp_pseudo_sum(frame):
    """The TCP pseudo-header sum of frame (what a partial checksum field holds)."""
    frame = bytes(frame)
    l4, v6 = tcp_offsets(frame)
    if v6:
        tcp_len = struct.unpack("!H", frame[18:20])[0]
        addrs = frame[22:54]
    else:
        tcp_len = struct.unpack("!H", frame[16:18])[0] - (l4 - 14)
        addrs = frame[26:34]
    return inet_sum(addrs + struct.pack("!HH", 6, tcp_len))


def tso_frame(frame, mss=1460):
    """A TCP frame as a TSO NIC's driver hands it over: (VnetHdr, bytes) with gso_type
    TCPV4/6, NEEDS_CSUM and the checksum field holding the pseudo-header sum."""
    frame = bytearray(bytes(frame))
    l4, v6 = tcp_offsets(frame)
    doff = (frame[l4 + 12] >> 4) * 4
    frame[l4 + 16:l4 + 18] = struct.pack("!H", tcp_pseudo_sum(frame))
    hdr = VnetHdr(flags=VnetHdr.F_NEEDS_CSUM,
                  gso_type=VnetHdr.GSO_TCPV6 if v6 else VnetHdr.GSO_TCPV4,
                  hdr_len=l4 + doff, gso_size=mss, csum_start=l4, csum_offset=16)
    return hdr, bytes(frame)


def complete_partial_csum(hdr, frame):
    """What the receiving NIC driver does for NEEDS_CSUM: returns the frame with the
    checksum at csum_start + csum_offset filled in."""
    frame = bytearray(frame)
    start, off = hdr.csum_start, hdr.csum_offset
    frame[start + off:start + off + 2] = struct.pack("!H", 0xFFFF ^ inet_sum(frame[start:]))
    return bytes(frame)


def tcp_csum_ok(frame):
    """True when the TCP checksum of frame verifies."""
    frame = bytes(frame)
    l4, _ = tcp_offsets(frame)
    return inet_sum(frame[l4:], tcp_pseudo_sum(frame)) == 0xFFFF


# virtio-net feature bits of netbe.h (SLIRPNET_NETBE_F_*)
F_CSUM, F_GUEST_CSUM = 1 << 0, 1 << 1
F_GUEST_TSO4, F_GUEST_TSO6 = 1 << 7, 1 << 8
F_HOST_TSO4, F_HOST_TSO6 = 1 << 11, 1 << 12
F_ALL_OFFLOADS = F_CSUM | F_GUEST_CSUM | F_GUEST_TSO4 | F_GUEST_TSO6 | F_HOST_TSO4 | F_HOST_TSO6


class PluginPeer(Peer):
    """A backend created through libslirpnet.so's C ABI, pumped on a private GMainContext.

    spec: "slirp[,k=v...]".  auto_drain: the rx callback drains frames into the queue
    (turn off to call peek_recvlen/recv yourself).  rx: enable rx right away.
    expect_ok: raise PluginError when init fails; otherwise check .ok / .error.
    """

    def __init__(self, spec="slirp", lib=None, helper=None, auto_drain=True, rx=True,
                 expect_ok=True, **kw):
        super().__init__(**kw)
        self.spec = spec
        if helper:
            os.environ["SLIRPNET_HELPER"] = helper   # the plugin finds its helper here
        self.helper = os.environ["SLIRPNET_HELPER"]
        self.lib = load_lib(lib)
        self.glib = load_glib()
        self.libc = _libs["libc"]
        self.auto_drain = auto_drain
        # Offloads (see use_vnet_hdr): header length, the header of the next frame sent,
        # and the header of every frame received, in order, as (VnetHdr, frame bytes).
        self.vnet_hdr_len = 0
        self.next_vnet_hdr = None
        self.vnet_rx = []
        # Play a TSO NIC: TCP frames larger than MTU + 14 are sent as GSO frames with a
        # partial checksum, as a guest kernel hands them to a virtio NIC (tso_frame).
        self.tso_tx = False
        self.tso_mss = 1460
        self.cb_count = 0
        self.dead_errno = None
        self.rx_enabled = False
        self._pid = None
        self.be = None
        self.ok, self.error = None, None
        self.ctx = self.glib.g_main_context_new()
        self._cb = RXCB(self._on_rx)
        fd, self.log_path = tempfile.mkstemp(prefix="slirpnet-plugin-", suffix=".log")
        os.close(fd)
        before = set(child_pids(self.helper))
        be = ctypes.c_void_p()
        err = ctypes.c_void_p()
        # The helper inherits our stderr: point fd 2 at a file while it is spawned so
        # the test can read its log (stats lines) afterwards.
        saved = os.dup(2)
        logfd = os.open(self.log_path, os.O_WRONLY | os.O_APPEND)
        try:
            os.dup2(logfd, 2)
            rc = self.lib.slirpnet_netbe_init(ctypes.byref(be), spec.encode(), self._cb,
                                              None, self.ctx, ctypes.byref(err))
            self.init_errno = ctypes.get_errno()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            os.close(logfd)
        self.init_rc = rc
        if rc == 0:
            self.ok = True
            self.be = be.value
            new = [p for p in child_pids(self.helper) if p not in before]
            self._pid = new[0] if len(new) == 1 else None
            self.name = "PluginPeer(pid %s, %r)" % (self._pid, spec)
            if err.value:  # not expected on success, but don't leak it
                self.libc.free(err.value)
            if rx:
                self.rx_enable()
            self._started()
        else:
            self.ok = False
            self.error = ctypes.string_at(err.value).decode("utf-8", "replace") \
                if err.value else None
            if err.value:
                self.libc.free(err.value)
            self.name = "PluginPeer(failed, %r)" % spec
            self.closed = True
            self.glib.g_main_context_unref(self.ctx)
            self.ctx = None
            if expect_ok:
                raise PluginError("slirpnet_netbe_init(%r) failed (rc=%d): %s"
                                  % (spec, rc, self.error))

    # -- raw ABI -----------------------------------------------------------------------
    def be_send(self, *chunks):
        """slirpnet_netbe_send over the chunks as iovecs -> (ret, errno)."""
        iov = make_iov(*chunks)
        ret = self.lib.slirpnet_netbe_send(self.be, iov, len(chunks))
        return ret, (ctypes.get_errno() if ret < 0 else 0)

    def be_peek(self):
        ret = self.lib.slirpnet_netbe_peek_recvlen(self.be)
        return ret, (ctypes.get_errno() if ret < 0 else 0)

    def be_recv(self, *sizes):
        """slirpnet_netbe_recv into iovecs of the given sizes -> (ret, errno, bytes)."""
        sizes = sizes or (65536 + 64,)
        bufs = [ctypes.create_string_buffer(max(1, s)) for s in sizes]
        arr = (iovec * len(sizes))()
        for i, (s, b) in enumerate(zip(sizes, bufs)):
            arr[i].iov_base = ctypes.addressof(b)
            arr[i].iov_len = s
        ret = self.lib.slirpnet_netbe_recv(self.be, arr, len(sizes))
        if ret < 0:
            return ret, ctypes.get_errno(), b""
        data = b"".join(b.raw[:s] for b, s in zip(bufs, sizes))[:ret]
        return ret, 0, data

    def be_discard(self):
        ret = self.lib.slirpnet_netbe_rx_discard(self.be)
        return ret, (ctypes.get_errno() if ret < 0 else 0)

    def rx_enable(self):
        self.lib.slirpnet_netbe_rx_enable(self.be)
        self.rx_enabled = True

    def rx_disable(self):
        self.lib.slirpnet_netbe_rx_disable(self.be)
        self.rx_enabled = False

    def fd(self):
        return self.lib.slirpnet_netbe_fd(self.be)

    def get_cap(self):
        return self.lib.slirpnet_netbe_get_cap(self.be)

    def set_cap(self, features, vnet_hdr_len):
        ret = self.lib.slirpnet_netbe_set_cap(self.be, features, vnet_hdr_len)
        return ret, (ctypes.get_errno() if ret < 0 else 0)

    def use_vnet_hdr(self, features, hdr_len=12):
        """set_cap(features, hdr_len) and speak virtio-net headers from now on: frames
        sent get a zero header (or ``next_vnet_hdr``, used once), frames received have
        theirs stripped into ``vnet_rx``; expect() and friends see bare frames."""
        rc = self.set_cap(features, hdr_len)
        assert rc == (0, 0), "set_cap(%#x, %d) -> %r" % (features, hdr_len, rc)
        self.vnet_hdr_len = hdr_len

    def send_with_vnet_hdr(self, hdr, frame):
        """Send one frame behind an explicit header (a VnetHdr or bytes)."""
        self.next_vnet_hdr = bytes(hdr)
        try:
            return self.send(frame)
        finally:
            self.next_vnet_hdr = None

    def iterate(self, n=1000):
        """Dispatch pending GMainContext sources without blocking; returns how many."""
        done = 0
        while done < n and self.glib.g_main_context_iteration(self.ctx, 0):
            done += 1
        return done

    # -- Peer ----------------------------------------------------------------------------
    def _on_rx(self, fd, param):
        try:
            self.cb_count += 1
            if not self.auto_drain:
                return
            while True:
                n, err = self.be_peek()
                if n < 0:
                    self.dead_errno = err
                    return
                if n == 0:
                    return
                ret, err, data = self.be_recv(n)
                if ret < 0:
                    self.dead_errno = err
                    return
                if ret == 0:
                    return
                if self.vnet_hdr_len:
                    hdr, data = VnetHdr.unpack(data[:self.vnet_hdr_len]), data[self.vnet_hdr_len:]
                    self.vnet_rx.append((hdr, data))
                self._raw_in.append((time.time(), data))
        except BaseException as e:  # never let an exception unwind through C
            self.cb_exception = e

    cb_exception = None

    def _send_raw(self, data):
        if self.vnet_hdr_len and self.next_vnet_hdr is None and self.tso_tx \
                and len(data) > self.tso_mss + 54:
            hdr, data = tso_frame(data, self.tso_mss)
            data = bytes(hdr)[:self.vnet_hdr_len].ljust(self.vnet_hdr_len, b"\0") + data
        elif self.vnet_hdr_len:
            hdr = self.next_vnet_hdr if self.next_vnet_hdr is not None else bytes(12)
            data = hdr[:self.vnet_hdr_len].ljust(self.vnet_hdr_len, b"\0") + data
        ret, err = self.be_send(data)
        if ret < 0:
            if err in (errno_mod.ECONNRESET, errno_mod.EPIPE) and self._pid:
                time.sleep(0.05)
                raise AssertionError(
                    "slirpnet_netbe_send: %s: the helper %s; log:\n%s"
                    % (os.strerror(err), describe_status(peek_child_status(self._pid)),
                       self.helper_log()))
            raise OSError(err, "slirpnet_netbe_send: " + os.strerror(err))
        return ret

    def _pump(self, timeout):
        if self.closed:
            time.sleep(max(0.0, min(timeout, 0.05)))
            return
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            before = len(self._raw_in)
            cbs = self.cb_count
            self.iterate()
            if self.cb_exception is not None:
                e, self.cb_exception = self.cb_exception, None
                raise e
            remaining = deadline - time.monotonic()
            if len(self._raw_in) > before or remaining <= 0:
                return
            if (self.dead_errno is not None or not self.rx_enabled or not self.auto_drain
                    or self.cb_count != cbs):
                # nothing to wait on (or a callback that does not drain): just nap
                time.sleep(min(remaining, 0.01))
                continue
            try:
                select.select([self.fd()], [], [], min(remaining, 0.05))
            except (OSError, ValueError):
                time.sleep(min(remaining, 0.01))

    def helper_pid(self):
        return self._pid

    def link_fd(self):
        return self.fd()

    def helper_log(self):
        return _read_file(self.log_path)

    def close(self):
        """slirpnet_netbe_cleanup + drop the context; safe to call twice."""
        if self.be is not None:
            self.lib.slirpnet_netbe_cleanup(self.be)
            self.be = None
            self.closed = True
            self.iterate()
            self.glib.g_main_context_unref(self.ctx)
            self.ctx = None
        self.closed = True

    def cleanup_files(self):
        try:
            os.unlink(self.log_path)
        except OSError:
            pass

    def describe(self):
        return self.name


def make_peer(kind, options="", **kw):
    """'plugin' -> PluginPeer('slirp,' + options); 'direct' -> DirectPeer(options)."""
    if kind == "plugin":
        spec = "slirp" + ("," + options if options else "")
        return PluginPeer(spec, **kw)
    if kind == "direct":
        return DirectPeer(options, **kw)
    raise ValueError(kind)


# --------------------------------------------------------------------------------------
# Guest-side TCP

MOD32 = 1 << 32


def seq_add(a, n):
    return (a + n) % MOD32


def seq_lt(a, b):
    return ((a - b) % MOD32) > (MOD32 >> 1)


def seq_le(a, b):
    return a == b or seq_lt(a, b)


def tcp_payload(p):
    """TCP payload bytes of an IPv4 packet, without Ethernet padding."""
    ip, t = p[IP], p[TCP]
    dlen = ip.len - ip.ihl * 4 - t.dataofs * 4
    return bytes(t)[t.dataofs * 4: t.dataofs * 4 + max(0, dlen)]


class TcpConn:
    """A minimal TCP endpoint on the guest side of a Peer (IPv4).

    TcpConn.connect(peer, dst_ip, dport)  active open through slirp (e.g. to 10.0.2.2)
    TcpConn.accept(peer, port)            passive open: answer slirp's SYN (hostfwd)
    conn.send(data)     send and wait until everything is acknowledged
    conn.recv(n)        wait for n bytes (ACKing as they come); conn.recv_all() until FIN
    conn.close()        send FIN and wait for its ACK;  conn.wait_fin() waits for theirs
    """

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
        return (IP in p and TCP in p and p[IP].src == self.remote_ip
                and p[IP].dst == self.local_ip and p[TCP].sport == self.remote_port
                and p[TCP].dport == self.local_port)

    def segment(self, flags, seq=None, payload=b"", options=None):
        t = TCP(sport=self.local_port, dport=self.remote_port, flags=flags,
                seq=self.snd_nxt if seq is None else seq,
                ack=self.rcv_nxt if (self.rcv_nxt is not None and "A" in flags) else 0,
                window=self.window, options=options or [])
        frame = (Ether(src=self.peer.guest_mac, dst=self.peer.gw_mac)
                 / IP(src=self.local_ip, dst=self.remote_ip) / t)
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
        c = cls(peer, peer.guest_ip, local_port, remote_ip, remote_port, **kw)
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
        local_ip = local_ip or peer.guest_ip
        syn = peer.expect(lambda p: IP in p and TCP in p and p[IP].dst == local_ip
                          and p[TCP].dport == port and str(p[TCP].flags) == "S",
                          timeout, desc="SYN to %s:%d" % (local_ip, port))
        c = cls(peer, local_ip, port, syn[IP].src, syn[TCP].sport, **kw)
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


# --------------------------------------------------------------------------------------
# IPv4 fragments

def expect_datagram(peer, match, timeout=None, desc="IPv4 fragment"):
    """Collect the fragments of one IPv4 datagram (frames matching match, which should
    select on src/proto) and reassemble it; returns (fragments, IP payload bytes)."""
    frags, got, total = [], 0, None
    while total is None or got < total:
        f = peer.expect(lambda x: IP in x and match(x), timeout, desc=desc)
        ip = f[IP]
        data = bytes(ip.payload)[: ip.len - ip.ihl * 4]
        frags.append((ip.frag * 8, data, f))
        got += len(data)
        if not (int(ip.flags) & 1):          # MF clear: this is the last fragment
            total = ip.frag * 8 + len(data)
    buf = bytearray(total)
    for off, data, _ in frags:
        buf[off: off + len(data)] = data
    return [f for _, _, f in frags], bytes(buf)


def fragments(frame, size):
    """Split an Ether/IP frame into Ether/IP fragment frames of at most size IP bytes."""
    from scapy.layers.inet import fragment
    e = frame[Ether]
    return [Ether(src=e.src, dst=e.dst) / f
            for f in fragment(frame[IP], fragsize=size - frame[IP].ihl * 4 if frame[IP].ihl
                              else size - 20)]


# --------------------------------------------------------------------------------------
# DHCP

DHCP_MAGIC = b"\x63\x82\x53\x63"
DHCP_TYPES = {1: "discover", 2: "offer", 3: "request", 4: "decline", 5: "ack", 6: "nak",
              7: "release", 8: "inform"}


def dhcp_options(p):
    """Raw DHCP options of a BOOTP packet as {code: bytes} (parsed by hand)."""
    raw = bytes(p[UDP].payload)
    body = raw[236:]
    assert body[:4] == DHCP_MAGIC, "no DHCP magic cookie"
    out = {}
    i = 4
    while i < len(body):
        code = body[i]
        if code == 0:
            i += 1
            continue
        if code == 255:
            break
        ln = body[i + 1]
        out[code] = out.get(code, b"") + body[i + 2: i + 2 + ln]  # RFC 3396 concatenation
        i += 2 + ln
    return out


def dhcp_type(p):
    try:
        return DHCP_TYPES.get(dhcp_options(p).get(53, b"\0")[0])
    except (AssertionError, IndexError):
        return None


def decode_dns_names(data):
    """Decode a sequence of RFC 1035 names (with compression pointers) to strings."""
    names = []
    pos = 0
    while pos < len(data):
        labels = []
        p = pos
        jumped = False
        end = None
        hops = 0
        while True:
            if p >= len(data):
                raise ValueError("truncated name")
            ln = data[p]
            if ln == 0:
                if not jumped:
                    end = p + 1
                break
            if ln & 0xC0 == 0xC0:
                if p + 1 >= len(data):
                    raise ValueError("truncated pointer")
                if not jumped:
                    end = p + 2
                p = ((ln & 0x3F) << 8) | data[p + 1]
                jumped = True
                hops += 1
                if hops > 64:
                    raise ValueError("pointer loop")
                continue
            labels.append(data[p + 1: p + 1 + ln].decode("ascii"))
            p += 1 + ln
        names.append(".".join(labels))
        pos = end
    return names


def dhcp_frame(peer, msgtype, xid, extra=()):
    opts = [("message-type", msgtype)] + list(extra) + ["end"]
    return (Ether(src=peer.guest_mac, dst=BCAST_MAC)
            / IP(src="0.0.0.0", dst="255.255.255.255")
            / UDP(sport=68, dport=67)
            / BOOTP(op=1, chaddr=mac2str(peer.guest_mac) + b"\0" * 10, xid=xid, flags=0)
            / DHCP(options=opts))


def is_dhcp_reply(xid, kind):
    def fn(p):
        return (BOOTP in p and p[BOOTP].op == 2 and p[BOOTP].xid == xid
                and dhcp_type(p) == kind)
    fn.__name__ = "dhcp_%s(xid=%#x)" % (kind, xid)
    return fn


def dhcp_lease(peer, xid=None, timeout=None, params=(1, 3, 6, 12, 15, 119)):
    """DISCOVER -> OFFER -> REQUEST -> ACK; returns (offer, ack) and adopts the address."""
    xid = xid or random.randrange(1, 1 << 31)
    prl = ("param_req_list", list(params))
    peer.send(dhcp_frame(peer, "discover", xid, [prl]))
    offer = peer.expect(is_dhcp_reply(xid, "offer"), timeout)
    yiaddr = offer[BOOTP].yiaddr
    server = socket.inet_ntoa(dhcp_options(offer).get(54, socket.inet_aton(peer.gw_ip)))
    peer.send(dhcp_frame(peer, "request", xid,
                         [("requested_addr", yiaddr), ("server_id", server), prl]))
    ack = peer.expect(is_dhcp_reply(xid, "ack"), timeout)
    peer.set_guest_ip(ack[BOOTP].yiaddr)
    return offer, ack


# --------------------------------------------------------------------------------------
# hostfwd helpers (host side)

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
