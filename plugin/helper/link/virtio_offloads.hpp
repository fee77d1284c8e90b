// SPDX-License-Identifier: BSD-2-Clause
// link/virtio_offloads.hpp - a link's virtio-net header side: records in, frames out whole (GSO) or cut.
#pragma once

#include <glib.h>

#include <cstring>

#include "ethernet.hpp"
#include "guest_port.hpp"
#include "packet/vnet_hdr.hpp"

namespace slirpnet {

/*
 * Shared by every link that carries a virtio-net header (the plugin's socketpair today;
 * vhost-user and tap links later), so the offloads behave the same on each.
 *
 * libslirp runs at a large MTU on such a link from the start and is never restarted
 * (Network::create); what reaches the guest is decided per frame from the features in
 * effect when it is sent, as a virtio device decides: a TCP segment above the link MTU
 * goes whole, marked for GSO, when the guest took GUEST_TSO4/6 for its IP version, and is
 * cut into link-sized segments otherwise (other IPv4 into fragments). So features taken or
 * withdrawn with connections open apply to them at once, and no socket is ever re-bound.
 */

/*
 * One record from the guest: a virtio-net header, then the frame. Checks the header (a
 * GSO type the guest did not negotiate (HOST_TSO4/6) or that does not match a whole TCP
 * segment of its IP version, or a partial checksum outside the frame, is dropped as
 * drop_vnet_hdr), completes a partial checksum, raises the MSS of the guest's SYNs when
 * it takes GSO segments, and hands the frame to the port.
 */
void vnetRecordFromGuest(GuestPort &port, uint64_t features, uint8_t *rec, size_t len);

/*
 * One frame from libslirp for the guest, as records (header + frame): room() returns a
 * buffer of at least kVnetHdrLen + the frame's length or nullptr when the link is full;
 * commit(recordLen) queues what was written there. Returns the number of records made:
 * 0 when there was no room (the link counted it), -1 when the frame was dropped because
 * it is above the link MTU and can be neither sent whole nor cut (counted).
 */
template <typename Room, typename Commit>
int vnetFrameToGuest(GuestPort &port, uint64_t features, const uint8_t *frame, size_t len, Room room, Commit commit)
{
	Stats &st = port.stats();
	unsigned linkMtu = port.config().mtu;
	if (len <= linkMtu + kEthHeaderLen) {
		uint8_t *rec = room();
		if (!rec)
			return 0;
		memset(rec, 0, kVnetHdrLen);
		memcpy(rec + kVnetHdrLen, frame, len);
		commit(kVnetHdrLen + len);
		return 1;
	}
	bool v6 = etherType(frame) == ETHERTYPE_IPV6;
	if (features & (v6 ? kFeatGuestTso6 : kFeatGuestTso4)) {
		uint8_t *rec = room();
		if (!rec)
			return 0;
		memcpy(rec + kVnetHdrLen, frame, len);
		VnetHdr h{};
		if (markGso(rec + kVnetHdrLen, len, linkMtu, features & kFeatGuestCsum, h)) {
			memcpy(rec, &h, sizeof(h));
			commit(kVnetHdrLen + len);
			st.toGuestGso++;
			return 1;
		}
	}
	// The guest cannot take it whole: cut it as libslirp would have at the link's MTU.
	uint8_t *cur = nullptr;
	int n = splitForLink(
		frame, len, linkMtu,
		[&]() -> uint8_t * {
			cur = room();
			return cur ? cur + kVnetHdrLen : nullptr;
		},
		[&](size_t flen) {
			memset(cur, 0, kVnetHdrLen);
			commit(kVnetHdrLen + flen);
		});
	if (n > 0) {
		st.toGuestSplit += static_cast<uint64_t>(n);
		return n;
	}
	if (n < 0) {
		// IPv6 other than TCP (libslirp never fragments IPv6) or IPv4 with DF: what
		// libslirp at the link MTU would have sent is above the link MTU too.
		st.dropToGuestError++;
		g_debug("dropped a %zu-byte frame to the guest: above the link MTU %u and cannot be cut", len, linkMtu);
		return -1;
	}
	return 0;
}

} // namespace slirpnet
