// SPDX-License-Identifier: BSD-2-Clause
// link/vhost_user_link.hpp - one vhost-user front-end (QEMU): its messages, the guest's memory, and frames straight between the virtqueues and libslirp.
#pragma once

#include <glib.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "glib_ptr.hpp"
#include "link/byte_ring.hpp"
#include "link/guest_link.hpp"
#include "unique_fd.hpp"
#include "unix_listener.hpp"
#include "unix_socket.hpp"
#include "vhost/guest_memory.hpp"
#include "vhost/vhost_user_proto.hpp"
#include "vhost/virtqueue.hpp"
#include "virtio_net.hpp"

namespace slirpnet {

/*
 * The back-end of a vhost-user-net device with one queue pair (QEMU's
 * docs/interop/vhost-user.rst): QEMU sends the guest's memory table and the rings' places
 * over the socket, and from then on frames move between the guest's virtqueues and
 * libslirp without any socket in between: queue 1 (TX) is read when the guest kicks it,
 * and frames for the guest are written into the buffers the guest posted on queue 0 (RX),
 * then the guest is called. The virtio-net header and its offloads are the plugin's own
 * (virtio_offloads.hpp), so GSO and checksum offload behave the same on both links.
 *
 * Who calls what: the loop calls onReadable() for messages and the kick watches for the
 * queues; the Network calls sendFrame() and flush(). Nothing blocks: the front-end's fds
 * are made non-blocking, and frames for a guest without free RX buffers wait in a bounded
 * queue (back-pressure to the Network), then are dropped (drop_to_guest_full).
 *
 * Trust: the front-end's messages are checked (vhost_user_proto.hpp) and any violation
 * closes the connection with a log line naming the request; the guest's rings are checked
 * by Virtqueue, and a ring that breaks a rule stops that queue (vhost_queue_stops, a log
 * line, the error eventfd) until the front-end sets it up again. Guest memory is only
 * reached through GuestMemory's bounds-checked translations, and a frame is copied out of
 * guest memory before anything parses it (the guest may change it meanwhile).
 */
class VhostUserSession : public GuestLink
{
public:
	// fd: the connected front-end (made non-blocking). name: for the log.
	static std::unique_ptr<VhostUserSession> create(UniqueFd fd, GuestPort &port, GMainContext *ctx,
							std::string name);
	~VhostUserSession() override;

	ssize_t sendFrame(const uint8_t *frame, size_t len) override;
	void flush() override;
	bool offloadCapable() const override { return true; }

	// Handle whatever the front-end has sent (the read watch does it; tests and fuzzing too).
	void processMessages() { onReadable(G_IO_IN); }

	// The features the back-end offers (GET_FEATURES), and the protocol features.
	static uint64_t offeredFeatures();
	static uint64_t offeredProtocolFeatures();
	// The offloads acted on for these acked features (TSO without its checksum offload is not).
	static uint64_t usableOffloads(uint64_t acked);

private:
	static constexpr unsigned kRx = 0, kTx = 1, kQueues = 2;
	struct Queue {
		Virtqueue vq;
		UniqueFd kick, call, err;
		std::unique_ptr<FdWatch> kickWatch;
		vhost::VringAddr addr{};
		bool haveAddr = false;
		bool enabled = false; // SET_VRING_ENABLE 1, or kicked without PROTOCOL_FEATURES
		bool running = false; // started: frames move
		bool needCall = false; // used entries published since the last call
	};

	VhostUserSession(UniqueFd fd, GuestPort &port, GMainContext *ctx, std::string name);
	void onReadable(GIOCondition cond) override;
	void dropQueued() override;

	// One message: false (with error) when the front-end broke the protocol.
	bool handleMessage(std::string &error);
	bool ack(bool ok, std::string &error);
	bool handleMemTable(std::string &error);
	bool handleVringFd(uint32_t request, std::string &error);
	void setAcked(uint64_t features);
	Queue *queueFor(uint32_t index, std::string &error);

	void tryStart(unsigned qi);
	void stopQueue(unsigned qi);
	void stopBroken(unsigned qi, const std::string &why);
	void resetDevice();

	void onKick(unsigned qi);
	void processTx();
	void processRx();
	// Copy a chain's readable bytes into txBuf_ as a 12-byte-header record: its length, or
	// kDropped when it was dropped (oversized, counted).
	size_t gatherTx(const VirtqChain &chain);
	enum class RxWrite {
		Written, // in the ring (counted in to_guest)
		Dropped, // dropped for good (counted as a drop)
		NoRoom, // the guest has not posted enough buffers yet: nothing was taken
	};
	// One record (12-byte header + frame) into the RX ring.
	RxWrite writeRecord(const uint8_t *rec, size_t recLen);
	void deliver(size_t recLen);
	void noteRxStall();
	void dropPending();
	void call(unsigned qi);

	UniqueFd fd_;
	GMainContext *ctx_;
	vhost::MsgReader reader_;
	GuestMemory mem_;
	Queue q_[kQueues];
	uint64_t acked_ = 0;
	uint64_t protocol_ = 0;
	size_t hdrLen_ = kVnetHdrLen; // 10 for a legacy guest without MRG_RXBUF
	bool mergeable_ = false;

	std::vector<uint8_t> txBuf_; // a record from the guest: header + kMaxGsoFrame
	std::vector<uint8_t> stage_; // a record for the guest, as vnetFrameToGuest() makes it
	std::vector<uint8_t> drain_; // a record taken from pending_ (stage_ may hold one meanwhile)
	ByteRing pending_; // records for the guest waiting for RX buffers: u32 length, record
	bool rxStalled_ = false; // the RX ring lacked room; retried once avail->idx passes...
	uint16_t rxStalledAt_ = 0; // ...this
	std::vector<std::pair<uint16_t, uint32_t>> rxUsed_; // chains one record took
	std::unique_ptr<VirtqChain> chain_; // 4 KiB of iovecs, reused
	GSourcePtr txAgain_; // more TX work after a wake-up's budget
};

/*
 * `--vhost-user PATH`: listens like --socket (mode 0600, 0660 with socket-group=, peers
 * checked against peer-uid=) and serves one front-end at a time; a second one is refused
 * while the first is served. When the front-end leaves (QEMU stopped or killed), the
 * server listens again and the next front-end (a restarted QEMU, or QEMU reconnecting with
 * `-chardev socket,...,reconnect=N`) starts afresh; with oneOff it closes instead. Frames
 * for the guest while no front-end runs are dropped (drop_to_guest_error).
 */
class VhostUserServer : public GuestLink
{
public:
	static std::unique_ptr<VhostUserServer> create(const std::string &path, GuestPort &port, GMainContext *ctx,
						       bool oneOff, std::string &error);
	~VhostUserServer() override;

	ssize_t sendFrame(const uint8_t *frame, size_t len) override;
	void flush() override;
	bool offloadCapable() const override { return true; }

private:
	VhostUserServer(const std::string &path, GuestPort &port, GMainContext *ctx, bool oneOff);
	void onAccept(UniqueFd fd);
	void onSessionClosed(const std::string &why, bool error);
	void retire();
	bool hasSession() const { return session_ && !session_->isClosed(); }

	GMainContext *ctx_;
	bool oneOff_;
	std::unique_ptr<UnixListener> listener_;
	std::unique_ptr<VhostUserSession> session_;
	GSourcePtr reaper_; // destroys a closed session outside its own callbacks
	uint64_t sessions_ = 0;
	PeerPolicy peers_;
	WarningLimiter refusedLog_;
};

} // namespace slirpnet
