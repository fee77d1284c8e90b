// SPDX-License-Identifier: BSD-2-Clause
// packet/flow_limit.hpp - max-flows=: which guest packets would open a flow libslirp cannot take any more.
#pragma once

#include <netinet/in.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <unordered_map>
#include <vector>

#include "egress_policy.hpp"

namespace slirpnet {

/*
 * The guest's side of the flow limit (max-flows=). A flow is a socket libslirp holds for
 * the guest; SlirpDriver counts them (flowCount()). Below the limit everything passes;
 * at it, a guest packet that would make libslirp open one more is refused, before
 * libslirp sees it:
 *  - a TCP SYN without ACK (every one opens a socket, bar a retransmitted SYN of a
 *    connection libslirp is still opening, refused too at the limit);
 *  - a UDP datagram from a source address and port libslirp holds no socket for: it keys
 *    a guest's UDP flows by (source address, source port) alone. Which datagrams opened a
 *    socket is learnt after the fact (opened()), since libslirp's input is synchronous;
 *    datagrams libslirp answers itself (TFTP on the gateway, DHCP) never open one;
 *  - an ICMP echo request to anything but the gateway or the DNS address (libslirp
 *    answers those itself; the others each get a socket of their own for up to 240 s).
 * The caller answers a refused packet as the egress policy does (reject.hpp) and counts it.
 * Allocation: one hash node per UDP flow, when libslirp opens it; none per packet.
 */
class FlowLimit
{
public:
	struct Addresses {
		in_addr gateway{}, dns{};
		in6_addr gateway6{}, dns6{};
	};
	FlowLimit(size_t maxFlows, const Addresses &a) : max_(maxFlows), addr_(a) {}

	size_t max() const { return max_; }

	/*
	 * The verdict on p, a packet classifyEgress() sorted as Check (frame and len its
	 * frame), with flows the sockets libslirp holds now: true if it may go to libslirp.
	 */
	bool admits(const uint8_t *frame, size_t len, const EgressPacket &p, size_t flows) const;

	// After libslirp took p (from frame): it opened the socket fd (a new flow), or -1.
	void opened(const uint8_t *frame, size_t len, const EgressPacket &p, int fd);
	// libslirp freed the flow's socket fd.
	void closed(int fd);

	size_t udpFlows() const { return byKey_.size(); }

private:
	struct Key {
		uint8_t addr[16];
		uint16_t port;
		bool v6;
		bool operator==(const Key &o) const
		{
			return port == o.port && v6 == o.v6 && std::memcmp(addr, o.addr, sizeof addr) == 0;
		}
	};
	struct KeyHash {
		size_t operator()(const Key &k) const
		{
			uint64_t h = 1469598103934665603ull;
			for (uint8_t b : k.addr)
				h = (h ^ b) * 1099511628211ull;
			return h ^ (static_cast<uint64_t>(k.port) << 1 | k.v6);
		}
	};
	// The UDP source of p in frame; false if the frame does not show it.
	static bool udpSource(const uint8_t *frame, size_t len, const EgressPacket &p, Key &out);
	bool answeredByLibslirp(const EgressPacket &p) const;

	size_t max_;
	Addresses addr_;
	std::unordered_map<Key, int, KeyHash> byKey_; // the guest's UDP flows: source -> socket
	std::unordered_map<int, Key> byFd_;
};

/*
 * Ends libslirp's TIME_WAIT at once. When the host closes a connection first (a hostfwd
 * client that disconnects, a server that closes), libslirp sends the guest its FIN, and
 * on the guest's answering FIN enters TIME_WAIT for 2 * TCPTV_MSL = 10 s, holding the
 * socket, its host descriptor and its buffers: a guest serving host clients at 1,000
 * connections/s holds 10,000 of them, and max-flows= would refuse new ones. TIME_WAIT
 * protects a connection's successor from its old duplicates on a network that delays
 * them; between libslirp and the guest there is none (a socket pair, in order), and the
 * host side has its own TIME_WAIT in the kernel. So when the guest's FIN acknowledges the
 * FIN libslirp sent (the connection is closing in that order, libslirp acks it and enters
 * TIME_WAIT), the helper sends libslirp a RST from the guest right after, in sequence, which
 * libslirp 4.7 takes in TIME_WAIT as the end of the connection (tcp_close: socket,
 * descriptor and buffers freed). The guest's side is done already (it gets libslirp's ACK
 * first); it sees nothing of the RST. Not when the guest sent data after libslirp's FIN:
 * the host only half-closed then and is still reading, and libslirp may hold some of that
 * data for it, which a RST would drop; such a connection keeps its TIME_WAIT. (Data the
 * guest sent before libslirp's FIN and libslirp could not yet write to a host that then
 * half-closed is the case this cannot see; libslirp itself drops it after TIME_WAIT.)
 *
 * Fixed table, no allocation after construction: kSlots connections whose FIN libslirp
 * sent, direct-mapped by their addresses and ports; a slot overwritten before the guest's
 * FIN came just leaves that connection its 10 s. A SYN either way clears its slot (a new
 * connection on the same ports).
 */
class TimeWaitReaper
{
public:
	static constexpr size_t kSlots = 4096;
	TimeWaitReaper();

	// A frame libslirp sent the guest.
	void toGuest(const uint8_t *frame, size_t len);
	/*
	 * A frame from the guest, before libslirp takes it: true if it is the FIN answering
	 * libslirp's, and then rst is the segment to give libslirp right after it.
	 */
	bool fromGuest(const uint8_t *frame, size_t len, std::vector<uint8_t> &rst);

private:
	static constexpr size_t kKeyLen = 1 + 16 + 2 + 16 + 2; // v6, guest addr:port, remote addr:port
	struct Slot {
		uint8_t key[kKeyLen];
		uint32_t finEnd; // the sequence number after libslirp's FIN
		bool used;
	};
	struct Segment {
		uint8_t key[kKeyLen];
		size_t l3, l4;
		bool v6;
		uint8_t flags;
		uint32_t seq, ack;
		uint32_t dataLen;
	};
	// A TCP segment in frame (IPv4 unfragmented or IPv6 without extension headers).
	static bool parse(const uint8_t *frame, size_t len, bool fromGuest, Segment &s);
	Slot &slot(const uint8_t *key);
	std::vector<Slot> slots_;
};

} // namespace slirpnet
