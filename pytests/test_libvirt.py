# SPDX-License-Identifier: BSD-2-Clause
"""test_libvirt.py - libvirt's external slirp helper contract (src/qemu/qemu_slirp.c).

libvirt runs `HELPER --print-capabilities` and reads {"features": [...]}; then, daemonized
by libvirt itself (so the helper must not fork), `HELPER --fd=N --net=ADDR/PREFIX
[--net6=ADDR/PREFIX] [--exit-with-parent]` on one end of an AF_UNIX SOCK_DGRAM socketpair
whose other end QEMU gets as `-netdev socket,fd=`: one Ethernet frame per datagram.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import harness
from harness import (BOOTP, SCALE, ICMPv6ND_RA, ICMPv6NDOptPrefixInfo, Ether, ARP, DgramPeer,
                     arp_check, dhcp_lease, dhcp_options, ping_check, router_solicit)

# Every feature name libvirt knows (qemuSlirpFeature); anything else is a warning there.
LIBVIRT_FEATURES = {"ipv4", "ipv6", "tftp", "dbus-address", "dbus-p2p", "migrate", "restrict",
                    "exit-with-parent"}


def test_print_capabilities(helper_path):
    r = subprocess.run([helper_path, "--print-capabilities"], capture_output=True, timeout=10)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    features = doc["features"]
    assert isinstance(features, list) and all(isinstance(f, str) for f in features)
    assert set(features) <= LIBVIRT_FEATURES, features
    # what works; no D-Bus, so nothing that needs it
    assert set(features) == {"ipv4", "ipv6", "tftp", "restrict", "exit-with-parent"}
    assert len(features) == len(set(features))


def libvirt_helper(helpers, extra):
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        h = helpers(["--fd=%d" % theirs.fileno()] + list(extra), pass_fds=[theirs.fileno()])
    finally:
        theirs.close()
    return h, DgramPeer(ours, None, h)


def test_libvirt_launch_no_fork(helpers):
    h, p = libvirt_helper(helpers, ["--net=10.0.2.0/24", "--exit-with-parent"])
    try:
        # the process we spawned is the one serving, with no children of its own
        assert h.alive()
        assert harness.child_pids(parent=h.pid) == []
        offer, ack = dhcp_lease(p)
        assert ack[BOOTP].yiaddr == "10.0.2.15"
        opts = dhcp_options(ack)
        assert socket.inet_ntoa(opts[3][:4]) == "10.0.2.2"    # router
        assert socket.inet_ntoa(opts[6][:4]) == "10.0.2.3"    # dns
        arp_check(p)
        ping_check(p)
        assert h.alive() and harness.child_pids(parent=h.pid) == []
        # and it is that process which handled the frames
        assert h.stats()["from_guest_frames"] >= 4
    finally:
        p.close()


def test_libvirt_net_and_net6(helpers):
    h, p = libvirt_helper(helpers, ["--net=10.0.3.0/24", "--net6=fd00:1::/64", "--exit-with-parent"])
    try:
        p.gw_ip = "10.0.3.2"
        p.gw_mac = harness.special_mac("10.0.3.2")
        offer, ack = dhcp_lease(p)
        assert ack[BOOTP].yiaddr == "10.0.3.15"
        assert socket.inet_ntoa(dhcp_options(ack)[3][:4]) == "10.0.3.2"
        p.send(harness.arp_who_has("10.0.3.2", p))
        p.expect(Ether() / ARP(op=2, psrc="10.0.3.2"))
        # --net6 is ipv6-net: the Router Advertisement carries the prefix
        p.send(router_solicit(p))
        ra = p.expect(ICMPv6ND_RA)
        prefixes = []
        layer = ra.getlayer(ICMPv6NDOptPrefixInfo)
        while layer is not None:
            prefixes.append((layer.prefix, layer.prefixlen))
            layer = layer.payload.getlayer(ICMPv6NDOptPrefixInfo)
        assert ("fd00:1::", 64) in prefixes, prefixes
    finally:
        p.close()


def test_libvirt_bad_net_fails_clearly(helpers):
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        h = helpers(["--fd=%d" % theirs.fileno(), "--net=10.0.2.0/33"], pass_fds=[theirs.fileno()],
                    wait_ready=False)
    finally:
        theirs.close()
        ours.close()
    assert h.wait(5 * SCALE) == 2
    assert "net" in h.log()


# The intermediate parent: spawns the helper on fd N, reports its pid, then waits to be killed.
INTERMEDIATE = r"""
import subprocess, sys
fd = int(sys.argv[1])
p = subprocess.Popen(sys.argv[2:], pass_fds=[fd], stdin=subprocess.DEVNULL)
print(p.pid, flush=True)
p.wait()
"""


def test_exit_with_parent(tmp_path, helper_path):
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    log = open(tmp_path / "helper.log", "w")
    fd = theirs.fileno()
    parent = subprocess.Popen(
        [sys.executable, "-c", INTERMEDIATE, str(fd), helper_path, "--fd=%d" % fd,
         "--net=10.0.2.0/24", "--exit-with-parent", "-v"],
        pass_fds=[fd], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log)
    theirs.close()
    helper_pid = None
    try:
        helper_pid = int(parent.stdout.readline())
        ready = parent.stdout.readline().decode()   # the helper shares the parent's stdout
        assert ready.startswith("slirpnet: ready on fd"), ready
        p = DgramPeer(ours)
        arp_check(p)
        assert harness.proc_state(helper_pid) not in (None, "Z")
        parent.kill()                       # SIGKILL: the parent cannot pass anything on
        parent.wait()
        deadline = time.monotonic() + 5 * SCALE
        while harness.proc_state(helper_pid) not in (None, "Z") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert harness.proc_state(helper_pid) in (None, "Z"), "helper outlived its parent"
        log.flush()
        text = (tmp_path / "helper.log").read_text()
        # it took the orderly SIGTERM path (stats logged), not a default-action death
        assert "SIGTERM" in text and "stats:" in text, text
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        if helper_pid and harness.proc_state(helper_pid) not in (None, "Z"):
            os.kill(helper_pid, signal.SIGKILL)
        ours.close()
        log.close()
