// link/seqpacket_link.cpp - the guest side over a SOCK_SEQPACKET socket: one Ethernet frame per record.
#include "link/seqpacket_link.hpp"

#include <endian.h>

#include <cerrno>
#include <cstring>

#include <algorithm>

#include "byte_order.hpp"
#include "unix_socket.hpp"
#include "packet/vnet_hdr.hpp"

namespace slirpnet {

SeqpacketLink::SeqpacketLink(UniqueFd fd, Network &net, ClosedCallback onClosed)
	: fd_(std::move(fd)), net_(net), onClosed_(std::move(onClosed)),
	  slotSize_(net.config().vnetHdr ? kVnetHdrLen + kMaxGsoFrame : net.maxFrame()),
	  vnetHdr_(net.config().vnetHdr), rxBuf_(kBatch * slotSize_), txBuf_(kBatch * slotSize_)
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
		fromPeer(rxBuf_.data() + i * slotSize_, len);
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

void SeqpacketLink::fromPeer(uint8_t *rec, size_t len)
{
	if (!vnetHdr_) {
		net_.fromGuest(rec, len);
		return;
	}
	Stats &st = net_.stats();
	VnetHdr h;
	if (len < kVnetHdrLen) {
		st.dropVnetHdr++;
		g_debug("dropped a %zu-byte record: shorter than its virtio-net header", len);
		return;
	}
	memcpy(&h, rec, sizeof(h));
	if (h.flags & kVnetFlagSetFeatures) {
		setFeatures(rec, len);
		return;
	}
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
	if (features_ & (kFeatGuestTso4 | kFeatGuestTso6) && flen > 14) {
		// The guest takes large segments: offer libslirp a large MSS in SYNs, which it
		// honours for the connections it opens (hostfwd). For the guest's own connections
		// libslirp 4.7 ignores the option and uses its own MTU, which is large anyway.
		bool v6 = loadBe16(frame + 12) == 0x86dd;
		unsigned mtu = std::min(net_.slirpMtu(), net_.config().slirpMru());
		if (features_ & (v6 ? kFeatGuestTso6 : kFeatGuestTso4))
			raiseSynMss(frame, flen, static_cast<uint16_t>(std::min(65535u, mtu - (v6 ? 60 : 40))));
	}
	net_.fromGuest(frame, flen, gso != kGsoNone);
}

void SeqpacketLink::setFeatures(const uint8_t *rec, size_t len)
{
	if (len != kSetFeaturesLen) {
		net_.stats().dropVnetHdr++;
		g_debug("dropped a %zu-byte set-features record (expected %zu)", len, kSetFeaturesLen);
		return;
	}
	uint64_t f;
	memcpy(&f, rec + kVnetHdrLen, sizeof(f));
	features_ = le64toh(f) & kOffloadFeatures;
	g_debug("offloads: features 0x%llx", static_cast<unsigned long long>(features_));

}

uint8_t *SeqpacketLink::reserveSlot()
{
	if (txCount_ == kBatch)
		flush(); // a long burst in one dispatch: write what we have
	if (closed_)
		return nullptr;
	if (txCount_ == kBatch) {
		net_.stats().dropToGuestFull++;
		return nullptr;
	}
	return static_cast<uint8_t *>(txIov_[txCount_].iov_base);
}

ssize_t SeqpacketLink::sendFrame(const uint8_t *frame, size_t len)
{
	Stats &st = net_.stats();
	if (closed_)
		return -1;
	size_t hdr = vnetHdr_ ? kVnetHdrLen : 0;
	if (len + hdr > slotSize_) {
		st.dropToGuestError++; // libslirp never makes one above its MTU
		return -1;
	}
	if (vnetHdr_ && len > net_.config().mtu + 14u)
		return sendLarge(frame, len); // libslirp's MTU is larger than the guest link's
	uint8_t *slot = reserveSlot();
	if (!slot)
		return -1;
	if (vnetHdr_)
		memset(slot, 0, kVnetHdrLen);
	memcpy(slot + hdr, frame, len);
	commitSlot(hdr + len);
	return static_cast<ssize_t>(len);
}

ssize_t SeqpacketLink::sendLarge(const uint8_t *frame, size_t len)
{
	Stats &st = net_.stats();
	unsigned linkMtu = net_.config().mtu;
	bool v6 = loadBe16(frame + 12) == 0x86dd;
	if (features_ & (v6 ? kFeatGuestTso6 : kFeatGuestTso4)) {
		uint8_t *slot = reserveSlot();
		if (!slot)
			return -1;
		memcpy(slot + kVnetHdrLen, frame, len);
		VnetHdr h{};
		if (markGso(slot + kVnetHdrLen, len, linkMtu, features_ & kFeatGuestCsum, h)) {
			memcpy(slot, &h, sizeof(h));
			commitSlot(kVnetHdrLen + len);
			st.toGuestGso++;
			return static_cast<ssize_t>(len);
		}
	}
	// The guest cannot take it whole: cut it as libslirp would have at the link's MTU
	// (TCP into segments, other IPv4 into fragments).
	int n = splitForLink(
		frame, len, linkMtu,
		[this]() -> uint8_t * {
			uint8_t *slot = reserveSlot();
			return slot ? slot + kVnetHdrLen : nullptr;
		},
		[this](size_t flen) {
			memset(txIov_[txCount_].iov_base, 0, kVnetHdrLen);
			commitSlot(kVnetHdrLen + flen);
		});
	if (n > 0) {
		st.toGuestSplit += static_cast<uint64_t>(n);
		return static_cast<ssize_t>(len);
	}
	if (n < 0) {
		// IPv6 other than TCP (libslirp never fragments IPv6) or IPv4 with DF: what
		// libslirp at the link MTU would have sent is above the link MTU too; the
		// frame is dropped, as on any link.
		st.dropToGuestError++;
		g_debug("dropped a %zu-byte frame to the guest: above the link MTU %u and cannot be cut", len,
			linkMtu);
	}
	return -1; // n == 0: no slot (counted)
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
			st.dropToGuestError += txCount_ - txSent_;
			g_debug("send to peer: %s", strerror(errno));
			break;
		}
		size_t hdr = vnetHdr_ ? kVnetHdrLen : 0; // counted as frames, like rx_bytes
		for (int i = 0; i < r; i++) {
			st.toGuestFrames++;
			st.toGuestBytes += txIov_[txSent_ + i].iov_len - hdr;
		}
		txSent_ += static_cast<size_t>(r);
	}
	txCount_ = txSent_ = 0;
	writeWatch_->disable();
	net_.updateBackpressure(0, 1);
}

} // namespace slirpnet
