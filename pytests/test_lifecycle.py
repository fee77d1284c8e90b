# SPDX-License-Identifier: BSD-2-Clause
"""Process lifecycle: cleanup reaps the helper, a dead helper is reported, --help."""

import errno
import os
import signal
import socket
import subprocess
import time

import pytest

from harness import (child_pids, free_port, icmp_echo, icmp_echo_reply_from, open_fds,
                     proc_state)


def test_cleanup_ends_helper_no_zombie_no_fd_leak(plugin, helper_path):
    warm = plugin("slirp,restrict=on")     # lazily created GLib state is not a leak
    warm.close()
    fds = open_fds()
    p = plugin("slirp,restrict=on")
    pid = p.helper_pid()
    assert pid, "could not find the helper among our children"
    assert proc_state(pid) not in (None, "Z")
    assert os.path.realpath(os.readlink("/proc/%d/exe" % pid)) == os.path.realpath(helper_path)
    p.send(icmp_echo(p, seq=1))
    p.expect(icmp_echo_reply_from(p, seq=1))
    t0 = time.monotonic()
    p.close()
    assert time.monotonic() - t0 < 2.5, "cleanup took too long"
    assert proc_state(pid) is None, "helper %d still exists (state %s)" % (pid, proc_state(pid))
    assert child_pids(helper_path) == []
    assert open_fds() == fds


def test_repeated_init_cleanup(plugin, helper_path):
    plugin("slirp").close()
    fds = open_fds()
    for i in range(8):
        p = plugin("slirp,restrict=on,mtu=%d" % (1500 + i))
        p.close()
    assert child_pids(helper_path) == []
    assert open_fds() == fds


def test_helper_exit_stats_logged_at_cleanup(plugin):
    p = plugin("slirp,restrict=on")
    p.send(icmp_echo(p, seq=1))
    p.expect(icmp_echo_reply_from(p, seq=1))
    p.close()
    log = p.helper_log()
    assert "stats:" in log, log


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_helper_death_reported(plugin, helper_path, sig):
    p = plugin("slirp,restrict=on", auto_drain=False)
    pid = p.helper_pid()
    assert pid
    count = p.cb_count
    os.kill(pid, sig)
    t0 = time.monotonic()
    while p.cb_count == count and time.monotonic() - t0 < 2:
        p.iterate()
        time.sleep(0.005)
    assert p.cb_count > count, "rx callback did not fire within 2 s of the helper's death"
    # drain anything the helper sent before dying, then the error
    deadline = time.monotonic() + 2
    while True:
        n, err = p.be_peek()
        if n <= 0 or time.monotonic() > deadline:
            break
        p.be_discard()
    assert (n, err) == (-1, errno.ECONNRESET)
    ret, err, _ = p.be_recv(2000)
    assert (ret, err) == (-1, errno.ECONNRESET)
    ret, err = p.be_discard()
    assert (ret, err) == (-1, errno.ECONNRESET)
    ret, err = p.be_send(bytes(icmp_echo(p)))
    assert ret == -1 and err in (errno.ECONNRESET, errno.EPIPE), (ret, err)
    assert time.monotonic() - t0 < 2.5
    # "After reporting a dead helper once it stops" firing
    p.iterate()
    settled = p.cb_count
    for _ in range(20):
        p.iterate()
        time.sleep(0.005)
    assert p.cb_count == settled, "rx callback keeps firing after the helper died"
    p.close()
    assert proc_state(pid) is None, "dead helper not reaped (state %s)" % proc_state(pid)
    assert child_pids(helper_path) == []


def test_helper_death_with_auto_drain(plugin):
    p = plugin("slirp,restrict=on")
    os.kill(p.helper_pid(), signal.SIGKILL)
    t0 = time.monotonic()
    while p.dead_errno is None and time.monotonic() - t0 < 2:
        p.pump(0.05)
    assert p.dead_errno == errno.ECONNRESET


def test_direct_close_exits_0_promptly(direct):
    d = direct("restrict=on")
    t0 = time.monotonic()
    rc = d.close(timeout=2)
    assert rc == 0
    assert time.monotonic() - t0 < 2


OPTION_DEFAULTS = {
    "net": "10.0.2.0/24",
    "host": None,
    "dhcpstart": None,
    "dns": None,
    "restrict": "off",
    "open": None,
    "hostfwd": None,
    "hostname": None,
    "domainname": None,
    "dnssearch": None,
    "tftp": None,
    "tftp-server-name": None,
    "bootfile": None,
    "ipv4": "on",
    "ipv6": "on",
    "ipv6-net": "fec0::/64",
    "ipv6-host": None,
    "ipv6-dns": None,
    "mtu": "1500",
    "mru": None,
}


def test_help_lists_every_option(helper_path):
    r = subprocess.run([helper_path, "--help"], capture_output=True, text=True, timeout=5)
    assert r.returncode == 0
    text = r.stdout + r.stderr
    assert "-S" in text
    lines = text.splitlines()
    for key, default in OPTION_DEFAULTS.items():
        # the key, followed (on its line or the next few) by "default"
        idx = [i for i, l in enumerate(lines)
               if l.strip().startswith(key + "=") or l.strip() == key
               or l.strip().startswith(key + " ")]
        assert idx, "--help does not list %r" % key
        block = " ".join(lines[idx[0]: idx[0] + 3])
        assert "default" in block, "--help gives no default for %r: %s" % (key, block)
        if default:
            assert default in block, "--help: %r default should be %s: %s" % (key, default, block)


# --------------------------------------------------------------------------------------
# Refused by the helper (not by the plugin's option table): nothing is left behind

HELPER_REFUSALS = ["hostfwd-tcp-in-use", "hostfwd-udp-in-use", "second-hostfwd-in-use",
                   "pcap-fifo", "control-in-use", "control-not-a-socket"]


def helper_refusal(case, tmp_path, held):
    """(option text, words the error must contain, check run after the failed init).
    The plugin accepts each of these; the helper fails while starting up.  Sockets that
    make it fail are appended to held (the test closes them)."""
    def bound(kind):
        s = socket.socket(socket.AF_INET, kind)
        held.append(s)
        s.bind(("127.0.0.1", 0))
        if kind == socket.SOCK_STREAM:
            s.listen(1)
        return s.getsockname()[1]

    if case == "hostfwd-tcp-in-use":
        rule = "tcp:127.0.0.1:%d-:22" % bound(socket.SOCK_STREAM)
        return "hostfwd=" + rule, ["hostfwd", rule], None
    if case == "hostfwd-udp-in-use":
        rule = "udp:127.0.0.1:%d-:53" % bound(socket.SOCK_DGRAM)
        return "hostfwd=" + rule, ["hostfwd", rule], None
    if case == "second-hostfwd-in-use":
        first = free_port()
        rule = "tcp:127.0.0.1:%d-:23" % bound(socket.SOCK_STREAM)

        def first_port_free_again():
            # the first rule's listener went with the helper: the port binds again
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind(("127.0.0.1", first))
                s.listen(1)
        return ("hostfwd=tcp:127.0.0.1:%d-:22,hostfwd=%s" % (first, rule),
                ["hostfwd", rule], first_port_free_again)
    if case == "pcap-fifo":
        fifo = str(tmp_path / "capture.fifo")
        os.mkfifo(fifo)
        return "pcap=" + fifo, ["pcap", fifo, "not a regular file"], None
    if case == "control-in-use":
        path = str(tmp_path / "ctl.sock")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        held.append(s)
        s.bind(path)
        s.listen(1)

        def listener_untouched():
            assert os.path.exists(path), "the helper removed a live socket it did not own"
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
                c.connect(path)
        return "control=" + path, ["control", path, "in use"], listener_untouched
    if case == "control-not-a-socket":
        path = str(tmp_path / "ctl.file")
        with open(path, "w") as f:
            f.write("keep me\n")

        def file_untouched():
            with open(path) as f:
                assert f.read() == "keep me\n"
        return "control=" + path, ["control", path, "not a socket"], file_untouched
    raise ValueError(case)


@pytest.mark.parametrize("case", HELPER_REFUSALS)
def test_helper_refusal_leaves_nothing(plugin, helper_path, tmp_path, case):
    """init fails (-1) with the helper's message naming the rule or file; the helper has
    exited and been reaped (no zombie), no fd is left open in the emulator, and the
    capture file (started last) was never created."""
    plugin("slirp,restrict=on").close()    # lazily created GLib state is not a leak
    held = []
    try:
        option, words, after = helper_refusal(case, tmp_path, held)
        pcap = tmp_path / "never.pcap"
        spec = "slirp,restrict=on," + option
        if not option.startswith("pcap="):
            spec += ",pcap=%s" % pcap
        fds = open_fds()
        children = set(child_pids())
        p = plugin(spec, expect_ok=False)
        assert p.init_rc == -1, "init succeeded: %r" % spec
        for w in words:
            assert w in (p.error or ""), "%r not in the error: %r" % (w, p.error)
        assert set(child_pids()) == children, "a helper process (or zombie) remains"
        assert child_pids(helper_path) == []
        assert open_fds() == fds, "fds leaked by the failed init"
        assert not pcap.exists(), "a capture file was created for a refused config"
        if after:
            after()
    finally:
        for s in held:
            s.close()
