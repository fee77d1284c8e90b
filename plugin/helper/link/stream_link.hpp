// SPDX-License-Identifier: BSD-2-Clause
// link/stream_link.hpp - a link over a byte stream: a 4-byte big-endian length, then the frame.
#pragma once

#include <glib.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "link/byte_ring.hpp"
#include "link/guest_link.hpp"
#include "link/qemu_framing.hpp"
#include "unique_fd.hpp"

namespace slirpnet {

/*
 * The framing of QEMU's -netdev stream and -netdev socket (net_fill_rstate): one connected
 * SOCK_STREAM socket, each frame preceded by its length (no FCS, no vnet header).
 *
 * Input is reassembled in one fixed buffer of 4 + kQemuMaxFrame bytes and parsed in place,
 * whatever the split or batching of the reads. A zero length is skipped; a length above
 * kQemuMaxFrame cannot be resynchronised, so it closes the connection (as QEMU does).
 *
 * Output never blocks: a frame is written at once when nothing is queued, and whatever the
 * socket did not take goes to a preallocated ring of bytes that is flushed when the socket
 * is writable. A frame that does not fit in the ring is dropped whole (drop_to_guest_full), so
 * the length framing stays intact whatever the peer's pace.
 */
class StreamLink : public GuestLink
{
public:
	static constexpr size_t kDefaultQueueBytes = 2u << 20;

	/*
	 * fd: a connected stream socket (its O_NONBLOCK flag is left alone: every call uses
	 * MSG_DONTWAIT, so an fd shared with the parent is not changed under it).
	 * name: for the log.
	 */
	static std::unique_ptr<StreamLink> create(UniqueFd fd, GuestPort &port, GMainContext *ctx, std::string name,
						  size_t queueBytes = kDefaultQueueBytes);

	// Queue or write one frame (padded to kMinFrame).
	ssize_t sendFrame(const uint8_t *frame, size_t len) override;

private:
	StreamLink(UniqueFd fd, GuestPort &port, std::string name, size_t queueBytes);
	void onReadable(GIOCondition cond) override;
	void onWritable(GIOCondition cond) override;
	void dropQueued() override
	{
		out_.clear();
		inLen_ = 0;
	}
	bool parseInput();
	void writeQueued();

	UniqueFd fd_;

	std::vector<uint8_t> in_; // 4 + kQemuMaxFrame: one whole frame always fits
	size_t inLen_ = 0;

	ByteRing out_; // bytes for the peer that the socket has not taken yet
};

} // namespace slirpnet
