// SPDX-License-Identifier: BSD-2-Clause
// packet/egress_policy.cpp - the guest's egress rules: an ordered table, first match wins, and a default.
#include "egress_policy.hpp"

#include <algorithm>
#include <cstring>

#include "ethernet.hpp"
#include "quote.hpp"

namespace slirpnet {

namespace {

const uint8_t kDhcp6Servers[16] = { 0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 2 };

constexpr uint8_t kIcmpEcho = 8, kIcmp6Echo = 128;

// The L4 header at l4 (avail bytes of it in the frame): what the policy checks, if anything.
EgressClass classifyL4(uint8_t proto, bool v6, const uint8_t *l4, size_t avail, in_addr gateway, EgressPacket &out)
{
	switch (proto) {
	case IPPROTO_TCP:
		if (avail < 14) // ports and flags
			return EgressClass::Exempt;
		if ((l4[13] & (TH_SYN | TH_ACK)) != TH_SYN)
			return EgressClass::Exempt; // only a new connection reaches out
		out.proto = kEgressTcp;
		out.port = loadBe16(l4 + 2);
		return EgressClass::Check;
	case IPPROTO_UDP:
		if (avail < kUdpHeaderLen)
			return EgressClass::Exempt;
		// Address configuration is libslirp's own and never leaves it: DHCP, DHCPv6.
		if (!v6 && loadBe16(l4 + 2) == 67 &&
		    (std::memcmp(out.dst, &gateway, 4) == 0 || std::memcmp(out.dst, "\xff\xff\xff\xff", 4) == 0))
			return EgressClass::Exempt;
		// DHCPv6 is answered by libslirp only at ff02::1:2 (All_DHCP_Relay_Agents_and_Servers);
		// any other multicast group would be forwarded, so only that one is exempt.
		if (v6 && loadBe16(l4 + 2) == 547 && std::memcmp(out.dst, kDhcp6Servers, 16) == 0)
			return EgressClass::Exempt;
		out.proto = kEgressUdp;
		out.port = loadBe16(l4 + 2);
		return EgressClass::Check;
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6:
		if (avail < 1 || l4[0] != (v6 ? kIcmp6Echo : kIcmpEcho))
			return EgressClass::Exempt; // NDP and errors stay on the link
		out.proto = kEgressIcmp;
		return EgressClass::Check;
	default:
		return EgressClass::Exempt; // libslirp drops other protocols
	}
}

} // namespace

EgressClass classifyEgress(const uint8_t *f, size_t len, in_addr gateway, EgressPacket &out)
{
	out = EgressPacket{};
	out.l3 = kEthHeaderLen;
	if (len < kEthHeaderLen)
		return EgressClass::Exempt;
	const uint8_t *ip = f + kEthHeaderLen;
	size_t avail = len - kEthHeaderLen;
	uint16_t type = etherType(f);
	if (type == ETHERTYPE_IP) {
		if (avail < kIpv4MinHeaderLen || (ip[0] >> 4) != 4)
			return EgressClass::Exempt;
		size_t ihl = (ip[0] & 0x0fu) * 4u;
		if (ihl < kIpv4MinHeaderLen || avail < ihl)
			return EgressClass::Exempt;
		out.dst = ip + 16;
		// Network reassembles fragments before the policy (ip_reassembly.hpp): a fragment
		// here, whose ports may be elsewhere, is never judged.
		if (loadBe16(ip + 6) & (IP_MF | IP_OFFMASK))
			return EgressClass::Drop;
		size_t total = std::min<size_t>(loadBe16(ip + 2), avail);
		size_t l4avail = total > ihl ? total - ihl : 0;
		return classifyL4(ip[9], false, ip + ihl, l4avail, gateway, out);
	}
	if (type == ETHERTYPE_IPV6) {
		if (avail < kIpv6HeaderLen || (ip[0] >> 4) != 6)
			return EgressClass::Exempt;
		out.v6 = true;
		out.dst = ip + 24;
		// libslirp takes no extension headers: the next header is the transport or dropped;
		// a fragment header never comes here (reassembled before), as for IPv4.
		if (ip[6] == 44)
			return EgressClass::Drop;
		size_t payload = std::min<size_t>(loadBe16(ip + 4), avail - kIpv6HeaderLen);
		return classifyL4(ip[6], true, ip + kIpv6HeaderLen, payload, gateway, out);
	}
	return EgressClass::Exempt;
}

EgressPolicy::EgressPolicy(const Config &cfg) : defaultDeny_(cfg.egressDefaultDeny)
{
	if (cfg.policyStrict)
		for (const auto &r : egressStrictRules(cfg))
			add(r, std::nullopt, "policy");
	for (const auto &r : cfg.egressRules)
		add(r, std::nullopt, "option");
}

EgressVerdict EgressPolicy::decide(const EgressPacket &p) const
{
	// An IPv4-mapped IPv6 destination (::ffff:a.b.c.d) is an IPv4 one: libslirp connects it
	// from an AF_INET6 socket, which the host's dual stack turns into IPv4. Matched as
	// IPv4, so that IPv4 rules (and policy=strict's 127.0.0.0/8, 169.254.0.0/16) hold.
	static const uint8_t kMapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	bool mapped = p.v6 && std::memcmp(p.dst, kMapped, sizeof(kMapped)) == 0;
	const uint8_t *dst = mapped ? p.dst + sizeof(kMapped) : p.dst;
	for (const auto &e : entries_)
		if (e.rule.matches(p.proto, p.v6 && !mapped, dst, p.port))
			return e.rule.verdict;
	return defaultDeny_ ? EgressVerdict::Deny : EgressVerdict::Allow;
}

unsigned EgressPolicy::add(const EgressRule &rule, std::optional<size_t> position, const char *origin)
{
	size_t at = std::min(position.value_or(entries_.size()), entries_.size());
	unsigned id = nextId_++;
	entries_.insert(entries_.begin() + static_cast<std::ptrdiff_t>(at), EgressEntry{ id, rule, origin });
	return id;
}

bool EgressPolicy::remove(unsigned id, std::string &error)
{
	auto it = std::find_if(entries_.begin(), entries_.end(), [id](const EgressEntry &e) { return e.id == id; });
	if (it == entries_.end()) {
		error = "egress: no rule with id " + q(std::to_string(id));
		return false;
	}
	entries_.erase(it);
	return true;
}

} // namespace slirpnet
