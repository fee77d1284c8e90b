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

  vhost-user  slirpnet --vhost-user S   -chardev socket,id=c0,path=S -netdev vhost-user,id=n0,chardev=c0
              (guest memory in a shared memfd), virtio-net-pci with its offloads on and off,
              guest MTU 1500 and 65520; plus the lifecycle: a helper killed and restarted
              under a running guest (QEMU's reconnect=1), and QEMU killed or powered off
              with the helper listening on for the next one.

In the guest: DHCP lease (ip/router/dns), ping 10.0.2.2, a 4 MiB HTTP download from a
127.0.0.1 server with its checksum, and an inbound connection through the helper's
hostfwd (127.0.0.1 only).  The helper is listening before QEMU starts; every boot is
bounded; only the processes started here are stopped.  About 15 s per boot under TCG.
"""

import os
import shutil
import signal
import socket
import sys
import time

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


# ---------------------------------------------------------------------------- vhost-user
# (offloads, mtu): offloads on = virtio-net-pci's defaults, everything the helper offers is
# negotiated; off = NIC_OFFLOADS_OFF. MTU: the helper's --mtu= and the guest's interface.
VHOST_CASES = [(True, 1500), (True, 65520), (False, 1500), (False, 65520)]
# virtio-net feature bits (the guest's nic line prints them, bit 0 first)
F_CSUM, F_GUEST_CSUM, F_GUEST_TSO4, F_GUEST_TSO6, F_HOST_TSO4, F_HOST_TSO6, F_MRG_RXBUF = \
    0, 1, 7, 8, 11, 12, 15
F_VERSION_1 = 32
OFFLOAD_BITS = (F_CSUM, F_GUEST_CSUM, F_GUEST_TSO4, F_GUEST_TSO6, F_HOST_TSO4, F_HOST_TSO6)


def vhost_helper(path, host_port, mtu=None, extra=()):
    opts = ["--vhost-user", path, "--hostfwd=tcp:127.0.0.1:%d-:%d" % (host_port, GUEST_PORT)]
    if mtu:
        opts.append("--mtu=%d" % mtu)
    return HelperProc(opts + list(extra))


def features(r):
    """The guest's negotiated virtio feature bits as a set of bit numbers."""
    bits = r["results"].get("nic", {}).get("features", "none")
    assert bits != "none", "the guest printed no virtio feature bits: %s" % r["results"].get("nic")
    return {i for i, b in enumerate(bits) if b == "1"}


def assert_vhost_stats(log, what):
    st = harness.parse_stats(log)
    assert st, "%s: no stats line in the helper log:\n%s" % (what, log)
    assert st["from_guest_frames"] > 0 and st["to_guest_frames"] > 0, st
    bad = {k: st[k] for k in ("vhost_queue_stops", "drop_vhost_chain") if st.get(k)}
    assert not bad, "%s: a well-behaved guest tripped the ring checks: %s\n%s" % (what, bad, log)
    return st


def unix_listening(path):
    """True when some process listens on the UNIX socket path (/proc/net/unix, flag
    __SO_ACCEPTCON)."""
    with open("/proc/net/unix") as f:
        next(f)
        for line in f:
            cols = line.split()
            if len(cols) >= 8 and cols[7] == path and cols[3] == "00010000":
                return True
    return False


def wait_listening(path, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if unix_listening(path):
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("offloads,mtu", VHOST_CASES, ids=["vhost-user-%s-%d" % (
    "offloads" if o else "nooffloads", m) for o, m in VHOST_CASES])
def test_guest_vhost_user(guest_image, workdir, offloads, mtu):
    host_port = harness.free_port()
    path = os.path.join(workdir, "vhost.sock")
    # One case also checks --one-off: the helper exits 0 by itself once QEMU has gone.
    one_off = not offloads and mtu == 1500
    h = vhost_helper(path, host_port, mtu, ["--one-off"] if one_off else [])
    nic = "virtio-net-pci" if offloads else "virtio-net-pci," + guestlib.NIC_OFFLOADS_OFF
    try:
        r = guestlib.run_guest(vhost_user=path, netdev=None, nic=nic, mtu=mtu, host_port=host_port,
                               guest_port=GUEST_PORT, file_mib=16 if mtu > 1500 else 4,
                               timeout=BOOT_TIMEOUT, listen_secs=60)
        print(guestlib.summary(r))
        rc = h.wait(5) if one_off else h.stop()
        log = h.log()
        print(log)
        assert r["ok"], guestlib.format_failure(r) + "\n--- helper log:\n" + log
        lease = r["results"]["lease"]
        assert (lease["ip"], lease["router"], lease["dns"]) == ("10.0.2.15", "10.0.2.2", "10.0.2.3")
        assert r["results"]["nic"]["mtu"] == str(mtu), r["results"]["nic"]
        assert r["results"]["download"]["sha256"] == r["http"]["sha256"]
        assert r["host_listen"]["ok"]
        f = features(r)
        assert {F_VERSION_1, F_MRG_RXBUF} <= f, "VERSION_1/MRG_RXBUF not negotiated: %s" % sorted(f)
        if offloads:
            missing = set(OFFLOAD_BITS) - f
            assert not missing, "offloads not negotiated: bits %s missing of %s" % (sorted(missing), sorted(f))
        else:
            extra = set(OFFLOAD_BITS) & f
            assert not extra, "offloads negotiated although QEMU turned them off: bits %s" % sorted(extra)
        assert rc == 0, "helper exit status %s (%s); log:\n%s" % (
            rc, "--one-off, after QEMU left" if one_off else "SIGTERM", log)
        assert_vhost_stats(log, "vhost-user")
    finally:
        h.close()


def test_guest_vhost_user_reconnect(guest_image, workdir):
    """The helper is SIGKILLed under a running guest and a new one started on the same path:
    QEMU (-chardev socket,reconnect=1) reconnects, the guest sees its link go down and up,
    and the download and the inbound connection after it go through the new helper."""
    host_port = harness.free_port()
    path = os.path.join(workdir, "vhost.sock")
    helpers = [vhost_helper(path, host_port)]
    restart = {}

    def on_line(kind, name, fields):
        if kind == "EVENT" and name == "relink_wait" and not restart:
            old = helpers[0]
            restart["old_log"] = old.log()
            old.kill()                       # SIGKILL: no goodbye on the socket
            restart["old_rc"] = old.returncode
            restart["t"] = time.monotonic()
            # The dead helper's socket file is still there: the new one must take it over.
            helpers.append(vhost_helper(path, host_port))
            restart["ready"] = time.monotonic() - restart["t"]

    try:
        r = guestlib.run_guest(vhost_user=path, netdev=None, reconnect=1, host_port=host_port,
                               guest_port=GUEST_PORT, timeout=BOOT_TIMEOUT, listen_secs=60,
                               checks=("lease", "ping", "relink", "download", "listen"),
                               relink_secs=30, on_line=on_line)
        print(guestlib.summary(r), restart.get("ready"))
        logs = [x.log() for x in helpers]
        rc = helpers[-1].stop()
        logs[-1] = helpers[-1].log()
        text = "\n".join("--- helper %d log:\n%s" % (i, l) for i, l in enumerate(logs))
        print(text)
        assert restart, "the guest never printed EVENT relink_wait:\n" + guestlib.format_failure(r)
        assert restart["old_rc"] == -signal.SIGKILL, restart
        assert r["ok"], guestlib.format_failure(r) + "\n" + text
        rl = r["results"]["relink"]
        assert int(rl["down_count"]) >= 1, rl
        reqs = r["http"]["requests"]
        assert reqs and all(q["t"] > restart["t"] for q in reqs), \
            "the download should come after the restart (%.2f): %s" % (restart["t"], reqs)
        assert r["results"]["download"]["sha256"] == r["http"]["sha256"]
        assert r["host_listen"]["ok"]
        assert rc == 0, "second helper's exit status %s\n%s" % (rc, text)
        st = assert_vhost_stats(logs[-1], "helper after the restart")
        # The download went through the new helper (its bytes to the guest include the file's).
        assert st["to_guest_bytes"] > r["http"]["bytes"], (r["http"]["bytes"], st)
    finally:
        for x in helpers:
            x.close()


def test_guest_vhost_user_next_qemu(guest_image, workdir):
    """One helper, three QEMUs in turn: the first is SIGKILLed after its ping, the second
    runs every check and powers off, and the helper listens again after each (no --one-off)."""
    host_port = harness.free_port()
    path = os.path.join(workdir, "vhost.sock")
    pidfile = os.path.join(workdir, "qemu.pid")
    h = vhost_helper(path, host_port)
    killed = {}

    def kill_qemu(kind, name, fields):
        if kind == "RESULT" and name == "ping" and not killed:
            with open(pidfile) as f:
                pid = int(f.read())
            os.kill(pid, signal.SIGKILL)     # the QEMU run_guest started (-pidfile)
            killed["pid"] = pid

    try:
        r1 = guestlib.run_guest(vhost_user=path, netdev=None, checks=("lease", "ping"),
                                timeout=BOOT_TIMEOUT, extra_append="slirpnet.hold=300",
                                extra_qemu_args=["-pidfile", pidfile], on_line=kill_qemu)
        print(guestlib.summary(r1))
        assert killed, "the first guest never pinged:\n" + guestlib.format_failure(r1)
        assert r1["qemu_rc"] == -signal.SIGKILL, r1["qemu_rc"]
        assert r1["results"]["ping"]["status"] == "ok", guestlib.summary(r1)
        assert h.alive(), "the helper exited when QEMU was killed:\n" + h.log()
        assert wait_listening(path), "the helper does not listen again after QEMU was killed:\n" + h.log()

        r2 = guestlib.run_guest(vhost_user=path, netdev=None, host_port=host_port,
                                guest_port=GUEST_PORT, timeout=BOOT_TIMEOUT, listen_secs=60)
        print(guestlib.summary(r2))
        assert r2["ok"], guestlib.format_failure(r2) + "\n--- helper log:\n" + h.log()
        assert h.alive(), "the helper exited when the guest powered off:\n" + h.log()
        assert wait_listening(path), "the helper does not listen again after the power-off:\n" + h.log()
        rc = h.stop()
        log = h.log()
        print(log)
        assert rc == 0, "helper exit status %s; log:\n%s" % (rc, log)
        assert_vhost_stats(log, "two QEMUs")
    finally:
        h.close()
