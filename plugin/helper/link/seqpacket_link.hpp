// SPDX-License-Identifier: BSD-2-Clause
// link/seqpacket_link.hpp - the plugin's link: a SOCK_SEQPACKET socketpair, one Ethernet frame per record.
#pragma once

#include <glib.h>
#include <sys/socket.h>

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "link/guest_link.hpp"
#include "unique_fd.hpp"
#include "wire.hpp"

namespace slirpnet {

/*
 * Used for libslirpnet's socketpair (-S). Frames move in batches, one system call each
 * way per batch: recvmmsg() reads up to kBatch frames per wake-up (bounded, so that
 * libslirp's own sockets get their turn), and frames from libslirp are gathered in
 * kBatch preallocated slots and written with one sendmmsg() when libslirp's dispatch
 * ends (flush()), so no extra latency is added.
 * Writing never blocks: while the socket is full the frames wait in their slots and
 * libslirp's host input is paused until the socket is writable; a frame that finds every
 * slot taken is dropped (drop_to_guest_full), which TCP in the guest recovers from.
 * With wire version 2 (Config::vnetHdr) every record carries a virtio-net header and the
 * offloads of virtio_offloads.hpp apply, as negotiated by the plugin's set-features records.
 */
class SeqpacketLink : public GuestLink
{
public:
	static constexpr size_t kBatch = 32;

	// fd: the helper's end of the socketpair, after the config exchange (below).
	static std::unique_ptr<SeqpacketLink> create(UniqueFd fd, GuestPort &port, GMainContext *ctx);
	~SeqpacketLink() override;

	ssize_t sendFrame(const uint8_t *frame, size_t len) override;
	void flush() override;
	bool offloadCapable() const override { return vnetHdr_; }

	/*
	 * The start of the plugin protocol (PROTOCOL.md): wait (bounded) for the config record
	 * and decode it, appending its options to opts; then, once the network is up or has
	 * failed, answer with a status record.
	 */
	static bool receiveConfig(int fd, OptionList &opts, uint32_t &version, std::string &error);
	static void sendStatus(int fd, bool ok, const std::string &message);

private:
	SeqpacketLink(UniqueFd fd, GuestPort &port);
	void onReadable(GIOCondition cond) override;
	void onWritable(GIOCondition) override { flush(); }
	void dropQueued() override { txCount_ = txSent_ = 0; }
	// One record from the peer (with its virtio-net header when vnetHdr_).
	void fromPeer(uint8_t *rec, size_t len);
	void setFeaturesRecord(const uint8_t *rec, size_t len);
	// The next free tx slot (flushing once if all are taken), or nullptr (counted).
	uint8_t *reserveSlot();
	void commitSlot(size_t len) { txIov_[txCount_++].iov_len = len; }

	UniqueFd fd_;
	bool vnetHdr_;
	size_t slotSize_; // the largest accepted record
	RecordBatch rx_;

	// Send side: frames [txSent_, txCount_) of the slots are waiting.
	std::vector<uint8_t> txBuf_;
	std::array<iovec, kBatch> txIov_{};
	std::array<mmsghdr, kBatch> txMsg_{};
	size_t txCount_ = 0;
	size_t txSent_ = 0;
};

} // namespace slirpnet
