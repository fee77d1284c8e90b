# SPDX-License-Identifier: BSD-2-Clause
"""The netbe.h C ABI details: caps, recv sizing, discard, rx enable/disable, threads."""

import ctypes
import errno
import os
import socket
import stat
import threading
import time

import harness
from harness import (ICMP, RXCB, F_ALL_OFFLOADS, F_CSUM, F_GUEST_TSO4, F_HOST_TSO4, icmp_echo, icmp_echo_reply_from, load_glib,
                     load_lib)


def wait_pending(p, timeout=3.0):
    """Iterate until a frame is pending on the backend (auto_drain off); its length."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        p.iterate()
        n, err = p.be_peek()
        assert n >= 0, "peek failed: %s" % os.strerror(err)
        if n:
            return n
        time.sleep(0.005)
    raise AssertionError("no frame became pending within %.1f s" % timeout)


def prime(p):
    """Get slirp's ARP for the guest answered so later replies come straight back."""
    p.send(icmp_echo(p, seq=999))
    p.expect(icmp_echo_reply_from(p, seq=999))


def ask_gateway(lib, be):
    """Through the raw ABI: enable rx and send an ARP who-has for the gateway (its answer
    makes the rx callback fire)."""
    lib.slirpnet_netbe_rx_enable(be)
    frame = bytes(harness.arp_who_has(harness.GW_IP))
    assert lib.slirpnet_netbe_send(be, harness.make_iov(frame), 1) == len(frame)


def iterate_until(glib, ctx, done, timeout=3.0):
    """Iterate the GMainContext ctx (None: the global default) until done() or timeout."""
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline:
        glib.g_main_context_iteration(ctx, 0)
        time.sleep(0.005)


def test_caps(plugin):
    p = plugin("slirp,restrict=on")
    assert p.get_cap() == F_ALL_OFFLOADS
    assert p.set_cap(0, 0) == (0, 0)
    assert p.set_cap(F_CSUM, 0) == (-1, errno.EINVAL)      # features need a header
    assert p.set_cap(0, 11) == (-1, errno.EINVAL)          # 0, 10 or 12 only
    assert p.set_cap(1 << 63, 12) == (-1, errno.EINVAL)    # not offered
    assert p.set_cap(0, 10) == (0, 0)
    # virtio's dependencies: TSO needs checksum offload in the same direction
    assert p.set_cap(F_GUEST_TSO4, 12) == (-1, errno.EINVAL)
    assert p.set_cap(F_HOST_TSO4, 12) == (-1, errno.EINVAL)
    assert p.set_cap(F_ALL_OFFLOADS, 12) == (0, 0)
    assert p.get_cap() == F_ALL_OFFLOADS


def test_fd_is_seqpacket_socket(plugin):
    p = plugin("slirp,restrict=on")
    fd = p.fd()
    assert fd >= 0 and stat.S_ISSOCK(os.fstat(fd).st_mode)
    s = socket.socket(fileno=os.dup(fd))
    try:
        assert s.type == socket.SOCK_SEQPACKET
        assert s.family == socket.AF_UNIX
    finally:
        s.close()


def test_empty_queue_returns_0(plugin):
    p = plugin("slirp,restrict=on", auto_drain=False)
    p.iterate()
    assert p.be_peek() == (0, 0)
    assert p.be_recv(2000)[:2] == (0, 0)
    assert p.be_discard() == (0, 0)


def test_recv_too_small_is_emsgsize_and_consumes(plugin):
    p = plugin("slirp,restrict=on")
    prime(p)
    p.auto_drain = False
    p.send(icmp_echo(p, seq=1, payload=b"A" * 100))
    p.send(icmp_echo(p, seq=2, payload=b"B" * 10))
    n = wait_pending(p)
    ret, err, _ = p.be_recv(n - 1)
    assert (ret, err) == (-1, errno.EMSGSIZE)
    # that frame is gone; the next one is the second reply
    n2 = wait_pending(p)
    ret, err, data = p.be_recv(n2)
    assert ret == n2 == len(data)
    r = harness.Ether(data)
    assert r[ICMP].seq == 2


def test_recv_scatter_iovecs(plugin):
    p = plugin("slirp,restrict=on")
    prime(p)
    p.auto_drain = False
    p.send(icmp_echo(p, seq=3, payload=b"scatter" * 10))
    n = wait_pending(p)
    ret, err, data = p.be_recv(10, 20, n)      # spread over three buffers
    assert ret == n and err == 0
    r = harness.Ether(data)
    assert r[ICMP].seq == 3 and bytes(r[ICMP].payload) == b"scatter" * 10


def test_send_gather_iovecs(plugin):
    p = plugin("slirp,restrict=on")
    frame = bytes(icmp_echo(p, seq=4, payload=b"gather" * 5))
    ret, err = p.be_send(frame[:6], frame[6:14], frame[14:30], frame[30:])
    assert ret == len(frame), (ret, err)
    p.expect(icmp_echo_reply_from(p, seq=4, payload=b"gather" * 5))


def test_rx_discard(plugin):
    p = plugin("slirp,restrict=on")
    prime(p)
    p.auto_drain = False
    p.send(icmp_echo(p, seq=5))
    p.send(icmp_echo(p, seq=6))
    n = wait_pending(p)
    assert p.be_discard() == (n, 0)
    n2 = wait_pending(p)
    ret, _, data = p.be_recv(n2)
    assert harness.Ether(data)[ICMP].seq == 6


def test_rx_disabled_no_callback_until_enabled(plugin):
    p = plugin("slirp,restrict=on")
    prime(p)
    p.rx_disable()
    p.rx_disable()                 # idempotent
    count = p.cb_count
    p.send(icmp_echo(p, seq=7))
    p.pump(0.5)
    assert p.cb_count == count, "rx callback fired while rx was disabled"
    assert p.be_peek()[0] > 0, "the reply should be pending"
    p.rx_enable()
    p.rx_enable()                  # idempotent
    p.expect(icmp_echo_reply_from(p, seq=7))
    assert p.cb_count > count


def test_level_triggered_callback(plugin):
    """Frames left pending keep the callback firing."""
    p = plugin("slirp,restrict=on")
    prime(p)
    p.auto_drain = False
    p.send(icmp_echo(p, seq=8))
    wait_pending(p)
    c0 = p.cb_count
    for _ in range(5):
        p.iterate(1)
    assert p.cb_count >= c0 + 3
    p.auto_drain = True
    p.expect(icmp_echo_reply_from(p, seq=8))


def test_send_from_another_thread(plugin):
    p = plugin("slirp,restrict=on")
    prime(p)
    errors = []

    def sender():
        try:
            for seq in range(100, 140):
                p.send(icmp_echo(p, seq=seq))
                time.sleep(0.002)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    t = threading.Thread(target=sender)
    t.start()
    seen = set()
    deadline = time.monotonic() + 5
    while len(seen) < 40 and time.monotonic() < deadline:
        r = p.poll(lambda x: ICMP in x and x[ICMP].type == 0, 0.5)
        if r is not None:
            seen.add(r[ICMP].seq)
    t.join()
    assert not errors
    assert seen == set(range(100, 140))


def test_default_main_context(helper_path, lib_path, monkeypatch):
    """ctx NULL: the callback is dispatched from the thread-default (global) context."""
    monkeypatch.setenv("SLIRPNET_HELPER", helper_path)   # read by slirpnet_netbe_init
    lib = load_lib(lib_path)
    glib = load_glib()
    calls = []
    cb = RXCB(lambda fd, param: calls.append(fd))
    be = ctypes.c_void_p()
    err = ctypes.c_void_p()
    rc = lib.slirpnet_netbe_init(ctypes.byref(be), b"slirp,restrict=on", cb, None, None,
                                 ctypes.byref(err))
    assert rc == 0 and err.value is None
    try:
        ask_gateway(lib, be)
        iterate_until(glib, None, lambda: calls)
        assert calls and calls[0] == lib.slirpnet_netbe_fd(be)
    finally:
        lib.slirpnet_netbe_cleanup(be)
        while glib.g_main_context_iteration(None, 0):
            pass


def test_init_errmsg_null_and_cleanup_null(lib_path, helper_path, monkeypatch):
    monkeypatch.setenv("SLIRPNET_HELPER", helper_path)   # read by slirpnet_netbe_init
    lib = load_lib(lib_path)
    be = ctypes.c_void_p()
    cb = RXCB(lambda fd, param: None)
    rc = lib.slirpnet_netbe_init(ctypes.byref(be), b"slirp,mtu=70000", cb, None, None, None)
    assert rc == -1
    lib.slirpnet_netbe_cleanup(None)      # documented as safe


def test_param_passed_to_callback(lib_path, helper_path, monkeypatch):
    monkeypatch.setenv("SLIRPNET_HELPER", helper_path)   # read by slirpnet_netbe_init
    lib = load_lib(lib_path)
    glib = load_glib()
    ctx = glib.g_main_context_new()
    seen = []
    cb = RXCB(lambda fd, param: seen.append(param))
    be = ctypes.c_void_p()
    rc = lib.slirpnet_netbe_init(ctypes.byref(be), b"slirp,restrict=on", cb,
                                 ctypes.c_void_p(0xC0FFEE), ctx, None)
    assert rc == 0
    try:
        ask_gateway(lib, be)
        iterate_until(glib, ctx, lambda: seen)
        assert seen and seen[0] == 0xC0FFEE
    finally:
        lib.slirpnet_netbe_cleanup(be)
        glib.g_main_context_unref(ctx)


def test_rx_disable_inside_callback_stops_callbacks(lib_path, helper_path, monkeypatch):
    """bhyve's pattern: the rx callback finds the guest ring full, calls rx_disable and
    returns without draining.  No further callback may come until rx_enable."""
    monkeypatch.setenv("SLIRPNET_HELPER", helper_path)   # read by slirpnet_netbe_init
    lib = load_lib(lib_path)
    glib = load_glib()
    ctx = glib.g_main_context_new()
    be = ctypes.c_void_p()
    calls = []

    def on_rx(fd, param):
        calls.append(fd)
        lib.slirpnet_netbe_rx_disable(be)

    cb = RXCB(on_rx)
    rc = lib.slirpnet_netbe_init(ctypes.byref(be), b"slirp,restrict=on", cb, None, ctx, None)
    assert rc == 0
    try:
        ask_gateway(lib, be)
        iterate_until(glib, ctx, lambda: calls)
        assert len(calls) == 1
        for _ in range(50):
            glib.g_main_context_iteration(ctx, 0)
        assert len(calls) == 1, "callback fired %d more times after rx_disable" % (len(calls) - 1)
        assert lib.slirpnet_netbe_peek_recvlen(be) > 0     # the frame is still there
        lib.slirpnet_netbe_rx_enable(be)
        iterate_until(glib, ctx, lambda: len(calls) >= 2)
        assert len(calls) == 2, "no callback after rx_enable with a frame pending"
    finally:
        lib.slirpnet_netbe_cleanup(be)
        glib.g_main_context_unref(ctx)
