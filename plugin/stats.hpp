// stats.hpp - frame and drop counters of one helper, and their one-line log form.
#pragma once

#include <cstdint>
#include <string>

namespace slirpnet {

// rx: from the guest into libslirp; tx: from libslirp to the guest.
struct Stats {
	uint64_t rxFrames = 0;
	uint64_t rxBytes = 0;
	uint64_t txFrames = 0;
	uint64_t txBytes = 0;
	uint64_t dropOversize = 0; // guest frame larger than MTU/MRU + Ethernet header
	uint64_t dropRunt = 0; // guest frame shorter than an Ethernet header
	uint64_t dropFragment = 0; // IPv4 fragment with no train started (see frag_guard.hpp)
	uint64_t dropTxFull = 0; // the guest side could not take the frame right now
	uint64_t dropTxError = 0; // any other error sending to the guest side
	uint64_t pauses = 0; // times the guest side filled up and host input was paused

	std::string format() const
	{
		return "rx_frames=" + std::to_string(rxFrames) + " rx_bytes=" + std::to_string(rxBytes) +
		       " tx_frames=" + std::to_string(txFrames) + " tx_bytes=" + std::to_string(txBytes) +
		       " drop_oversize=" + std::to_string(dropOversize) +
		       " drop_runt=" + std::to_string(dropRunt) +
		       " drop_fragment=" + std::to_string(dropFragment) +
		       " drop_tx_full=" + std::to_string(dropTxFull) +
		       " drop_tx_error=" + std::to_string(dropTxError) +
		       " pauses=" + std::to_string(pauses);
	}
};

} // namespace slirpnet
