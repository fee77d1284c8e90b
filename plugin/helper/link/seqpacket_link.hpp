// link/seqpacket_link.hpp - the guest side over a SOCK_SEQPACKET socket: one Ethernet frame per record.
#pragma once

#include <glib.h>
#include <sys/socket.h>

#include <array>
#include <functional>
#include <memory>
#include <vector>

#include "fd_watch.hpp"
#include "network.hpp"
#include "unique_fd.hpp"

namespace slirpnet {

/*
 * Used for the plugin's socketpair (-S). Frames move in batches, one system call each
 * way per batch: recvmmsg() reads up to kBatch frames per wake-up (bounded, so that
 * libslirp's own sockets get their turn), and frames from libslirp are gathered in
 * kBatch preallocated slots and written with one sendmmsg() when libslirp's dispatch
 * ends (Network::setTxFlush), so no extra latency is added.
 * Writing never blocks: while the socket is full the frames wait in their slots and
 * libslirp's host input is paused until the socket is writable; a frame that finds every
 * slot taken is dropped (drop_to_guest_full), which TCP in the guest recovers from.
 * With wire version 2 (Config::vnetHdr) every record carries a virtio-net header and the
 * offloads of vnet_hdr.hpp apply, as negotiated by the plugin's set-features records.
 */
class SeqpacketLink
{
public:
	using ClosedCallback = std::function<void(const char *why)>;
	static constexpr size_t kBatch = 32;

	static std::unique_ptr<SeqpacketLink> create(UniqueFd fd, Network &net, GMainContext *ctx,
						     ClosedCallback onClosed);
	~SeqpacketLink();

	// PacketSink for the Network: queue one frame for the peer.
	ssize_t sendFrame(const uint8_t *frame, size_t len);
	// Write the queued frames (called when libslirp's dispatch ends, and on writability).
	void flush();

private:
	SeqpacketLink(UniqueFd fd, Network &net, ClosedCallback onClosed);
	void onReadable(GIOCondition cond);
	void closed(const char *why);
	// One record from the peer (with its virtio-net header when vnetHdr_).
	void fromPeer(uint8_t *rec, size_t len);
	void setFeatures(const uint8_t *rec, size_t len);
	// A frame larger than the guest link (vnetHdr_ only): GSO or IPv4 fragments.
	ssize_t sendLarge(const uint8_t *frame, size_t len);
	// The next free tx slot (flushing once if all are taken), or nullptr (counted).
	uint8_t *reserveSlot();
	void commitSlot(size_t len) { txIov_[txCount_++].iov_len = len; }

	UniqueFd fd_;
	Network &net_;
	ClosedCallback onClosed_;
	size_t slotSize_; // the largest accepted record
	bool vnetHdr_;
	uint64_t features_ = 0; // offloads the plugin negotiated (vnet_hdr.hpp kFeat*)

	// Receive side: kBatch slots of slotSize_ bytes, sized once.
	std::vector<uint8_t> rxBuf_;
	std::array<iovec, kBatch> rxIov_{};
	std::array<mmsghdr, kBatch> rxMsg_{};

	// Send side: frames [txSent_, txCount_) of the slots are waiting.
	std::vector<uint8_t> txBuf_;
	std::array<iovec, kBatch> txIov_{};
	std::array<mmsghdr, kBatch> txMsg_{};
	size_t txCount_ = 0;
	size_t txSent_ = 0;

	std::unique_ptr<FdWatch> watch_;
	std::unique_ptr<FdWatch> writeWatch_; // on while frames wait for a full socket
	bool closed_ = false;
};

} // namespace slirpnet
