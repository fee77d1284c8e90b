# SPDX-License-Identifier: BSD-2-Clause
"""plugin.py - the plugin ABI of netbe.h (libslirpnet.so through ctypes) and PluginPeer, a peer on it."""

import ctypes
import errno as errno_mod
import os
import select
import tempfile
import time

from .peers import Peer
from .procs import (child_pids, default_helper, describe_status, helper_env,
                    peek_child_status, read_file)
from .vnet import VnetHdr, tso_frame

__all__ = ["iovec", "RXCB", "load_glib", "load_lib", "make_iov", "PluginError", "PluginPeer",
           "split_helper"]


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
        # free() as the process resolves it (None: the global scope), not libc's own: in the
        # sanitizer build the error strings come from ASan's malloc, preloaded before libc.
        libc = ctypes.CDLL(None, use_errno=True)
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


def split_helper(spec):
    """(spec without its helper=PATH items, the last PATH or None): helper= is the
    harness's key, not an option of the plugin."""
    items, helper = [], None
    for item in spec.split(","):
        if item.startswith("helper="):
            helper = item[len("helper="):]
        else:
            items.append(item)
    return ",".join(items), helper


class PluginPeer(Peer):
    """A backend created through libslirpnet.so's C ABI, pumped on a private GMainContext.

    spec: "slirp[,k=v...]".  auto_drain: the rx callback drains frames into the queue
    (turn off to call peek_recvlen/recv yourself).  rx: enable rx right away.
    expect_ok: raise PluginError when init fails; otherwise check .ok / .error.
    helper: the helper executable libslirpnet spawns (default $SLIRPNET_HELPER); a
    ``helper=PATH`` item in spec does the same (and wins), taken out before the plugin
    sees the spec.  libslirpnet reads $SLIRPNET_HELPER, so it is set for the duration of
    slirpnet_netbe_init only (helper_env), never for the rest of the process.
    """

    def __init__(self, spec="slirp", lib=None, helper=None, auto_drain=True, rx=True,
                 expect_ok=True, **kw):
        super().__init__(**kw)
        spec, spec_helper = split_helper(spec)
        self.spec = spec
        self.helper = spec_helper or helper or default_helper()
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
            with helper_env(self.helper):
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

    def wait_peek(self, timeout=3.0):
        """Poll peek_recvlen until a frame is there (or timeout): its length, or 0."""
        deadline = time.monotonic() + timeout
        while True:
            n, _err = self.be_peek()
            if n or time.monotonic() > deadline:
                return n
            time.sleep(0.01)

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
        return read_file(self.log_path)

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

    def describe(self):
        return self.name
