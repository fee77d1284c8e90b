// SPDX-License-Identifier: BSD-2-Clause
// link/seqpacket_link.cpp - the plugin's link: a SOCK_SEQPACKET socketpair, one Ethernet frame per record.
#include "link/seqpacket_link.hpp"

#include <endian.h>
#include <poll.h>

#include <cerrno>
#include <cstring>

#include "link/virtio_offloads.hpp"
#include "unix_socket.hpp"

namespace slirpnet {

// How long the helper waits for the parent's config record.
constexpr int kConfigTimeoutMs = 30000;

static size_t slotSizeFor(const Config &cfg)
{
	return cfg.vnetHdr ? kVnetHdrLen + kMaxGsoFrame : cfg.maxFrame();
}

SeqpacketLink::SeqpacketLink(UniqueFd fd, GuestPort &port)
	: GuestLink(port, "fd " + std::to_string(fd.get())), fd_(std::move(fd)), vnetHdr_(port.config().vnetHdr),
	  slotSize_(slotSizeFor(port.config())), rx_(kBatch, slotSize_, false), txBuf_(kBatch * slotSize_)
{
	for (size_t i = 0; i < kBatch; i++) {
		txIov_[i] = { txBuf_.data() + i * slotSize_, 0 };
		txMsg_[i].msg_hdr.msg_iov = &txIov_[i];
		txMsg_[i].msg_hdr.msg_iovlen = 1;
	}
}

std::unique_ptr<SeqpacketLink> SeqpacketLink::create(UniqueFd fd, GuestPort &port, GMainContext *ctx)
{
	std::unique_ptr<SeqpacketLink> l(new SeqpacketLink(std::move(fd), port));
	growSendBuffer(l->fd_.get(), static_cast<int>(port.config().sndbuf));
	l->startWatches(ctx, l->fd_.get(), l->fd_.get());
	return l;
}

SeqpacketLink::~SeqpacketLink() = default;

bool SeqpacketLink::receiveConfig(int fd, OptionList &opts, uint32_t &version, std::string &error)
{
	struct pollfd p = { fd, POLLIN, 0 };
	int r;
	do
		r = poll(&p, 1, kConfigTimeoutMs);
	while (r < 0 && errno == EINTR);
	if (r == 0) {
		error = "no config message from the parent within " + std::to_string(kConfigTimeoutMs / 1000) + " s";
		return false;
	}
	std::vector<uint8_t> buf(kMaxControlMessage);
	ssize_t n = recv(fd, buf.data(), buf.size(), MSG_DONTWAIT | MSG_TRUNC);
	if (n < 0) {
		error = std::string("reading the config message: ") + strerror(errno);
		return false;
	}
	if (n == 0) {
		error = "the parent closed the socket before sending a config";
		return false;
	}
	if (static_cast<size_t>(n) > buf.size()) {
		error = "config message too large (" + std::to_string(n) + " bytes)";
		return false;
	}
	return decodeConfig(buf.data(), static_cast<size_t>(n), opts, error, &version);
}

void SeqpacketLink::sendStatus(int fd, bool ok, const std::string &message)
{
	std::vector<uint8_t> m = encodeStatus(ok, message);
	// The socket is empty at this point, so this cannot block for long; wait for room
	// anyway rather than lose the one message the parent is waiting for.
	struct pollfd p = { fd, POLLOUT, 0 };
	poll(&p, 1, 1000);
	if (send(fd, m.data(), m.size(), MSG_NOSIGNAL | MSG_EOR | MSG_DONTWAIT) < 0)
		g_debug("sending status: %s", strerror(errno));
}

void SeqpacketLink::onReadable(GIOCondition cond)
{
	int n = rx_.read(fd_.get());
	if (n < 0) {
		closeLink(strerror(errno));
		return;
	}
	for (int i = 0; i < n; i++) {
		size_t len = rx_.length(i);
		if (len == 0 && peerHungUp(fd_.get())) {
			// End of file reads as empty records (recvmmsg fills every slot with
			// them); an empty record from a live peer is just a runt.
			port_.inputBatchDone();
			closeLink("peer closed the connection");
			return;
		}
		if (rx_.truncated(i)) {
			port_.droppedOversize(len); // only its length was read
			continue;
		}
		fromPeer(rx_.data(i), len);
		if (isClosed())
			return;
	}
	port_.inputBatchDone();
	if (n == 0)
		closeIfHungUp(fd_.get(), cond);
}

void SeqpacketLink::fromPeer(uint8_t *rec, size_t len)
{
	if (!vnetHdr_) {
		port_.fromGuest(rec, len);
		return;
	}
	if (len >= kVnetHdrLen && (rec[0] & kVnetFlagSetFeatures)) {
		setFeaturesRecord(rec, len);
		return;
	}
	vnetRecordFromGuest(port_, features(), rec, len);
}

void SeqpacketLink::setFeaturesRecord(const uint8_t *rec, size_t len)
{
	if (len != kSetFeaturesLen) {
		port_.stats().dropVnetHdr++;
		g_debug("dropped a %zu-byte set-features record (expected %zu)", len, kSetFeaturesLen);
		return;
	}
	uint64_t f;
	memcpy(&f, rec + kVnetHdrLen, sizeof(f));
	// Applies from the next frame on; libslirp is not restarted (virtio_offloads.hpp).
	setFeatures(le64toh(f) & kOffloadFeatures);
	g_debug("offloads: features 0x%llx", static_cast<unsigned long long>(features()));
}

uint8_t *SeqpacketLink::reserveSlot()
{
	if (txCount_ == kBatch)
		flush(); // a long burst in one dispatch: write what we have
	if (isClosed())
		return nullptr;
	if (txCount_ == kBatch) {
		port_.stats().dropToGuestFull++;
		return nullptr;
	}
	return static_cast<uint8_t *>(txIov_[txCount_].iov_base);
}

ssize_t SeqpacketLink::sendFrame(const uint8_t *frame, size_t len)
{
	if (isClosed())
		return -1;
	size_t hdr = vnetHdr_ ? kVnetHdrLen : 0;
	if (len + hdr > slotSize_) {
		port_.stats().dropToGuestError++; // libslirp never makes one above its MTU
		return -1;
	}
	if (vnetHdr_) {
		int n = vnetFrameToGuest(
			port_, features(), frame, len, [this] { return reserveSlot(); },
			[this](size_t recLen) { commitSlot(recLen); });
		return n > 0 ? static_cast<ssize_t>(len) : -1;
	}
	uint8_t *slot = reserveSlot();
	if (!slot)
		return -1;
	memcpy(slot, frame, len);
	commitSlot(len);
	return static_cast<ssize_t>(len);
}

void SeqpacketLink::flush()
{
	Stats &st = port_.stats();
	while (txSent_ < txCount_ && !isClosed()) {
		int r = sendmmsg(fd_.get(), txMsg_.data() + txSent_, static_cast<unsigned>(txCount_ - txSent_),
				 MSG_DONTWAIT | MSG_NOSIGNAL);
		if (r < 0) {
			if (errno == EAGAIN || errno == ENOBUFS || errno == EINTR) {
				// Full: keep the frames, stop making more, and go on when writable.
				port_.toGuestBackpressure(1, 1);
				writeWatch_->enable();
				return;
			}
			if (errno == EPIPE || errno == ECONNRESET) {
				closeLink("peer closed the connection");
				return;
			}
			st.dropToGuestError += txCount_ - txSent_;
			g_debug("send to peer: %s", strerror(errno));
			break;
		}
		size_t hdr = vnetHdr_ ? kVnetHdrLen : 0; // counted as frames, like from_guest_bytes
		for (int i = 0; i < r; i++)
			countToGuest(txIov_[txSent_ + i].iov_len - hdr);
		txSent_ += static_cast<size_t>(r);
	}
	txCount_ = txSent_ = 0;
	writeWatch_->disable();
	port_.toGuestBackpressure(0, 1);
}

} // namespace slirpnet
