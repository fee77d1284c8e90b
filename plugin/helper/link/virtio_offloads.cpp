// SPDX-License-Identifier: BSD-2-Clause
// link/virtio_offloads.cpp - a link's virtio-net header side: records in, frames out whole (GSO) or cut.
#include "link/virtio_offloads.hpp"

#include <endian.h>
#include <glib.h>

#include <algorithm>

namespace slirpnet {

void vnetRecordFromGuest(GuestPort &port, uint64_t features, uint8_t *rec, size_t len)
{
	Stats &st = port.stats();
	if (len < kVnetHdrLen) {
		st.dropVnetHdr++;
		g_debug("dropped a %zu-byte record: shorter than its virtio-net header", len);
		return;
	}
	VnetHdr h;
	memcpy(&h, rec, sizeof(h));
	uint8_t *frame = rec + kVnetHdrLen;
	size_t flen = len - kVnetHdrLen;
	uint8_t gso = static_cast<uint8_t>(h.gso_type & ~kGsoEcn);
	if (gso != kGsoNone && gso != kGsoTcpv4 && gso != kGsoTcpv6) {
		st.dropVnetHdr++; // UFO was never offered
		g_debug("dropped a frame with gso_type %u", h.gso_type);
		return;
	}
	if ((h.flags & kVnetNeedsCsum) &&
	    !completeChecksum(frame, ipPacketEnd(frame, flen), le16toh(h.csum_start), le16toh(h.csum_offset))) {
		st.dropVnetHdr++;
		g_debug("dropped a %zu-byte frame: checksum at %u+%u is outside it", flen, le16toh(h.csum_start),
			le16toh(h.csum_offset));
		return;
	}
	if ((features & (kFeatGuestTso4 | kFeatGuestTso6)) && flen > kEthHeaderLen) {
		// The guest takes large segments: offer libslirp a large MSS in SYNs, which it
		// honours for the connections it opens (hostfwd). For the guest's own connections
		// libslirp 4.7 ignores the option and uses its own MTU, which is large anyway.
		bool v6 = etherType(frame) == ETHERTYPE_IPV6;
		unsigned mtu = std::min(port.slirpMtu(), port.config().slirpMru());
		if (features & (v6 ? kFeatGuestTso6 : kFeatGuestTso4))
			raiseSynMss(
				frame, flen,
				static_cast<uint16_t>(std::min<size_t>(
					65535u, mtu - (v6 ? kIpv6HeaderLen : kIpv4MinHeaderLen) - kTcpMinHeaderLen)));
	}
	port.fromGuest(frame, flen, gso != kGsoNone);
}

} // namespace slirpnet
