# SPDX-License-Identifier: BSD-2-Clause
"""conftest.py - fixtures for the slirpnet frame tests (see harness/__init__.py for the API).

Environment: SLIRPNET_HELPER (the helper executable) and SLIRPNET_LIB (libslirpnet.so)
are required; SLIRPNET_ARTIFACTS is where failed tests leave <test>.pcap, a one-line-
per-frame <test>.txt and the helper's log (default: $TMPDIR/slirpnet-artifacts).
The environment is read, never changed: peers get the helper's path as an argument.
(One exception, the sanitizer build's: see _sanitizer_environment.)  A test whose helper
printed a sanitizer report (ASan, LSan, UBSan) fails, whatever its exit status.

Fixtures:
  helper_path, lib_path   the two binaries
  plugin(spec, **kw)      factory -> started PluginPeer; cleaned up at teardown
  direct(options, **kw)   factory -> DirectPeer; closed at teardown, and a helper that
                          does not then exit 0 promptly fails the test
  peer(options, **kw)     the same test through both (parametrized: [plugin], [direct])
  udp_echo, tcp_echo      echo servers on 127.0.0.1 ephemeral ports (threads)
  tcp_server              factory for TcpServer(handler) on 127.0.0.1
  helpers(args, **kw)     factory -> HelperProc (`slirpnet ARGS`, e.g. --socket/--dgram/
                          --fd); stopped at teardown, where it must exit 0
  stream_helper(*args)    factory -> HelperProc on `--socket <workdir>/s.sock` (.path)
  peers(p)                closes p at teardown (StreamPeer, DgramPeer made by hand)
  workdir                 a short private directory for UNIX socket paths
  tmp_path                pytest's, replaced by a directory the sandboxed helper can use
  control_socket          a control socket path in a fresh short directory
  ctlpeer                 factory: (DirectPeer with control=, ControlClient)
  captured(options, kind) factory -> peer with pcap=<tmp>/<name>.pcap; .capture is its
                          CaptureFile
"""

import functools
import os
import pathlib
import re
import shutil
import tempfile

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
    _sanitizer_environment()


def _sanitizer_environment():
    """The sanitizer build's pytest runs (meson.build's pytest_sanitizer_env): this python
    has libasan preloaded (it loads the instrumented libslirpnet.so) and no leak check
    (the interpreter does not free everything at exit).  Its children, the helper above
    all, get SLIRPNET_CHILD_ASAN_OPTIONS (leak check on) and no preload: the helper links
    the runtime itself, and QEMU, tshark and the rest are not instrumented."""
    child = os.environ.get("SLIRPNET_CHILD_ASAN_OPTIONS")
    if child is None:
        return
    os.environ["ASAN_OPTIONS"] = child
    os.environ.pop("LD_PRELOAD", None)


@pytest.fixture(autouse=True)
def _no_sanitizer_reports():
    """Fail a test whose helpers printed a sanitizer report: the fixtures below and
    HelperProc.close note them (harness.procs.note_sanitizer_report) as they finish;
    this teardown runs after theirs."""
    harness.procs.take_sanitizer_reports()
    yield
    reports = harness.procs.take_sanitizer_reports()
    if reports:
        pytest.fail("sanitizer report from the helper:\n" + "\n\n".join(reports), pytrace=False)


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
        harness.procs.note_sanitizer_report(p.describe(), p.helper_log())
    for p in peers:
        cleanup = getattr(p, "cleanup_files", None)
        if cleanup:
            cleanup()
    if not failed:
        _check_negatives_paired(peers)


def _check_negatives_paired(peers):
    """A negative check (expect_none) passes on a dead link too: every peer that had one
    must also have shown, in the same test, that frames come back (an expect())."""
    unpaired = [p.describe() for p in peers
                if getattr(p, "negative_checks", 0) and not getattr(p, "positive_checks", 0)]
    if unpaired:
        pytest.fail("expect_none() without any positive answer on the same peer (add "
                    "harness.assert_alive(peer)): %s" % ", ".join(unpaired), pytrace=False)


@pytest.fixture(autouse=True)
def _environment_unchanged():
    """A test may not leave the process's environment changed (monkeypatch.setenv and
    harness.helper_env restore it): later tests must see the helper meson chose."""
    before = {k: os.environ.get(k) for k in ("SLIRPNET_HELPER", "SLIRPNET_LIB")}
    yield
    after = {k: os.environ.get(k) for k in before}
    assert after == before, "the test changed the environment: %r -> %r" % (before, after)


# ---------------------------------------------------------------------------------------
# binaries and peers

def _factory(make, helper_path, *lists):
    """A fixture's factory: make(*args, helper=helper_path, **kw) (a helper= of the test's
    wins), appended to every one of lists for teardown."""
    def factory(*args, **kw):
        kw.setdefault("helper", helper_path)
        made = make(*args, **kw)
        for lst in lists:
            lst.append(made)
        return made
    return factory


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
    yield _factory(functools.partial(harness.PluginPeer, lib=lib_path), helper_path, made, _peers)
    for p in made:
        p.close()


@pytest.fixture
def direct(helper_path, _peers, request):
    """Factory: direct("restrict=on", **DirectPeer kwargs) -> DirectPeer.

    At teardown our end is closed; a helper that accepted its config must then exit 0
    within a few seconds (set peer.expect_clean_exit = False when a test kills it).
    """
    made = []
    yield _factory(harness.DirectPeer, helper_path, made, _peers)
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

@pytest.fixture
def udp_echo():
    """UdpEcho on 127.0.0.1 (harness.servers); .port, .received."""
    s = harness.UdpEcho()
    yield s
    s.stop()


@pytest.fixture
def tcp_echo():
    """A TcpServer echoing on 127.0.0.1; .port, .accepted, .data."""
    s = harness.TcpServer()
    yield s
    s.stop()


@pytest.fixture
def tcp_server():
    """Factory: tcp_server(handler) -> TcpServer on 127.0.0.1, stopped at teardown."""
    made = []

    def factory(handler=None):
        s = harness.TcpServer(handler)
        made.append(s)
        return s

    yield factory
    for s in made:
        s.stop()


# ---------------------------------------------------------------------------------------
# the helper's other transports (--socket, --dgram, --fd): harness.HelperProc

@pytest.fixture
def workdir():
    """A short private directory (UNIX socket paths are limited to 107 bytes) that the
    helper can still use once its sandbox has dropped root (harness.helper_dir)."""
    d = harness.helper_dir(prefix="sn-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def tmp_path():
    """pytest's tmp_path replaced: a fresh directory the helper can still use once its
    sandbox has dropped root (pytest's own are root's, 0700, under a 0700 base), for the
    pcap, capture-start, tftp= and control socket paths tests give it."""
    d = harness.helper_dir(prefix="sn-tp-")
    yield pathlib.Path(d)
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def helpers(request, helper_path):
    """Factory for HelperProc(args, **kw); every helper still running at teardown is
    stopped (SIGTERM) and must exit 0.  The logs of a failed test are printed."""
    made = []
    yield _factory(harness.HelperProc, helper_path, made)
    problems = []
    for h in made:
        was_alive = h.alive()
        rc = h.stop()
        if was_alive and rc != 0:
            problems.append("helper %s exited with %s at teardown; log:\n%s" % (h.args, rc, h.log()))
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        for h in made:
            print("--- helper %s log:\n%s" % (h.args, h.log()))
    for h in made:
        h.close()
    assert not problems, "\n".join(problems)


@pytest.fixture
def peers(request):
    """peers(p) -> p, closed at teardown (for StreamPeer/DgramPeer made by hand)."""
    made = []

    def track(p):
        made.append(p)
        return p
    yield track
    for p in made:
        p.close()
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.passed:
        _check_negatives_paired(made)


@pytest.fixture
def stream_helper(helpers, workdir):
    """Factory: stream_helper(*extra_args, **kw) -> HelperProc of `slirpnet --socket PATH`
    (h.path); connect with harness.StreamPeer.connect(h.path, h)."""
    path = os.path.join(workdir, "s.sock")

    def start(*extra, **kw):
        h = helpers(["--socket", path] + list(extra), **kw)
        h.path = path
        return h
    return start


# ---------------------------------------------------------------------------------------
# capture and control

@pytest.fixture
def control_socket(tmp_path):
    """A socket path in the test's tmp_path: capture-start files there are in the control
    socket's directory, where the sandboxed helper may create them."""
    return str(tmp_path / "ctl.sock")


@pytest.fixture
def ctlpeer(direct, control_socket):
    """Factory: ctlpeer(options) -> (DirectPeer with control=PATH, ControlClient)."""
    clients = []

    def factory(options=""):
        p = direct("control=%s%s" % (control_socket, "," + options if options else ""))
        c = harness.ControlClient(control_socket)
        clients.append(c)
        return p, c

    yield factory
    for c in clients:
        c.close()


@pytest.fixture
def captured(tmp_path, direct, plugin):
    """Factory: captured(options="", kind="direct"|"plugin", name=None, **peer kwargs)
    -> peer started with pcap=<tmp>/<name>.pcap; peer.capture is its CaptureFile."""
    count = [0]

    def factory(options="", kind="direct", name=None, **kw):
        count[0] += 1
        name = name or "capture-%d" % count[0]
        path = str(tmp_path / (name + ".pcap"))
        opts = "pcap=" + path + ("," + options if options else "")
        if kind == "plugin":
            p = plugin("slirp," + opts, **kw)
        else:
            p = direct(opts, **kw)
        p.kind = kind
        p.capture = harness.CaptureFile(path)
        return p

    return factory
