// SPDX-License-Identifier: BSD-2-Clause
// egress_rule.cpp - one egress rule (allow=/deny= CIDR[:PORTS]): its text form, parsed and printed.
#include "egress_rule.hpp"
#include "quote.hpp"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>

namespace slirpnet {

namespace {

bool failWith(std::string &error, std::string why)
{
	error = std::move(why);
	return false;
}

bool parseNumber(std::string_view s, unsigned long max, unsigned long &out)
{
	if (s.empty())
		return false;
	auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out, 10);
	return ec == std::errc() && p == s.data() + s.size() && out <= max;
}

bool parsePorts(std::string_view s, std::string_view whole, EgressRule &r, std::string &error)
{
	unsigned long lo, hi;
	size_t dash = s.find('-');
	std::string_view a = s.substr(0, dash), b = dash == s.npos ? a : s.substr(dash + 1);
	if (!parseNumber(a, 65535, lo) || !parseNumber(b, 65535, hi) || lo == 0)
		return failWith(error, "bad port " + q(s) + " in " + q(whole) + " (expected N or N-M, 1-65535)");
	if (lo > hi)
		return failWith(error, "bad port range " + q(s) + " in " + q(whole) + " (first above last)");
	r.portLo = static_cast<uint16_t>(lo);
	r.portHi = static_cast<uint16_t>(hi);
	return true;
}

// Bits beyond the prefix must be zero: "10.0.2.5/24" is more likely a typo than a network.
bool hostBitsClear(const uint8_t *a, unsigned bytes, unsigned len)
{
	for (unsigned i = len; i < bytes * 8; i++)
		if ((a[i / 8] >> (7 - i % 8)) & 1)
			return false;
	return true;
}

bool parseCidr(std::string_view s, std::string_view whole, EgressRule &r, std::string &error)
{
	std::string_view addr = s, len;
	bool haveLen = false;
	if (size_t slash = s.find('/'); slash != s.npos) {
		addr = s.substr(0, slash);
		len = s.substr(slash + 1);
		haveLen = true;
	}
	std::string a(addr);
	r.addr = in6_addr{};
	if (inet_pton(AF_INET, a.c_str(), &r.addr) == 1)
		r.v6 = false;
	else if (inet_pton(AF_INET6, a.c_str(), &r.addr) == 1)
		r.v6 = true;
	else
		return failWith(error, "bad address " + q(addr) + " in " + q(whole));
	unsigned maxLen = r.v6 ? 128 : 32;
	unsigned long n = maxLen;
	if (haveLen && !parseNumber(len, maxLen, n))
		return failWith(error, "bad prefix length " + q(len) + " in " + q(whole) + " (expected 0-" +
					       std::to_string(maxLen) + ")");
	if (!hostBitsClear(r.addr.s6_addr, maxLen / 8, static_cast<unsigned>(n)))
		return failWith(error, "address " + q(addr) + " has bits set beyond /" + std::to_string(n) + " in " +
					       q(whole));
	r.prefixLen = static_cast<uint8_t>(n);
	return true;
}

bool prefixMatch(const uint8_t *a, const uint8_t *b, unsigned len)
{
	unsigned full = len / 8, rest = len % 8;
	if (std::memcmp(a, b, full) != 0)
		return false;
	if (rest == 0)
		return true;
	uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
	return (a[full] & mask) == (b[full] & mask);
}

} // namespace

bool EgressRule::matches(uint8_t proto, bool isV6, const uint8_t *dst, uint16_t port) const
{
	if (!(protos & proto) || isV6 != v6)
		return false;
	if (hasPorts() && (proto == kEgressIcmp || port < portLo || port > portHi))
		return false;
	return prefixMatch(addr.s6_addr, dst, prefixLen);
}

bool parseEgressRule(std::string_view value, EgressVerdict verdict, EgressRule &out, std::string &error)
{
	EgressRule r;
	r.verdict = verdict;
	std::string_view s = value;
	for (auto [name, bit] : { std::pair{ "tcp/", kEgressTcp }, { "udp/", kEgressUdp }, { "icmp/", kEgressIcmp } }) {
		if (s.starts_with(name)) {
			r.protos = bit;
			s.remove_prefix(std::strlen(name));
			break;
		}
	}
	if (s.empty())
		return failWith(error, "missing address in " + q(value) + " (expected [tcp/|udp/|icmp/]CIDR[:PORTS])");
	std::string_view cidr = s, ports;
	if (s.front() == '[') {
		size_t close = s.find(']');
		if (close == s.npos)
			return failWith(error, "missing ']' in " + q(value));
		cidr = s.substr(1, close - 1);
		std::string_view after = s.substr(close + 1);
		if (!after.empty() && after.front() != ':')
			return failWith(error, "expected ':PORTS' after ']' in " + q(value));
		if (!after.empty())
			ports = after.substr(1);
		if (!after.empty() && ports.empty())
			return failWith(error, "missing port after ':' in " + q(value));
	} else if (size_t colon = s.find(':'); colon != s.npos && s.find(':', colon + 1) == s.npos) {
		// One colon: IPv4 with ports. More: an IPv6 address without ports.
		cidr = s.substr(0, colon);
		ports = s.substr(colon + 1);
		if (ports.empty())
			return failWith(error, "missing port after ':' in " + q(value));
	}
	if (!parseCidr(cidr, value, r, error))
		return false;
	if (!ports.empty()) {
		if (r.protos == kEgressIcmp)
			return failWith(error, "ports with icmp/ in " + q(value) + " (ICMP has no ports)");
		if (!parsePorts(ports, value, r, error))
			return false;
		if (r.protos == kEgressAll)
			r.protos = kEgressTcp | kEgressUdp;
	}
	out = r;
	return true;
}

bool parseEgressRuleText(std::string_view text, EgressRule &out, std::string &error)
{
	size_t eq = text.find('=');
	std::string_view key = text.substr(0, eq);
	if (eq == text.npos || (key != "allow" && key != "deny"))
		return failWith(error, "egress rule " + q(text) + " must start with allow= or deny=");
	std::string why;
	if (!parseEgressRule(text.substr(eq + 1), key == "allow" ? EgressVerdict::Allow : EgressVerdict::Deny, out,
			     why))
		return failWith(error, std::string(key) + ": " + why);
	return true;
}

std::string formatEgressRule(const EgressRule &r)
{
	std::string s = r.verdict == EgressVerdict::Allow ? "allow=" : "deny=";
	if (r.protos == kEgressTcp)
		s += "tcp/";
	else if (r.protos == kEgressUdp)
		s += "udp/";
	else if (r.protos == kEgressIcmp)
		s += "icmp/";
	char buf[INET6_ADDRSTRLEN];
	inet_ntop(r.v6 ? AF_INET6 : AF_INET, &r.addr, buf, sizeof(buf));
	std::string cidr = std::string(buf) + "/" + std::to_string(r.prefixLen);
	if (!r.hasPorts())
		return s + cidr;
	s += r.v6 ? "[" + cidr + "]" : cidr;
	s += ":" + std::to_string(r.portLo);
	if (r.portHi != r.portLo)
		s += "-" + std::to_string(r.portHi);
	return s;
}

} // namespace slirpnet
