// SPDX-License-Identifier: BSD-2-Clause
// stats.hpp - the helper's counters: one table names them for the log, control socket and docs.
#pragma once

#include <array>
#include <cstdint>
#include <string>

namespace slirpnet {

// Counted by direction: from_guest = frames the guest sent (into libslirp), to_guest =
// frames for the guest (out of libslirp), as the ABI's send()/recv() see them.
struct Stats {
	uint64_t fromGuestFrames = 0;
	uint64_t fromGuestBytes = 0;
	uint64_t toGuestFrames = 0;
	uint64_t toGuestBytes = 0;
	uint64_t dropOversize = 0;
	uint64_t dropRunt = 0;
	uint64_t dropFragment = 0;
	uint64_t dropToGuestFull = 0;
	uint64_t dropToGuestError = 0;
	uint64_t dropVnetHdr = 0;
	uint64_t pauses = 0;
	uint64_t fromGuestGso = 0;
	uint64_t toGuestGso = 0;
	uint64_t toGuestSplit = 0;
	uint64_t refusedPeers = 0;
	uint64_t dropForeignSender = 0;
	uint64_t dropEgressTcp = 0;
	uint64_t dropEgressUdp = 0;
	uint64_t dropEgressIcmp = 0;
	uint64_t guestResets = 0;
	uint64_t fragReassembled = 0;
	uint64_t dropFragOverlap = 0;
	uint64_t dropFragTimeout = 0;
	uint64_t dropFragLimit = 0;
	uint64_t fragHeld = 0; // gauge
	uint64_t fragHeldBytes = 0; // gauge
	uint64_t dropFlowLimitTcp = 0;
	uint64_t dropFlowLimitUdp = 0;
	uint64_t dropFlowLimitIcmp = 0;
	uint64_t vhostQueueStops = 0;
	uint64_t dropVhostChain = 0;

	// Every counter as "name=value" separated by spaces, in table order (the log line).
	std::string format() const;
};

struct StatsCounter {
	const char *name; // in the log line and the control socket's stats reply
	uint64_t Stats::*member;
	const char *help;
};

// The one list of counters.
inline constexpr std::array<StatsCounter, 31> kStatsCounters = { {
	{ "from_guest_frames", &Stats::fromGuestFrames,
	  "frames from the guest handed to libslirp (fragments: once their datagram goes whole)" },
	{ "from_guest_bytes", &Stats::fromGuestBytes, "bytes of those frames (no virtio-net header)" },
	{ "to_guest_frames", &Stats::toGuestFrames, "frames the guest link took" },
	{ "to_guest_bytes", &Stats::toGuestBytes, "bytes of those frames (padding included, no header)" },
	{ "drop_oversize", &Stats::dropOversize, "guest frames larger than MTU/MRU + Ethernet header" },
	{ "drop_runt", &Stats::dropRunt, "guest frames shorter than an Ethernet header" },
	{ "drop_fragment", &Stats::dropFragment,
	  "fragments dropped alone (packet/ip_reassembly.hpp): a bad IPv4 header, an offset or length that is not "
	  "a multiple of 8 or ends past 65535 bytes, an exact duplicate; and IPv4 packets with the reserved flag set" },
	{ "drop_to_guest_full", &Stats::dropToGuestFull, "frames for the guest dropped: its link was full" },
	{ "drop_to_guest_error", &Stats::dropToGuestError,
	  "frames for the guest dropped: no peer, a send error, or too large to cut" },
	{ "drop_vnet_hdr", &Stats::dropVnetHdr, "records with a bad or unsupported virtio-net header" },
	{ "pauses", &Stats::pauses, "times the guest link filled up and host input was paused" },
	{ "from_guest_gso", &Stats::fromGuestGso, "TSO segments from the guest taken whole" },
	{ "to_guest_gso", &Stats::toGuestGso, "large segments to the guest marked for GSO" },
	{ "to_guest_split", &Stats::toGuestSplit, "frames made by cutting libslirp's larger ones to the link MTU" },
	{ "refused_peers", &Stats::refusedPeers,
	  "--socket clients and --dgram datagrams refused: their uid is not allowed (peer-uid=)" },
	{ "drop_foreign_sender", &Stats::dropForeignSender,
	  "--dgram datagrams from another address than the peer's (dgram-peer=, else the first sender)" },
	{ "drop_egress_tcp", &Stats::dropEgressTcp, "TCP connections the egress policy refused (answered with a RST)" },
	{ "drop_egress_udp", &Stats::dropEgressUdp,
	  "UDP datagrams the egress policy refused (answered with an ICMP unreachable; a fragmented one counts "
	  "each fragment)" },
	{ "drop_egress_icmp", &Stats::dropEgressIcmp,
	  "ICMP echo requests the egress policy refused (answered with an ICMP unreachable; a fragmented one "
	  "counts each fragment)" },
	{ "guest_resets", &Stats::guestResets,
	  "new --socket clients for which the previous client's TCP connections were reset" },
	{ "frag_reassembled", &Stats::fragReassembled,
	  "IPv4/IPv6 datagrams reassembled from fragments (their fragments count in from_guest_frames once the "
	  "datagram goes to libslirp)" },
	{ "drop_frag_overlap", &Stats::dropFragOverlap,
	  "fragments dropped with their datagram: it had overlapping or contradicting fragments (RFC 5722)" },
	{ "drop_frag_timeout", &Stats::dropFragTimeout,
	  "fragments dropped with their datagram: not whole within frag-timeout= of its first arrival" },
	{ "drop_frag_limit", &Stats::dropFragLimit,
	  "fragments dropped with their datagram to make room (frag-mem=, datagrams at once), or all with frag-mem=0" },
	{ "frag_held", &Stats::fragHeld, "gauge: fragments held now, waiting for the rest of their datagram" },
	{ "frag_held_bytes", &Stats::fragHeldBytes, "gauge: bytes of reassembly memory they take (in 1 KiB pages)" },
	{ "drop_flow_limit_tcp", &Stats::dropFlowLimitTcp,
	  "new TCP connections refused at max-flows= (answered with a RST)" },
	{ "drop_flow_limit_udp", &Stats::dropFlowLimitUdp,
	  "UDP datagrams that would have opened a flow past max-flows= (answered with an ICMP unreachable)" },
	{ "drop_flow_limit_icmp", &Stats::dropFlowLimitIcmp,
	  "ICMP echo requests that would have opened a socket past max-flows= (answered with an ICMP unreachable)" },
	{ "vhost_queue_stops", &Stats::vhostQueueStops,
	  "--vhost-user virtqueues stopped because the guest broke a ring rule (a bad index, address, loop or "
	  "descriptor order; the log says which) until the front-end sets the queue up again" },
	{ "drop_vhost_chain", &Stats::dropVhostChain,
	  "--vhost-user descriptor chains given back unused: more than 256 segments, or a receive buffer too small "
	  "for a frame without MRG_RXBUF" },
} };

inline std::string Stats::format() const
{
	std::string s;
	for (const auto &c : kStatsCounters) {
		if (!s.empty())
			s += ' ';
		s += c.name;
		s += '=';
		s += std::to_string(this->*c.member);
	}
	return s;
}

} // namespace slirpnet
