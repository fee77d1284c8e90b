# SPDX-License-Identifier: BSD-2-Clause
"""vnet.py - virtio-net offloads: the header (VnetHdr), netbe.h's feature bits, TSO frames and Internet checksums."""

import struct

__all__ = ["VnetHdr", "inet_sum", "tcp_offsets", "tcp_pseudo_sum", "tso_frame",
           "complete_partial_csum", "tcp_csum_ok", "F_CSUM", "F_GUEST_CSUM", "F_GUEST_TSO4",
           "F_GUEST_TSO6", "F_HOST_TSO4", "F_HOST_TSO6", "F_ALL_OFFLOADS"]


class VnetHdr:
    """struct virtio_net_hdr_mrg_rxbuf (little-endian), for PluginPeer.use_vnet_hdr."""
    F_NEEDS_CSUM = 1
    GSO_NONE, GSO_TCPV4, GSO_UDP, GSO_TCPV6 = 0, 1, 3, 4
    FMT = "<BBHHHHH"

    def __init__(self, flags=0, gso_type=0, hdr_len=0, gso_size=0, csum_start=0,
                 csum_offset=0, num_buffers=0):
        self.flags, self.gso_type, self.hdr_len, self.gso_size = flags, gso_type, hdr_len, gso_size
        self.csum_start, self.csum_offset, self.num_buffers = csum_start, csum_offset, num_buffers

    def __bytes__(self):
        return struct.pack(self.FMT, self.flags, self.gso_type, self.hdr_len, self.gso_size,
                           self.csum_start, self.csum_offset, self.num_buffers)

    @classmethod
    def unpack(cls, b):
        b = bytes(b).ljust(12, b"\0")
        return cls(*struct.unpack(cls.FMT, b[:12]))

    def __repr__(self):
        return ("VnetHdr(flags=%d, gso_type=%d, hdr_len=%d, gso_size=%d, csum_start=%d, "
                "csum_offset=%d, num_buffers=%d)" % (self.flags, self.gso_type, self.hdr_len,
                                                     self.gso_size, self.csum_start,
                                                     self.csum_offset, self.num_buffers))


def inet_sum(b, s=0):
    """RFC 1071 one's-complement sum of b added to s, folded to 16 bits (not inverted)."""
    b = bytes(b)
    if len(b) % 2:
        b += b"\0"
    s += sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def tcp_offsets(frame):
    """(l4 offset, is_v6) of an untagged TCP frame over IPv4/IPv6, or None."""
    frame = bytes(frame)
    et = struct.unpack("!H", frame[12:14])[0]
    if et == 0x0800 and frame[23] == 6:
        return 14 + (frame[14] & 0x0F) * 4, False
    if et == 0x86DD and frame[20] == 6:
        return 54, True
    return None


def tcp_pseudo_sum(frame):
    """The TCP pseudo-header sum of frame (what a partial checksum field holds)."""
    frame = bytes(frame)
    l4, v6 = tcp_offsets(frame)
    if v6:
        tcp_len = struct.unpack("!H", frame[18:20])[0]
        addrs = frame[22:54]
    else:
        tcp_len = struct.unpack("!H", frame[16:18])[0] - (l4 - 14)
        addrs = frame[26:34]
    return inet_sum(addrs + struct.pack("!HH", 6, tcp_len))


def tso_frame(frame, mss=1460):
    """A TCP frame as a TSO NIC's driver hands it over: (VnetHdr, bytes) with gso_type
    TCPV4/6, NEEDS_CSUM and the checksum field holding the pseudo-header sum."""
    frame = bytearray(bytes(frame))
    l4, v6 = tcp_offsets(frame)
    doff = (frame[l4 + 12] >> 4) * 4
    frame[l4 + 16:l4 + 18] = struct.pack("!H", tcp_pseudo_sum(frame))
    hdr = VnetHdr(flags=VnetHdr.F_NEEDS_CSUM,
                  gso_type=VnetHdr.GSO_TCPV6 if v6 else VnetHdr.GSO_TCPV4,
                  hdr_len=l4 + doff, gso_size=mss, csum_start=l4, csum_offset=16)
    return hdr, bytes(frame)


def complete_partial_csum(hdr, frame):
    """What the receiving NIC driver does for NEEDS_CSUM: returns the frame with the
    checksum at csum_start + csum_offset filled in."""
    frame = bytearray(frame)
    start, off = hdr.csum_start, hdr.csum_offset
    frame[start + off:start + off + 2] = struct.pack("!H", 0xFFFF ^ inet_sum(frame[start:]))
    return bytes(frame)


def tcp_csum_ok(frame):
    """True when the TCP checksum of frame verifies."""
    frame = bytes(frame)
    l4, _ = tcp_offsets(frame)
    return inet_sum(frame[l4:], tcp_pseudo_sum(frame)) == 0xFFFF


# virtio-net feature bits of netbe.h (SLIRPNET_NETBE_F_*)
F_CSUM, F_GUEST_CSUM = 1 << 0, 1 << 1
F_GUEST_TSO4, F_GUEST_TSO6 = 1 << 7, 1 << 8
F_HOST_TSO4, F_HOST_TSO6 = 1 << 11, 1 << 12
F_ALL_OFFLOADS = F_CSUM | F_GUEST_CSUM | F_GUEST_TSO4 | F_GUEST_TSO6 | F_HOST_TSO4 | F_HOST_TSO6
