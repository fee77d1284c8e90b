// seqpacket_link.cpp - the guest side over a SOCK_SEQPACKET socket: one Ethernet frame per record.
#include "seqpacket_link.hpp"
#include "unix_socket.hpp"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace slirpnet {

// Frames read per wake-up before yielding to the rest of the loop.
constexpr int kReadBatch = 64;

SeqpacketLink::SeqpacketLink(UniqueFd fd, Network &net, ClosedCallback onClosed)
	: fd_(std::move(fd)), net_(net), onClosed_(std::move(onClosed)), buf_(net.maxFrame())
{
}

std::unique_ptr<SeqpacketLink> SeqpacketLink::create(UniqueFd fd, Network &net, GMainContext *ctx,
						     ClosedCallback onClosed)
{
	std::unique_ptr<SeqpacketLink> l(new SeqpacketLink(std::move(fd), net, std::move(onClosed)));
	SeqpacketLink *self = l.get();
	l->watch_ = FdWatch::create(ctx, l->fd_.get(),
				    static_cast<GIOCondition>(G_IO_IN | G_IO_HUP | G_IO_ERR),
				    [self](int, GIOCondition c) { self->onReadable(c); });
	growSendBuffer(l->fd_.get(), static_cast<int>(net.config().sndbuf));
	l->watch_->enable();
	l->writeWatch_ = FdWatch::create(ctx, l->fd_.get(), G_IO_OUT, [self](int, GIOCondition) {
		self->writeWatch_->disable();
		self->net_.updateBackpressure(0, 1);
	});
	return l;
}

void SeqpacketLink::closed(const char *why)
{
	if (closed_)
		return;
	closed_ = true;
	watch_->disable();
	writeWatch_->disable();
	onClosed_(why);
}

void SeqpacketLink::onReadable(GIOCondition cond)
{
	for (int i = 0; i < kReadBatch; i++) {
		// MSG_TRUNC: the return value is the record's real length, so an oversized
		// frame is seen as such instead of being silently cut to the buffer.
		ssize_t n = recv(fd_.get(), buf_.data(), buf_.size(), MSG_DONTWAIT | MSG_TRUNC);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				break;
			closed(strerror(errno));
			return;
		}
		if (n == 0 && peerHungUp(fd_.get())) {
			closed("peer closed the connection");
			return;
		}
		if (static_cast<size_t>(n) > buf_.size()) {
			net_.droppedOversize(static_cast<size_t>(n)); // only its length was read
			continue;
		}
		net_.fromGuest(buf_.data(), static_cast<size_t>(n));
	}
	net_.inputBatchDone();
	if ((cond & (G_IO_HUP | G_IO_ERR)) && !(cond & G_IO_IN))
		closed("peer hung up");
}

ssize_t SeqpacketLink::sendFrame(const uint8_t *frame, size_t len)
{
	Stats &st = net_.stats();
	if (closed_)
		return -1;
	ssize_t n = send(fd_.get(), frame, len, MSG_DONTWAIT | MSG_NOSIGNAL | MSG_EOR);
	if (n < 0) {
		if (errno == EAGAIN || errno == ENOBUFS) {
			st.dropTxFull++;
			net_.updateBackpressure(1, 1);
			writeWatch_->enable();
		} else if (errno == EPIPE || errno == ECONNRESET) {
			closed("peer closed the connection");
		} else {
			st.dropTxError++;
			g_debug("send to peer: %s", strerror(errno));
		}
		return -1;
	}
	st.txFrames++;
	st.txBytes += len;
	return n;
}

} // namespace slirpnet
