// SPDX-License-Identifier: BSD-2-Clause
// link/virtio_offloads.cpp - a link's virtio-net header side: records in, frames out whole (GSO) or cut.
#include "link/virtio_offloads.hpp"

#include <endian.h>
#include <glib.h>

#include <algorithm>

#include "byte_order.hpp"

namespace slirpnet {

/*
 * A GSO frame is the guest's TSO: honoured only when the device offered it for that IP
 * version (HOST_TSO4/6 negotiated) and only for a whole TCP segment of that version. A GSO
 * frame may be up to 64 KiB where a plain one is bounded by mru=; without this check a
 * guest could pass 64 KiB of ARP, UDP or IP fragments to libslirp just by marking them.
 */
static bool gsoFrameAllowed(uint8_t gso, uint64_t features, const uint8_t *frame, size_t len)
{
	if (gso == kGsoTcpv4) {
		if (!(features & kFeatHostTso4) || len < kEthHeaderLen + kIpv4MinHeaderLen ||
		    etherType(frame) != ETHERTYPE_IP)
			return false;
		const uint8_t *ip = frame + kEthHeaderLen;
		return (ip[0] >> 4) == 4 && ip[9] == IPPROTO_TCP && (loadBe16(ip + 6) & (IP_MF | IP_OFFMASK)) == 0;
	}
	if (gso == kGsoTcpv6) {
		if (!(features & kFeatHostTso6) || len < kEthHeaderLen + kIpv6HeaderLen ||
		    etherType(frame) != ETHERTYPE_IPV6)
			return false;
		const uint8_t *ip6 = frame + kEthHeaderLen;
		return (ip6[0] >> 4) == 6 && ip6[6] == IPPROTO_TCP; // no extension header: libslirp takes none
	}
	return false; // UFO and the rest were never offered
}

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
	if (gso != kGsoNone && !gsoFrameAllowed(gso, features, frame, flen)) {
		st.dropVnetHdr++;
		g_debug("dropped a %zu-byte frame with gso_type %u: not negotiated, or not a whole TCP segment of its IP "
			"version",
			flen, h.gso_type);
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
