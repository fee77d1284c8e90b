// SPDX-License-Identifier: BSD-2-Clause
// link/stream_link.cpp - a link over a byte stream: a 4-byte big-endian length, then the frame.
#include "link/stream_link.hpp"
#include "byte_order.hpp"
#include "log.hpp"
#include "unix_socket.hpp"

#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>

namespace slirpnet {

// Reads per wake-up before yielding to the rest of the loop (libslirp's own sockets).
constexpr int kReadBatch = 16;
constexpr size_t kHeader = 4;

StreamLink::StreamLink(UniqueFd fd, GuestPort &port, std::string name, size_t queueBytes)
	: GuestLink(port, std::move(name)), fd_(std::move(fd)), in_(kHeader + kQemuMaxFrame),
	  // The ring must hold at least one whole frame, or a large frame could never be queued.
	  out_(std::max(queueBytes, kHeader + kQemuMaxFrame))
{
}

std::unique_ptr<StreamLink> StreamLink::create(UniqueFd fd, GuestPort &port, GMainContext *ctx, std::string name,
					       size_t queueBytes)
{
	std::unique_ptr<StreamLink> l(new StreamLink(std::move(fd), port, std::move(name), queueBytes));
	growSendBuffer(l->fd_.get(), static_cast<int>(port.config().sndbuf));
	l->startWatches(ctx, l->fd_.get(), l->fd_.get());
	return l;
}

void StreamLink::onReadable(GIOCondition cond)
{
	for (int i = 0; i < kReadBatch && !isClosed(); i++) {
		// parseInput() leaves less than one whole frame, so there is always room here.
		ssize_t n = recv(fd_.get(), in_.data() + inLen_, in_.size() - inLen_, MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				break;
			closeLink(strerror(errno), false);
			return;
		}
		if (n == 0) {
			closeLink("peer closed the connection", false);
			return;
		}
		inLen_ += static_cast<size_t>(n);
		if (!parseInput())
			return;
	}
	port_.inputBatchDone();
	if (!(cond & G_IO_IN))
		closeIfHungUp(fd_.get(), cond);
}

// Hand every complete frame in in_ to the port, then move the partial rest to the front.
bool StreamLink::parseInput()
{
	size_t off = 0;
	while (inLen_ - off >= kHeader) {
		uint32_t len = loadBe32(in_.data() + off);
		if (len > kQemuMaxFrame) {
			// Once per connection, but a local client may reconnect and do it again.
			slirpnet_warning_ratelimited("stream peer announced a %u-byte frame (limit %zu): the framing "
						     "is lost, closing the connection",
						     len, kQemuMaxFrame);
			closeLink("oversized frame length", true);
			return false;
		}
		if (inLen_ - off - kHeader < len)
			break;
		if (len == 0)
			g_debug("ignored a zero-length frame from the stream peer");
		else
			port_.fromGuest(in_.data() + off + kHeader, len);
		// fromGuest() may have sent replies, and a failed send closes the link.
		if (isClosed())
			return false;
		off += kHeader + len;
	}
	if (off > 0) {
		inLen_ -= off;
		memmove(in_.data(), in_.data() + off, inLen_);
	}
	return true;
}

ssize_t StreamLink::sendFrame(const uint8_t *frame, size_t len)
{
	Stats &st = port_.stats();
	if (isClosed()) {
		st.dropToGuestError++;
		return -1;
	}
	size_t wire = std::max(len, kMinFrame);
	if (wire > kQemuMaxFrame) {
		// QEMU would drop the connection for it; libslirp never sends one above its MTU.
		st.dropToGuestError++;
		g_debug("dropped a %zu-byte frame for the stream peer (limit %zu)", len, kQemuMaxFrame);
		return -1;
	}
	if (out_.free() < kHeader + wire) {
		st.dropToGuestFull++;
		return -1;
	}
	uint8_t header[kHeader];
	storeBe32(header, static_cast<uint32_t>(wire));
	iovec iov[3] = {
		{ header, kHeader },
		{ const_cast<uint8_t *>(frame), len },
		{ const_cast<uint8_t *>(kZeroPad), wire - len },
	};
	size_t written = 0;
	if (out_.empty()) {
		// Nothing queued: try the socket first, so the common case copies nothing.
		msghdr msg{};
		msg.msg_iov = iov;
		msg.msg_iovlen = wire > len ? 3 : 2;
		ssize_t n = sendmsg(fd_.get(), &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0) {
			if (errno != EAGAIN && errno != EINTR) {
				st.dropToGuestError++;
				closeLink(strerror(errno), false);
				return -1;
			}
			n = 0;
		}
		written = static_cast<size_t>(n);
	}
	// Queue the part the socket did not take; the frame is never left half-sent.
	for (const iovec &v : iov) {
		size_t skip = std::min(written, v.iov_len);
		written -= skip;
		if (v.iov_len > skip)
			out_.push(static_cast<const uint8_t *>(v.iov_base) + skip, v.iov_len - skip);
	}
	if (!out_.empty()) {
		writeWatch_->enable();
		port_.toGuestBackpressure(out_.size(), out_.capacity());
	}
	countToGuest(wire);
	return static_cast<ssize_t>(len);
}

void StreamLink::writeQueued()
{
	while (!out_.empty()) {
		iovec iov[2];
		msghdr msg{};
		msg.msg_iov = iov;
		msg.msg_iovlen = out_.peek(0, out_.size(), iov);
		ssize_t n = sendmsg(fd_.get(), &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return;
			closeLink(strerror(errno), false);
			return;
		}
		out_.consume(static_cast<size_t>(n));
		port_.toGuestBackpressure(out_.size(), out_.capacity());
	}
	writeWatch_->disable();
}

void StreamLink::onWritable(GIOCondition cond)
{
	if (cond & G_IO_OUT) {
		writeQueued();
		return;
	}
	if (cond & G_IO_ERR)
		closeLink("socket error", false);
}

} // namespace slirpnet
