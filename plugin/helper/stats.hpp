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
	// Offloads (plugin wire version 2 only, see vnet_hdr.hpp):
	uint64_t rxGso = 0; // TSO segments from the guest taken whole
	uint64_t txGso = 0; // large segments to the guest marked for GSO
	uint64_t txSplit = 0; // frames made by cutting libslirp's larger ones to the link MTU
	uint64_t dropVnetHdr = 0; // bad or unsupported virtio-net header, either way

	std::string format() const
	{
		return "rx_frames=" + std::to_string(rxFrames) + " rx_bytes=" + std::to_string(rxBytes) +
		       " tx_frames=" + std::to_string(txFrames) + " tx_bytes=" + std::to_string(txBytes) +
		       " drop_oversize=" + std::to_string(dropOversize) +
		       " drop_runt=" + std::to_string(dropRunt) +
		       " drop_fragment=" + std::to_string(dropFragment) +
		       " drop_tx_full=" + std::to_string(dropTxFull) +
		       " drop_tx_error=" + std::to_string(dropTxError) +
		       " pauses=" + std::to_string(pauses) +
		       " rx_gso=" + std::to_string(rxGso) + " tx_gso=" + std::to_string(txGso) +
		       " tx_split=" + std::to_string(txSplit) +
		       " drop_vnet_hdr=" + std::to_string(dropVnetHdr);
	}
};

} // namespace slirpnet
