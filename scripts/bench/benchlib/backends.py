# SPDX-License-Identifier: BSD-2-Clause
"""backends.py - each backend under test: how to start it for one guest namespace, and its addresses."""

import json
import os
import select
import shutil
import socket

from . import netns
from .netns import GATEWAY, SINK_ADDR
from . import proc
from .proc import RigError, listening, run, wait_for

# Servers: on the host (reached from the guest through the gateway) and in the guest.
HOST_IPERF, HOST_PROBE, HOST_VERIFY = 5201, 5301, 5401
GUEST_IPERF, GUEST_PROBE, GUEST_VERIFY = 6201, 6301, 6401
# Host ports forwarded to the guest ports: guest port + FWD_OFFSET, bound on 127.0.0.1.
FWD_OFFSET = 10000
FORWARDS = [("tcp", GUEST_IPERF), ("udp", GUEST_IPERF), ("tcp", GUEST_PROBE), ("tcp", GUEST_VERIFY)]
TAP = "tap0"
START_TIMEOUT = 15
BASE_SUFFIX = "@base"  # column of a slirpnet backend run with the --baseline build's binaries


class Build:
    """The slirpnet binaries of one meson build directory: the helper, and the tap bridge that
    links that build's libslirpnet (its rpath points into the same build)."""

    def __init__(self, path):
        self.path = os.path.abspath(path)
        self.helper = os.path.join(self.path, "plugin", "slirpnet")
        self.tapbridge = os.path.join(self.path, "scripts", "bench", "slirpnet-tapbridge")
        self.netprobe = os.path.join(self.path, "scripts", "bench", "slirpnet-netprobe")

    def libslirpnet(self):
        """The libslirpnet the tap bridge loads (ldd's answer), or None."""
        cp = run(["ldd", self.tapbridge], check=False)
        for line in cp.stdout.splitlines():
            parts = line.split()
            if parts and parts[0].startswith("libslirpnet.so") and len(parts) >= 3 and parts[1] == "=>":
                return os.path.realpath(parts[2]) if parts[2].startswith("/") else None
        return None


class Backend:
    """One way of connecting the guest namespace to the host.

    setup(mtu) creates the guest namespace and starts the backend's processes (their pids in
    roots: CPU is the sum over their process trees); teardown() undoes it."""

    name = ""
    description = ""
    ceiling = False  # kernel-only reference, no user-mode process
    slirpnet = False  # runs a build's slirpnet binaries: gets a <name>@base column with --baseline
    guest_addr = "10.0.2.15"
    host_bind = "127.0.0.1"  # where host-side servers listen
    server_from_guest = GATEWAY  # how the guest reaches them
    # Source of host-side clients. pasta splices connections that come from loopback straight
    # into the namespace's loopback, past its tap; a non-loopback source keeps every user-mode
    # backend on its tap path. libslirp does not care, so all of them get the same.
    host_client_src = SINK_ADDR
    # The program the backend runs, when it must be installed, and the package that has it.
    tool = None
    package = None
    # The command name (/proc/PID/comm, a prefix: passt may re-exec as passt.avx2) of the
    # backend's network process, whose RSS and fds the churn measure and the soak sample.
    helper_comm = None

    def __init__(self, rig, build=None):
        """build: whose slirpnet binaries to use (default the rig's --build); another one (the
        --baseline) makes the column <name>@base."""
        self.rig = rig
        self.build = build or rig.build
        if build is not None and build is not rig.build:
            self.name = type(self).name + BASE_SUFFIX
            self.description = "%s, baseline build %s" % (type(self).description, build.path)
        self.guest = None
        self.roots = []
        self.procs = []

    def unavailable(self):
        """Why this backend cannot run here, or None."""
        if self.tool and not shutil.which(self.tool):
            package = " (package %s)" % self.package if self.package else ""
            return "%s%s is not installed" % (self.tool, package)
        return None

    @property
    def host_ns(self):
        return self.rig.ns

    def to_guest(self, port):
        """(address, port) a host-side client connects to, to reach port in the guest."""
        return ("127.0.0.1", port + FWD_OFFSET)

    def start(self, name, argv, **kw):
        p = self.rig.procs.start("%s-%s" % (self.name, name), argv, **kw)
        self.procs.append(p)
        return p

    @property
    def tag(self):
        """self.name as a file and namespace name component."""
        return self.name.replace("@", "-")

    def setup(self, mtu):
        self.mtu = mtu
        self.guest = netns.make_guest(self.tag)
        self.start_backend(mtu)

    def start_backend(self, mtu):
        raise NotImplementedError

    def teardown(self):
        for p in reversed(self.procs):
            self.rig.procs.stop(p)
        self.procs, self.roots = [], []
        if self.guest:
            self.guest.delete()
            self.guest = None

    def helper_pids(self):
        """The pids of the backend's network process(es) (helper_comm) under its roots."""
        if not self.helper_comm:
            return []
        return [p for p in proc.descendants(self.roots)
                if proc.comm(p) in (self.helper_comm,) or proc.comm(p).startswith(self.helper_comm + ".")]

    def wait_forwards(self, pid):
        for proto, port in FORWARDS:
            wait_for(lambda: listening(pid, port + FWD_OFFSET, proto), START_TIMEOUT,
                     "%s to forward %s port %d" % (self.name, proto, port + FWD_OFFSET))

    def start_stream_backend(self, name, argv):
        """Start process name, argv(sock) (a backend listening on the stream socket sock), wait
        for its forwards, then bridge the guest's tap to it (--stream)."""
        sock = os.path.join(self.rig.sockdir, "%s.sock" % self.tag)
        p = self.start(name, self.host_ns.exec(argv(sock)))
        self.wait_forwards(p.pid)
        bridge = self.bridge("--stream", sock)
        self.roots = [p.pid, bridge.pid]

    def bridge(self, mode, target, extra=()):
        """The tap bridge (the emulator stand-in) between the guest's tap and the backend."""
        self.guest.ip("tuntap", "add", "dev", TAP, "mode", "tap")
        netns.configure_link(self.guest, TAP, self.guest_addr, self.mtu)
        env = dict(os.environ, SLIRPNET_HELPER=self.build.helper)
        return self.start("bridge", self.host_ns.exec(
            [self.build.tapbridge, "--netns", self.guest.path, "--tap", TAP, mode, target]
            + list(extra)), ready_line="ready", timeout=START_TIMEOUT, env=env)


def _slirp_options(mtu, guest_addr):
    opts = ["ipv6=off", "mtu=%d" % mtu]
    opts += ["hostfwd=%s:127.0.0.1:%d-%s:%d" % (proto, port + FWD_OFFSET, guest_addr, port)
             for proto, port in FORWARDS]
    return ",".join(opts)


class Slirpnet(Backend):
    """A backend made of a build's slirpnet binaries. needs_*: words its helper's --help and its
    tap bridge's usage must show (a --baseline build may be older than the options the column uses)."""

    slirpnet = True
    helper_comm = "slirpnet"
    # Appended to the helper's options (the soak adds control=PATH).
    more_options = ""
    needs_helper = ()
    needs_bridge = ()

    def unavailable(self):
        for argv, words in (([self.build.helper, "--help"], self.needs_helper),
                            ([self.build.tapbridge], self.needs_bridge)):
            if words:
                cp = run(argv, check=False)
                for w in words:
                    if w not in cp.stdout + cp.stderr:
                        return "%s has no %s" % (argv[0], w)
        return None


class SlirpnetPlugin(Slirpnet):
    name = "slirpnet"
    description = "libslirpnet C ABI with virtio-net offloads (tap bridge + helper)"
    bridge_args = ()
    extra_options = ""

    def start_backend(self, mtu):
        p = self.bridge("--plugin", "slirp," + _slirp_options(mtu, self.guest_addr)
                        + self.extra_options + self.more_options, self.bridge_args)
        self.roots = [p.pid]  # the helper is the bridge's child: counted with it
        self.wait_forwards(p.pid)


class SlirpnetPluginNoOffload(SlirpnetPlugin):
    # Plain frames both ways, as with a NIC model that negotiates no offloads (e1000, or
    # virtio-net with csum/tso off): the guest segments and checksums every packet itself.
    name = "slirpnet-nooffload"
    description = "libslirpnet C ABI without offloads (tap bridge --no-offload + helper)"
    bridge_args = ("--no-offload",)
    needs_bridge = ("--no-offload",)


class SlirpnetPluginNoPoll(SlirpnetPlugin):
    # The helper sleeps as soon as it is idle (busy-poll=0): what its default polling
    # window buys in latency and costs in CPU.
    name = "slirpnet-nopoll"
    description = "libslirpnet C ABI with offloads, busy-poll=0 (tap bridge + helper)"
    extra_options = ",busy-poll=0"
    needs_helper = ("busy-poll",)


class SlirpnetPluginNoSandbox(SlirpnetPlugin):
    # The helper without its sandbox (sandbox=off: no user drop, Landlock or seccomp filter):
    # what the containment costs, measured beside the default in the same run.
    name = "slirpnet-nosandbox"
    description = "libslirpnet C ABI with offloads, sandbox=off (tap bridge + helper)"
    extra_options = ",sandbox=off"
    needs_helper = ("sandbox",)


class SlirpnetStream(Slirpnet):
    name = "slirpnet-stream"
    description = "slirpnet --socket, QEMU stream framing (tap bridge + helper)"
    needs_helper = ("--socket",)

    def start_backend(self, mtu):
        self.start_stream_backend("helper", lambda sock: [
            self.build.helper, "--socket", sock, "-o", _slirp_options(mtu, self.guest_addr) + self.more_options])


class SlirpnetDgram(Slirpnet):
    name = "slirpnet-dgram"
    description = "slirpnet --dgram, QEMU dgram (one frame per datagram; tap bridge + helper)"
    needs_helper = ("--dgram",)
    needs_bridge = ("--dgram",)

    def start_backend(self, mtu):
        sock = os.path.join(self.rig.sockdir, "%s.sock" % self.tag)
        local = os.path.join(self.rig.sockdir, "%s-bridge.sock" % self.tag)
        p = self.start("helper", self.host_ns.exec(
            [self.build.helper, "--dgram", sock, "-o", _slirp_options(mtu, self.guest_addr) + self.more_options]))
        self.wait_forwards(p.pid)
        bridge = self.bridge("--dgram", sock, ("--local", local))
        self.roots = [p.pid, bridge.pid]


class SlirpnetFd(Slirpnet):
    # --fd with a SOCK_DGRAM socketpair (QEMU -netdev socket,fd=, libvirt's helper contract):
    # the connected datagram link. --fd with SOCK_STREAM is --socket's link without its server.
    name = "slirpnet-fd"
    description = "slirpnet --fd, an inherited SOCK_DGRAM socketpair (tap bridge + helper it starts)"
    needs_bridge = ("--fd",)

    def start_backend(self, mtu):
        p = self.bridge("--fd", "dgram", (_slirp_options(mtu, self.guest_addr) + self.more_options,))
        self.roots = [p.pid]  # the helper is the bridge's child
        self.wait_forwards(p.pid)


class Slirp4netns(Backend):
    name = "slirp4netns"
    description = "slirp4netns (libslirp on its own tap, one process)"
    guest_addr = "10.0.2.100"  # what --configure assigns
    tool = "slirp4netns"
    helper_comm = "slirp4netns"

    def start_backend(self, mtu):
        api = os.path.join(self.rig.sockdir, "slirp4netns.sock")
        r, w = os.pipe()
        try:
            # Host loopback stays allowed (no --disable-host-loopback): 10.0.2.2 must reach
            # 127.0.0.1. No DNS: the benchmark never resolves anything.
            p = self.start("slirp4netns", self.host_ns.exec(
                ["slirp4netns", "--configure", "--mtu=%d" % mtu, "--disable-dns",
                 "--api-socket", api, "--ready-fd", str(w), "--netns-type=path",
                 self.guest.path, TAP]), pass_fds=(w,))
            os.close(w)
            w = -1
            ready, _, _ = select.select([r], [], [], START_TIMEOUT)
            if not ready or os.read(r, 16) != b"1":
                raise RigError("slirp4netns did not report ready (see logs/slirp4netns-slirp4netns.log)")
        finally:
            os.close(r)
            if w >= 0:
                os.close(w)
        self.roots = [p.pid]
        for proto, port in FORWARDS:
            self._api(api, {"execute": "add_hostfwd", "arguments": {
                "proto": proto, "host_addr": "127.0.0.1", "host_port": port + FWD_OFFSET,
                "guest_addr": self.guest_addr, "guest_port": port}})
        self.wait_forwards(p.pid)

    @staticmethod
    def _api(path, request):
        # One request per connection, ended by shutdown(SHUT_WR), as slirp4netns(1) requires.
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(5)
            s.connect(path)
            s.sendall(json.dumps(request).encode())
            s.shutdown(socket.SHUT_WR)
            answer = json.loads(s.recv(4096).decode() or "{}")
        if "return" not in answer:
            raise RigError("slirp4netns API %s: %s" % (request["execute"], answer))


def _passt_forwards():
    args = []
    for proto, port in FORWARDS:
        args += ["-t" if proto == "tcp" else "-u", "127.0.0.1/%d:%d" % (port + FWD_OFFSET, port)]
    return args


def _passt_common(mtu):
    # The guest gets libslirp's addressing. passt maps connections to the gateway address to
    # the host's loopback (no --no-map-gw), which is where the servers are; -4: IPv4 only.
    return ["-f", "-q", "-4", "-a", Backend.guest_addr, "-n", str(netns.PREFIXLEN),
            "-g", GATEWAY, "-m", str(mtu)] + _passt_forwards()


class Passt(Backend):
    name = "passt"
    description = "passt over its stream socket (tap bridge + passt)"
    tool = "passt"
    helper_comm = "passt"

    def start_backend(self, mtu):
        self.start_stream_backend("passt", lambda sock: ["passt", "-s", sock] + _passt_common(mtu))


class Pasta(Backend):
    name = "pasta"
    description = "pasta on its own tap (one process; passt's non-libslirp engine)"
    tool, package = "pasta", "passt"
    helper_comm = "pasta"

    def start_backend(self, mtu):
        # --runas 0: as root pasta would switch to nobody, which may not enter our namespace.
        # -T/-U none: nothing from the namespace's loopback to the host's (that is a splice).
        p = self.start("pasta", self.host_ns.exec(
            ["pasta", "--runas", "0", "--netns", self.guest.path, "-I", TAP, "-T", "none",
             "-U", "none"] + _passt_common(mtu)))
        wait_for(lambda: self.guest.has_link(TAP), START_TIMEOUT, "pasta's tap")
        netns.configure_link(self.guest, TAP, self.guest_addr, mtu)
        self.roots = [p.pid]
        self.wait_forwards(p.pid)


class Veth(Backend):
    name = "veth"
    description = "ceiling: kernel veth pair, no user-mode hop"
    ceiling = True
    host_bind = GATEWAY
    host_client_src = None

    def to_guest(self, port):
        return (self.guest_addr, port)

    def start_backend(self, mtu):
        self.host_ns.ip("link", "add", "vguest0", "mtu", str(mtu), "type", "veth", "peer", "name",
                        "eth0", "netns", self.guest.name)
        netns.configure_link(self.host_ns, "vguest0", GATEWAY, mtu, gateway=None)
        netns.configure_link(self.guest, "eth0", self.guest_addr, mtu)

    # teardown: deleting the guest namespace deletes the pair.


class Loopback(Backend):
    name = "loopback"
    description = "ceiling: loopback in one namespace, MTU set on lo"
    ceiling = True
    guest_addr = "127.0.0.1"
    server_from_guest = "127.0.0.1"
    host_client_src = None

    @property
    def host_ns(self):
        return self.guest  # one namespace plays both sides

    def to_guest(self, port):
        return ("127.0.0.1", port)

    def start_backend(self, mtu):
        self.guest.ip("link", "set", "lo", "mtu", str(mtu))


ALL = [SlirpnetPlugin, SlirpnetPluginNoOffload, SlirpnetPluginNoPoll, SlirpnetPluginNoSandbox, SlirpnetStream,
       SlirpnetDgram, SlirpnetFd, Slirp4netns, Passt, Pasta, Veth, Loopback]
# Run only when asked for (--backends): the transports beyond the plugin and --socket, for the
# integrity checks (measure xfer); their speed is --socket's or close to it.
OPT_IN = {"slirpnet-dgram", "slirpnet-fd"}
REFERENCE = "slirp4netns"
