// SPDX-License-Identifier: BSD-2-Clause
// packet/vnet_hdr.hpp - TCP parsing, partial checksums, MSS, GSO marking, cutting to the link MTU.
#pragma once

#include <cstddef>
#include <cstdint>

#include "virtio_net.hpp"

namespace slirpnet {

// Where the IP packet in an Ethernet frame ends: before any padding a NIC added to reach
// the 60-byte minimum (len when the frame is not IPv4/IPv6 or its length field is odd).
size_t ipPacketEnd(const uint8_t *frame, size_t len);

/*
 * Complete a partial checksum (VIRTIO_NET_HDR_F_NEEDS_CSUM): the 16-bit field at
 * start + offset holds the pseudo-header sum; the checksum over [start, len) is stored
 * there (pass ipPacketEnd() as len: padding is not part of it). False, changing nothing,
 * when the field lies outside the frame.
 */
bool completeChecksum(uint8_t *frame, size_t len, size_t start, size_t offset);

// Where the headers of a TCP segment in an Ethernet frame are (IPv4 or IPv6 without
// extension headers: what libslirp and a guest's TSO produce).
struct TcpFrame {
	size_t l4 = 0; // offset of the TCP header
	size_t payload = 0; // offset of the payload
	size_t end = 0; // end of the IP packet (<= frame length)
	bool v6 = false;
};
bool parseTcpFrame(const uint8_t *frame, size_t len, TcpFrame &t);

/*
 * If frame is a TCP segment with SYN (a guest's SYN or SYN-ACK) whose MSS option is below
 * mss, raise the option to mss and recompute the TCP checksum. For a guest that takes
 * GSO segments: libslirp honours the MSS of the SYN-ACKs to its own SYNs (hostfwd), so
 * this lets it send large segments there too. Returns true when it changed the frame.
 */
bool raiseSynMss(uint8_t *frame, size_t len, uint16_t mss);

/*
 * Prepare a TCP segment larger than the link MTU for a guest with GUEST_TSO: fill hdr
 * (gso_type TCPV4/6, gso_size the link's MSS, hdr_len) and, when partialCsum (the guest
 * took GUEST_CSUM), also NEEDS_CSUM with the checksum field turned into the pseudo-header
 * sum, as a TSO NIC expects it. False when frame is not a TCP segment.
 */
bool markGso(uint8_t *frame, size_t len, unsigned linkMtu, bool partialCsum, VnetHdr &hdr);

/*
 * Cut a frame larger than linkMtu into frames that fit, as libslirp would have made them
 * at the link MTU (it runs with a larger one on an offloading link, Config::kLargeSlirpMtu):
 *   - a TCP segment into segments of the link's MSS (software GSO, for a guest without
 *     GUEST_TSO; sequence numbers, IPv4 ids, FIN/PSH on the last one, checksums);
 *   - any other IPv4 packet without DF into IPv4 fragments.
 * For each frame, calls room() for a buffer of at least linkMtu + ETH_HLEN bytes (nullptr:
 * stop) and then emit(len). Returns the number of frames emitted, or -1 when the frame
 * can be cut neither way (IPv6 other than TCP, DF set, malformed).
 */
template <typename Room, typename Emit>
int splitForLink(const uint8_t *frame, size_t len, unsigned linkMtu, Room room, Emit emit);

// The steps of splitForLink.
struct SplitPlan {
	bool tcp = false;
	TcpFrame t; // tcp
	size_t ihl = 0, ipEnd = 0; // IPv4 fragments
	size_t first = 0; // offset of the first payload byte to cut
	size_t chunk = 0; // payload bytes per frame
};
bool planSplit(const uint8_t *frame, size_t len, unsigned linkMtu, SplitPlan &plan);
size_t writeSplit(const uint8_t *frame, const SplitPlan &plan, size_t offset, size_t index, uint8_t *out);

template <typename Room, typename Emit>
int splitForLink(const uint8_t *frame, size_t len, unsigned linkMtu, Room room, Emit emit)
{
	SplitPlan plan;
	if (!planSplit(frame, len, linkMtu, plan))
		return -1;
	size_t end = plan.tcp ? plan.t.end : plan.ipEnd;
	int n = 0;
	for (size_t off = plan.first; off < end; off += plan.chunk) {
		uint8_t *out = room();
		if (!out)
			break;
		emit(writeSplit(frame, plan, off, static_cast<size_t>(n), out));
		n++;
	}
	return n;
}

} // namespace slirpnet
