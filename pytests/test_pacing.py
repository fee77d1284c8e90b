# SPDX-License-Identifier: BSD-2-Clause
"""test_pacing.py - reading from libslirp is paced by the guest side's writability.

When the link to the emulator cannot take more frames (a stream peer that does not read,
or a full plugin socket), the helper stops polling libslirp's host sockets for input:
the host's data waits in the host kernel (where TCP flow control or the UDP socket
buffer deal with it) instead of being turned into frames only to be dropped.
All traffic stays on 127.0.0.1 (a hostfwd UDP port) and AF_UNIX sockets.
"""

import os
import socket
import time

from harness import (SCALE, SMALL_SNDBUF, UDP, DgramPeer, StreamPeer, arp_check, bound_dgram,
                     free_port, ping_check)

GUEST_PORT = 5555
DATAGRAMS = 3000
PAYLOAD = 1000           # 3000 x ~1 kB frames: more than the stream link's 2 MiB queue


def flood(port, n=DATAGRAMS):
    """Send n numbered datagrams to the hostfwd port on 127.0.0.1, in bursts the helper
    can keep up with (a flat-out burst would only overflow libslirp's UDP socket)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for i in range(n):
        s.sendto(i.to_bytes(4, "big") + bytes(PAYLOAD - 4), ("127.0.0.1", port))
        if i % 50 == 49:
            time.sleep(0.005)
    s.close()


def settle(h, timeout=10.0):
    """Wait until the helper's counters stop moving; return the last stats."""
    deadline = time.monotonic() + timeout * SCALE
    last = None
    while time.monotonic() < deadline:
        st = h.stats()
        if last is not None and st == last:
            return st
        last = st
        time.sleep(0.3)
    return last


def test_stream_peer_that_stops_reading_pauses_host_input(stream_helper, peers):
    port = free_port(socket.SOCK_DGRAM)
    h = stream_helper("--hostfwd=udp:127.0.0.1:%d-:%d" % (port, GUEST_PORT), SMALL_SNDBUF)
    p = peers(StreamPeer.connect(h.path, h))
    arp_check(p)                          # libslirp now knows the guest's MAC
    flood(port)                           # the peer reads nothing meanwhile
    st = settle(h)
    # The link's queue filled up past half: libslirp's host input was paused, and no
    # frame was made only to be dropped.
    assert st["pauses"] >= 1, st
    assert st["drop_to_guest_full"] == 0, st
    # Now read: every frame libslirp produced arrives, whole and in order; input resumes
    # and the rest of what the host kernel kept for us follows.
    got = []
    deadline = time.monotonic() + 30 * SCALE
    idle_since = time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - idle_since < 1.5:
        before = len(got)
        p.pump(0.2)
        for _, pk in list(p.queue):
            if UDP in pk and pk[UDP].dport == GUEST_PORT:
                got.append(int.from_bytes(bytes(pk[UDP].payload)[:4], "big"))
        p.queue.clear()
        if len(got) != before:
            idle_since = time.monotonic()
    st = h.stats()
    assert st["drop_to_guest_full"] == 0, st
    assert got == sorted(got), "datagrams reordered"
    # Every frame libslirp made reached the peer (the ARP reply was read earlier); what
    # the host kernel could not buffer while input was paused is the host's loss (its UDP
    # receive buffer), as with any slow receiver, not frames dropped on the link.
    assert len(got) + 1 == st["to_guest_frames"], (len(got), st)
    assert len(got) > 1024 * 1024 // (PAYLOAD + 60), (len(got), st)
    ping_check(p, seq=77)                 # and the link works normally afterwards


def test_plugin_socket_full_pauses_then_resumes(direct):
    """-S: a parent that does not read fills the socketpair; the helper drops the frame
    that hit the full socket, pauses host input, and resumes once the parent reads."""
    port = free_port(socket.SOCK_DGRAM)
    p = direct("restrict=on,ipv6=off,sndbuf=106496,hostfwd=udp:127.0.0.1:%d-:%d" % (port, GUEST_PORT))
    flood(port)
    st = p.stats()
    assert st["pauses"] >= 1, st
    # At most one frame is lost per pause: the one the full socket refused.
    assert st["drop_to_guest_full"] <= st["pauses"], st
    got = 0
    deadline = time.monotonic() + 20 * SCALE
    while time.monotonic() < deadline:
        pk = p.poll(lambda f: UDP in f and f[UDP].dport == GUEST_PORT, timeout=1.0)
        if pk is None:
            break
        got += 1
    assert got > 100, got
    st = p.stats()
    assert st["drop_to_guest_full"] <= st["pauses"], st


def test_dgram_restarted_peer_resumes_host_input(helpers, peers, workdir):
    """--dgram: a peer that stopped reading filled the queue and paused host input; when
    QEMU restarts (binding the same path, the one address the helper serves), the old
    queue is dropped and host input resumes, so the new QEMU gets the host's traffic."""
    port = free_port(socket.SOCK_DGRAM)
    path = os.path.join(workdir, "h.sock")
    h = helpers(["--dgram", path, SMALL_SNDBUF,
                 "--hostfwd=udp:127.0.0.1:%d-:%d" % (port, GUEST_PORT)])
    a = peers(DgramPeer(bound_dgram(workdir, "qa.sock"), dest=path, helper=h))
    arp_check(a)
    flood(port)                              # a reads nothing: the queue fills, input pauses
    assert settle(h)["pauses"] >= 1
    a.close()
    os.unlink(os.path.join(workdir, "qa.sock"))
    b = peers(DgramPeer(bound_dgram(workdir, "qa.sock"), dest=path, helper=h))
    arp_check(b)                             # the helper now answers the new QEMU
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(b"after the switch", ("127.0.0.1", port))
    s.close()
    b.expect(lambda f: UDP in f and f[UDP].dport == GUEST_PORT and
             bytes(f[UDP].payload).startswith(b"after the switch"), timeout=5)
