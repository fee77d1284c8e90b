# SPDX-License-Identifier: BSD-2-Clause
"""session.py - what `run` and `guest-run` share: logging, versions, the machine's metadata, the rig's directories, a session's start, early end and exit status."""

import datetime
import os
import platform
import shutil
import signal
import sys
import tempfile
import time

from . import netns
from .proc import Processes, RigError, run

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def version(argv):
    """The first line argv prints (stdout, else stderr), or '?'."""
    try:
        cp = run(argv, timeout=10, check=False)
        return ((cp.stdout or cp.stderr).strip().splitlines() or ["?"])[0]
    except (RigError, OSError):
        return "?"


def dpkg_version(package):
    return version(["dpkg-query", "-W", "-f", "${Version}", package])


def describe_build(src, helper, untracked=True):
    """'COMMIT[+dirty] (helper --version)': src's git commit, +dirty when its tree has changes
    (untracked files count unless untracked is False), and what the helper says it is."""
    git = version(["git", "-C", src, "rev-parse", "--short", "HEAD"])
    status = ["git", "-C", src, "status", "--porcelain"] + ([] if untracked else ["--untracked-files=no"])
    dirty = run(status, check=False).stdout.strip()
    return "%s%s (%s)" % (git, "+dirty" if dirty else "", version([helper, "--version"]))


def loadavg():
    with open("/proc/loadavg") as f:
        return f.read().split()[:3]


def machine_meta(helper):
    """The metadata both reports start with: date, machine, load, slirpnet (this checkout and
    helper) and the versions of iperf3, libslirp and passt."""
    return {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "kernel": platform.release(), "cpus": os.cpu_count(), "loadavg_start": loadavg(),
        "slirpnet": describe_build(REPO, helper), "iperf3": version(["iperf3", "--version"]),
        "libslirp": dpkg_version("libslirp0"), "passt": dpkg_version("passt"),
    }


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt("signal %d" % signum)


def begin(out, prefix):
    """Start a session: from now on SIGTERM and SIGHUP interrupt it as ^C does (it cleans
    up), and namespaces an earlier run left behind are removed. Returns its output
    directory: out, else /tmp/PREFIX-DATE-TIME."""
    for s in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, _raise_interrupt)
    netns.remove_stale()
    return out or "/tmp/%s-%s" % (prefix, datetime.datetime.now().strftime("%Y%m%d-%H%M%S"))


def split_available(prog, candidates, why_not):
    """(selected, skipped) of candidates (they have a .name): why_not(c) says why c cannot run
    here, None when it can; skipped lists (name, why), each also logged."""
    selected, skipped = [], []
    for c in candidates:
        why = why_not(c)
        (skipped.append((c.name, why)) if why else selected.append(c))
    for name, why in skipped:
        log("%s: skipping %s: %s" % (prog, name, why))
    return selected, skipped


class RigBase:
    """What a rig owns: outdir, its logs/ (procs: the rig's processes log there), a socket
    directory (sockdir) and the namespace its runs happen in (ns, once made); close() stops
    the processes and removes the namespace and the socket directory."""

    def __init__(self, outdir, sock_prefix):
        self.outdir = outdir
        self.logdir = os.path.join(outdir, "logs")
        os.makedirs(self.logdir, exist_ok=True)
        self.procs = Processes(self.logdir)
        # passt drops to "nobody" before it binds its socket: the directory must let it.
        self.sockdir = tempfile.mkdtemp(prefix=sock_prefix)
        os.chmod(self.sockdir, 0o1777)
        self.ns = None

    def close(self):
        self.procs.stop_all()
        if self.ns:
            self.ns.delete()
        shutil.rmtree(self.sockdir, ignore_errors=True)


class Session:
    """The runs of one session of prog ('bench', 'guest-bench'), timed from its creation.
    `with session:` around them ends them early, logged, on a KeyboardInterrupt (.interrupted)
    or a RigError (.error); the caller's cleanup follows, then finish()."""

    def __init__(self, prog):
        self.prog = prog
        self.start = time.monotonic()
        self.interrupted = False
        self.error = None

    def __enter__(self):
        return self

    def __exit__(self, kind, e, tb):
        if kind is not None and issubclass(kind, KeyboardInterrupt):
            self.interrupted = True
            log("%s: interrupted; cleaning up" % self.prog)
            return True
        if kind is not None and issubclass(kind, RigError):
            self.error = e
            log("%s: %s" % (self.prog, e))
            return True
        return False

    def stamp(self, meta):
        """Record the load and the elapsed seconds at the end in meta."""
        meta["loadavg_end"] = loadavg()
        meta["elapsed_s"] = round(time.monotonic() - self.start)

    def finish(self, outdir, meta, failed, what):
        """After the report is written to outdir: the exit status (130 interrupted, 1 when
        failed (a count of `what`) is not 0, else 0)."""
        log("%s: %s/results.md and results.json written (%d s)" % (self.prog, outdir, meta["elapsed_s"]))
        if self.interrupted:
            return 130
        if failed:
            log("%s: %d %s" % (self.prog, failed, what))
            return 1
        return 0
