// SPDX-License-Identifier: BSD-2-Clause
// link/dgram_link.cpp - a link over datagrams: one Ethernet frame per datagram, no length prefix.
#include "link/dgram_link.hpp"

#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>

#include "byte_order.hpp"
#include "link/stream_link.hpp" // kMinFrame, kQemuMaxFrame, kZeroPad

namespace slirpnet {

static std::string describeAddr(const sockaddr_storage &ss, socklen_t len)
{
	if (ss.ss_family == AF_UNIX) {
		const auto &un = reinterpret_cast<const sockaddr_un &>(ss);
		size_t n = len - offsetof(sockaddr_un, sun_path);
		if (n > 0 && un.sun_path[0] == '\0')
			return "@" + std::string(un.sun_path + 1, strnlen(un.sun_path + 1, n - 1));
		return std::string(un.sun_path, strnlen(un.sun_path, n));
	}
	return "(family " + std::to_string(ss.ss_family) + ")";
}

DgramLink::DgramLink(UniqueFd fd, int type, GuestPort &port, std::string name)
	: GuestLink(port, std::move(name)), fd_(std::move(fd)), type_(type),
	  rx_(kBatch, std::min(port.config().maxFrame(), kQemuMaxFrame), type == SOCK_DGRAM),
	  out_(std::max(kDefaultQueueBytes, 4 + kQemuMaxFrame))
{
}

void DgramLink::start(GMainContext *ctx)
{
	growSendBuffer(txFd(), static_cast<int>(port_.config().sndbuf));
	startWatches(ctx, rxFd(), txFd());
}

std::unique_ptr<DgramLink> DgramLink::bindPath(const std::string &path, GuestPort &port, GMainContext *ctx,
					       std::string &error)
{
	// Like QEMU's own dgram netdev, an existing socket file at path is taken over.
	auto bound = UnixSocketFile::bind(path, SOCK_DGRAM, SocketAccess{}, error);
	if (!bound)
		return nullptr;
	UniqueFd tx(socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
	if (!tx) {
		error = std::string("socket: ") + strerror(errno);
		return nullptr;
	}
	std::unique_ptr<DgramLink> l(new DgramLink(UniqueFd(), SOCK_DGRAM, port, path));
	l->bound_ = true;
	l->boundSock_ = std::move(bound);
	l->tx_ = std::move(tx);
	l->start(ctx);
	return l;
}

std::unique_ptr<DgramLink> DgramLink::connected(UniqueFd fd, int type, GuestPort &port, GMainContext *ctx,
						std::string name)
{
	std::unique_ptr<DgramLink> l(new DgramLink(std::move(fd), type, port, std::move(name)));
	l->start(ctx);
	return l;
}

DgramLink::~DgramLink()
{
	readWatch_.reset();
	writeWatch_.reset();
	fd_.reset();
	tx_.reset();
	boundSock_.reset(); // unlinks the socket file if it is still ours
}

void DgramLink::notePeer(const sockaddr_storage &from, socklen_t len)
{
	if (len <= static_cast<socklen_t>(offsetof(sockaddr_un, sun_path))) {
		// An unbound sender has no address to reply to.
		if (!unnamedLogged_)
			g_warning("frames from an unbound socket on '%s': replies cannot reach it", name().c_str());
		unnamedLogged_ = true;
		return;
	}
	if (len == peerLen_ && memcmp(&from, &peer_, static_cast<size_t>(len)) == 0)
		return;
	g_message("dgram peer is now '%s'", describeAddr(from, len).c_str());
	peer_ = from;
	peerLen_ = len;
	peerGoneLogged_ = false;
	// Frames queued for the previous peer are not for this one.
	txConnected_ = false;
	out_.clear();
	port_.toGuestBackpressure(0, out_.capacity());
	writeWatch_->disable();
}

// Point the sending socket at the peer; false (logged once) while the peer is not there.
bool DgramLink::connectTx()
{
	if (peerLen_ == 0)
		return false;
	if (connect(tx_.get(), reinterpret_cast<const sockaddr *>(&peer_), peerLen_) < 0) {
		if (!peerGoneLogged_)
			g_message("cannot reach dgram peer '%s': %s (dropping frames until it is back)",
				  describeAddr(peer_, peerLen_).c_str(), strerror(errno));
		peerGoneLogged_ = true;
		return false;
	}
	txConnected_ = true;
	peerGoneLogged_ = false;
	return true;
}

void DgramLink::onReadable(GIOCondition cond)
{
	int n = rx_.read(rxFd());
	if (n < 0) {
		if (bound_) {
			g_warning("receiving on '%s': %s", name().c_str(), strerror(errno));
			n = 0;
		} else {
			closeLink(strerror(errno));
			return;
		}
	}
	for (int i = 0; i < n && !isClosed(); i++) {
		size_t len = rx_.length(i);
		if (len == 0 && type_ != SOCK_DGRAM && peerHungUp(rxFd())) {
			port_.inputBatchDone();
			closeLink("peer closed the connection");
			return;
		}
		if (bound_)
			notePeer(rx_.sender(i), rx_.senderLen(i));
		if (rx_.truncated(i)) {
			port_.droppedOversize(len); // only its length was read
			continue;
		}
		port_.fromGuest(rx_.data(i), len);
	}
	port_.inputBatchDone();
	if (!bound_ && n == 0)
		closeIfHungUp(rxFd(), cond);
}

// One datagram. Failed leaves errno set.
DgramLink::SendResult DgramLink::sendOne(iovec *iov, int iovCount)
{
	msghdr msg{};
	msg.msg_iov = iov;
	msg.msg_iovlen = static_cast<size_t>(iovCount);
	int flags = MSG_DONTWAIT | MSG_NOSIGNAL | (type_ == SOCK_SEQPACKET ? MSG_EOR : 0);
	if (sendmsg(txFd(), &msg, flags) >= 0)
		return SendResult::Sent;
	// ENOBUFS: no memory for the skb right now; like a full socket, it passes.
	if (errno == EAGAIN || errno == EINTR || errno == ENOBUFS)
		return SendResult::Again;
	return SendResult::Failed;
}

// A send failed for good (errno err): the peer is gone or unusable.
void DgramLink::peerFailed(int err)
{
	if (bound_) {
		// QEMU exited or is restarting: keep the address, it may bind it again.
		if (!peerGoneLogged_)
			g_message("sending to dgram peer '%s': %s (dropping frames until it is back)",
				  describeAddr(peer_, peerLen_).c_str(), strerror(err));
		peerGoneLogged_ = true;
		txConnected_ = false;
		out_.clear();
		port_.toGuestBackpressure(0, out_.capacity());
		writeWatch_->disable();
		return;
	}
	if (err == ECONNREFUSED || err == EPIPE || err == ECONNRESET || err == ENOTCONN) {
		closeLink("peer closed the connection");
		return;
	}
	g_debug("send to peer: %s", strerror(err));
}

ssize_t DgramLink::sendFrame(const uint8_t *frame, size_t len)
{
	Stats &st = port_.stats();
	if (isClosed() || (bound_ && !txConnected_ && !connectTx())) {
		st.dropToGuestError++;
		return -1;
	}
	size_t wire = std::max(len, kMinFrame);
	iovec iov[2] = {
		{ const_cast<uint8_t *>(frame), len },
		{ const_cast<uint8_t *>(kZeroPad), wire - len },
	};
	int iovCount = wire > len ? 2 : 1;
	if (out_.empty()) {
		SendResult r = sendOne(iov, iovCount);
		if (r == SendResult::Failed && bound_) {
			// The peer's socket was replaced (QEMU restarted on the same path): the
			// connected socket still points at the old one. Reconnect once.
			int err = errno;
			txConnected_ = false;
			if (connectTx())
				r = sendOne(iov, iovCount);
			else
				errno = err;
		}
		if (r == SendResult::Failed) {
			st.dropToGuestError++;
			peerFailed(errno);
			return -1;
		}
		if (r == SendResult::Sent) {
			countToGuest(wire);
			return static_cast<ssize_t>(len);
		}
	}
	// The socket is full for now (or frames are already waiting): queue it whole.
	if (out_.free() < 4 + wire) {
		st.dropToGuestFull++;
		return -1;
	}
	uint8_t header[4];
	storeBe32(header, static_cast<uint32_t>(wire));
	out_.push(header, sizeof(header));
	out_.push(frame, len);
	out_.push(kZeroPad, wire - len);
	writeWatch_->enable();
	port_.toGuestBackpressure(out_.size(), out_.capacity());
	countToGuest(wire);
	return static_cast<ssize_t>(len);
}

void DgramLink::writeQueued()
{
	while (!out_.empty()) {
		uint8_t header[4];
		out_.copyOut(0, header, sizeof(header));
		size_t n = loadBe32(header);
		iovec iov[2];
		int count = out_.peek(sizeof(header), n, iov);
		SendResult r = sendOne(iov, count);
		if (r == SendResult::Again)
			return;
		if (r == SendResult::Failed) {
			port_.stats().dropToGuestError++;
			peerFailed(errno); // clears the queue, or closes the link
			return;
		}
		out_.consume(sizeof(header) + n);
		port_.toGuestBackpressure(out_.size(), out_.capacity());
	}
	writeWatch_->disable();
}

void DgramLink::onWritable(GIOCondition cond)
{
	if (cond & G_IO_OUT) {
		writeQueued();
		return;
	}
	if ((cond & G_IO_ERR) && !bound_)
		closeLink("socket error");
}

} // namespace slirpnet
