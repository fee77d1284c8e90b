# SPDX-License-Identifier: BSD-2-Clause
"""capture_fixtures.py - the helper's own capture (pcap=FILE) for tests: fixtures, a pcap reader, tshark.

The harness's ``peer.log`` records what the *test* sent and received; these helpers look
at what the *helper* recorded with ``pcap=FILE`` (libpcap's dump API), which is what a user
of slirpnet sees in Wireshark.

Fixtures (import them into a test module: ``from capture_fixtures import captured``):

``captured(options="", kind="direct", **kw)``
    Factory: starts a peer (``"direct"``: DirectPeer, ``"plugin"``: PluginPeer) with
    ``pcap=<tmp>/<name>.pcap`` added to its options; returns the peer, with
    ``peer.capture`` a ``CaptureFile`` for that file.
``control_socket``
    A fresh socket path in a short temporary directory (sun_path holds 107 bytes).

Helpers:

``CaptureFile(path)``
    ``.records()`` parses the file (``PcapRecord`` tuples), ``.wait_records(n)`` polls until
    at least n records are on disk (the helper flushes at most every 100 ms),
    ``.protocols()`` runs tshark on it, ``.assert_decodes()`` checks tshark reads it cleanly.
``read_pcap(path)``      header and records of a classic pcap file, strictly checked
``tshark_protocols(path)``  one ``frame.protocols`` string per frame (tshark -T fields)
``protocol_mix(path)``   Counter of protocol names over all frames
``ControlClient(path)``  line-delimited JSON client for ``control=PATH``:
                         ``.call("stats")`` -> the "return" value (raises ControlError),
                         ``.request(obj_or_text)`` -> the whole reply dict
"""

import collections
import json
import os
import select
import shutil
import socket
import struct
import subprocess
import tempfile
import time

import pytest

import harness

PCAP_MAGIC_US = 0xA1B2C3D4
LINKTYPE_ETHERNET = 1

PcapRecord = collections.namedtuple("PcapRecord", "ts caplen origlen data")
PcapHeader = collections.namedtuple("PcapHeader", "magic major minor snaplen linktype")


class PcapError(AssertionError):
    pass


def read_pcap(path, allow_partial=False):
    """(PcapHeader, [PcapRecord]) of a classic microsecond pcap file.

    A file that ends inside a record raises PcapError unless allow_partial (then the
    partial record is dropped)."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 24:
        raise PcapError("%s: %d bytes, shorter than a pcap header" % (path, len(data)))
    # Written in the host's byte order: the magic tells which.
    order = "<" if struct.unpack("<I", data[:4])[0] == PCAP_MAGIC_US else ">"
    magic, major, minor, _, _, snaplen, linktype = struct.unpack(order + "IHHiIII", data[:24])
    if magic != PCAP_MAGIC_US:
        raise PcapError("%s: magic %#x is not classic microsecond pcap" % (path, magic))
    header = PcapHeader(magic, major, minor, snaplen, linktype)
    records = []
    off = 24
    while off < len(data):
        if off + 16 > len(data):
            if allow_partial:
                break
            raise PcapError("%s: file ends inside a record header at %d" % (path, off))
        sec, usec, caplen, origlen = struct.unpack(order + "IIII", data[off: off + 16])
        if off + 16 + caplen > len(data):
            if allow_partial:
                break
            raise PcapError("%s: file ends inside a record at %d" % (path, off))
        if usec >= 1000000 or caplen > origlen or caplen > snaplen:
            raise PcapError("%s: bad record at %d: usec=%d caplen=%d origlen=%d snaplen=%d"
                            % (path, off, usec, caplen, origlen, snaplen))
        records.append(PcapRecord(sec + usec / 1e6, caplen, origlen,
                                  data[off + 16: off + 16 + caplen]))
        off += 16 + caplen
    return header, records


def tshark_path():
    path = shutil.which("tshark")
    if not path:
        pytest.fail("tshark is not installed (apt-get install tshark; scripts/install-deps)")
    return path


def run_tshark(path, *args):
    """tshark -r path ARGS; asserts a clean read (exit 0, no 'cut short'/'damaged')."""
    r = subprocess.run([tshark_path(), "-n", "-r", path] + list(args),
                       capture_output=True, text=True, timeout=60)
    err = "\n".join(line for line in r.stderr.splitlines()
                    if "Running as user" not in line)
    assert r.returncode == 0, "tshark -r %s failed (%d): %s" % (path, r.returncode, err)
    for bad in ("cut short", "damaged", "corrupt", "isn't a capture file"):
        assert bad not in err, "tshark on %s: %s" % (path, err)
    return r.stdout


def tshark_protocols(path):
    """One 'eth:ethertype:ip:icmp:data'-style string per frame, as tshark decodes them."""
    out = run_tshark(path, "-T", "fields", "-e", "frame.protocols")
    return [line.strip() for line in out.splitlines() if line.strip()]


def protocol_mix(path):
    """Counter: protocol name -> number of frames that contain it (tshark's names)."""
    mix = collections.Counter()
    for stack in tshark_protocols(path):
        for proto in set(stack.split(":")):
            mix[proto] += 1
    return mix


class CaptureFile:
    """A pcap file the helper writes."""

    def __init__(self, path):
        self.path = path

    def header(self):
        return read_pcap(self.path)[0]

    def records(self, allow_partial=False):
        return read_pcap(self.path, allow_partial)[1]

    def frames(self):
        return [r.data for r in self.records()]

    def wait_records(self, n, timeout=None):
        """Poll until at least n whole records are on disk; returns the records."""
        timeout = harness.timeout_or(timeout, harness.POSITIVE_TIMEOUT)
        deadline = time.monotonic() + timeout
        while True:
            try:
                recs = self.records()
            except (OSError, PcapError):
                recs = []
            if len(recs) >= n or time.monotonic() > deadline:
                assert len(recs) >= n, "%s: %d records after %.1f s, expected >= %d" % (
                    self.path, len(recs), timeout, n)
                return recs
            time.sleep(0.02)

    def protocols(self):
        return tshark_protocols(self.path)

    def mix(self):
        return protocol_mix(self.path)

    def assert_decodes(self, expect=(), count=None):
        """tshark reads the file cleanly, as many frames as our reader, with each of the
        protocols in expect somewhere; returns the protocol mix."""
        stacks = self.protocols()
        recs = self.records()
        assert len(stacks) == len(recs), "tshark saw %d frames, the file has %d" % (
            len(stacks), len(recs))
        if count is not None:
            assert len(recs) == count, "%d frames captured, expected %d" % (len(recs), count)
        mix = protocol_mix(self.path)
        for proto in expect:
            assert mix[proto] > 0, "no %s frame in %s; protocols: %s" % (
                proto, self.path, dict(mix))
        return mix


# --------------------------------------------------------------------------------------
# control socket client

class ControlError(AssertionError):
    def __init__(self, cls, desc, reply):
        super().__init__("%s: %s" % (cls, desc))
        self.cls, self.desc, self.reply = cls, desc, reply


class ControlClient:
    """One connection to a helper's control socket (line-delimited JSON)."""

    def __init__(self, path, timeout=None, connect_timeout=None):
        self.path = path
        self.timeout = harness.timeout_or(timeout, harness.POSITIVE_TIMEOUT)
        deadline = time.monotonic() + harness.timeout_or(connect_timeout, harness.POSITIVE_TIMEOUT)
        while True:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                self.sock.connect(path)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                self.sock.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        self.buf = b""

    def send_raw(self, data):
        self.sock.sendall(data)

    def read_line(self, timeout=None):
        """One reply line as bytes; b'' on EOF; AssertionError on timeout."""
        deadline = time.monotonic() + harness.timeout_or(timeout, self.timeout)
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no reply line on %s within the timeout" % self.path)
            r, _, _ = select.select([self.sock], [], [], left)
            if not r:
                continue
            chunk = self.sock.recv(65536)
            if not chunk:
                out, self.buf = self.buf, b""
                return out
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line

    def read_reply(self, timeout=None):
        line = self.read_line(timeout)
        assert line, "connection closed without a reply"
        return json.loads(line)

    def request(self, req, timeout=None):
        """Send a request (dict, or str/bytes sent as they are plus '\\n'); return the reply."""
        if isinstance(req, dict):
            data = json.dumps(req).encode()
        elif isinstance(req, str):
            data = req.encode()
        else:
            data = bytes(req)
        self.send_raw(data + b"\n")
        return self.read_reply(timeout)

    def call(self, command, **arguments):
        """execute command; returns its "return" value or raises ControlError."""
        req = {"execute": command}
        if arguments:
            req["arguments"] = arguments
        reply = self.request(req)
        if "error" in reply:
            raise ControlError(reply["error"]["class"], reply["error"]["desc"], reply)
        assert set(reply) == {"return"}, reply
        return reply["return"]

    def is_closed(self, timeout=1.0):
        """True when the server closed the connection (EOF or reset) within timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r, _, _ = select.select([self.sock], [], [], 0.05)
            if r:
                try:
                    chunk = self.sock.recv(65536)
                except (ConnectionResetError, BrokenPipeError):
                    return True
                if not chunk:
                    return True
                self.buf += chunk
        return False

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# --------------------------------------------------------------------------------------
# fixtures

@pytest.fixture
def control_socket():
    """A socket path in a fresh short directory (removed afterwards)."""
    d = tempfile.mkdtemp(prefix="slirpnet-ctl-")
    yield os.path.join(d, "ctl.sock")
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def captured(request, tmp_path, direct, plugin):
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
        p.capture = CaptureFile(path)
        return p

    return factory
