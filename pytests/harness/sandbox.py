# SPDX-License-Identifier: BSD-2-Clause
"""sandbox - what the helper's sandbox changes for a test: the user it runs as, the
directories and sockets that user must be able to use, /proc/PID/status.

Started as root (CI runs everything as root), the helper becomes ``user=`` (default: the
``slirpnet`` user if it exists, else ``nobody``) once its sockets are bound.  Whatever it
touches after that - its socket and pid files at exit, ``capture-start`` files, the
``tftp=`` directory, a ``--dgram`` peer's socket - must be usable by that user: tests
get such places from ``helper_dir()`` (conftest's ``tmp_path``, ``workdir`` and
``control_socket`` fixtures use it) and hand sockets over with ``give_to_helper()``.
"""

import os
import pwd
import tempfile

__all__ = ["helper_user", "helper_dir", "give_to_helper", "proc_status", "status_ids"]


def helper_user():
    """(name, uid, gid) the helper becomes when started by this process, or None when it
    keeps our user (we are not root)."""
    if os.geteuid() != 0:
        return None
    for name in ("slirpnet", "nobody"):
        try:
            pw = pwd.getpwnam(name)
        except KeyError:
            continue
        return name, pw.pw_uid, pw.pw_gid
    raise RuntimeError("neither a 'slirpnet' nor a 'nobody' user exists for the helper to become")


def give_to_helper(path):
    """Make path (a directory, a file or a bound socket of ours) the helper's user's, so
    that the helper can still use it once it has dropped root."""
    user = helper_user()
    if user is not None:
        os.chown(path, user[1], user[2])
    return path


def helper_dir(prefix="sn-"):
    """A fresh short directory (UNIX socket paths are limited to 107 bytes) that the
    helper can create and remove files in, also after it has dropped root; the caller
    removes it."""
    return give_to_helper(tempfile.mkdtemp(prefix=prefix))


def proc_status(pid):
    """/proc/PID/status as a dict of field -> text."""
    fields = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return fields


def status_ids(status, key):
    """The real, effective, saved and filesystem ids of a Uid:/Gid: line, as ints."""
    return [int(x) for x in status[key].split()]
