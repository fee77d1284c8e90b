# SPDX-License-Identifier: BSD-2-Clause
"""test_sandbox.py - the helper's sandbox as the kernel sees it, on every transport.

A running helper must show in /proc/PID/status no new privileges, a seccomp filter, the
user it dropped to (when started as root) and empty capability sets, and hold no
descriptor it was not given to serve; forbidden operations must really be refused: the
test-only control command debug-forbidden (meson -Dtest_hooks=true, as scripts/run-tests
builds) makes the helper attempt execve (seccomp kills it with SIGSYS), open /etc/shadow
and create a file outside its directories (EACCES from Landlock or the permissions).
Also: capture-start outside the allowed directories, hostfwd-add below 1024 after the
drop, the version reply and --print-capabilities, and a helper started unprivileged.
"""

import ctypes
import errno
import json
import os
import resource
import pwd
import shutil
import signal
import socket
import subprocess
import time

import pytest

import harness
from harness import (ControlClient, ControlError, DgramPeer, HelperProc, StreamPeer, arp_check,
                     bound_dgram, fd_helper, helper_dir, helper_user, proc_status, status_ids)

ROOT = os.geteuid() == 0
TRANSPORTS = ["plugin", "direct", "socket", "dgram", "fd-stream", "fd-dgram"]
CAP_SETS = ("CapInh", "CapPrm", "CapEff", "CapAmb")


def landlock_abi():
    """The kernel's Landlock ABI (landlock_create_ruleset(NULL, 0, VERSION)), 0 if none."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    abi = libc.syscall(444, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    return max(abi, 0)


def assert_sandboxed(pid, expect_user=True):
    """/proc/PID/status of a sandboxed helper: no new privileges, a seccomp filter, no
    capabilities; started as root, the helper user's ids and no groups."""
    st = proc_status(pid)
    assert st["NoNewPrivs"] == "1", st
    assert st["Seccomp"] == "2", st
    for key in CAP_SETS:
        assert int(st[key], 16) == 0, (key, st[key])
    user = helper_user()
    if user is not None and expect_user:
        assert int(st["CapBnd"], 16) == 0, st["CapBnd"]
        assert status_ids(st, "Uid") == [user[1]] * 4, st["Uid"]
        assert status_ids(st, "Gid") == [user[2]] * 4, st["Gid"]
        assert st["Groups"] == "", st["Groups"]
    return st


def fd_targets(pid):
    """fd number -> what it points at, for every descriptor of pid."""
    d = "/proc/%d/fd" % pid
    out = {}
    for name in os.listdir(d):
        try:
            out[int(name)] = os.readlink(os.path.join(d, name))
        except FileNotFoundError:
            pass
    return out


# What a serving helper holds: stdio, sockets (link, libslirp's, listeners), GLib's
# wake-up eventfds, and files the test named (pcap).
ALLOWED_FD_KINDS = ("socket:", "anon_inode:[eventfd]", "pipe:")


def assert_only_expected_fds(pid, files=(), gone=()):
    targets = fd_targets(pid)
    assert targets.get(0) == "/dev/null", targets
    for fd, target in targets.items():
        if fd <= 2:
            continue
        assert target.startswith(ALLOWED_FD_KINDS) or target in files, (fd, target, targets)
    for g in gone:
        assert g not in targets.values(), (g, targets)


@pytest.fixture
def extra_file():
    """An open file that is passed to the helper and must not survive its start."""
    d = helper_dir(prefix="sn-x-")
    path = os.path.join(d, "inherited-extra")
    f = open(path, "w")
    yield f, path
    f.close()
    shutil.rmtree(d, ignore_errors=True)


def start(kind, helpers, peers, plugin, direct, workdir, pass_fds=(), options=()):
    """A serving helper on transport kind; returns (pid, peer, helper-or-None)."""
    opts = list(options)
    if kind == "plugin":
        p = plugin("slirp" + "".join("," + o for o in opts))
        return p.helper_pid(), p, None
    if kind == "direct":
        p = direct(",".join(opts))
        return p.proc.pid, p, None
    args = ["--" + o for o in opts]
    if kind == "socket":
        path = os.path.join(workdir, "s.sock")
        h = helpers(["--socket", path] + args, pass_fds=pass_fds)
        return h.pid, peers(StreamPeer.connect(path, h)), h
    if kind == "dgram":
        path = os.path.join(workdir, "d.sock")
        h = helpers(["--dgram", path] + args, pass_fds=pass_fds)
        return h.pid, peers(DgramPeer(bound_dgram(workdir, "q.sock"), dest=path, helper=h)), h
    stype = socket.SOCK_STREAM if kind == "fd-stream" else socket.SOCK_DGRAM
    ours, theirs = socket.socketpair(socket.AF_UNIX, stype)
    try:
        h = helpers(["--fd", str(theirs.fileno())] + args, pass_fds=[theirs.fileno()] + list(pass_fds))
    finally:
        theirs.close()
    p = StreamPeer(ours, h) if stype == socket.SOCK_STREAM else DgramPeer(ours, None, h)
    return h.pid, peers(p), h


@pytest.mark.parametrize("kind", TRANSPORTS)
def test_status_and_fds_on_every_transport(kind, helpers, peers, plugin, direct, workdir):
    pid, p, _ = start(kind, helpers, peers, plugin, direct, workdir)
    arp_check(p)  # serving, with the sandbox in force
    assert_sandboxed(pid)
    assert_only_expected_fds(pid)
    if kind in ("plugin", "direct"):
        assert fd_targets(pid)[1] == "/dev/null"  # the emulator's stdout: nothing to say there
    arp_check(p)


@pytest.mark.parametrize("kind", ["socket", "dgram", "fd-stream", "fd-dgram"])
def test_inherited_fd_is_closed(kind, helpers, peers, plugin, direct, workdir, extra_file):
    f, path = extra_file
    pid, p, _ = start(kind, helpers, peers, plugin, direct, workdir, pass_fds=[f.fileno()])
    assert_only_expected_fds(pid, gone=[path])
    arp_check(p)


def test_pcap_is_the_only_file(direct, tmp_path):
    pcap = str(tmp_path / "s.pcap")
    p = direct("pcap=" + pcap)
    arp_check(p)
    assert_sandboxed(p.proc.pid)
    assert_only_expected_fds(p.proc.pid, files=[pcap])


# ---- the control socket: what the helper reports, and what it refuses

@pytest.fixture
def sandboxed(direct, control_socket):
    """A DirectPeer with control=; returns (peer, ControlClient)."""
    clients = []

    def make(options=""):
        p = direct("control=%s%s" % (control_socket, "," + options if options else ""))
        c = ControlClient(control_socket)
        clients.append(c)
        return p, c
    yield make
    for c in clients:
        c.close()


def need_test_hooks(c):
    names = {cmd["name"] for cmd in c.call("query-commands")}
    if "debug-forbidden" not in names:
        pytest.skip("the helper was built without -Dtest_hooks=true (scripts/run-tests turns it on)")


def test_version_reports_the_sandbox(sandboxed, control_socket):
    p, c = sandboxed()
    sb = c.call("version")["sandbox"]
    assert sb["enabled"] and sb["fds_closed"] and sb["no_new_privs"] and sb["environment_scrubbed"], sb
    # the helper inherits the test's hard limit and bounds it at max-flows= (4096 by default)
    # plus its hostfwd rules plus a reserve of 1024 (sandbox.hpp)
    assert sb["dumpable"] is False and sb["max_fds"] == min(resource.getrlimit(resource.RLIMIT_NOFILE)[1], 4096 + 1024), sb
    assert sb["seccomp"] == "kill", sb
    assert sb["no_capabilities"] is True, sb
    assert sb["landlock"] == (landlock_abi() or False), sb
    assert sb["create_dirs"] == [os.path.realpath(os.path.dirname(control_socket))], sb
    user = helper_user()
    if user:
        assert sb["dropped_root"] is True and (sb["user"], sb["uid"], sb["gid"]) == user, sb
    else:
        assert sb["dropped_root"] is False and sb["uid"] == os.getuid(), sb
    assert_sandboxed(p.proc.pid)


def test_capture_start_outside_refused(sandboxed, control_socket):
    p, c = sandboxed()
    outside = helper_dir(prefix="sn-out-")
    try:
        path = os.path.join(outside, "x.pcap")
        with pytest.raises(ControlError) as e:
            c.call("capture-start", file=path)
        assert e.value.cls == "InvalidArgument", e.value
        assert path in e.value.desc and os.path.dirname(control_socket) in e.value.desc, e.value.desc
        assert not os.path.exists(path)
        # in the control socket's directory it works
        inside = os.path.join(os.path.dirname(control_socket), "in.pcap")
        assert c.call("capture-start", file=inside)["file"] == inside
        c.call("capture-stop")
        assert os.path.getsize(inside) >= 24
    finally:
        shutil.rmtree(outside, ignore_errors=True)
    arp_check(p)


@pytest.mark.skipif(not ROOT, reason="the helper drops root only when started as root")
def test_low_hostfwd_after_drop_says_why(sandboxed):
    with open("/proc/sys/net/ipv4/ip_unprivileged_port_start") as f:
        if int(f.read()) <= 1000:
            pytest.skip("net.ipv4.ip_unprivileged_port_start lets anyone bind port 1000")
    p, c = sandboxed()
    with pytest.raises(ControlError) as e:
        c.call("hostfwd-add", rule="tcp:127.0.0.1:1000-:22")
    assert "Permission denied" in e.value.desc and "dropped its root privileges" in e.value.desc, e.value.desc
    # ports above 1023 still work
    port = harness.free_port()
    assert c.call("hostfwd-add", rule="tcp:127.0.0.1:%d-:22" % port)["host_port"] == port
    arp_check(p)


def test_low_hostfwd_from_the_start_works_as_root(direct):
    if not ROOT:
        pytest.skip("binding a port below 1024 needs root")
    for port in range(1000, 1010):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        break
    p = direct("hostfwd=tcp:127.0.0.1:%d-:22" % port)
    assert_sandboxed(p.proc.pid)
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass  # bound before the drop: the listener is libslirp's, as root made it


def test_forbidden_execve_is_killed(sandboxed):
    p, c = sandboxed()
    need_test_hooks(c)
    p.expect_clean_exit = False
    c.send_raw(json.dumps({"execute": "debug-forbidden", "arguments": {"what": "execve"}}).encode() + b"\n")
    assert c.is_closed(timeout=5), "the helper answered an execve"
    deadline = time.monotonic() + 5
    while p.proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert p.proc.returncode == -signal.SIGSYS, (p.proc.returncode, p.helper_log())


def test_forbidden_open_shadow_is_refused(sandboxed):
    p, c = sandboxed()
    need_test_hooks(c)
    r = c.call("debug-forbidden", what="open-shadow")
    assert r["refused"] is True and r["errno"] in (errno.EACCES, errno.EPERM), r
    arp_check(p)


def test_forbidden_write_outside_is_refused(sandboxed, control_socket):
    p, c = sandboxed()
    need_test_hooks(c)
    # A directory the helper's user owns: the permissions would allow it, only the
    # sandbox (Landlock) refuses.
    outside = helper_dir(prefix="sn-out-")
    try:
        path = os.path.join(outside, "forbidden")
        r = c.call("debug-forbidden", what="write-outside", path=path)
        if not landlock_abi():
            pytest.skip("no Landlock in this kernel: only the permissions guard the file system")
        assert r["refused"] is True and r["errno"] in (errno.EACCES, errno.EPERM), r
        assert not os.path.exists(path)
        # in its own directory it may
        mine = os.path.join(os.path.dirname(control_socket), "allowed")
        assert c.call("debug-forbidden", what="write-outside", path=mine)["refused"] is False, mine
    finally:
        shutil.rmtree(outside, ignore_errors=True)
    arp_check(p)


def test_sandbox_off_is_for_debugging(direct):
    p = direct("sandbox=off")
    st = proc_status(p.proc.pid)
    assert st["NoNewPrivs"] == "0" and st["Seccomp"] == "0", st
    assert "sandbox=off" in p.helper_log()
    arp_check(p)


def test_print_capabilities(helper_path):
    out = subprocess.run([helper_path, "--print-capabilities"], capture_output=True, text=True,
                         timeout=10, check=True).stdout
    caps = json.loads(out)
    assert caps["features"] == ["ipv4", "ipv6", "tftp", "restrict", "exit-with-parent"], caps
    sb = caps["sandbox"]
    assert sb["enabled"] and sb["no_new_privs"] and sb["fds_closed"], sb
    assert sb["seccomp"] == "kill", sb
    assert sb["landlock"] == (landlock_abi() or False), sb
    user = helper_user()
    if user:
        assert sb["dropped_root"] and sb["user"] == user[0], sb
    off = json.loads(subprocess.run([helper_path, "--print-capabilities", "--sandbox=off"],
                                    capture_output=True, text=True, timeout=10, check=True).stdout)
    assert off["sandbox"]["enabled"] is False and off["sandbox"]["seccomp"] is False, off


# ---- started unprivileged: the same, minus the change of user

def unprivileged(helper_path):
    """(helper, argv prefix) to start the helper as an unprivileged user: setpriv to nobody
    when we are root, as it is otherwise."""
    if not ROOT:
        return helper_path, []
    if not shutil.which("setpriv"):
        pytest.skip("setpriv (util-linux) is needed to start the helper unprivileged")
    return "setpriv", ["--reuid=nobody", "--regid=nogroup", "--clear-groups", helper_path]


@pytest.mark.parametrize("kind", ["socket", "dgram", "fd-dgram"])
def test_unprivileged_helper_is_sandboxed(kind, helpers, peers, helper_path, workdir):
    exe, prefix = unprivileged(helper_path)
    ctl = os.path.join(workdir, "ctl.sock")
    if kind == "socket":
        path = os.path.join(workdir, "s.sock")
        h = helpers(prefix + ["--socket", path, "--control", ctl], helper=exe)
        p = peers(StreamPeer.connect(path, h))
    elif kind == "dgram":
        path = os.path.join(workdir, "d.sock")
        h = helpers(prefix + ["--dgram", path, "--control", ctl], helper=exe)
        p = peers(DgramPeer(bound_dgram(workdir, "q.sock"), dest=path, helper=h))
    else:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            h = helpers(prefix + ["--fd", str(theirs.fileno()), "--control", ctl], helper=exe,
                        pass_fds=[theirs.fileno()])
        finally:
            theirs.close()
        p = peers(DgramPeer(ours, None, h))
    arp_check(p)
    st = assert_sandboxed(h.pid, expect_user=False)
    uid = pwd.getpwnam("nobody").pw_uid if ROOT else os.getuid()
    assert status_ids(st, "Uid") == [uid] * 4, st["Uid"]
    assert_only_expected_fds(h.pid)
    with ControlClient(ctl) as c:
        sb = c.call("version")["sandbox"]
        assert sb["dropped_root"] is False and sb["uid"] == uid and sb["seccomp"] == "kill", sb
        assert sb["landlock"] == (landlock_abi() or False), sb
    arp_check(p)



@pytest.mark.skipif(not ROOT, reason="user= applies only to a helper started as root")
def test_user_option(direct):
    daemon = pwd.getpwnam("daemon")
    p = direct("user=daemon")
    st = proc_status(p.proc.pid)
    assert status_ids(st, "Uid") == [daemon.pw_uid] * 4 and status_ids(st, "Gid") == [daemon.pw_gid] * 4, st
    arp_check(p)
    bad = direct("user=no-such-user-here", expect_ok=False)
    assert not bad.ok and "no such user 'no-such-user-here'" in bad.error, bad.error
    root = direct("user=root", expect_ok=False)
    assert not root.ok and "uid or gid 0" in root.error, root.error
