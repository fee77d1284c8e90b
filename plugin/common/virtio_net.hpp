// SPDX-License-Identifier: BSD-2-Clause
// virtio_net.hpp - the virtio-net header and offload bits shared by libslirpnet and the helper (wire version 2).
#pragma once

#include <cstddef>
#include <cstdint>

#include "ethernet.hpp"

namespace slirpnet {

/*
 * With wire version 2 (PROTOCOL.md) every record between libslirpnet and the helper
 * starts with a struct virtio_net_hdr_mrg_rxbuf (little-endian; num_buffers unused). It
 * lets a virtio NIC hand over what it has without work: a 64 KiB TCP segment from the
 * guest's TSO goes to libslirp whole (its checksum completed), and libslirp's own large
 * segments go to the guest whole, marked for GSO, instead of 45 frames of 1500 bytes.
 * The per-frame cost (the socket hop, libslirp's input and its one ACK per segment) is
 * what limits throughput, so fewer, larger frames are the lever.
 */
struct VnetHdr {
	// struct virtio_net_hdr_mrg_rxbuf, little-endian (virtio 1.0 and legacy on x86).
	// <linux/virtio_net.h> cannot be included from C++: it has a field named "class".
	uint8_t flags;
	uint8_t gso_type;
	uint16_t hdr_len;
	uint16_t gso_size;
	uint16_t csum_start;
	uint16_t csum_offset;
	uint16_t num_buffers;
};
static_assert(sizeof(VnetHdr) == 12);
constexpr uint8_t kVnetNeedsCsum = 1; // VIRTIO_NET_HDR_F_NEEDS_CSUM
constexpr uint8_t kVnetDataValid = 2; // VIRTIO_NET_HDR_F_DATA_VALID
constexpr uint8_t kGsoNone = 0, kGsoTcpv4 = 1, kGsoTcpv6 = 4, kGsoEcn = 0x80; // VIRTIO_NET_HDR_GSO_*
constexpr size_t kVnetHdrLen = sizeof(VnetHdr);
// slirpnet's own flag: the record is not a frame but a "set features" message, the
// header followed by the negotiated features as a little-endian uint64.
constexpr uint8_t kVnetFlagSetFeatures = 0x80;
constexpr size_t kSetFeaturesLen = kVnetHdrLen + 8;
// The largest frame with a GSO type: an IP packet of 64 KiB - 1 in an Ethernet frame.
constexpr size_t kMaxGsoFrame = kEthHeaderLen + IP_MAXPACKET;
// libslirp's MTU on an offloading link is Config::kLargeSlirpMtu: large, so that it
// sends large TCP segments once the guest's SYN offers a large MSS (libslirp caps its
// segments at 32 KiB).

// The virtio-net feature bits the helper implements (netbe.h's SLIRPNET_NETBE_F_*).
constexpr uint64_t kFeatCsum = 1ull << 0;
constexpr uint64_t kFeatGuestCsum = 1ull << 1;
constexpr uint64_t kFeatGuestTso4 = 1ull << 7;
constexpr uint64_t kFeatGuestTso6 = 1ull << 8;
constexpr uint64_t kFeatHostTso4 = 1ull << 11;
constexpr uint64_t kFeatHostTso6 = 1ull << 12;
constexpr uint64_t kOffloadFeatures = kFeatCsum | kFeatGuestCsum | kFeatGuestTso4 | kFeatGuestTso6 | kFeatHostTso4 |
				      kFeatHostTso6;

} // namespace slirpnet
