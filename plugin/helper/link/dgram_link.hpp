// SPDX-License-Identifier: BSD-2-Clause
// link/dgram_link.hpp - a link over datagrams: one Ethernet frame per datagram, no length prefix.
#pragma once

#include <glib.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "link/byte_ring.hpp"
#include "link/guest_link.hpp"
#include "unique_fd.hpp"
#include "unix_socket.hpp"

namespace slirpnet {

/*
 * Two uses:
 *  - bound (`--dgram PATH`, for -netdev dgram,local.type=unix,...,remote.path=PATH): the
 *    helper binds PATH (mode 0600, or 0660 with socket-group=) and receives there. It
 *    serves one peer address: dgram-peer= (QEMU's local.path), else the first sender's,
 *    locked in from then on. Datagrams from any other address, or from an unbound socket
 *    (which has none), are dropped (drop_foreign_sender): any local writer could otherwise
 *    inject frames and draw the replies to itself. Each datagram's sender uid
 *    (SCM_CREDENTIALS) must be the helper's, root's or a peer-uid= one, else it is dropped
 *    (refused_peers), before it could lock the address in. Both are logged at most once
 *    per 10 s. Until the peer is known there is nobody to send to, so frames from libslirp
 *    are dropped (drop_to_guest_error). Datagrams carry no connection state, so QEMU and
 *    the helper may each restart without the other: QEMU restarting binds the same path,
 *    which is the same address.
 *  - connected (`--fd N` of type SOCK_DGRAM or SOCK_SEQPACKET: -netdev socket,fd=,
 *    -netdev dgram,local.type=fd, libvirt's slirp helper socketpair): send()/recv().
 *
 * Writes never block. What the socket refuses for now (EAGAIN) waits in a bounded queue
 * of whole frames, flushed when the socket is writable; a frame that does not fit is
 * dropped (drop_to_guest_full). In bound mode the replies leave through a second, unbound socket
 * connect()ed to the peer: QEMU's own socket is not connected, so the kernel caps its
 * queue at net.unix.max_dgram_qlen (10) datagrams, and only a connected sender is woken
 * (POLLOUT) when that queue drains. Without it a burst of TCP segments would be dropped.
 * Frames shorter than 60 bytes are zero-padded to 60 on the way out.
 */
class DgramLink : public GuestLink
{
public:
	static constexpr size_t kDefaultQueueBytes = 1u << 20;
	// Records read per wake-up before yielding to the rest of the loop.
	static constexpr size_t kBatch = 32;

	// Bind a fresh UNIX datagram socket at path (a stale socket file is replaced).
	static std::unique_ptr<DgramLink> bindPath(const std::string &path, GuestPort &port, GMainContext *ctx,
						   std::string &error);
	/*
	 * Use a connected socket of the given SO_TYPE. The link closes when the peer is seen to
	 * be gone (SOCK_SEQPACKET EOF, or a send refused), possibly inside sendFrame(). A
	 * SOCK_DGRAM peer that exits is only noticed on the next send.
	 */
	static std::unique_ptr<DgramLink> connected(UniqueFd fd, int type, GuestPort &port, GMainContext *ctx,
						    std::string name);
	~DgramLink() override;

	// One frame to the peer.
	ssize_t sendFrame(const uint8_t *frame, size_t len) override;

private:
	enum class SendResult { Sent, Again, Failed };

	DgramLink(UniqueFd fd, int type, GuestPort &port, std::string name);
	void start(GMainContext *ctx);
	void onReadable(GIOCondition cond) override;
	void onWritable(GIOCondition cond) override;
	void dropQueued() override { out_.clear(); }
	void writeQueued();
	SendResult sendOne(iovec *iov, int iovCount);
	bool connectTx();
	void peerFailed(int err);
	bool acceptSender(int i);
	void lockPeer(const sockaddr_storage &addr, socklen_t len);
	int txFd() const { return bound_ ? tx_.get() : fd_.get(); }
	int rxFd() const { return boundSock_ ? boundSock_->fd() : fd_.get(); }

	UniqueFd fd_; // connected (--fd): receives and sends
	std::unique_ptr<UnixSocketFile> boundSock_; // bound to a path (--dgram): receives
	int type_;
	RecordBatch rx_; // sized once: the largest accepted frame
	ByteRing out_; // whole frames, each as a 4-byte length then the padded frame

	// Bound mode only.
	bool bound_ = false;
	UniqueFd tx_; // unbound, connect()ed to peer_ when txConnected_
	bool txConnected_ = false;
	sockaddr_storage peer_{};
	socklen_t peerLen_ = 0; // 0: no peer known yet; once set, it never changes
	bool peerGoneLogged_ = false;
	PeerPolicy peers_;
	WarningLimiter refusedLog_;
	WarningLimiter foreignLog_;
};

} // namespace slirpnet
