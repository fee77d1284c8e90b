// SPDX-License-Identifier: BSD-2-Clause
// egress_rule.hpp - one egress rule (allow=/deny= CIDR[:PORTS]): its text form, parsed and printed.
#pragma once

#include <netinet/in.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace slirpnet {

enum class EgressVerdict : uint8_t { Allow, Deny };

// Which of the guest's packets a rule looks at (a bit mask).
enum EgressProto : uint8_t {
	kEgressTcp = 1, // a TCP SYN (a new connection)
	kEgressUdp = 2, // any UDP datagram
	kEgressIcmp = 4, // an ICMP or ICMPv6 echo request
	kEgressAll = 7,
};

/*
 * [tcp/|udp/|icmp/]CIDR[:PORTS]: CIDR is ADDR[/LEN] (a host when LEN is omitted), an IPv6
 * one in brackets when ports follow ("[2001:db8::/32]:443"); PORTS is N or N-M. Without a
 * protocol a rule covers TCP, UDP and ICMP echo; with ports it covers TCP and UDP only
 * (ICMP has no port, so a port-limited rule never matches it).
 */
struct EgressRule {
	EgressVerdict verdict = EgressVerdict::Deny;
	uint8_t protos = kEgressAll;
	bool v6 = false;
	in6_addr addr{}; // IPv4: the first 4 bytes, network order
	uint8_t prefixLen = 0;
	uint16_t portLo = 0, portHi = 65535;

	bool hasPorts() const { return portLo != 0 || portHi != 65535; }
	// Does a packet of proto (one kEgress* bit) to addr:port fall under this rule?
	bool matches(uint8_t proto, bool isV6, const uint8_t *dst, uint16_t port) const;
};

/*
 * Parse the value of allow= or deny= (verdict says which). Errors name the value and what
 * is wrong with it, e.g. "bad port range '90-80' in '192.0.2.0/24:90-80'"; the caller
 * prefixes the key.
 */
bool parseEgressRule(std::string_view value, EgressVerdict verdict, EgressRule &out, std::string &error);

/*
 * "allow=VALUE" or "deny=VALUE" (the control socket's form): errors start with the key,
 * "deny: bad prefix length ...", or name the text when the key is neither.
 */
bool parseEgressRuleText(std::string_view text, EgressRule &out, std::string &error);

// The canonical text, "deny=tcp/192.0.2.0/24:80" (parseEgressRuleText reads it back).
std::string formatEgressRule(const EgressRule &rule);

} // namespace slirpnet
