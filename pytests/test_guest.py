# SPDX-License-Identifier: BSD-2-Clause
"""test_guest.py - a real Linux guest under an unmodified QEMU 7.2 on each slirpnet transport.

Boots the tiny guest of scripts/guest (kernel + busybox initramfs, TCG) with virtio-net-pci
and e1000, with the helper in place of `-netdev user`:

  socket  slirpnet --socket S   -netdev stream,id=n0,server=off,addr.type=unix,addr.path=S
  dgram   slirpnet --dgram H    -netdev dgram,id=n0,local.type=unix,local.path=Q,remote.type=unix,remote.path=H
  fd      socketpair:
            SOCK_STREAM         -netdev stream,id=n0,addr.type=fd,addr.str=N   + slirpnet --fd M
            SOCK_DGRAM          -netdev socket,id=n0,fd=N (libvirt's slirp)    + slirpnet --fd M
            SOCK_DGRAM          -netdev dgram,id=n0,local.type=fd,local.str=N  + slirpnet --fd M

Every transport runs with both NICs.

In the guest: DHCP lease (ip/router/dns), ping 10.0.2.2, a 4 MiB HTTP download from a
127.0.0.1 server with its checksum, and an inbound connection through the helper's
hostfwd (127.0.0.1 only).  The helper is listening before QEMU starts; every boot is
bounded; only the processes started here are stopped.  About 15 s per boot under TCG.
"""

import os
import shutil
import socket
import sys

import pytest

import harness
from harness import HelperProc, helper_dir

pytestmark = pytest.mark.guest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "scripts", "guest"))
import guestlib  # noqa: E402

BOOT_TIMEOUT = 120          # seconds per boot, QEMU killed after it
GUEST_PORT = 8080


@pytest.fixture(scope="session")
def guest_image():
    if not shutil.which(guestlib.QEMU):
        pytest.fail("%s not found: the guest tests need qemu-system-x86 (see scripts/guest/README.md)"
                    % guestlib.QEMU, pytrace=False)
    return guestlib.ensure_image()


@pytest.fixture
def workdir():
    d = helper_dir(prefix="sn-g-")  # the sandboxed helper removes its socket there at exit
    yield d
    shutil.rmtree(d, ignore_errors=True)


# QEMU binds its --dgram end with its umask's mode; the helper, another user once its
# sandbox has dropped root, must be able to connect to it (README: Sandbox).
DGRAM_QEMU_PREFIX = ["sh", "-c", 'umask 0 && exec "$@"', "qemu"]


def start_link(transport, workdir, hostfwd):
    """Start the helper for a transport; returns (helper, netdev spec, fds for QEMU, our fds)."""
    opts = ["--hostfwd=" + hostfwd]
    if transport == "socket":
        path = os.path.join(workdir, "slirpnet.sock")
        h = HelperProc(["--socket", path] + opts)
        return h, "stream,id=n0,server=off,addr.type=unix,addr.path=" + path, (), []
    if transport == "dgram":
        path = os.path.join(workdir, "slirpnet.sock")
        qpath = os.path.join(workdir, "qemu.sock")
        h = HelperProc(["--dgram", path] + opts)
        return h, ("dgram,id=n0,local.type=unix,local.path=%s,remote.type=unix,remote.path=%s"
                   % (qpath, path)), (), []
    # fd-stream: -netdev stream on a SOCK_STREAM pair; fd-dgram: -netdev socket,fd= (what
    # libvirt uses); fd-dgram-netdev: -netdev dgram with an fd as its local end.
    kind = socket.SOCK_STREAM if transport == "fd-stream" else socket.SOCK_DGRAM
    qemu_end, helper_end = socket.socketpair(socket.AF_UNIX, kind)
    try:
        h = HelperProc(["--fd", str(helper_end.fileno())] + opts, pass_fds=[helper_end.fileno()])
    finally:
        helper_end.close()
    n = qemu_end.fileno()
    if transport == "fd-stream":
        netdev = "stream,id=n0,addr.type=fd,addr.str=%d" % n
    elif transport == "fd-dgram":
        netdev = "socket,id=n0,fd=%d" % n
    else:
        assert transport == "fd-dgram-netdev", transport
        netdev = "dgram,id=n0,local.type=fd,local.str=%d" % n
    return h, netdev, (n,), [qemu_end]


CASES = [
    ("socket", "virtio-net-pci"),
    ("socket", "e1000"),
    ("dgram", "virtio-net-pci"),
    ("dgram", "e1000"),
    ("fd-stream", "virtio-net-pci"),
    ("fd-stream", "e1000"),
    ("fd-dgram", "virtio-net-pci"),
    ("fd-dgram", "e1000"),
    ("fd-dgram-netdev", "virtio-net-pci"),
    ("fd-dgram-netdev", "e1000"),
]


@pytest.mark.parametrize("transport,nic", CASES, ids=["%s-%s" % c for c in CASES])
def test_guest(guest_image, workdir, transport, nic):
    host_port = harness.free_port()
    hostfwd = "tcp:127.0.0.1:%d-:%d" % (host_port, GUEST_PORT)
    h, netdev, qemu_fds, ours = start_link(transport, workdir, hostfwd)
    r = None
    try:
        r = guestlib.run_guest(netdev=netdev, nic=nic, host_port=host_port, guest_port=GUEST_PORT,
                               pass_fds=qemu_fds, timeout=BOOT_TIMEOUT, listen_secs=60,
                               cmd_prefix=DGRAM_QEMU_PREFIX if transport == "dgram" else ())
        for s in ours:
            s.close()           # QEMU is gone; a stream helper sees EOF now
        print(guestlib.summary(r))
        if transport == "fd-stream":
            rc = h.wait(5)      # its only peer left: the helper exits by itself
        else:
            rc = h.stop()       # --socket/--dgram wait for the next QEMU; fd-dgram cannot tell
        log = h.log()
        print(log)
        assert r["ok"], guestlib.format_failure(r) + "\n--- helper log:\n" + log
        lease = r["results"]["lease"]
        assert (lease["ip"], lease["router"], lease["dns"]) == ("10.0.2.15", "10.0.2.2", "10.0.2.3")
        assert r["results"]["download"]["sha256"] == r["http"]["sha256"]
        assert r["host_listen"]["ok"]
        assert rc == 0, "helper exit status %s; log:\n%s" % (rc, log)
        st = harness.parse_stats(log)
        assert st["from_guest_frames"] > 0 and st["to_guest_frames"] > 0, st
    finally:
        for s in ours:
            s.close()
        h.close()
