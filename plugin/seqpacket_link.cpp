// seqpacket_link.cpp - the guest side over a SOCK_SEQPACKET socket: one Ethernet frame per record.
#include "seqpacket_link.hpp"

#include <cerrno>
#include <cstring>

#include "unix_socket.hpp"

namespace slirpnet {

SeqpacketLink::SeqpacketLink(UniqueFd fd, Network &net, ClosedCallback onClosed)
	: fd_(std::move(fd)), net_(net), onClosed_(std::move(onClosed)), slotSize_(net.maxFrame()),
	  rxBuf_(kBatch * slotSize_), txBuf_(kBatch * slotSize_)
{
	for (size_t i = 0; i < kBatch; i++) {
		rxIov_[i] = { rxBuf_.data() + i * slotSize_, slotSize_ };
		rxMsg_[i].msg_hdr.msg_iov = &rxIov_[i];
		rxMsg_[i].msg_hdr.msg_iovlen = 1;
		txIov_[i] = { txBuf_.data() + i * slotSize_, 0 };
		txMsg_[i].msg_hdr.msg_iov = &txIov_[i];
		txMsg_[i].msg_hdr.msg_iovlen = 1;
	}
}

std::unique_ptr<SeqpacketLink> SeqpacketLink::create(UniqueFd fd, Network &net, GMainContext *ctx,
						     ClosedCallback onClosed)
{
	std::unique_ptr<SeqpacketLink> l(new SeqpacketLink(std::move(fd), net, std::move(onClosed)));
	SeqpacketLink *self = l.get();
	l->watch_ = FdWatch::create(ctx, l->fd_.get(),
				    static_cast<GIOCondition>(G_IO_IN | G_IO_HUP | G_IO_ERR),
				    [self](int, GIOCondition c) { self->onReadable(c); });
	l->writeWatch_ = FdWatch::create(ctx, l->fd_.get(), G_IO_OUT,
					 [self](int, GIOCondition) { self->flush(); });
	growSendBuffer(l->fd_.get(), static_cast<int>(net.config().sndbuf));
	net.setTxFlush([self] { self->flush(); });
	l->watch_->enable();
	return l;
}

SeqpacketLink::~SeqpacketLink()
{
	net_.setTxFlush(nullptr);
}

void SeqpacketLink::closed(const char *why)
{
	if (closed_)
		return;
	closed_ = true;
	watch_->disable();
	writeWatch_->disable();
	txCount_ = txSent_ = 0;
	net_.updateBackpressure(0, 1);
	onClosed_(why);
}

void SeqpacketLink::onReadable(GIOCondition cond)
{
	for (size_t i = 0; i < kBatch; i++)
		rxMsg_[i].msg_hdr.msg_flags = 0;
	// MSG_TRUNC: each msg_len is the record's real length, so an oversized frame is
	// seen as such instead of being silently cut to its slot.
	int n = recvmmsg(fd_.get(), rxMsg_.data(), kBatch, MSG_DONTWAIT | MSG_TRUNC, nullptr);
	if (n < 0) {
		if (errno != EAGAIN && errno != EINTR) {
			closed(strerror(errno));
			return;
		}
		n = 0;
	}
	for (int i = 0; i < n; i++) {
		size_t len = rxMsg_[i].msg_len;
		if (len == 0 && peerHungUp(fd_.get())) {
			// End of file reads as empty records (recvmmsg fills every slot with
			// them); an empty record from a live peer is just a runt.
			net_.inputBatchDone();
			closed("peer closed the connection");
			return;
		}
		if (len > slotSize_) {
			net_.droppedOversize(len); // only its length was read
			continue;
		}
		net_.fromGuest(rxBuf_.data() + i * slotSize_, len);
		if (closed_)
			return;
	}
	net_.inputBatchDone();
	if ((cond & (G_IO_HUP | G_IO_ERR)) && n == 0 && !closed_) {
		char probe;
		ssize_t r = recv(fd_.get(), &probe, 1, MSG_PEEK | MSG_DONTWAIT);
		if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
			closed("peer hung up");
	}
}

ssize_t SeqpacketLink::sendFrame(const uint8_t *frame, size_t len)
{
	Stats &st = net_.stats();
	if (closed_)
		return -1;
	if (len > slotSize_) {
		st.dropTxError++; // libslirp never makes one above its MTU
		return -1;
	}
	if (txCount_ == kBatch)
		flush(); // a long burst in one dispatch: write what we have
	if (closed_)
		return -1;
	if (txCount_ == kBatch) {
		st.dropTxFull++;
		return -1;
	}
	memcpy(txIov_[txCount_].iov_base, frame, len);
	txIov_[txCount_].iov_len = len;
	txCount_++;
	return static_cast<ssize_t>(len);
}

void SeqpacketLink::flush()
{
	Stats &st = net_.stats();
	while (txSent_ < txCount_ && !closed_) {
		int r = sendmmsg(fd_.get(), txMsg_.data() + txSent_, static_cast<unsigned>(txCount_ - txSent_),
				 MSG_DONTWAIT | MSG_NOSIGNAL);
		if (r < 0) {
			if (errno == EAGAIN || errno == ENOBUFS || errno == EINTR) {
				// Full: keep the frames, stop making more, and go on when writable.
				net_.updateBackpressure(1, 1);
				writeWatch_->enable();
				return;
			}
			if (errno == EPIPE || errno == ECONNRESET) {
				closed("peer closed the connection");
				return;
			}
			st.dropTxError += txCount_ - txSent_;
			g_debug("send to peer: %s", strerror(errno));
			break;
		}
		for (int i = 0; i < r; i++) {
			st.txFrames++;
			st.txBytes += txIov_[txSent_ + i].iov_len;
		}
		txSent_ += static_cast<size_t>(r);
	}
	txCount_ = txSent_ = 0;
	writeWatch_->disable();
	net_.updateBackpressure(0, 1);
}

} // namespace slirpnet
