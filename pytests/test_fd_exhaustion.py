# SPDX-License-Identifier: BSD-2-Clause
"""test_fd_exhaustion.py - the helper out of file descriptors (a low RLIMIT_NOFILE): the
--socket and control= listeners turn the excess client away at once (its connection ends,
the control client is told why) instead of leaving it in the backlog, the loop does not
spin, the warnings are rate-limited, and once descriptors are free again clients are served.
"""

import os
import select
import socket
import time

from harness import ControlClient, StreamPeer, ping_check

# Low enough that a few dozen control clients exhaust it (the helper holds about 10 at
# rest), high enough for libslirp's sockets of one ping. The sandbox keeps a lower
# inherited limit (it only ever lowers RLIMIT_NOFILE to min(hard, 65536)).
NOFILE = 32
# Warnings about one listener: LogRateLimit's default burst (10) plus its "suppressed" line.
MAX_WARNINGS = 11


def cpu_seconds(pid):
    """utime + stime of pid, in seconds (/proc/PID/stat fields 14 and 15)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ended(sock, timeout=5.0):
    """What the server's side said before the connection ended (bytes), or None when the
    connection is still open after timeout (the client hangs in the backlog)."""
    sock.setblocking(False)
    data = b""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        r, _, _ = select.select([sock], [], [], left)
        if not r:
            continue
        try:
            chunk = sock.recv(4096)
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


def connect(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(path)   # completes in the backlog whether or not the helper accepts
    return s


def test_out_of_descriptors(helpers, peers, workdir, helper_path):
    sock_path = os.path.join(workdir, "s.sock")
    ctl_path = os.path.join(workdir, "c.sock")
    h = helpers(["--nofile=%d:%d" % (NOFILE, NOFILE), "--", helper_path, "--socket", sock_path,
                 "--control=%s" % ctl_path], helper="/usr/bin/prlimit")
    with open("/proc/%d/limits" % h.pid) as f:
        assert any(l.startswith("Max open files") and l.split()[3] == str(NOFILE) for l in f), \
            "the sandbox raised the inherited RLIMIT_NOFILE"
    guest = peers(StreamPeer.connect(sock_path, h))
    ping_check(guest, seq=1)

    # Control clients until the helper has no descriptor left for one.
    served = []
    refused = None
    for _ in range(NOFILE):
        c = ControlClient(ctl_path)
        c.send_raw(b'{"execute": "version"}\n')
        line = c.read_line(timeout=5)    # old code: no reply, the client hangs in the backlog
        if line.startswith(b'{"return"'):
            served.append(c)
            continue
        refused = line
        assert ended(c.sock) is not None, "the refused client's connection stays open"
        c.close()
        break
    assert refused is not None, "%d control clients were all served" % len(served)
    assert b"out of file descriptors" in refused, refused
    assert len(served) >= 5

    # More excess clients, on both listeners: each one's connection ends at once.
    for i in range(30):
        s = connect(ctl_path if i % 2 else sock_path)
        said = ended(s)
        s.close()
        assert said is not None, "excess client %d on %s left hanging" % (i, s)
    # Left unread in the backlog (as a client that went away would): no spinning on them.
    pending = [connect(p) for p in (sock_path, ctl_path) * 3]
    before, t0 = cpu_seconds(h.pid), time.monotonic()
    time.sleep(2)
    used, wall = cpu_seconds(h.pid) - before, time.monotonic() - t0
    assert used < 0.5, "helper used %.2f s of CPU in %.1f s out of descriptors" % (used, wall)
    for s in pending:
        assert ended(s) is not None
        s.close()

    # The guest was never disturbed.
    ping_check(guest, seq=2)

    # Descriptors free again: new clients are served on both listeners.
    for c in served:
        c.close()
    deadline = time.monotonic() + 5
    while True:
        c = ControlClient(ctl_path)
        try:
            assert "version" in c.call("version")
            break
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)   # the helper notices the closed clients on its next turn
        finally:
            c.close()
    guest.close()
    time.sleep(0.2)
    guest2 = peers(StreamPeer.connect(sock_path, h))
    ping_check(guest2, seq=3)

    # Each listener refused 18 clients or more above: its warnings are rate-limited (the
    # "suppressed" line would come with the first warning of a later interval).
    log = h.log()
    for listener in (sock_path, ctl_path):
        warnings = [l for l in log.splitlines()
                    if "warning" in l and "accepting on '%s'" % listener in l
                    or "accept errors on '%s'" % listener in l]
        assert 1 <= len(warnings) <= MAX_WARNINGS, (listener, len(warnings), warnings)
