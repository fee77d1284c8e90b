# SPDX-License-Identifier: BSD-2-Clause
"""procs.py - processes: the helper as our child (HelperProc, helper_env), /proc look-ups and exit statuses."""

import contextlib
import os
import re
import select
import signal
import subprocess
import tempfile
import time

from .consts import SCALE
from .stats import signal_stats

__all__ = ["default_helper", "helper_env", "child_pids", "proc_state", "open_fds", "listener_inodes",
           "describe_status", "peek_child_status", "wait_child", "read_file", "read_log",
           "remove_file", "HelperProc", "SMALL_SNDBUF", "sanitizer_report", "note_sanitizer_report",
           "take_sanitizer_reports"]

# The kernel's default socket send buffer instead of the helper's 4 MiB (sndbuf=), for
# tests that must fill the link to the guest.
SMALL_SNDBUF = "--sndbuf=106496"


def default_helper():
    """The helper executable: $SLIRPNET_HELPER (meson test and conftest.py set it)."""
    path = os.environ.get("SLIRPNET_HELPER")
    if not path:
        raise RuntimeError("SLIRPNET_HELPER is not set: point it at the built slirpnet helper "
                           "(e.g. SLIRPNET_HELPER=build/plugin/slirpnet)")
    return path


@contextlib.contextmanager
def helper_env(path):
    """Within the block, $SLIRPNET_HELPER is path (libslirpnet spawns the helper it names
    during slirpnet_netbe_init); afterwards it is what it was.  path None: unchanged."""
    if path is None:
        yield
        return
    old = os.environ.get("SLIRPNET_HELPER")
    os.environ["SLIRPNET_HELPER"] = path
    try:
        yield
    finally:
        if old is None:
            del os.environ["SLIRPNET_HELPER"]
        else:
            os.environ["SLIRPNET_HELPER"] = old


def child_pids(exe=None, parent=None):
    """PIDs whose parent is `parent` (default: us) and, if exe is given, run that file."""
    parent = os.getpid() if parent is None else parent
    real = os.path.realpath(exe) if exe else None
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                stat = f.read()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid != parent:
                continue
            if real is not None:
                target = os.readlink("/proc/%s/exe" % name)
                if target.endswith(" (deleted)"):
                    target = target[: -len(" (deleted)")]
                if os.path.realpath(target) != real:
                    continue
            out.append(int(name))
        except (OSError, IndexError, ValueError):
            continue
    return sorted(out)


def proc_state(pid):
    """The /proc state letter of pid ('Z' for a zombie), or None when it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def open_fds():
    """Our open file descriptors, sorted."""
    return sorted(int(x) for x in os.listdir("/proc/self/fd"))


def describe_status(rc):
    """Popen-style return code -> text ('exited with status 1', 'killed by SIGBUS')."""
    if rc is None:
        return "still running"
    if isinstance(rc, int) and rc < 0:
        try:
            return "killed by %s" % signal.Signals(-rc).name
        except ValueError:
            return "killed by signal %d" % -rc
    return "exited with status %s" % rc


def peek_child_status(pid):
    """Exit status of our child pid without reaping it (None while it runs)."""
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return None
    if info is None:
        return None
    if info.si_code == os.CLD_EXITED:
        return info.si_status
    return -info.si_status


def wait_child(proc, timeout):
    """proc.wait(timeout) (a Popen): its exit status, or None while it still runs after timeout s."""
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        return None


def read_file(path):
    """The text of path (undecodable bytes replaced), or "" when it cannot be read."""
    try:
        with open(path, "r", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def read_log(logf, path):
    """The text written so far to the file object logf, open for writing at path (it is
    flushed first, unless already closed)."""
    try:
        logf.flush()
    except ValueError:
        pass
    return read_file(path)


def remove_file(path):
    """Unlink path; a file that is already gone (or cannot go) is no error."""
    try:
        os.unlink(path)
    except OSError:
        pass


# The first line of a report of ASan, LSan or UBSan (the sanitizer build,
# -Db_sanitize=address,undefined): "==123==ERROR: AddressSanitizer: ...", "ERROR:
# LeakSanitizer: detected memory leaks", "file.cpp:12:5: runtime error: ...".
_SANITIZER_LINE = re.compile(r"ERROR: (Address|Leak|Thread|Memory|UndefinedBehavior)Sanitizer"
                             r"|: runtime error: |AddressSanitizer CHECK failed")
_sanitizer_reports = []


def sanitizer_report(text, lines=60):
    """The sanitizer report in a helper's log text (from its first line, at most `lines`
    lines), or None.  A report ends the helper (halt_on_error) but the harness may not be
    looking at its exit status then (a PluginPeer, a killed helper): conftest.py fails the
    test on the text."""
    m = _SANITIZER_LINE.search(text or "")
    if not m:
        return None
    start = text.rfind("\n", 0, m.start()) + 1
    return "\n".join(text[start:].splitlines()[:lines])


def note_sanitizer_report(who, text):
    """Remember the sanitizer report in text (a helper's log), if any, for the running
    test: take_sanitizer_reports() hands them to conftest.py, which fails the test."""
    report = sanitizer_report(text)
    if report:
        _sanitizer_reports.append("%s:\n%s" % (who, report))


def take_sanitizer_reports():
    """The reports noted since the last call (and forget them)."""
    out = list(_sanitizer_reports)
    del _sanitizer_reports[:]
    return out


class HelperProc:
    """`slirpnet ARGS` (e.g. ``["--socket", path]``) with stderr to a log file; waits for
    the 'ready on' line on stdout.  helper: the executable (default $SLIRPNET_HELPER)."""

    def __init__(self, args, pass_fds=(), wait_ready=True, ready_timeout=5.0, helper=None):
        self.args = [helper or default_helper()] + list(args)
        fd, self.log_path = tempfile.mkstemp(prefix="slirpnet-helper-", suffix=".log")
        self._logf = os.fdopen(fd, "w")
        self.proc = subprocess.Popen(self.args, pass_fds=tuple(pass_fds),
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=self._logf)
        self.pid = self.proc.pid
        self.returncode = None
        self.ready_line = None
        if wait_ready:
            self.wait_ready(ready_timeout * SCALE)

    def wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        line = b""
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            r, _, _ = select.select([self.proc.stdout], [], [], max(0.0, left))
            if not r:
                self.kill()
                raise AssertionError("helper %s: no ready line within %.1f s; log:\n%s"
                                     % (self.args, timeout, self.log()))
            ch = os.read(self.proc.stdout.fileno(), 1)
            if not ch:
                rc = self.wait(2)
                raise AssertionError("helper %s exited (%s) before it was ready; log:\n%s"
                                     % (self.args, rc, self.log()))
            line += ch
        self.ready_line = line.decode().strip()
        assert self.ready_line.startswith("slirpnet: ready on "), self.ready_line

    def log(self):
        return read_log(self._logf, self.log_path)

    def alive(self):
        return self.proc.poll() is None

    def wait(self, timeout=None):
        rc = wait_child(self.proc, timeout)
        if rc is not None:
            self.returncode = rc
        return rc

    def stop(self, timeout=5.0):
        """SIGTERM (only this helper) and reap it; returns its exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        rc = self.wait(timeout * SCALE)
        if rc is None:
            self.kill()
            rc = "timeout"
        return rc

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.returncode = self.proc.wait()

    def stats(self, timeout=3.0):
        return signal_stats(self.pid, self.log, timeout * SCALE)

    def close(self):
        if self.proc.poll() is None:
            self.kill()
        note_sanitizer_report("helper %s" % self.args, self.log())
        if self.proc.stdout:
            self.proc.stdout.close()
        try:
            self._logf.close()
        except OSError:
            pass
        remove_file(self.log_path)


def listener_inodes(pid, ports):
    """{port: socket inode} of the TCP listeners on these ports that pid holds open."""
    held = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            m = re.fullmatch(r"socket:\[(\d+)\]", os.readlink("/proc/%d/fd/%s" % (pid, fd)))
        except OSError:
            continue
        if m:
            held.add(int(m.group(1)))
    found = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            next(f)
            for line in f:
                cols = line.split()
                port = int(cols[1].rsplit(":", 1)[1], 16)
                if cols[3] == "0A" and port in ports and int(cols[9]) in held:   # LISTEN
                    found[port] = int(cols[9])
    return found
