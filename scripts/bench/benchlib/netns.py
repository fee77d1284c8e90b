# SPDX-License-Identifier: BSD-2-Clause
"""netns.py - the rig's network namespaces: a sealed "host" with only loopback, and one per guest."""

import os
import re

from .proc import run

PREFIX = "slnb"

# The guest network every backend uses (libslirp's defaults): the gateway .2 is the host.
GATEWAY = "10.0.2.2"
PREFIXLEN = 24
# The sealed host's only non-loopback address. TEST-NET-1 (RFC 5737): never routed anywhere.
SINK_ADDR = "192.0.2.1"
SINK_GW = "192.0.2.254"

# Per-namespace sysctls (new namespaces start from kernel defaults, not the host's).
SYSCTLS = {
    # Connection-rate probes open tens of thousands of connections: reuse TIME_WAIT ports
    # and keep ephemeral ports clear of the rig's fixed ones (< 20000).
    "net.ipv4.tcp_tw_reuse": "1",
    "net.ipv4.ip_local_port_range": "20000 60999",
    "net.core.somaxconn": "4096",
    # IPv4 only: no router solicitations or neighbour discovery in the measurements.
    "net.ipv6.conf.all.disable_ipv6": "1",
    "net.ipv6.conf.default.disable_ipv6": "1",
}


class Netns:
    def __init__(self, name):
        self.name = name
        self.path = "/run/netns/" + name
        self.created = False

    def create(self):
        run(["ip", "netns", "add", self.name])
        self.created = True
        self.ip("link", "set", "lo", "up")
        run(self.exec(["sysctl", "-q", "-w"] + ["%s=%s" % kv for kv in SYSCTLS.items()]))
        return self

    def ip(self, *args):
        return run(["ip", "-n", self.name] + list(args))

    def exec(self, argv):
        """argv run inside this namespace (ip netns exec execs it: same pid, no wrapper left)."""
        return ["ip", "netns", "exec", self.name] + list(argv)

    def has_link(self, dev):
        return run(["ip", "-n", self.name, "link", "show", dev], check=False).returncode == 0

    def delete(self):
        if self.created:
            run(["ip", "netns", "del", self.name], check=False)
            self.created = False


def make_host(tag):
    """The namespace every backend and host-side server runs in, sealed from the world.

    It has loopback, where the servers listen, and a veth pair whose peer stays inside with no
    address: passt and pasta insist on an interface with a default route, and any packet that
    does not go to a local address dies at that dead end. So whatever a backend maps, nothing
    the benchmark sends can leave this namespace, let alone the machine."""
    ns = Netns("%s%d-%s" % (PREFIX, os.getpid(), tag)).create()
    ns.ip("link", "add", "sink0", "type", "veth", "peer", "name", "sink1")
    ns.ip("addr", "add", "%s/24" % SINK_ADDR, "dev", "sink0")
    ns.ip("link", "set", "sink0", "up")
    ns.ip("link", "set", "sink1", "up")
    ns.ip("route", "add", "default", "via", SINK_GW, "dev", "sink0")
    return ns


def make_guest(tag):
    """An empty namespace for one backend's guest (the kernel's TCP stack)."""
    return Netns("%s%d-%s" % (PREFIX, os.getpid(), tag)).create()


def configure_link(ns, dev, addr, mtu, gateway=GATEWAY):
    """Address, MTU and default route of the guest's interface."""
    ns.ip("link", "set", dev, "mtu", str(mtu), "up")
    ns.ip("addr", "add", "%s/%d" % (addr, PREFIXLEN), "dev", dev)
    if gateway:
        ns.ip("route", "replace", "default", "via", gateway, "dev", dev)


def remove_stale():
    """Delete namespaces left by earlier runs of this rig that died (their pid is gone)."""
    out = run(["ip", "netns", "list"], check=False).stdout
    for line in out.splitlines():
        m = re.match(r"(%s(\d+)-\S+)" % PREFIX, line)
        if m and not os.path.exists("/proc/%s" % m.group(2)):
            run(["ip", "netns", "del", m.group(1)], check=False)
