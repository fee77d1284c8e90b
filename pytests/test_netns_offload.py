# SPDX-License-Identifier: BSD-2-Clause
"""test_netns_offload.py - a netns as the guest of slirpnet-tapbridge, with and without virtio-net offloads.

End to end through the plugin ABI: a tap in a throw-away network namespace (the guest,
10.0.2.15/24 via 10.0.2.2), slirpnet-tapbridge in plugin mode moving its frames to
libslirpnet, and 16 MiB each way, sha256-checked:

  guest -> host  a client in the guest connects to 10.0.2.2:P, a server on 127.0.0.1:P
  host -> guest  a client connects to 127.0.0.1:F, hostfwd to the guest's server on 5001

With offloads (the bridge's default) the tap carries virtio-net headers and the namespace's
kernel sends TSO superframes with partial checksums: the bridge's exit counters must show
GSO frames both ways at MTU 1500. At 65520 the MSS (65480) is about the 64 KiB GSO limit,
so hardly a frame needs segmenting: only partial checksums are required there. With
--no-offload there must be no vnet header at all.

Network safety: the bridge, the helper and the host side run in a second throw-away
namespace that has nothing but loopback, so whatever libslirp connects to, only that
loopback is reachable (the "host" of this test). restrict=on cannot be used for that: it
refuses every connection the guest opens, the guest -> host transfer included.

Needs root, `ip` and /dev/net/tun (skipped otherwise) and the bridge, found as
$SLIRPNET_TAPBRIDGE, else BUILD/scripts/bench/slirpnet-tapbridge next to $SLIRPNET_HELPER.
"""

import os
import random
import re
import select
import shutil
import subprocess
import sys
import tempfile

import pytest

import harness

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts", "bench"))
from benchlib import netns, proc  # noqa: E402  (the bench rig's namespaces and processes)

PY = "/usr/bin/python3"
TAP = "tap0"
GUEST_ADDR = "10.0.2.15"
GUEST_PORT = 5001
NBYTES = 16 << 20
START_TIMEOUT = 15
TRANSFER_TIMEOUT = 45  # per transfer; 16 MiB takes about a second even on a loaded machine
VNET_HDR_LEN = 12

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]

# Both ends of a transfer, run inside a namespace with `ip netns exec`.
#   recv ADDR PORT        prints "listening PORT", accepts one connection, reads to EOF,
#                         prints "got N SHA256", closes
#   send ADDR PORT N      sends N random bytes, half-closes, waits for the receiver's close
#                         (so every byte was read), prints "sent N SHA256"
PEER = r"""
import hashlib, os, socket, sys
T = %d
mode, addr, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
if mode == "recv":
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    s.listen(1)
    print("listening", s.getsockname()[1], flush=True)
    s.settimeout(T)
    c, _ = s.accept()
    c.settimeout(T)
    h, n = hashlib.sha256(), 0
    while True:
        b = c.recv(1 << 20)
        if not b:
            break
        h.update(b)
        n += len(b)
    print("got", n, h.hexdigest(), flush=True)
    c.close()
else:
    data = os.urandom(int(sys.argv[4]))
    c = socket.create_connection((addr, port), timeout=T)
    c.sendall(data)
    c.shutdown(socket.SHUT_WR)
    c.recv(1)
    print("sent", len(data), hashlib.sha256(data).hexdigest(), flush=True)
""" % TRANSFER_TIMEOUT


def _tapbridge():
    path = os.environ.get("SLIRPNET_TAPBRIDGE")
    if not path:
        build = os.environ.get("SLIRPNET_BUILD") or os.path.dirname(
            os.path.dirname(os.environ["SLIRPNET_HELPER"]))  # BUILD/plugin/slirpnet
        path = os.path.join(build, "scripts", "bench", "slirpnet-tapbridge")
    if not os.path.exists(path):
        pytest.fail("%s does not exist: build it (ninja -C BUILD) or set SLIRPNET_TAPBRIDGE" % path,
                    pytrace=False)
    return path


@pytest.fixture(scope="module")
def tapbridge():
    if os.geteuid() != 0:
        pytest.skip("needs root: network namespaces and a tap")
    if not shutil.which("ip"):
        pytest.skip("needs `ip` (iproute2) for the network namespaces")
    if not os.path.exists("/dev/net/tun"):
        pytest.skip("needs /dev/net/tun")
    return _tapbridge()


class Peer:
    """One end of a transfer (PEER) in a namespace; killed by pid if it outlives the test."""

    def __init__(self, ns, *args):
        self.argv = ns.exec([PY, "-c", PEER] + [str(a) for a in args])
        self.p = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, start_new_session=True)

    def listening(self):
        """The port from the "listening" line (bounded wait)."""
        r, _, _ = select.select([self.p.stdout], [], [], START_TIMEOUT)
        line = self.p.stdout.readline() if r else ""
        m = re.match(r"listening (\d+)$", line.strip())
        if not m:
            self.stop()
            pytest.fail("receiver did not start listening: %r %s" % (line, self.p.stderr.read()))
        return int(m.group(1))

    def result(self, word):
        """(bytes, sha256) of the "got"/"sent" line, once the peer has exited (bounded)."""
        try:
            out, err = self.p.communicate(timeout=TRANSFER_TIMEOUT + 10)
        except subprocess.TimeoutExpired:
            self.stop()
            pytest.fail("%s side did not finish within %d s" % (word, TRANSFER_TIMEOUT + 10))
        m = re.search(r"^%s (\d+) ([0-9a-f]{64})$" % word, out, re.M)
        if self.p.returncode != 0 or not m:
            pytest.fail("%s side failed (exit %s): %s%s"
                        % (word, self.p.returncode, out, err[-2000:]))
        return int(m.group(1)), m.group(2)

    def stop(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()
        for f in (self.p.stdout, self.p.stderr):
            f.close()


def transfer(receiver_ns, bind, sender_ns, connect_addr, bind_port=0, connect_port=None):
    """NBYTES from a client in sender_ns to a new server in receiver_ns, sha256-checked.

    The server binds (bind, bind_port), 0 for any port; the client connects to
    (connect_addr, connect_port), by default the port the server got."""
    peers = []
    try:
        rx = Peer(receiver_ns, "recv", bind, bind_port)
        peers.append(rx)
        port = rx.listening()
        tx = Peer(sender_ns, "send", connect_addr, connect_port or port, NBYTES)
        peers.append(tx)
        sent = tx.result("sent")
        got = rx.result("got")
    finally:
        for p in peers:
            p.stop()
    assert sent[0] == NBYTES, sent
    assert got == sent, "received %d bytes sha256 %s, sent %d bytes sha256 %s" % (got + sent)


def read_log(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def check_counters(stats, said, offload, mtu):
    """The bridge's exit counters: offloads used with them, none without."""
    counts = ("to_backend_gso=%(to_backend_gso)d to_guest_gso=%(to_guest_gso)d "
              "to_backend_csum=%(to_backend_csum)d to_guest_csum=%(to_guest_csum)d" % stats)
    assert stats["tap_write_errors"] == 0 and stats["send_errors"] == 0 and \
        stats["rx_too_big"] == 0, stats
    if not offload:
        assert stats["vnet_hdr_len"] == 0 and stats["features"] == 0, stats
        assert stats["to_backend_gso"] == 0 and stats["to_guest_gso"] == 0, counts
        return
    if stats["vnet_hdr_len"] != VNET_HDR_LEN:
        pytest.fail("offloads were not negotiated, the bridge fell back to plain frames (both "
                    "transfers passed that way); tapbridge said: %s" % said, pytrace=False)
    # Partial checksums on every TCP segment the guest's kernel sends, whatever the MTU.
    assert stats["to_backend_csum"] > 0, "no NEEDS_CSUM frame from the guest: " + counts
    if mtu == 1500:
        assert stats["to_backend_gso"] > 0, "no TSO superframe from the guest: " + counts
        assert stats["to_guest_gso"] > 0, "no GSO frame from the backend: " + counts


@pytest.mark.parametrize("offload,mtu", [(False, 1500), (True, 1500), (True, 65520)],
                         ids=["off", "on", "on-mtu65520"])
def test_tcp_both_ways(tapbridge, offload, mtu):
    tag = "%s%d-ofl-%s-%d" % (netns.PREFIX, os.getpid(), "on" if offload else "off", mtu)
    logdir = tempfile.mkdtemp(prefix="sn-ofl-")  # kept when the test fails
    procs = proc.Processes(logdir)
    host = guest = None
    log = os.path.join(logdir, "tapbridge.log")
    passed = False
    try:
        host = netns.Netns(tag + "-host").create()  # loopback only: the "host"
        guest = netns.Netns(tag + "-guest").create()
        guest.ip("tuntap", "add", "dev", TAP, "mode", "tap")
        netns.configure_link(guest, TAP, GUEST_ADDR, mtu)  # default route via 10.0.2.2

        # The host namespace is new and empty: any port is free there.
        fwd_port = random.randint(20000, 29999)
        spec = "slirp,hostfwd=tcp:127.0.0.1:%d-%s:%d" % (fwd_port, GUEST_ADDR, GUEST_PORT)
        if mtu != 1500:
            spec += ",mtu=%d" % mtu
        argv = [tapbridge, "--netns", guest.path, "--tap", TAP, "--plugin", spec]
        if not offload:
            argv.append("--no-offload")
        why = None
        try:
            # libslirpnet finds the helper through $SLIRPNET_HELPER, inherited.
            bridge = procs.start("tapbridge", host.exec(argv), ready_line="ready",
                                 timeout=START_TIMEOUT)
            proc.wait_for(lambda: proc.listening(bridge.pid, fwd_port), START_TIMEOUT,
                          "the hostfwd on 127.0.0.1:%d" % fwd_port)
        except proc.RigError as e:
            why = str(e)
        if why:
            pytest.fail(why, pytrace=False)

        # guest -> host through the gateway, then host -> guest through the hostfwd.
        transfer(host, "127.0.0.1", guest, netns.GATEWAY)
        transfer(guest, GUEST_ADDR, host, "127.0.0.1", GUEST_PORT, fwd_port)

        procs.stop(bridge)  # SIGTERM: the bridge prints its counters and exits
        assert bridge.returncode == 0, "tapbridge exited with %s" % bridge.returncode
        text = read_log(log)
        # Only the bridge's own line: the helper logs a "stats:" line of its own at exit.
        stats = harness.parse_stats("\n".join(
            l for l in text.splitlines() if l.startswith("tapbridge: stats:")))
        assert stats, "no stats line from tapbridge"
        said = "; ".join(l.split("tapbridge: ", 1)[1] for l in text.splitlines()
                         if l.startswith("tapbridge: offloads:"))
        check_counters(stats, said, offload, mtu)
        passed = True
    finally:
        procs.stop_all()
        for ns in (guest, host):
            if ns:
                ns.delete()
        # Shown by pytest when the test fails.
        print("---- tapbridge stderr (%s) ----\n%s" % (log, read_log(log)), file=sys.stderr)
        if passed:
            shutil.rmtree(logdir, ignore_errors=True)
