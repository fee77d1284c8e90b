// SPDX-License-Identifier: BSD-2-Clause
// link/guest_link.hpp - the one interface of every transport: frames both ways, back-pressure, offloads.
#pragma once

#include <glib.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "fd_watch.hpp"
#include "guest_port.hpp"

namespace slirpnet {

/*
 * A transport between the guest (an emulator, a plugin, a tap) and the Network. Each
 * transport is one subclass; the helper's main builds one with createLink()
 * (link_factory.hpp) and runs every kind through the same serve() path.
 *
 * Frames in: the link reads from its peer when its read watch fires and hands each frame
 * to GuestPort::fromGuest(), then calls GuestPort::inputBatchDone() once per wake-up.
 * Frames out: the Network calls sendFrame() for each frame libslirp makes, and flush()
 * when libslirp's dispatch ends. Neither ever blocks: what the peer cannot take now waits
 * in a bounded queue (reported through GuestPort::toGuestBackpressure()) or is dropped
 * and counted.
 * Counters: a link counts the frames it took for the guest (countToGuest) and its own
 * drops in the port's Stats; the port counts the frames from the guest.
 */
class GuestLink
{
public:
	// why: for the log; error: the peer broke the protocol (not just went away).
	using ClosedCallback = std::function<void(const std::string &why, bool error)>;

	virtual ~GuestLink();
	GuestLink(const GuestLink &) = delete;
	GuestLink &operator=(const GuestLink &) = delete;

	/*
	 * One frame from libslirp for the guest. Returns len when the link took it (sent or
	 * queued), -1 when it was dropped (counted as drop_to_guest_full or _error). May run
	 * the closed callback.
	 */
	virtual ssize_t sendFrame(const uint8_t *frame, size_t len) = 0;
	// libslirp's dispatch ended: write what sendFrame() batched (default: nothing is).
	virtual void flush() {}
	// True when the link can carry frames above its MTU (virtio-net header offloads):
	// then libslirp runs at a large MTU and the link cuts or marks its frames.
	virtual bool offloadCapable() const { return false; }

	// The virtio-net offload features in effect (virtio_net.hpp kFeat*); 0 without any.
	uint64_t features() const { return features_; }
	// What the link is, for the log: "fd 3", "/run/net.sock".
	const std::string &name() const { return name_; }
	bool isClosed() const { return closed_; }
	/*
	 * Called once when the peer is gone for good (a listening link that serves clients one
	 * after another never calls it unless told to serve one only). It may run from inside
	 * sendFrame() or a watch callback: it must not destroy the link there.
	 */
	void setClosedCallback(ClosedCallback cb) { onClosed_ = std::move(cb); }

protected:
	GuestLink(GuestPort &port, std::string name);

	// Watch rxFd for input (enabled now) and txFd for room (enabled by the subclass while
	// frames wait); txFd < 0: no write watch.
	void startWatches(GMainContext *ctx, int rxFd, int txFd);
	virtual void onReadable(GIOCondition) {}
	virtual void onWritable(GIOCondition) {}
	// Drop what waits for the peer (the link closed, or the peer changed).
	virtual void dropQueued() {}

	/*
	 * The peer is gone: watches off, the queue dropped, host input released, the callback
	 * run. Idempotent.
	 */
	void closeLink(const std::string &why, bool error = false);
	/*
	 * After a wake-up with HUP/ERR that read nothing: true (and the link closed) when the
	 * peer has really gone, false when there is still data or it was a spurious wake-up.
	 */
	bool closeIfHungUp(int fd, GIOCondition cond);

	void countToGuest(size_t bytes)
	{
		Stats &st = port_.stats();
		st.toGuestFrames++;
		st.toGuestBytes += bytes;
	}
	void setFeatures(uint64_t f) { features_ = f; }

	GuestPort &port_;
	std::unique_ptr<FdWatch> readWatch_;
	std::unique_ptr<FdWatch> writeWatch_; // nullptr without a txFd

private:
	std::string name_;
	ClosedCallback onClosed_;
	uint64_t features_ = 0;
	bool closed_ = false;
};

/*
 * Record-oriented input (SOCK_SEQPACKET, SOCK_DGRAM): up to `slots` records per recvmmsg()
 * into buffers sized once for the largest accepted record. MSG_TRUNC makes each length
 * the record's real one, so an oversized record is seen as such (truncated()) and never
 * passed on cut to its slot.
 */
class RecordBatch
{
public:
	// withCredentials: keep each record's SCM_CREDENTIALS (the socket needs SO_PASSCRED).
	RecordBatch(size_t slots, size_t slotSize, bool withSenders, bool withCredentials = false);

	// Read what is waiting: the number of records (0 when none), or -1 with errno set.
	int read(int fd);
	uint8_t *data(int i) { return buf_.data() + static_cast<size_t>(i) * slotSize_; }
	size_t length(int i) const { return msgs_[i].msg_len; }
	bool truncated(int i) const { return msgs_[i].msg_len > slotSize_; }
	const sockaddr_storage &sender(int i) const { return senders_[i]; }
	socklen_t senderLen(int i) const { return msgs_[i].msg_hdr.msg_namelen; }
	// The sender's credentials as the kernel attached them; nullptr when there are none.
	const ucred *credentials(int i) const;
	size_t slotSize() const { return slotSize_; }

private:
	size_t slotSize_;
	bool withSenders_;
	std::vector<uint8_t> buf_;
	std::vector<iovec> iov_;
	std::vector<mmsghdr> msgs_;
	std::vector<sockaddr_storage> senders_;
	std::vector<uint8_t> control_; // CMSG_SPACE(sizeof(ucred)) per slot, when withCredentials
};

} // namespace slirpnet
