# SPDX-License-Identifier: BSD-2-Clause
"""conftest.py - fixtures for the slirpnet frame tests (see harness.py for the API).

Environment: SLIRPNET_HELPER (the helper executable) and SLIRPNET_LIB (libslirpnet.so)
are required; SLIRPNET_ARTIFACTS is where failed tests leave <test>.pcap, a one-line-
per-frame <test>.txt and the helper's log (default: $TMPDIR/slirpnet-artifacts).

Fixtures:
  helper_path, lib_path   the two binaries
  plugin(spec, **kw)      factory -> started PluginPeer; cleaned up at teardown
  direct(options, **kw)   factory -> DirectPeer; closed at teardown, and a helper that
                          does not then exit 0 promptly fails the test
  peer(options, **kw)     the same test through both (parametrized: [plugin], [direct])
  udp_echo, tcp_echo      echo servers on 127.0.0.1 ephemeral ports (threads)
  tcp_server              factory for TcpServer(handler) on 127.0.0.1
"""

import os
import re
import select
import socket
import tempfile
import threading

import pytest

import harness


def _need_env(name, what):
    value = os.environ.get(name)
    if not value:
        raise pytest.UsageError(
            "%s is not set: point it at %s (meson test sets it; by hand e.g. "
            "SLIRPNET_HELPER=/tmp/build-py/plugin/slirpnet "
            "SLIRPNET_LIB=/tmp/build-py/plugin/libslirpnet.so /usr/bin/python3 -m pytest)"
            % (name, what))
    if not os.path.exists(value):
        raise pytest.UsageError("%s=%s does not exist (%s); build first" % (name, value, what))
    return value


def pytest_configure(config):
    # Fail loudly (not skip) when the binaries are missing.
    _need_env("SLIRPNET_HELPER", "the slirpnet helper executable")
    _need_env("SLIRPNET_LIB", "libslirpnet.so")


# ---------------------------------------------------------------------------------------
# failure artifacts

@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


def _artifact_dir():
    d = os.environ.get("SLIRPNET_ARTIFACTS") or os.path.join(
        tempfile.gettempdir(), "slirpnet-artifacts")
    os.makedirs(d, exist_ok=True)
    return d


def _safe(name):
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_")


@pytest.fixture
def _peers(request):
    """Every Peer a test creates; on failure, their frames go to $SLIRPNET_ARTIFACTS."""
    peers = []
    yield peers
    failed = any(getattr(request.node, "rep_" + w, None) is not None
                 and getattr(request.node, "rep_" + w).failed for w in ("setup", "call"))
    if failed and peers:
        d = _artifact_dir()
        written = []
        for i, p in enumerate(peers):
            base = os.path.join(d, _safe(request.node.name) + ("" if i == 0 else "-%d" % (i + 1)))
            try:
                if p.log:
                    p.write_pcap(base + ".pcap")
                    p.write_summary(base + ".txt")
                    written.append(base + ".pcap")
                log = p.helper_log()
                if log:
                    with open(base + ".helper.log", "w") as f:
                        f.write(log)
            except Exception as e:  # artifacts must never mask the real failure
                written.append("(could not write %s: %s)" % (base, e))
        if written:
            request.node.add_report_section("teardown", "artifacts", "\n".join(written))
    for p in peers:
        cleanup = getattr(p, "cleanup_files", None)
        if cleanup:
            cleanup()


# ---------------------------------------------------------------------------------------
# binaries and peers

@pytest.fixture(scope="session")
def helper_path():
    return _need_env("SLIRPNET_HELPER", "the slirpnet helper executable")


@pytest.fixture(scope="session")
def lib_path():
    return _need_env("SLIRPNET_LIB", "libslirpnet.so")


@pytest.fixture
def plugin(helper_path, lib_path, _peers):
    """Factory: plugin("slirp,restrict=on", **PluginPeer kwargs) -> PluginPeer."""
    made = []

    def factory(spec="slirp", **kw):
        os.environ["SLIRPNET_HELPER"] = helper_path
        p = harness.PluginPeer(spec, lib=lib_path, helper=helper_path, **kw)
        made.append(p)
        _peers.append(p)
        return p

    yield factory
    for p in made:
        p.close()


@pytest.fixture
def direct(helper_path, _peers, request):
    """Factory: direct("restrict=on", **DirectPeer kwargs) -> DirectPeer.

    At teardown our end is closed; a helper that accepted its config must then exit 0
    within a few seconds (set peer.expect_clean_exit = False when a test kills it).
    """
    made = []

    def factory(options="", **kw):
        p = harness.DirectPeer(options, helper=helper_path, **kw)
        made.append(p)
        _peers.append(p)
        return p

    yield factory
    bad = []
    rep = getattr(request.node, "rep_call", None)
    test_failed = rep is not None and rep.failed
    for p in made:
        rc = p.close()
        if p.ok and p.expect_clean_exit and rc != 0 and not test_failed:
            bad.append("%s exited with %r after we closed our end; log:\n%s"
                       % (p.describe(), rc, p.helper_log()))
    if bad:
        pytest.fail("\n".join(bad))


@pytest.fixture(params=["plugin", "direct"])
def peer(request):
    """Factory running the test through the plugin ABI and through the raw helper:
    peer("restrict=on") -> PluginPeer("slirp,restrict=on") or DirectPeer("restrict=on").
    The kind is peer.kind."""
    kind = request.param
    backend = request.getfixturevalue(kind)

    def factory(options="", **kw):
        if kind == "plugin":
            p = backend("slirp" + ("," + options if options else ""), **kw)
        else:
            p = backend(options, **kw)
        p.kind = kind
        return p

    factory.kind = kind
    return factory


# ---------------------------------------------------------------------------------------
# loopback servers

class UdpEcho:
    """UDP echo on 127.0.0.1:<ephemeral>; .received holds (data, addr) of every datagram."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.received = []
        self.echo = True
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="udp-echo")
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            r, _, _ = select.select([self.sock], [], [], 0.05)
            if not r:
                continue
            try:
                data, addr = self.sock.recvfrom(65536)
            except OSError:
                continue
            self.received.append((data, addr))
            if self.echo:
                try:
                    self.sock.sendto(data, addr)
                except OSError:
                    pass

    def stop(self):
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


class TcpServer:
    """TCP server on 127.0.0.1:<ephemeral>; handler(conn_socket, server) per connection
    (in its own thread).  .accepted counts connections, .data collects bytes received
    by the default echo handler."""

    def __init__(self, handler=None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.handler = handler or TcpServer.echo_handler
        self.accepted = 0
        self.data = bytearray()
        self.peers = []
        self.errors = []
        self.closed_by_client = threading.Event()
        self._stop = threading.Event()
        self._threads = []
        self._conns = []
        self._thread = threading.Thread(target=self._run, daemon=True, name="tcp-server")
        self._thread.start()

    @staticmethod
    def echo_handler(conn, server):
        """Echo until the client half-closes, then close (FIN back)."""
        while not server._stop.is_set():
            r, _, _ = select.select([conn], [], [], 0.05)
            if not r:
                continue
            data = conn.recv(65536)
            if not data:
                server.closed_by_client.set()
                break
            server.data += data
            conn.sendall(data)

    def _serve(self, conn):
        try:
            self.handler(conn, self)
        except Exception as e:
            self.errors.append(e)
        finally:
            conn.close()

    def _run(self):
        while not self._stop.is_set():
            r, _, _ = select.select([self.sock], [], [], 0.05)
            if not r:
                continue
            try:
                conn, addr = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            self.peers.append(addr)
            self._conns.append(conn)
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self):
        self._stop.set()
        self._thread.join(2)
        for t in self._threads:
            t.join(2)
        self.sock.close()


@pytest.fixture
def udp_echo():
    s = UdpEcho()
    yield s
    s.stop()


@pytest.fixture
def tcp_echo():
    s = TcpServer()
    yield s
    s.stop()


@pytest.fixture
def tcp_server():
    made = []

    def factory(handler=None):
        s = TcpServer(handler)
        made.append(s)
        return s

    yield factory
    for s in made:
        s.stop()
