// seqpacket_link.hpp - the guest side over a SOCK_SEQPACKET socket: one Ethernet frame per record.
#pragma once

#include <glib.h>

#include <functional>
#include <memory>
#include <vector>

#include "fd_watch.hpp"
#include "network.hpp"
#include "unique_fd.hpp"

namespace slirpnet {

/*
 * Used for the plugin's socketpair (-S). Reading is bounded per wake-up so libslirp's
 * own sockets get their turn; writing never blocks: a full socket drops the frame
 * (counted as drop_tx_full), which TCP in the guest recovers from, and pauses libslirp's
 * host input until the socket is writable again.
 */
class SeqpacketLink
{
public:
	using ClosedCallback = std::function<void(const char *why)>;

	static std::unique_ptr<SeqpacketLink> create(UniqueFd fd, Network &net, GMainContext *ctx,
						     ClosedCallback onClosed);

	// PacketSink for the Network: one frame to the peer.
	ssize_t sendFrame(const uint8_t *frame, size_t len);

private:
	SeqpacketLink(UniqueFd fd, Network &net, ClosedCallback onClosed);
	void onReadable(GIOCondition cond);
	void closed(const char *why);

	UniqueFd fd_;
	Network &net_;
	ClosedCallback onClosed_;
	std::vector<uint8_t> buf_; // sized once: the largest accepted frame
	std::unique_ptr<FdWatch> watch_;
	std::unique_ptr<FdWatch> writeWatch_; // on while the socket is full: resumes host input
	bool closed_ = false;
};

} // namespace slirpnet
