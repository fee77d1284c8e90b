// SPDX-License-Identifier: BSD-2-Clause
// packet/egress_policy.hpp - the guest's egress rules: an ordered table, first match wins, and a default.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "egress_rule.hpp"
#include "options.hpp"

namespace slirpnet {

/*
 * What the policy looks at in a frame from the guest: a new TCP connection (SYN without
 * ACK), a UDP datagram or an ICMP/ICMPv6 echo request, to dst:port.
 */
struct EgressPacket {
	uint8_t proto = 0; // one kEgress* bit
	bool v6 = false;
	const uint8_t *dst = nullptr; // 4 or 16 bytes inside the frame
	uint16_t port = 0; // destination port (TCP, UDP)
	size_t l3 = 0; // offset of the IP header in the frame (for the reject)
};

enum class EgressClass : uint8_t {
	Exempt, // not the policy's business: ARP, NDP, DHCP, a TCP segment of a connection, ...
	Check, // an EgressPacket to decide on
	Drop, // an IP fragment: the policy judges whole datagrams only (Network reassembles first)
};

/*
 * Sort a guest frame. Truncated headers of unfragmented packets are Exempt: libslirp
 * drops them itself, exactly as it would without a policy. Fragments never come here:
 * Network reassembles them first (packet/ip_reassembly.hpp), so a rule sees the ports of
 * every datagram, and a fragment that did come would be dropped. DHCP to the
 * broadcast address or the gateway and DHCPv6 to its multicast group are libslirp's own
 * (address configuration keeps working under egress-default=deny).
 */
EgressClass classifyEgress(const uint8_t *frame, size_t len, in_addr gateway, EgressPacket &out);

struct EgressEntry {
	unsigned id;
	EgressRule rule;
	const char *origin; // "policy" (policy=strict), "option" (allow=/deny=) or "control"
};

class EgressPolicy
{
public:
	// policy=strict's rules, then the allow=/deny= options, then the default.
	explicit EgressPolicy(const Config &cfg);

	EgressVerdict decide(const EgressPacket &p) const;
	// Quick test for the path of every frame: no rule and an allowing default.
	bool open() const { return entries_.empty() && !defaultDeny_; }

	// At position (0 = first; nullopt or past the end: last, before the default). Returns the id.
	unsigned add(const EgressRule &rule, std::optional<size_t> position, const char *origin = "control");
	bool remove(unsigned id, std::string &error);
	const std::vector<EgressEntry> &entries() const { return entries_; }
	bool defaultDeny() const { return defaultDeny_; }

private:
	std::vector<EgressEntry> entries_;
	bool defaultDeny_;
	unsigned nextId_ = 1;
};

} // namespace slirpnet
