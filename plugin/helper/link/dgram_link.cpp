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
#include "log.hpp"

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
	const Config &cfg = port.config();
	SocketAccess access;
	if (!socketAccessForGroup(cfg.socketGroup, access, error))
		return nullptr;
	sockaddr_un locked{};
	if (!cfg.dgramPeer.empty() && !makeUnixAddr(cfg.dgramPeer, locked, error)) {
		error = "dgram-peer: " + error;
		return nullptr;
	}
	// A stale socket file is replaced; one another process is bound to is refused.
	auto bound = UnixSocketFile::bind(path, SOCK_DGRAM, access, error);
	if (!bound)
		return nullptr;
	// Each datagram then carries its sender's credentials (SCM_CREDENTIALS).
	int on = 1;
	if (setsockopt(bound->fd(), SOL_SOCKET, SO_PASSCRED, &on, sizeof(on)) < 0) {
		error = std::string("SO_PASSCRED: ") + strerror(errno);
		return nullptr;
	}
	UniqueFd tx(socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
	if (!tx) {
		error = std::string("socket: ") + strerror(errno);
		return nullptr;
	}
	std::unique_ptr<DgramLink> l(new DgramLink(UniqueFd(), SOCK_DGRAM, port, path));
	l->bound_ = true;
	l->boundSock_ = std::move(bound);
	l->tx_ = std::move(tx);
	l->peers_ = PeerPolicy(cfg.peerUids);
	l->rx_ = RecordBatch(kBatch, l->rx_.slotSize(), true, true);
	if (!cfg.dgramPeer.empty()) {
		sockaddr_storage ss{};
		memcpy(&ss, &locked, sizeof(locked));
		l->lockPeer(ss, static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + cfg.dgramPeer.size() + 1));
	}
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

// The path of a named AF_UNIX address ("@name" for the abstract namespace); "" if unnamed.
static std::string unixPath(const sockaddr_storage &ss, socklen_t len)
{
	if (ss.ss_family != AF_UNIX || len <= static_cast<socklen_t>(offsetof(sockaddr_un, sun_path)))
		return "";
	return describeAddr(ss, len);
}

void DgramLink::lockPeer(const sockaddr_storage &addr, socklen_t len)
{
	peer_ = addr;
	peerLen_ = len;
	g_message("dgram peer is '%s'; frames from any other address are dropped", describeAddr(addr, len).c_str());
}

// Whether datagram i of the batch comes from the peer (locking the first one in).
bool DgramLink::acceptSender(int i)
{
	uint64_t heldBack = 0;
	// The uid first: a refused sender must not become the peer.
	const ucred *cred = rx_.credentials(i);
	if (!cred || !peers_.allows(cred->uid)) {
		port_.stats().refusedPeers++;
		if (refusedLog_.shouldLog(heldBack))
			g_warning("dropped a datagram on '%s' from uid %d (pid %d): not allowed (see peer-uid=); "
				  "%llu more since the last warning",
				  name().c_str(), cred ? static_cast<int>(cred->uid) : -1,
				  cred ? static_cast<int>(cred->pid) : -1, static_cast<unsigned long long>(heldBack));
		return false;
	}
	const sockaddr_storage &from = rx_.sender(i);
	socklen_t len = rx_.senderLen(i);
	std::string path = unixPath(from, len);
	if (path.empty() || (peerLen_ != 0 && path != unixPath(peer_, peerLen_))) {
		port_.stats().dropForeignSender++;
		if (foreignLog_.shouldLog(heldBack))
			g_warning("dropped a datagram on '%s' from %s: the peer is %s; "
				  "%llu more since the last warning",
				  name().c_str(),
				  path.empty() ? "an unbound socket (no address to reply to)"
					       : ("'" + path + "'").c_str(),
				  peerLen_ ? ("'" + unixPath(peer_, peerLen_) + "'").c_str() : "not known yet",
				  static_cast<unsigned long long>(heldBack));
		return false;
	}
	if (peerLen_ == 0)
		lockPeer(from, len);
	return true;
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
			// Per wake-up while the error lasts: rate-limited.
			slirpnet_warning_ratelimited("receiving on '%s': %s", name().c_str(), strerror(errno));
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
		if (bound_ && !acceptSender(i))
			continue;
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
		if (r == SendResult::Failed && bound_) {
			// QEMU restarted on the same path (the only address served): the queue
			// goes to the new socket, as a network that delivers late would.
			int err = errno;
			txConnected_ = false;
			if (connectTx())
				r = sendOne(iov, count);
			else
				errno = err;
		}
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
