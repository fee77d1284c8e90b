# SPDX-License-Identifier: BSD-2-Clause
"""vhost_user.py - QEMU and the guest's virtio-net driver in one (VhostUserPeer): the front-end of `slirpnet --vhost-user PATH` over memfd guest memory and split rings.

The peer plays what a QEMU 7.2 guest with virtio-net-pci does to the helper:

* the vhost-user messages on the UNIX socket (QEMU's docs/interop/vhost-user.rst):
  GET_FEATURES, GET/SET_PROTOCOL_FEATURES, SET_OWNER, SET_FEATURES, SET_MEM_TABLE (the
  memfd passed as SCM_RIGHTS), per queue SET_VRING_NUM/BASE/ADDR/KICK/CALL and
  SET_VRING_ENABLE; with REPLY_ACK every SET_* asks for an acknowledgement and a
  refusal raises VhostUserRefused;
* the driver: guest memory is a memfd mapped here (GuestMemory); its guest-physical
  addresses (descriptors) start at GPA_BASE and the front-end's own addresses (the ones
  SET_VRING_ADDR and the region's userspace_addr carry) at UVA_BASE, deliberately
  different numbers so that a back-end that mixes them up fails. Queue 0 (RX) holds
  writable buffers the helper fills (with MRG_RXBUF a frame may span several: the
  header's num_buffers), queue 1 (TX) readable chains of header + frame. Kicks and calls
  are eventfds; with EVENT_IDX the driver publishes used_event and kicks only when
  avail_event asks for it, without it it honours NO_NOTIFY, as Linux does.

The Peer interface works as on the other peers (send/expect/expect_none/stats, TcpConn,
the checks). Frames received keep their header in ``vnet_rx`` as (VnetHdr, frame), as on
PluginPeer, and how many RX buffers each took in ``rx_buffers``; ``send_with_vnet_hdr``
sends one frame behind an explicit header, ``tso_tx`` makes large TCP frames GSO frames
as a TSO guest would, ``csum_tx`` every TCP frame one with a partial checksum
(NEEDS_CSUM, the field holding the pseudo-header sum). ``missed_calls`` counts used
entries found without a call; ``vring_error(q)`` reads the SET_VRING_ERR eventfd.

Low-level knobs for hostile tests: ``rings[q]`` (a SplitRing: write_desc, put_avail,
set_avail_idx, ...), ``free_desc(q)`` (descriptor indices the peer itself never uses),
``scratch`` (256 KiB of guest memory for raw buffers), ``send_chain(q, descs)``,
``kick(q)``; raw messages: ``send_msg(req, payload, fds, size=, flags=)``,
``send_raw(bytes)``, ``recv_msg()``, ``wait_closed()``. ``setup=False`` connects without
any message; ``negotiate()``, ``set_mem_table()``, ``make_ring(q)``, ``setup_queue(q)``,
``post_rx()``, ``enable_queue(q)`` are the handshake's steps; ``stop_queues`` and
``restart_queues`` play a VM stopped and resumed, ``reset_device`` a guest driver that
starts over.
"""

import mmap
import os
import select
import socket
import struct
import threading
import time

from .consts import POSITIVE_TIMEOUT, timeout_or
from .peers import Peer
from .procs import HelperProc, describe_status
from .stats import signal_stats
from .vnet import VnetHdr, tcp_offsets, tso_frame

__all__ = ["VhostUserPeer", "VhostUserRefused", "GuestMemory", "SplitRing", "vring_need_event",
           "VHOST_USER", "VIRTIO_NET_F", "VHOST_USER_PROTOCOL_F", "VRING_DESC_F_NEXT",
           "VRING_DESC_F_WRITE", "VRING_DESC_F_INDIRECT", "DEFAULT_FEATURES", "GPA_BASE",
           "UVA_BASE", "RX_QUEUE", "TX_QUEUE", "VNET_HDR_LEN", "feature_mask"]

# vhost-user requests (front-end -> back-end)
VHOST_USER = dict(
    GET_FEATURES=1, SET_FEATURES=2, SET_OWNER=3, RESET_OWNER=4, SET_MEM_TABLE=5,
    SET_LOG_BASE=6, SET_LOG_FD=7, SET_VRING_NUM=8, SET_VRING_ADDR=9, SET_VRING_BASE=10,
    GET_VRING_BASE=11, SET_VRING_KICK=12, SET_VRING_CALL=13, SET_VRING_ERR=14,
    GET_PROTOCOL_FEATURES=15, SET_PROTOCOL_FEATURES=16, GET_QUEUE_NUM=17, SET_VRING_ENABLE=18,
    SEND_RARP=19, NET_SET_MTU=20, GET_CONFIG=24, SET_CONFIG=25, RESET_DEVICE=34)
_NAMES = {v: k for k, v in VHOST_USER.items()}
_GET_REPLIES = {VHOST_USER[n] for n in ("GET_FEATURES", "GET_PROTOCOL_FEATURES", "GET_VRING_BASE",
                                        "GET_QUEUE_NUM", "GET_CONFIG")}

FLAG_VERSION = 0x1
FLAG_REPLY = 0x4
FLAG_NEED_REPLY = 0x8
VRING_NOFD = 0x100          # SET_VRING_KICK/CALL payload: no fd passed (polling)
HDR = struct.Struct("<III")
MAX_REGIONS = 8             # VHOST_MEMORY_BASELINE_NREGIONS

VIRTIO_NET_F = dict(
    CSUM=0, GUEST_CSUM=1, MTU=3, MAC=5, GUEST_TSO4=7, GUEST_TSO6=8, GUEST_ECN=9, GUEST_UFO=10,
    HOST_TSO4=11, HOST_TSO6=12, HOST_ECN=13, HOST_UFO=14, MRG_RXBUF=15, STATUS=16, CTRL_VQ=17,
    RING_INDIRECT_DESC=28, RING_EVENT_IDX=29, PROTOCOL_FEATURES=30, VERSION_1=32)
VHOST_USER_PROTOCOL_F = dict(MQ=0, LOG_SHMFD=1, RARP=2, REPLY_ACK=3, NET_MTU=4, SLAVE_REQ=5,
                             CROSS_ENDIAN=6, CONFIG=9, RESET_DEVICE=13)


def feature_mask(*names):
    """The bit mask of VIRTIO_NET_F names: feature_mask("VERSION_1", "MRG_RXBUF")."""
    m = 0
    for n in names:
        m |= 1 << VIRTIO_NET_F[n]
    return m


# What a Linux guest with virtio-net-pci's defaults asks for, of what the helper offers.
DEFAULT_FEATURES = feature_mask("VERSION_1", "MRG_RXBUF", "CSUM", "GUEST_CSUM", "GUEST_TSO4",
                                "GUEST_TSO6", "HOST_TSO4", "HOST_TSO6", "RING_EVENT_IDX",
                                "PROTOCOL_FEATURES")
DEFAULT_PROTOCOL_FEATURES = (1 << VHOST_USER_PROTOCOL_F["REPLY_ACK"]
                             | 1 << VHOST_USER_PROTOCOL_F["NET_MTU"])

VRING_DESC_F_NEXT, VRING_DESC_F_WRITE, VRING_DESC_F_INDIRECT = 1, 2, 4
VRING_USED_F_NO_NOTIFY = 1
VRING_AVAIL_F_NO_INTERRUPT = 1
RX_QUEUE, TX_QUEUE = 0, 1
VNET_HDR_LEN = 12           # struct virtio_net_hdr_mrg_rxbuf (VERSION_1: always)

# Guest-physical addresses (descriptors) and the front-end's virtual addresses (vring
# addresses, userspace_addr) of offset 0 of the memfd: different, and not 0.
GPA_BASE = 0x40000000
UVA_BASE = 0x7f0000000000
PAGE = 4096


def vring_need_event(event, new, old):
    """virtio's vring_need_event: did moving the index from old to new pass event?"""
    return ((new - event - 1) & 0xFFFF) < ((new - old) & 0xFFFF)


class VhostUserRefused(AssertionError):
    """The back-end answered a REPLY_ACK request with a failure, or closed the connection."""


class GuestMemory:
    """A memfd of size bytes mapped here, offered as `regions` equal regions (contiguous in
    both address spaces, each its own mmap_offset), with a bump allocator over it.
    seal: "qemu" (memory-backend-memfd's default seal=on: sealing allowed, then sealed
    against growing, shrinking and further seals), "allow" (sealing allowed, no seal yet),
    "none" (a memfd that cannot be sealed: seal=off)."""

    def __init__(self, size, regions=1, seal="qemu"):
        assert size % (PAGE * regions) == 0
        self.size = size
        flags = os.MFD_CLOEXEC | (os.MFD_ALLOW_SEALING if seal in ("qemu", "allow") else 0)
        self.fd = os.memfd_create("slirpnet-guest", flags)
        os.ftruncate(self.fd, size)
        if seal == "qemu":
            import fcntl
            fcntl.fcntl(self.fd, fcntl.F_ADD_SEALS,
                        fcntl.F_SEAL_GROW | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_SEAL)
        self.map = mmap.mmap(self.fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        self.view = memoryview(self.map)
        self.nregions = regions
        self.next = 0

    def regions(self):
        """[(guest_phys_addr, memory_size, userspace_addr, mmap_offset)] for SET_MEM_TABLE."""
        step = self.size // self.nregions
        return [(GPA_BASE + i * step, step, UVA_BASE + i * step, i * step)
                for i in range(self.nregions)]

    def alloc(self, n, align=PAGE):
        off = (self.next + align - 1) // align * align
        assert off + n <= self.size, "guest memory of %d bytes is full (%d more wanted)" % (
            self.size, n)
        self.next = off + n
        return off

    def gpa(self, off):
        return GPA_BASE + off

    def uva(self, off):
        return UVA_BASE + off

    def off_of_gpa(self, gpa, n=0):
        off = gpa - GPA_BASE
        assert 0 <= off and off + n <= self.size, "GPA %#x+%d is not guest memory" % (gpa, n)
        return off

    def write(self, off, data):
        self.map[off:off + len(data)] = data

    def read(self, off, n):
        return bytes(self.map[off:off + n])

    def u16(self, off):
        return struct.unpack_from("<H", self.map, off)[0]

    def put_u16(self, off, v):
        struct.pack_into("<H", self.map, off, v & 0xFFFF)

    def close(self):
        try:
            self.view.release()
            self.map.close()
        except (BufferError, ValueError):
            pass
        try:
            os.close(self.fd)
        except OSError:
            pass


class SplitRing:
    """The driver's side of one split virtqueue of size num in GuestMemory (virtio 1.x 2.7):
    descriptor table, available ring (flags, idx, ring[num], used_event) and used ring
    (flags, idx, ring[num] of (id, len), avail_event), each page aligned."""

    def __init__(self, mem, index, num):
        self.mem, self.index, self.num = mem, index, num
        self.desc = mem.alloc(16 * num)
        self.avail = mem.alloc(6 + 2 * num)
        self.used = mem.alloc(6 + 8 * num)
        self.avail_idx = 0           # what we published
        self.last_used = 0           # the next used entry we will read

    # -- descriptors and the available ring (ours to write) -----------------------------------
    def write_desc(self, i, addr, length, flags=0, next=0):
        """Descriptor i (any i: a hostile test may write past the table's end on purpose)."""
        struct.pack_into("<QIHH", self.mem.map, self.desc + 16 * (i % self.num), addr,
                         length & 0xFFFFFFFF, flags, next)

    def read_desc(self, i):
        return struct.unpack_from("<QIHH", self.mem.map, self.desc + 16 * i)

    def put_avail(self, head, publish=True):
        """Append head to the available ring (head may be out of range on purpose)."""
        self.mem.put_u16(self.avail + 4 + 2 * (self.avail_idx % self.num), head)
        self.avail_idx = (self.avail_idx + 1) & 0xFFFF
        if publish:
            self.publish()

    def publish(self):
        self.mem.put_u16(self.avail + 2, self.avail_idx)

    def set_avail_idx(self, idx):
        """Write avail->idx as it is (e.g. jumping by more than num)."""
        self.avail_idx = idx & 0xFFFF
        self.publish()

    def set_avail_flags(self, flags):
        self.mem.put_u16(self.avail, flags)

    def set_used_event(self, v):
        self.mem.put_u16(self.avail + 4 + 2 * self.num, v)

    # -- the used ring (the device's to write) -------------------------------------------------
    def used_idx(self):
        return self.mem.u16(self.used + 2)

    def used_flags(self):
        return self.mem.u16(self.used)

    def avail_event(self):
        return self.mem.u16(self.used + 4 + 8 * self.num)

    def used_elem(self, i):
        """(id, len) of used entry i (a free-running index)."""
        return struct.unpack_from("<II", self.mem.map, self.used + 4 + 8 * (i % self.num))

    def pending_used(self):
        return (self.used_idx() - self.last_used) & 0xFFFF


class _Chain:
    """A chain we posted: its head and its descriptors' (offset, length)."""
    __slots__ = ("head", "parts", "capacity")

    def __init__(self, head, parts):
        self.head, self.parts = head, parts
        self.capacity = sum(n for _, n in parts)


class VhostUserPeer(Peer):
    """The front-end of `slirpnet --vhost-user PATH`.

    path: the socket. proc: a running HelperProc serving path to connect to; without it
    the peer starts `helper --vhost-user PATH ARGS [-o OPTIONS]` itself (helper: the
    executable, default $SLIRPNET_HELPER; path default: a fresh directory's) and stops it
    at close().
    features: the SET_FEATURES bits (default: DEFAULT_FEATURES & what the helper offers;
    an explicit mask is sent as it is). protocol_features likewise (default REPLY_ACK and
    NET_MTU, of what is offered). queue_size: both queues' size.
    rx_buf_size / rx_chain / rx_bufs: the receive buffers (bytes per descriptor, descriptors
    per posted chain, chains posted; defaults: 4 KiB single buffers with MRG_RXBUF, else
    one 66 KiB buffer per chain, half the queue).
    rx_post=False: lay the RX chains out but publish none (a hostile test writes the ring).
    tx_split_header: the virtio-net header in a descriptor of its own (else one descriptor
    of header + frame). tx_slots: frames in flight on TX.
    send_err: send SET_VRING_ERR eventfds as QEMU does (vring_error(q) reads them).
    mem_size, regions, seal: the guest memory (see GuestMemory).
    setup=False: connect only (no message sent).
    """

    def __init__(self, path=None, proc=None, helper=None, args=(), options="", features=None,
                 protocol_features=None, queue_size=256, rx_buf_size=None, rx_chain=1,
                 rx_bufs=None, tx_split_header=False, tx_slots=32, mem_size=32 << 20,
                 regions=1, setup=True, connect_timeout=None, one_off=False, rx_post=True,
                 send_err=True, seal="qemu", **kw):
        super().__init__(**kw)
        self.own_proc = proc is None
        self._tmpdir = None
        if proc is None:
            if path is None:
                from .sandbox import helper_dir
                self._tmpdir = helper_dir(prefix="sn-vu-")
                path = os.path.join(self._tmpdir, "vu.sock")
            cmd = ["--vhost-user", path] + (["--one-off"] if one_off else []) + list(args)
            if options:
                cmd += ["-o", options]
            proc = HelperProc(cmd, helper=helper)
        self.proc = proc
        self.path = path or getattr(proc, "path", None)
        assert self.path, "VhostUserPeer needs the socket path"
        self.returncode = None
        self.want_features = features
        self.want_protocol_features = protocol_features
        self.queue_size = queue_size
        self.rx_buf_size_arg, self.rx_chain, self.rx_bufs_arg = rx_buf_size, rx_chain, rx_bufs
        self.tx_split_header, self.tx_slots_n = tx_split_header, tx_slots
        self.rx_post = rx_post
        self.mem = GuestMemory(mem_size, regions, seal)
        self.features = 0            # negotiated (what we sent in SET_FEATURES)
        self.offered = None          # GET_FEATURES
        self.protocol_features = 0
        self.offered_protocol = None
        self.rings = {}
        self.kick_fds = {}
        self.call_fds = {}
        self.err_fds = {}
        self.send_err = send_err
        self.rx_chains = {}          # head -> _Chain (posted or delivered)
        self.tx_free = []            # free TX slots: (head, [(off, len)])
        self.tx_inflight = {}        # head -> slot
        self.rx_pending = []         # used entries of a frame still missing buffers
        self.vnet_rx = []            # (VnetHdr, frame) of every frame received
        self.rx_buffers = []         # how many buffers each frame received took
        self.next_vnet_hdr = None
        self.tso_tx = False
        self.tso_mss = 1460
        self.csum_tx = False
        self.raw_heads = set()       # heads of send_chain()'s chains
        self.raw_returned = []       # (head, len) of those the helper gave back
        self.missed_calls = 0        # used entries found without a call after a wait
        self.kicks = {0: 0, 1: 0}
        self.calls = {0: 0, 1: 0}
        self.suppressed_kicks = 0
        self.eof = False
        self._desc_used = {RX_QUEUE: 0, TX_QUEUE: 0}
        self.scratch = None
        self._fence_lock = threading.Lock()
        self._rbuf = b""
        self.name = "VhostUserPeer(pid %s, %s)" % (self.proc.pid, self.path)
        self.sock = self._connect(timeout_or(connect_timeout, POSITIVE_TIMEOUT))
        if setup:
            try:
                self.handshake()
            except BaseException:
                self.close()
                raise
            self._started()

    # -- connection ------------------------------------------------------------------------
    def _connect(self, timeout):
        deadline = time.monotonic() + timeout
        while True:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
            try:
                s.connect(self.path)
                return s
            except (FileNotFoundError, ConnectionRefusedError):
                s.close()
                if time.monotonic() > deadline:
                    raise AssertionError("cannot connect to %s within %.1f s; helper %s; log:\n%s"
                                         % (self.path, timeout, describe_status(
                                             self.helper_status()), self.helper_log()))
                time.sleep(0.02)

    # -- messages --------------------------------------------------------------------------
    def send_raw(self, data, fds=()):
        """Bytes on the vhost-user socket as they are (fds as SCM_RIGHTS with the first)."""
        if fds:
            socket.send_fds(self.sock, [data], list(fds))
        else:
            self.sock.sendall(data)

    def send_msg(self, req, payload=b"", fds=(), flags=None, size=None, need_reply=False):
        """One message: header (request, flags, size: len(payload) unless given) + payload."""
        if isinstance(req, str):
            req = VHOST_USER[req]
        if flags is None:
            flags = FLAG_VERSION | (FLAG_NEED_REPLY if need_reply else 0)
        self.send_raw(HDR.pack(req, flags, len(payload) if size is None else size) + payload, fds)

    def _read_exact(self, n, deadline):
        while len(self._rbuf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            r, _, _ = select.select([self.sock], [], [], left)
            if not r:
                continue
            try:
                chunk = self.sock.recv(65536)
            except (ConnectionResetError, OSError):
                chunk = b""
            if not chunk:
                self.eof = True
                raise VhostUserRefused(self._closed_text())
            self._rbuf += chunk
        out, self._rbuf = self._rbuf[:n], self._rbuf[n:]
        return out

    def _closed_text(self):
        return "the helper closed the vhost-user connection; helper %s; log tail:\n%s" % (
            describe_status(self.helper_status()), "\n".join(self.helper_log().splitlines()[-15:]))

    def recv_msg(self, timeout=None):
        """(request, flags, payload) of the next message from the back-end; AssertionError
        on timeout, VhostUserRefused on EOF."""
        timeout = timeout_or(timeout, POSITIVE_TIMEOUT)
        deadline = time.monotonic() + timeout
        hdr = self._read_exact(HDR.size, deadline)
        if hdr is None:
            raise AssertionError("no vhost-user reply within %.1f s; log:\n%s"
                                 % (timeout, self.helper_log()))
        req, flags, size = HDR.unpack(hdr)
        assert size <= 4096, "reply to %s with a size of %d" % (_NAMES.get(req, req), size)
        payload = self._read_exact(size, deadline) if size else b""
        if payload is None:
            raise AssertionError("truncated vhost-user reply to %s" % _NAMES.get(req, req))
        return req, flags, payload

    def _reply(self, req, timeout=None):
        rreq, flags, payload = self.recv_msg(timeout)
        assert rreq == req, "reply to %s came for %s" % (_NAMES.get(req, req),
                                                         _NAMES.get(rreq, rreq))
        assert flags & FLAG_REPLY and flags & 0x3 == FLAG_VERSION, \
            "reply to %s has flags %#x" % (_NAMES.get(req, req), flags)
        return payload

    def call(self, req, payload=b"", fds=()):
        """Send a request; GET_* return their reply payload; with REPLY_ACK negotiated a
        SET_* waits for its acknowledgement (VhostUserRefused when it is not 0)."""
        if isinstance(req, str):
            req = VHOST_USER[req]
        ack = req not in _GET_REPLIES and self.has_protocol("REPLY_ACK")
        self.send_msg(req, payload, fds, need_reply=ack)
        if req in _GET_REPLIES:
            return self._reply(req)
        if ack:
            p = self._reply(req)
            assert len(p) == 8, "REPLY_ACK of %s with %d bytes" % (_NAMES[req], len(p))
            (v,) = struct.unpack("<Q", p)
            if v:
                raise VhostUserRefused("%s refused (%d); log tail:\n%s" % (
                    _NAMES[req], v, "\n".join(self.helper_log().splitlines()[-10:])))
        return None

    def call_u64(self, req, value):
        return self.call(req, struct.pack("<Q", value))

    def wait_closed(self, timeout=None):
        """True when the back-end closes the connection within timeout (what it sends
        before is read and dropped)."""
        deadline = time.monotonic() + timeout_or(timeout, POSITIVE_TIMEOUT)
        while not self.eof:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            r, _, _ = select.select([self.sock], [], [], left)
            if r:
                try:
                    chunk = self.sock.recv(65536)
                except OSError:
                    chunk = b""
                if not chunk:
                    self.eof = True
                self._rbuf += chunk
        return True

    def has(self, name):
        return bool(self.features >> VIRTIO_NET_F[name] & 1)

    def has_protocol(self, name):
        return bool(self.protocol_features >> VHOST_USER_PROTOCOL_F[name] & 1)

    # -- the handshake, step by step ------------------------------------------------------------
    def handshake(self):
        """QEMU 7.2's order for a virtio-net device with one queue pair."""
        self.negotiate()
        self.set_mem_table()
        for q in (RX_QUEUE, TX_QUEUE):
            self.setup_queue(q)
        self.post_rx()
        for q in (RX_QUEUE, TX_QUEUE):
            self.enable_queue(q)
        self.kick(RX_QUEUE)

    def negotiate(self):
        (self.offered,) = struct.unpack("<Q", self.call("GET_FEATURES"))
        pf_bit = 1 << VIRTIO_NET_F["PROTOCOL_FEATURES"]
        if self.offered & pf_bit:
            (self.offered_protocol,) = struct.unpack("<Q", self.call("GET_PROTOCOL_FEATURES"))
            want = self.want_protocol_features
            pf = (DEFAULT_PROTOCOL_FEATURES & self.offered_protocol) if want is None else want
            self.call_u64("SET_PROTOCOL_FEATURES", pf)
            self.protocol_features = pf
        self.call("SET_OWNER")
        want = self.want_features
        self.features = (DEFAULT_FEATURES & self.offered) if want is None else want
        self.call_u64("SET_FEATURES", self.features)

    def mem_table_payload(self, regions=None):
        """SET_MEM_TABLE's payload: u32 count, u32 padding, then (guest_phys_addr,
        memory_size, userspace_addr, mmap_offset) per region (default: the guest memory's)."""
        regions = self.mem.regions() if regions is None else regions
        return struct.pack("<II", len(regions), 0) + b"".join(
            struct.pack("<QQQQ", *r) for r in regions)

    def set_mem_table(self, regions=None, fds=None):
        regions = self.mem.regions() if regions is None else regions
        self.call("SET_MEM_TABLE", self.mem_table_payload(regions),
                  [self.mem.fd] * len(regions) if fds is None else fds)

    def vring_state(self, q, num):
        return struct.pack("<II", q, num)

    def vring_addr(self, q, desc=None, used=None, avail=None, flags=0, log=0):
        r = self.rings[q]
        return struct.pack("<IIQQQQ", q, flags,
                           self.mem.uva(r.desc) if desc is None else desc,
                           self.mem.uva(r.used) if used is None else used,
                           self.mem.uva(r.avail) if avail is None else avail, log)

    def make_ring(self, q, num=None):
        """Queue q's rings in guest memory and its eventfds (no message)."""
        num = self.queue_size if num is None else num
        if q not in self.rings:
            self.rings[q] = SplitRing(self.mem, q, num)
            self.kick_fds[q] = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
            self.call_fds[q] = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
            self.err_fds[q] = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        return self.rings[q]

    def setup_queue(self, q, num=None, base=0):
        """SET_VRING_NUM, BASE, ADDR, KICK, CALL and ERR (QEMU 7.2 sends the error
        eventfd too: the back-end writes it when it stops a broken ring)."""
        num = self.make_ring(q, num).num
        self.call("SET_VRING_NUM", self.vring_state(q, num))
        self.call("SET_VRING_BASE", self.vring_state(q, base))
        self.call("SET_VRING_ADDR", self.vring_addr(q))
        self.call("SET_VRING_KICK", struct.pack("<Q", q), [self.kick_fds[q]])
        self.call("SET_VRING_CALL", struct.pack("<Q", q), [self.call_fds[q]])
        if self.send_err:
            self.call("SET_VRING_ERR", struct.pack("<Q", q), [self.err_fds[q]])

    def vring_error(self, q):
        """How often the back-end signalled q's error eventfd since the last look."""
        try:
            return os.eventfd_read(self.err_fds[q])
        except BlockingIOError:
            return 0

    def stop_queues(self):
        """What QEMU does when the VM stops: GET_VRING_BASE of each queue; {q: base}."""
        return {q: self.get_vring_base(q) for q in sorted(self.rings)}

    def restart_queues(self, bases):
        """...and when it runs again: the same rings from the bases GET_VRING_BASE gave."""
        for q in sorted(self.rings):
            self.setup_queue(q, base=bases[q])
        for q in sorted(self.rings):
            self.enable_queue(q)
            self.kick(q)

    def reset_device(self):
        """A guest driver reset (a reboot, a driver reload): the queues are stopped, then
        set up again as new rings elsewhere in guest memory, from index 0, with a new
        memory table; frames in flight are forgotten."""
        self.stop_queues()
        for q in list(self.rings):
            for fds in (self.kick_fds, self.call_fds, self.err_fds):
                os.close(fds.pop(q))
        self.rings.clear()
        self.rx_chains.clear()
        self.rx_pending = []
        self.tx_free, self.tx_inflight = [], {}
        self.raw_heads = set()
        self.set_mem_table()
        for q in (RX_QUEUE, TX_QUEUE):
            self.setup_queue(q)
        self.post_rx()
        for q in (RX_QUEUE, TX_QUEUE):
            self.enable_queue(q)
        self.kick(RX_QUEUE)

    def enable_queue(self, q, on=1):
        """SET_VRING_ENABLE (only with PROTOCOL_FEATURES: without it rings start enabled)."""
        if self.has("PROTOCOL_FEATURES"):
            self.call("SET_VRING_ENABLE", self.vring_state(q, on))

    def get_vring_base(self, q):
        """GET_VRING_BASE: the queue stops; returns the back-end's next avail index."""
        p = self.call("GET_VRING_BASE", self.vring_state(q, 0))
        idx, num = struct.unpack("<II", p)
        assert idx == q, "GET_VRING_BASE reply for queue %d, asked for %d" % (idx, q)
        return num

    # -- buffers ---------------------------------------------------------------------------
    @property
    def mrg(self):
        return self.has("MRG_RXBUF")

    def free_desc(self, q):
        """Descriptor indices of queue q the peer never uses itself (for raw chains)."""
        return list(range(self._desc_used[q], self.rings[q].num))

    def post_rx(self):
        """Lay out the RX chains and the TX slots, post every RX chain (not kicked)."""
        rx, tx = self.rings[RX_QUEUE], self.rings[TX_QUEUE]
        size = self.rx_buf_size_arg or (4096 if self.mrg else 67584)
        self.rx_buf_size = size
        nchains = self.rx_bufs_arg or max(1, rx.num // 2 // self.rx_chain)
        assert nchains * self.rx_chain <= rx.num, "more RX descriptors than the queue has"
        base = self.mem.alloc(nchains * self.rx_chain * size)
        d = 0
        for c in range(nchains):
            parts = []
            for k in range(self.rx_chain):
                off = base + d * size
                last = k == self.rx_chain - 1
                rx.write_desc(d, self.mem.gpa(off), size,
                              VRING_DESC_F_WRITE | (0 if last else VRING_DESC_F_NEXT),
                              0 if last else d + 1)
                parts.append((off, size))
                d += 1
            self.rx_chains[c * self.rx_chain] = _Chain(c * self.rx_chain, parts)
        rx_used = d
        per = 2 if self.tx_split_header else 1
        nslots = max(1, min(self.tx_slots_n, tx.num // 2 // per))
        slot_size = 73728
        tbase = self.mem.alloc(nslots * slot_size)
        for s in range(nslots):
            self.tx_free.append((s * per, tbase + s * slot_size))
        self._desc_used = {RX_QUEUE: rx_used, TX_QUEUE: nslots * per}
        self.scratch = self.mem.alloc(256 * 1024)
        if self.rx_post:
            for head in sorted(self.rx_chains):
                rx.put_avail(head, publish=False)
            rx.publish()
        if self.has("RING_EVENT_IDX"):
            rx.set_used_event(0)
            tx.set_used_event(0)

    # -- notifications ---------------------------------------------------------------------
    def _fence(self):
        # A full barrier between publishing avail->idx and reading the device's
        # suppression (the driver's virtio_mb): the lock is a locked instruction.
        with self._fence_lock:
            pass

    def kick(self, q):
        """Write q's kick eventfd, whatever the device asked for."""
        self.kicks[q] += 1
        os.eventfd_write(self.kick_fds[q], 1)

    def notify(self, q, old_avail):
        """Kick q if the device wants it (EVENT_IDX: avail_event; else no NO_NOTIFY)."""
        r = self.rings[q]
        self._fence()
        if self.has("RING_EVENT_IDX"):
            need = vring_need_event(r.avail_event(), r.avail_idx, old_avail)
        else:
            need = not r.used_flags() & VRING_USED_F_NO_NOTIFY
        if need:
            self.kick(q)
        else:
            self.suppressed_kicks += 1

    def _consume_call(self, q):
        try:
            os.eventfd_read(self.call_fds[q])
            self.calls[q] += 1
            return True
        except BlockingIOError:
            return False

    # -- TX --------------------------------------------------------------------------------
    def _reclaim_tx(self):
        r = self.rings.get(TX_QUEUE)
        if r is None:
            return
        while r.pending_used():
            head, _len = r.used_elem(r.last_used)
            r.last_used = (r.last_used + 1) & 0xFFFF
            if head in self.raw_heads:
                self.raw_returned.append((head, _len))
                continue
            slot = self.tx_inflight.pop(head, None)
            assert slot is not None, "the helper returned TX head %d, which is not in flight" % head
            self.tx_free.append(slot)
        if self.has("RING_EVENT_IDX"):
            r.set_used_event(r.last_used)

    def _tx_slot(self, timeout):
        deadline = time.monotonic() + timeout
        while not self.tx_free:
            self._reclaim_tx()
            if self.tx_free:
                break
            if time.monotonic() > deadline:
                raise AssertionError("TX ring full: the helper took none of %d frames in %.1f s; "
                                     "helper %s; log:\n%s" % (len(self.tx_inflight), timeout,
                                                              describe_status(self.helper_status()),
                                                              self.helper_log()))
            select.select([self.call_fds[TX_QUEUE]], [], [], 0.05)
            self._consume_call(TX_QUEUE)
            self._pump_rx_once()
        return self.tx_free.pop()

    def _send_raw(self, data):
        hdr = self.next_vnet_hdr
        if hdr is None and self.tso_tx and len(data) > self.tso_mss + 54:
            h, data = tso_frame(data, self.tso_mss)
            hdr = bytes(h)
        elif hdr is None and self.csum_tx and tcp_offsets(data) is not None:
            h, data = tso_frame(data, self.tso_mss)
            h.gso_type, h.gso_size, h.hdr_len = VnetHdr.GSO_NONE, 0, 0
            hdr = bytes(h)
        hdr = (bytes(12) if hdr is None else bytes(hdr))[:VNET_HDR_LEN].ljust(VNET_HDR_LEN, b"\0")
        self.send_buffers([hdr + data])
        return len(data)

    def send_buffers(self, bufs, timeout=None):
        """One frame as the readable descriptors bufs (bytes each, header included; with
        tx_split_header the first 12 bytes go in a descriptor of their own); kicks."""
        if self.eof:
            raise AssertionError("send on a closed vhost-user connection: " + self._closed_text())
        r = self.rings[TX_QUEUE]
        head, off = self._tx_slot(timeout_or(timeout, POSITIVE_TIMEOUT))
        data = b"".join(bytes(b) for b in bufs)
        assert len(data) <= 73728, "frame too large for a TX slot"
        self.mem.write(off, data)
        if self.tx_split_header:
            r.write_desc(head, self.mem.gpa(off), VNET_HDR_LEN, VRING_DESC_F_NEXT, head + 1)
            r.write_desc(head + 1, self.mem.gpa(off + VNET_HDR_LEN), len(data) - VNET_HDR_LEN, 0, 0)
        else:
            r.write_desc(head, self.mem.gpa(off), len(data), 0, 0)
        self.tx_inflight[head] = (head, off)
        old = r.avail_idx
        r.put_avail(head)
        self.notify(TX_QUEUE, old)
        return head

    def send_with_vnet_hdr(self, hdr, frame):
        """Send one frame behind an explicit header (a VnetHdr or bytes)."""
        self.next_vnet_hdr = bytes(hdr)
        try:
            return self.send(frame)
        finally:
            self.next_vnet_hdr = None

    def send_chain(self, q, descs, head=None, kick=True):
        """A raw chain on queue q: descs [(addr, len, flags[, next])] written into the free
        descriptors (next defaults to the following one when NEXT is set), head published
        in the available ring. Returns the descriptor indices used."""
        r = self.rings[q]
        free = self.free_desc(q)
        idx = free[:len(descs)]
        for k, d in enumerate(descs):
            addr, length, flags = d[:3]
            nxt = d[3] if len(d) > 3 else (idx[k + 1] if k + 1 < len(idx) else 0)
            r.write_desc(idx[k], addr, length, flags, nxt)
        head = idx[0] if head is None else head
        self.raw_heads.add(head)
        r.put_avail(head)
        if kick:
            self.kick(q)
        return idx

    def wait_sent(self, timeout=None):
        """Wait until the helper has given back every TX chain we posted (it has read them)."""
        timeout = timeout_or(timeout, self.POSITIVE_TIMEOUT)
        deadline = time.monotonic() + timeout
        while True:
            self._reclaim_tx()
            if not self.tx_inflight:
                return True
            if time.monotonic() > deadline or self.eof:
                return False
            select.select([self.call_fds[TX_QUEUE]], [], [], 0.02)
            self._consume_call(TX_QUEUE)
            self._pump_rx_once()

    # -- RX --------------------------------------------------------------------------------
    def _repost(self, chains):
        r = self.rings[RX_QUEUE]
        old = r.avail_idx
        for c in chains:
            r.put_avail(c.head, publish=False)
        r.publish()
        self.notify(RX_QUEUE, old)

    def _read_chain(self, c, n):
        out = []
        for off, size in c.parts:
            if n <= 0:
                break
            k = min(size, n)
            out.append(self.mem.read(off, k))
            n -= k
        return b"".join(out)

    def _pump_rx_once(self):
        """Take every used RX entry there is; True if any."""
        r = self.rings.get(RX_QUEUE)
        if r is None:
            return False
        took = []
        while r.pending_used():
            head, length = r.used_elem(r.last_used)
            r.last_used = (r.last_used + 1) & 0xFFFF
            if head in self.raw_heads:
                self.raw_returned.append((head, length))
                continue
            c = self.rx_chains.get(head)
            assert c is not None, "the helper used RX head %d, which we never posted" % head
            assert length <= c.capacity, (
                "the helper wrote %d bytes into RX chain %d of %d bytes"
                % (length, head, c.capacity))
            took.append(c)
            self.rx_pending.append(self._read_chain(c, length))
            self._assemble()
        if self.has("RING_EVENT_IDX"):
            # ask for a call at the next entry; the fence orders this store before the
            # caller's next look at used->idx (else a call could be missed: virtio_mb)
            r.set_used_event(r.last_used)
            self._fence()
        if took:
            self._repost(took)
        return bool(took)

    def _assemble(self):
        first = self.rx_pending[0]
        assert len(first) >= VNET_HDR_LEN, \
            "RX buffer of %d bytes, shorter than the header" % len(first)
        hdr = VnetHdr.unpack(first[:VNET_HDR_LEN])
        need = hdr.num_buffers if self.mrg else 1
        assert need >= 1, "RX frame with num_buffers %d (MRG_RXBUF)" % hdr.num_buffers
        if len(self.rx_pending) < need:
            return
        parts, self.rx_pending = self.rx_pending[:need], self.rx_pending[need:]
        frame = parts[0][VNET_HDR_LEN:] + b"".join(parts[1:])
        self.vnet_rx.append((hdr, frame))
        self.rx_buffers.append(need)
        self._raw_in.append((time.time(), frame))

    def _pump(self, timeout):
        if self.closed or not self.rings.get(RX_QUEUE) or RX_QUEUE not in self.call_fds:
            time.sleep(max(0.0, min(timeout, 0.05)))
            return
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            self._consume_call(RX_QUEUE)
            got = self._pump_rx_once()
            self._reclaim_tx()
            left = deadline - time.monotonic()
            if got or left <= 0:
                return
            fds = [self.call_fds[RX_QUEUE]]
            rd, _, _ = select.select(fds, [], [], min(left, 0.2))
            if not rd and self.rings[RX_QUEUE].pending_used():
                self.missed_calls += 1

    # -- helper process --------------------------------------------------------------------
    def helper_pid(self):
        return self.proc.pid

    def helper_log(self):
        return self.proc.log()

    def helper_status(self):
        if self.returncode is not None:
            return self.returncode
        return self.proc.proc.poll()

    def stats(self, timeout=None):
        timeout = timeout_or(timeout, self.POSITIVE_TIMEOUT)
        self.wait_sent(timeout)
        return signal_stats(self.proc.pid, self.helper_log, timeout, lambda: self.pump(0.02))

    def helper_fds(self):
        """How many fds the helper has open."""
        return len(os.listdir("/proc/%d/fd" % self.proc.pid))

    def disconnect(self):
        """Close the vhost-user connection and the eventfds (the helper keeps running)."""
        if not self.closed:
            self.closed = True
            for fds in (self.kick_fds, self.call_fds, self.err_fds):
                for fd in fds.values():
                    os.close(fd)
                fds.clear()
            self.sock.close()
            self.mem.close()

    def close(self, timeout=5.0):
        """Disconnect; a helper we started is stopped (SIGTERM) and its status kept."""
        self.disconnect()
        if self.own_proc and self.returncode is None:
            rc = self.proc.stop(timeout)
            self.returncode = rc
            self._log_text = self.proc.log()
            self.proc.close()
            self.proc.log = lambda: self._log_text
            if self._tmpdir:
                import shutil
                shutil.rmtree(self._tmpdir, ignore_errors=True)
        return self.returncode

    def describe(self):
        return self.name

