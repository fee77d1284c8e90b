// link/stream_link.hpp - the guest side over a byte stream: a 4-byte big-endian length, then the frame.
#pragma once

#include <glib.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "link/byte_ring.hpp"
#include "fd_watch.hpp"
#include "network.hpp"
#include "unique_fd.hpp"

namespace slirpnet {

// QEMU's NET_BUFSIZE (include/net/net.h): the largest frame it sends or accepts on a stream.
constexpr size_t kQemuMaxFrame = 4096 + 65536;
// Frames to QEMU are padded to ETH_ZLEN, as net/slirp.c does: the stream, dgram and socket
// netdevs do not pad, and NICs such as e1000 (before QEMU 8) drop shorter frames.
constexpr size_t kMinFrame = 60;
// What short frames are padded with.
inline constexpr uint8_t kZeroPad[kMinFrame] = {};

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
class StreamLink
{
public:
	// why: for the log; error: the peer broke the framing (not just went away).
	using ClosedCallback = std::function<void(const char *why, bool error)>;

	static constexpr size_t kDefaultQueueBytes = 2u << 20;

	/*
	 * fd: a connected stream socket (its O_NONBLOCK flag is left alone: every call uses
	 * MSG_DONTWAIT, so an fd shared with the parent is not changed under it).
	 * onClosed runs once, possibly from inside sendFrame(); it must not destroy the link
	 * synchronously.
	 */
	static std::unique_ptr<StreamLink> create(UniqueFd fd, Network &net, GMainContext *ctx,
						  ClosedCallback onClosed,
						  size_t queueBytes = kDefaultQueueBytes);

	// PacketSink for the Network: queue or write one frame (padded to kMinFrame).
	ssize_t sendFrame(const uint8_t *frame, size_t len);

	bool isClosed() const { return closed_; }
	size_t queuedBytes() const { return out_.size(); }

private:
	StreamLink(UniqueFd fd, Network &net, ClosedCallback onClosed, size_t queueBytes);
	void onReadable(GIOCondition cond);
	void onWritable(GIOCondition cond);
	bool parseInput();
	void flush();
	void closed(const char *why, bool error);

	UniqueFd fd_;
	Network &net_;
	ClosedCallback onClosed_;

	std::vector<uint8_t> in_; // 4 + kQemuMaxFrame: one whole frame always fits
	size_t inLen_ = 0;

	ByteRing out_; // bytes for the peer that the socket has not taken yet

	std::unique_ptr<FdWatch> readWatch_;
	std::unique_ptr<FdWatch> writeWatch_; // enabled only while out_ holds bytes
	bool closed_ = false;
};

} // namespace slirpnet
