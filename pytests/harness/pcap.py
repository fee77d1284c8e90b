# SPDX-License-Identifier: BSD-2-Clause
"""pcap.py - the helper's own capture files (pcap=FILE): a strict reader, tshark's view of them, CaptureFile."""

import collections
import shutil
import struct
import subprocess
import time

from .consts import POSITIVE_TIMEOUT, timeout_or

__all__ = ["PCAP_MAGIC_US", "LINKTYPE_ETHERNET", "PcapRecord", "PcapHeader", "PcapError",
           "read_pcap", "tshark_path", "run_tshark", "tshark_protocols", "protocol_mix",
           "CaptureFile"]

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
        raise AssertionError("tshark is not installed (apt-get install tshark; "
                             "scripts/install-deps)")
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
        timeout = timeout_or(timeout, POSITIVE_TIMEOUT)
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
