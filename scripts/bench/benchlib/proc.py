# SPDX-License-Identifier: BSD-2-Clause
"""proc.py - start, watch and stop the rig's processes (by pid only); CPU seconds of process trees."""

import os
import select
import signal
import subprocess
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")


class RigError(Exception):
    """Something the rig needed did not happen (a process did not start, a port never opened)."""


def wait_for(cond, timeout, what, interval=0.02):
    """Poll cond() until it is true; RigError naming `what` after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if cond():
            return
        if time.monotonic() >= deadline:
            raise RigError("timed out after %.0f s waiting for %s" % (timeout, what))
        time.sleep(interval)


def run(argv, timeout=30, check=True, env=None):
    """Run a short command to completion (bounded); returns CompletedProcess."""
    try:
        cp = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                            timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        raise RigError("%s: no answer within %s s" % (" ".join(argv), timeout))
    if check and cp.returncode != 0:
        raise RigError("%s: exit %d: %s" % (" ".join(argv), cp.returncode,
                                             (cp.stderr or cp.stdout).strip()[-500:]))
    return cp


def _stat(pid):
    """(ppid, utime+stime ticks, starttime) of pid, or None when it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            s = f.read()
    except OSError:
        return None
    # comm may hold spaces and parentheses: the fields start after the last ')'.
    fields = s[s.rindex(")") + 2:].split()
    return int(fields[1]), int(fields[11]) + int(fields[12]), int(fields[19])


def comm(pid):
    try:
        with open("/proc/%d/comm" % pid) as f:
            return f.read().strip()
    except OSError:
        return "?"


def descendants(roots):
    """roots and every live process below them (one scan of /proc)."""
    children = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = _stat(int(d))
            if st:
                children.setdefault(st[0], []).append(int(d))
    out, todo = [], [r for r in roots if _stat(r)]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_snapshot(roots):
    """{pid: (comm, cpu seconds)} for the trees under roots (threads included by /proc)."""
    snap = {}
    for p in descendants(roots):
        st = _stat(p)
        if st:
            snap[p] = (comm(p), st[1] / CLK_TCK)
    return snap


def rss_kib(pid):
    """VmRSS of pid in KiB, or None when it is gone."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def fd_count(pid):
    """Open file descriptors of pid, or None when it is gone."""
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return None


def cpu_seconds(pid):
    """utime+stime of pid (all its threads) in seconds, or None when it is gone."""
    st = _stat(pid)
    return st[1] / CLK_TCK if st else None


def cpu_delta(before, after):
    """CPU seconds spent between two snapshots: total and per command name."""
    per = {}
    for pid, (comm, secs) in after.items():
        d = secs - before.get(pid, (comm, 0.0))[1]
        per[comm] = per.get(comm, 0.0) + d
    return sum(per.values()), per


def listening(pid, port, proto="tcp"):
    """True when the network namespace of pid has a socket bound to port (TCP: listening).

    /proc/PID/net/* shows PID's namespace, so the rig never has to enter one to check."""
    want = ":%04X" % port
    try:
        with open("/proc/%d/net/%s" % (pid, proto)) as f:
            next(f)
            for line in f:
                cols = line.split()
                if cols[1].endswith(want) and (proto != "tcp" or cols[3] == "0A"):
                    return True
    except OSError:
        pass
    return False


class Processes:
    """Every long-running process the rig starts; stop() / stop_all() end them by pid."""

    def __init__(self, logdir):
        self.logdir = logdir
        self.procs = []  # (name, Popen), oldest first

    def start(self, name, argv, ready_line=None, timeout=10.0, env=None, pass_fds=()):
        """Start argv, stderr (and stdout unless ready_line) to logs/NAME.log.

        With ready_line, wait (bounded) until the process prints that line on stdout."""
        log = open(os.path.join(self.logdir, name + ".log"), "ab")
        log.write(("$ %s\n" % " ".join(argv)).encode())
        log.flush()
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE if ready_line else log, stderr=log,
                             env=env, pass_fds=pass_fds,
                             # Own session: a ^C at the terminal reaches the rig, which then
                             # stops everything in order, not every process at once.
                             start_new_session=True)
        log.close()
        self.procs.append((name, p))
        if ready_line:
            self._await_line(name, p, ready_line, timeout)
        return p

    def _await_line(self, name, p, line, timeout):
        deadline = time.monotonic() + timeout
        buf = b""
        fd = p.stdout.fileno()
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RigError("%s: no '%s' within %.0f s (see %s.log)" % (name, line, timeout, name))
            r, _, _ = select.select([fd], [], [], left)
            if not r:
                continue
            chunk = os.read(fd, 4096)
            if not chunk:
                raise RigError("%s exited (status %s) before '%s' (see %s/%s.log)"
                               % (name, p.wait(), line, self.logdir, name))
            buf += chunk
            if (line + "\n").encode() in buf:
                return

    def stop(self, p, grace=3.0):
        """SIGTERM p, SIGKILL after grace; then any process of its tree that outlived it."""
        if p.poll() is None:
            tree = [q for q in descendants([p.pid]) if q != p.pid]
            starts = {q: (_stat(q) or (0, 0, 0))[2] for q in tree}
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(grace)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            for q in tree:
                st = _stat(q)
                # The same process (not a reused pid) still there: its parent left it behind.
                if st and st[2] == starts[q]:
                    try:
                        os.kill(q, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
        if p.stdout:
            p.stdout.close()
        self.procs = [(n, q) for n, q in self.procs if q is not p]

    def stop_all(self):
        """Stop every process still running, newest first (clients before their servers)."""
        for _, p in reversed(list(self.procs)):
            self.stop(p)
