# SPDX-License-Identifier: BSD-2-Clause
"""test_local_sockets.py - who may use the helper's local files: socket modes and group, peer
uids (SO_PEERCRED, SCM_CREDENTIALS), the --dgram peer address, the pid file, pcap-max=, and
libslirpnet refusing a bad virtio-net header from a (fake) helper.

The uid tests run a client as nobody (setpriv) and need root; they are skipped otherwise."""

import os
import stat
import subprocess
import sys
import time

import pytest

from harness import ControlClient, DgramPeer, PluginPeer, StreamPeer, arp_check, bound_dgram

NOBODY = 65534
NOGROUP = 65534
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="runs a client as another uid")
# Started as root, the sandboxed helper becomes nobody once its sockets are bound: it can
# then neither reach a peer socket nor remove a file in root's private test directory.
# The tests of the files' own rules run it unsandboxed there (the sandbox has tests of its own).
UNSANDBOXED = ["--sandbox=off"] if os.geteuid() == 0 else []


def mode_of(path):
    st = os.lstat(path)
    assert stat.S_ISSOCK(st.st_mode), path
    return stat.S_IMODE(st.st_mode), st.st_gid


def as_nobody(code, *args):
    """Run python code as nobody:nogroup (no other groups); returns its stdout, stripped."""
    r = subprocess.run(["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOGROUP, "--clear-groups",
                        sys.executable, "-c", code] + [str(a) for a in args],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


# A stream client: connect, then say whether the helper closed it ("eof") or kept it ("open").
STREAM_CLIENT = r'''
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
s.settimeout(1.0)
try:
    print("eof" if s.recv(1) == b"" else "data")
except socket.timeout:
    print("open")
'''

# A datagram sender bound to its own address: one ARP request to the helper.
DGRAM_SENDER = r'''
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[2])
arp = bytes.fromhex("ffffffffffff525400123456080600010800060400015254001234560a02020f0000000000000a020202")
s.sendto(arp + bytes(60 - len(arp)), sys.argv[1])
print("sent")
'''


@pytest.fixture
def umask0():
    old = os.umask(0)
    yield
    os.umask(old)


def test_sockets_are_0600_whatever_the_umask(helpers, workdir, umask0):
    sock, ctl, dgram = (os.path.join(workdir, n) for n in ("s.sock", "ctl.sock", "d.sock"))
    h = helpers(["--socket", sock, "--control=" + ctl])
    assert mode_of(sock)[0] == 0o600
    assert mode_of(ctl)[0] == 0o600
    helpers(["--dgram", dgram])
    assert mode_of(dgram)[0] == 0o600
    assert h.alive()


@as_root
def test_socket_group_makes_them_0660_and_that_group(helpers, workdir, umask0):
    os.umask(0o077)                      # would strip the group's bits from a mode set by umask
    sock, dgram = os.path.join(workdir, "s.sock"), os.path.join(workdir, "d.sock")
    ctl = os.path.join(workdir, "ctl.sock")
    helpers(["--socket", sock, "--socket-group=nogroup", "--control=" + ctl])
    assert mode_of(sock) == (0o660, NOGROUP)
    assert mode_of(ctl) == (0o660, NOGROUP)
    helpers(["--dgram", dgram, "--socket-group=%d" % NOGROUP])
    assert mode_of(dgram) == (0o660, NOGROUP)


def test_unknown_socket_group_is_an_error(helper_path, workdir):
    r = subprocess.run([helper_path, "--socket", os.path.join(workdir, "s.sock"),
                        "--socket-group=no-such-group-x"], capture_output=True, text=True, timeout=20)
    assert r.returncode != 0 and "no-such-group-x" in r.stderr, r.stderr


@as_root
def test_stream_client_of_another_uid_is_refused(helpers, workdir):
    os.chmod(workdir, 0o711)
    sock = os.path.join(workdir, "s.sock")
    # The group lets nobody reach the socket file: only the uid check stands in the way.
    h = helpers(["--socket", sock, "--socket-group=nogroup"])
    assert as_nobody(STREAM_CLIENT, sock) == "eof"
    st = h.stats()
    assert st["refused_peers"] == 1, st
    assert "refused a client" in h.log() and "uid %d" % NOBODY in h.log()
    # The helper's own uid is served as ever.
    p = StreamPeer.connect(sock, h)
    try:
        arp_check(p)
    finally:
        p.close()


@as_root
def test_stream_peer_uid_option_admits_that_uid(helpers, workdir):
    os.chmod(workdir, 0o711)
    sock = os.path.join(workdir, "s.sock")
    h = helpers(["--socket", sock, "--socket-group=nogroup", "--peer-uid=%d" % NOBODY])
    assert as_nobody(STREAM_CLIENT, sock) == "open"
    assert h.stats()["refused_peers"] == 0


@as_root
def test_dgram_sender_of_another_uid_is_refused_and_cannot_become_the_peer(helpers, peers, workdir):
    os.chmod(workdir, 0o777)             # nobody binds its own address here
    path = os.path.join(workdir, "h.sock")
    h = helpers(["--dgram", path, "--socket-group=nogroup"] + UNSANDBOXED)
    assert as_nobody(DGRAM_SENDER, path, os.path.join(workdir, "evil.sock")) == "sent"
    for _ in range(50):
        if h.stats()["refused_peers"]:
            break
        time.sleep(0.02)
    st = h.stats()
    assert st["refused_peers"] == 1 and st["from_guest_frames"] == 0, st
    assert "uid %d" % NOBODY in h.log()
    # The first allowed sender is the peer, not the refused one.
    a = peers(DgramPeer(bound_dgram(workdir, "qa.sock"), dest=path, helper=h))
    arp_check(a)


def test_dgram_peer_option_serves_only_that_address(helpers, peers, workdir):
    path = os.path.join(workdir, "h.sock")
    qemu = os.path.join(workdir, "qemu.sock")
    h = helpers(["--dgram", path, "--dgram-peer=" + qemu] + UNSANDBOXED)
    # Before QEMU: another local writer cannot take its place.
    other = peers(DgramPeer(bound_dgram(workdir, "other.sock"), dest=path, helper=h))
    other.send(bytes.fromhex("ffffffffffff525400123456080600010800060400015254001234560a02020f"
                             "0000000000000a020202") + bytes(18))
    for _ in range(50):
        if h.stats()["drop_foreign_sender"]:
            break
        time.sleep(0.02)
    st = h.stats()
    assert st["drop_foreign_sender"] == 1 and st["from_guest_frames"] == 0, st
    assert "other.sock" in h.log()
    q = peers(DgramPeer(bound_dgram(workdir, "qemu.sock"), dest=path, helper=h))
    arp_check(q)


# ---- the pid file

def start_with_pid(helper_path, workdir, pid_path, name="s.sock"):
    return subprocess.Popen([helper_path, "--socket", os.path.join(workdir, name), "--pid", pid_path] + UNSANDBOXED,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_ready(p):
    line = p.stdout.readline()
    assert line.startswith("slirpnet: ready on"), (line, p.stderr.read() if p.poll() is not None else "")


def stop(p):
    p.terminate()
    _, err = p.communicate(timeout=10)
    return p.returncode, err


def test_pid_file_written_held_and_removed(helper_path, workdir):
    pid_path = os.path.join(workdir, "helper.pid")
    p = start_with_pid(helper_path, workdir, pid_path)
    try:
        wait_ready(p)
        assert open(pid_path).read() == "%d\n" % p.pid
        # A second helper is refused while the first holds the file.
        r = subprocess.run([helper_path, "--socket", os.path.join(workdir, "t.sock"), "--pid", pid_path],
                           capture_output=True, text=True, timeout=20)
        assert r.returncode != 0 and "held by a running helper (pid %d)" % p.pid in r.stderr, r.stderr
        assert open(pid_path).read() == "%d\n" % p.pid
    finally:
        rc, err = stop(p)
    assert rc == 0, err
    assert not os.path.exists(pid_path)


def test_pid_file_symlink_refused(helper_path, workdir):
    target = os.path.join(workdir, "target")
    with open(target, "w") as f:
        f.write("precious\n")
    pid_path = os.path.join(workdir, "helper.pid")
    os.symlink(target, pid_path)
    r = subprocess.run([helper_path, "--socket", os.path.join(workdir, "s.sock"), "--pid", pid_path],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode != 0 and "symbolic link" in r.stderr, r.stderr
    assert open(target).read() == "precious\n"
    assert os.path.islink(pid_path)


def test_stale_pid_file_taken_over_and_a_replaced_one_left(helper_path, workdir):
    pid_path = os.path.join(workdir, "helper.pid")
    with open(pid_path, "w") as f:
        f.write("999999\n")                  # a helper that died: nobody holds the lock
    p = start_with_pid(helper_path, workdir, pid_path)
    try:
        wait_ready(p)
        assert open(pid_path).read() == "%d\n" % p.pid
        # Someone replaced the file meanwhile: at exit the helper leaves theirs alone.
        os.unlink(pid_path)
        with open(pid_path, "w") as f:
            f.write("12345\n")
    finally:
        rc, err = stop(p)
    assert rc == 0, err
    assert open(pid_path).read() == "12345\n"


# ---- pcap-max=

def test_pcap_max_stops_the_capture(helpers, workdir):
    sock, ctl = os.path.join(workdir, "s.sock"), os.path.join(workdir, "ctl.sock")
    pcap = os.path.join(workdir, "cap.pcap")
    limit = 4096
    h = helpers(["--socket", sock, "--control=" + ctl, "--pcap=" + pcap, "--pcap-max=%d" % limit])
    p = StreamPeer.connect(sock, h)
    c = ControlClient(ctl)
    try:
        for _ in range(60):                 # 60-byte ARP frames both ways: 76 bytes a record
            arp_check(p)
        cap = c.call("stats")["capture"]
        assert cap["stopped"] == "size limit", cap
        assert cap["max_bytes"] == limit and cap["unrecorded"] > 0, cap
        assert "pcap-max" in h.log()
    finally:
        c.close()
        p.close()
    size = os.path.getsize(pcap)
    assert 24 < size <= limit
    # Whole records only: header + n * (16 + 60 or 42 bytes)
    from scapy.utils import rdpcap
    assert len(rdpcap(pcap)) == cap["frames"]


def test_pcap_symlink_refused(helper_path, workdir):
    target = os.path.join(workdir, "target")
    with open(target, "w") as f:
        f.write("precious\n")
    pcap = os.path.join(workdir, "cap.pcap")
    os.symlink(target, pcap)
    r = subprocess.run([helper_path, "--socket", os.path.join(workdir, "s.sock"), "--pcap=" + pcap],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode != 0 and "symbolic link" in r.stderr, r.stderr
    assert open(target).read() == "precious\n"


# ---- libslirpnet checks what the helper sends

BAD_HEADER_HELPER = r'''#!/usr/bin/python3
# A stand-in for a compromised helper: answers the config, then sends frames whose
# virtio-net header does not describe them, and last a good plain frame.
import socket, struct
from gi.repository import GLib
s = socket.socket(fileno=3)
s.setblocking(True)
s.recv(1 << 20)
s.send(GLib.Variant("(bs)", (True, "")).get_data_as_bytes().get_data())
def hdr(flags=0, gso=0, hdr_len=0, gso_size=0, start=0, offset=0):
    return struct.pack("<BBHHHHH", flags, gso, hdr_len, gso_size, start, offset, 0)
for h, body in [
    (hdr(flags=4), b"F" * 60),                          # an unknown flag
    (hdr(gso=0x80), b"E" * 60),                         # ECN without a GSO type
    (hdr(hdr_len=200), b"L" * 60),                      # hdr_len beyond the frame
    (hdr(), b"B" * 3000),                               # larger than mtu + 14
    (hdr(), b"R" * 10),                                 # shorter than an Ethernet header
]:
    s.send(h + body)
s.send(hdr() + b"P" * 42)
while s.recv(1 << 17):
    pass
'''

BAD_CSUM_HELPER = BAD_HEADER_HELPER.replace(
    '''    (hdr(flags=4), b"F" * 60),                          # an unknown flag''',
    '''    (hdr(flags=1, start=50, offset=16), b"C" * 60),     # checksum field beyond the frame
    (hdr(flags=1, start=4, offset=6), b"S" * 60),       # checksum starting inside Ethernet''')


@pytest.mark.parametrize("script", [BAD_HEADER_HELPER, BAD_CSUM_HELPER], ids=["header", "csum"])
def test_plugin_drops_frames_with_a_bad_vnet_header(lib_path, tmp_path, script):
    fake = tmp_path / "fake-helper"
    fake.write_text(script)
    fake.chmod(0o755)
    p = PluginPeer("slirp", lib=lib_path, helper=str(fake), auto_drain=False, rx=False, prime=False)
    try:
        if script is BAD_CSUM_HELPER:
            p.set_cap(0x3, 12)                  # CSUM | GUEST_CSUM: NEEDS_CSUM frames are allowed
        n = p.wait_peek()
        hl = 12 if script is BAD_CSUM_HELPER else 0
        assert n == 42 + hl, "peek_recvlen reported %d: a bad frame got through" % n
        ret, err, data = p.be_recv(n)
        assert ret == n and data[hl:] == b"P" * 42
        assert p.be_peek() == (0, 0)
    finally:
        p.close()
