// SPDX-License-Identifier: BSD-2-Clause
// egress_policy_test.cpp - egress rules: parsing, first-match order, ports, IPv4/IPv6, policy=strict, rejects.
#include <gtest/gtest.h>

#include <arpa/inet.h>

#include <cstring>
#include <vector>

#include "egress_rule.hpp"
#include "ethernet.hpp"
#include "options.hpp"
#include "packet/checksum.hpp"
#include "packet/egress_policy.hpp"
#include "packet/reject.hpp"

using namespace slirpnet;

namespace {

EgressRule rule(const char *text)
{
	EgressRule r;
	std::string error;
	EXPECT_TRUE(parseEgressRuleText(text, r, error)) << text << ": " << error;
	return r;
}

std::string ruleError(const char *text)
{
	EgressRule r;
	std::string error;
	EXPECT_FALSE(parseEgressRuleText(text, r, error)) << text;
	return error;
}

std::vector<uint8_t> addr(const char *text)
{
	std::vector<uint8_t> a(16);
	if (inet_pton(AF_INET, text, a.data()) != 1) {
		EXPECT_EQ(inet_pton(AF_INET6, text, a.data()), 1) << text;
	}
	return a;
}

EgressPacket packet(uint8_t proto, const char *dst, uint16_t port, std::vector<uint8_t> &storage)
{
	storage = addr(dst);
	EgressPacket p;
	p.proto = proto;
	p.v6 = std::strchr(dst, ':') != nullptr;
	p.dst = storage.data();
	p.port = port;
	return p;
}

Config parsed(const char *options)
{
	OptionList list;
	std::string error;
	Config cfg;
	EXPECT_TRUE(splitOptions(options, list, error)) << error;
	EXPECT_TRUE(parseConfig(list, cfg, error)) << options << ": " << error;
	return cfg;
}

// Ethernet + IPv4/IPv6 + a transport header of l4len bytes (checksums unset: the policy reads none).
std::vector<uint8_t> frame(bool v6, uint8_t proto, const char *dst, size_t l4len)
{
	size_t hl = v6 ? kIpv6HeaderLen : kIpv4MinHeaderLen;
	std::vector<uint8_t> f(kEthHeaderLen + hl + l4len, 0);
	const uint8_t gwMac[6] = { 0x52, 0x55, 0x0a, 0x00, 0x02, 0x02 },
		      guestMac[6] = { 0x52, 0x54, 0, 0x12, 0x34, 0x56 };
	std::memcpy(f.data(), gwMac, 6);
	std::memcpy(f.data() + 6, guestMac, 6);
	f[12] = v6 ? 0x86 : 0x08;
	f[13] = v6 ? 0xdd : 0x00;
	uint8_t *ip = f.data() + kEthHeaderLen;
	auto d = addr(dst);
	if (v6) {
		ip[0] = 0x60;
		ip[4] = uint8_t(l4len >> 8);
		ip[5] = uint8_t(l4len);
		ip[6] = proto;
		ip[7] = 64;
		auto s = addr("fec0::15");
		std::memcpy(ip + 8, s.data(), 16);
		std::memcpy(ip + 24, d.data(), 16);
	} else {
		ip[0] = 0x45;
		ip[2] = uint8_t((hl + l4len) >> 8);
		ip[3] = uint8_t(hl + l4len);
		ip[8] = 64;
		ip[9] = proto;
		auto s = addr("10.0.2.15");
		std::memcpy(ip + 12, s.data(), 4);
		std::memcpy(ip + 16, d.data(), 4);
	}
	return f;
}

uint8_t *l4(std::vector<uint8_t> &f)
{
	return f.data() + kEthHeaderLen + (f[12] == 0x86 ? kIpv6HeaderLen : kIpv4MinHeaderLen);
}

in_addr gateway()
{
	in_addr a;
	inet_pton(AF_INET, "10.0.2.2", &a);
	return a;
}

} // namespace

TEST(EgressRule, ParsesAndPrintsEachForm)
{
	for (auto [in, out] : { std::pair{ "deny=192.0.2.0/24", "deny=192.0.2.0/24" },
				{ "allow=192.0.2.7", "allow=192.0.2.7/32" },
				{ "deny=tcp/192.0.2.0/24:80", "deny=tcp/192.0.2.0/24:80" },
				{ "deny=192.0.2.0/24:1000-2000", "deny=192.0.2.0/24:1000-2000" },
				{ "deny=udp/0.0.0.0/0:53", "deny=udp/0.0.0.0/0:53" },
				{ "deny=icmp/198.51.100.1", "deny=icmp/198.51.100.1/32" },
				{ "deny=2001:db8::/32", "deny=2001:db8::/32" },
				{ "deny=::1", "deny=::1/128" },
				{ "allow=tcp/[2001:db8::/32]:443", "allow=tcp/[2001:db8::/32]:443" },
				{ "allow=[2001:db8::1]:1-1023", "allow=[2001:db8::1/128]:1-1023" } }) {
		EgressRule r = rule(in);
		EXPECT_EQ(formatEgressRule(r), out) << in;
		EXPECT_EQ(formatEgressRule(rule(formatEgressRule(r).c_str())), out) << "round trip of " << in;
	}
	EXPECT_EQ(rule("deny=192.0.2.0/24:80").protos, kEgressTcp | kEgressUdp) << "ports: no ICMP";
	EXPECT_EQ(rule("deny=192.0.2.0/24").protos, kEgressAll);
}

TEST(EgressRule, BadRulesNameKeyAndValue)
{
	for (auto [text, part] : { std::pair{ "deny=192.0.2.0/33", "'33'" },
				   { "deny=192.0.2.1/24", "'192.0.2.1'" },
				   { "allow=192.0.2.0/24:90-80", "'90-80'" },
				   { "deny=192.0.2.0/24:0", "'0'" },
				   { "deny=192.0.2.0/24:70000", "'70000'" },
				   { "deny=192.0.2.0/24:", "missing port" },
				   { "deny=example.com", "'example.com'" },
				   { "deny=sctp/192.0.2.0/24", "'sctp/192.0.2.0/24'" },
				   { "deny=icmp/192.0.2.0/24:7", "ICMP has no ports" },
				   { "deny=[2001:db8::/32", "missing ']'" },
				   { "deny=2001:db8::/129", "'129'" },
				   { "deny=", "missing address" } }) {
		std::string error = ruleError(text);
		EXPECT_TRUE(error.starts_with(std::string(text).substr(0, std::string(text).find('=')) + ": "))
			<< error;
		EXPECT_NE(error.find(part), std::string::npos) << text << ": " << error;
	}
	EXPECT_NE(ruleError("reject=192.0.2.0/24").find("'reject=192.0.2.0/24'"), std::string::npos);
}

TEST(EgressRule, OptionsRefuseABadRuleNamingKeyAndValue)
{
	OptionList list;
	std::string error;
	Config cfg;
	ASSERT_TRUE(splitOptions("restrict=on,deny=tcp/198.51.100.0/24:99999", list, error));
	EXPECT_FALSE(parseConfig(list, cfg, error));
	EXPECT_TRUE(error.starts_with("deny: ")) << error;
	EXPECT_NE(error.find("'99999'"), std::string::npos) << error;
	list.clear();
	ASSERT_TRUE(splitOptions("egress-default=drop", list, error));
	EXPECT_FALSE(parseConfig(list, cfg, error));
	EXPECT_NE(error.find("egress-default: "), std::string::npos) << error;
	list.clear();
	ASSERT_TRUE(splitOptions("policy=strict,loopback=on", list, error));
	EXPECT_FALSE(parseConfig(list, cfg, error));
	EXPECT_NE(error.find("loopback"), std::string::npos) << error;
}

TEST(EgressPolicy, FirstMatchWinsThenTheDefault)
{
	Config cfg = parsed("allow=tcp/192.0.2.0/24:443,deny=192.0.2.0/24,allow=192.0.2.0/24,deny=[2001:db8::/32]:22");
	EgressPolicy policy(cfg);
	std::vector<uint8_t> a;
	EXPECT_EQ(policy.decide(packet(kEgressTcp, "192.0.2.9", 443, a)), EgressVerdict::Allow);
	EXPECT_EQ(policy.decide(packet(kEgressTcp, "192.0.2.9", 80, a)), EgressVerdict::Deny);
	EXPECT_EQ(policy.decide(packet(kEgressUdp, "192.0.2.9", 443, a)), EgressVerdict::Deny) << "tcp/ only";
	EXPECT_EQ(policy.decide(packet(kEgressIcmp, "192.0.2.9", 0, a)), EgressVerdict::Deny);
	EXPECT_EQ(policy.decide(packet(kEgressTcp, "192.0.3.1", 80, a)), EgressVerdict::Allow) << "default";
	EXPECT_EQ(policy.decide(packet(kEgressTcp, "2001:db8:5::1", 22, a)), EgressVerdict::Deny);
	EXPECT_EQ(policy.decide(packet(kEgressUdp, "2001:db8:5::1", 22, a)), EgressVerdict::Deny);
	EXPECT_EQ(policy.decide(packet(kEgressTcp, "2001:db8:5::1", 23, a)), EgressVerdict::Allow);
	EXPECT_EQ(policy.decide(packet(kEgressIcmp, "2001:db8:5::1", 0, a)), EgressVerdict::Allow) << "ports: no ICMP";
	// An IPv4 rule never matches IPv6, even for the same bytes.
	EXPECT_EQ(policy.decide(packet(kEgressTcp, "c000:209::", 80, a)), EgressVerdict::Allow);
}

TEST(EgressPolicy, PortRangesAndPrefixEdges)
{
	EgressPolicy policy(parsed("deny=192.0.2.128/25:1000-2000,egress-default=allow"));
	std::vector<uint8_t> a;
	EXPECT_EQ(policy.decide(packet(kEgressUdp, "192.0.2.128", 1000, a)), EgressVerdict::Deny);
	EXPECT_EQ(policy.decide(packet(kEgressUdp, "192.0.2.255", 2000, a)), EgressVerdict::Deny);
	EXPECT_EQ(policy.decide(packet(kEgressUdp, "192.0.2.127", 1500, a)), EgressVerdict::Allow);
	EXPECT_EQ(policy.decide(packet(kEgressUdp, "192.0.2.200", 999, a)), EgressVerdict::Allow);
	EXPECT_EQ(policy.decide(packet(kEgressUdp, "192.0.2.200", 2001, a)), EgressVerdict::Allow);
}

TEST(EgressPolicy, DefaultDenyAndControlEdits)
{
	EgressPolicy policy(parsed("egress-default=deny,allow=127.0.0.1"));
	std::vector<uint8_t> a;
	EXPECT_FALSE(policy.open());
	EXPECT_EQ(policy.decide(packet(kEgressTcp, "198.51.100.1", 80, a)), EgressVerdict::Deny);
	unsigned id = policy.add(rule("allow=198.51.100.0/24"), std::nullopt);
	EXPECT_EQ(policy.decide(packet(kEgressTcp, "198.51.100.1", 80, a)), EgressVerdict::Allow);
	unsigned first = policy.add(rule("deny=tcp/198.51.100.1:80"), 0);
	EXPECT_EQ(policy.entries().front().id, first);
	EXPECT_EQ(policy.decide(packet(kEgressTcp, "198.51.100.1", 80, a)), EgressVerdict::Deny);
	std::string error;
	EXPECT_TRUE(policy.remove(first, error));
	EXPECT_TRUE(policy.remove(id, error));
	EXPECT_FALSE(policy.remove(id, error));
	EXPECT_NE(error.find(std::to_string(id)), std::string::npos) << error;
	EXPECT_EQ(policy.decide(packet(kEgressTcp, "198.51.100.1", 80, a)), EgressVerdict::Deny);
	EXPECT_TRUE(EgressPolicy(parsed("restrict=off")).open());
}

TEST(EgressPolicy, StrictDeniesLinkLocalLoopbackAndTheHostButKeepsDns)
{
	Config cfg = parsed("policy=strict,allow=169.254.169.254");
	EXPECT_FALSE(cfg.hostLoopback) << "strict turns loopback off";
	EgressPolicy policy(cfg);
	EXPECT_STREQ(policy.entries().front().origin, "policy");
	std::vector<uint8_t> a;
	// ::ffff:a.b.c.d is IPv4 to the host's dual stack: the IPv4 denies hold for it.
	for (const char *dst :
	     { "169.254.169.254", "127.0.0.1", "fe80::1", "::1", "::ffff:127.0.0.1", "::ffff:169.254.169.254" })
		for (uint8_t proto : { kEgressTcp, kEgressUdp, kEgressIcmp })
			EXPECT_EQ(policy.decide(packet(proto, dst, 80, a)), EgressVerdict::Deny)
				<< dst << " proto " << int(proto) << ": the user's allow comes after";
	for (const char *dst : { "10.0.2.2", "10.0.2.4", "fec0::2" }) {
		EXPECT_EQ(policy.decide(packet(kEgressTcp, dst, 22, a)), EgressVerdict::Deny) << dst;
		EXPECT_EQ(policy.decide(packet(kEgressUdp, dst, 5353, a)), EgressVerdict::Deny) << dst;
		EXPECT_EQ(policy.decide(packet(kEgressIcmp, dst, 0, a)), EgressVerdict::Allow)
			<< dst << ": libslirp answers";
	}
	EXPECT_EQ(policy.decide(packet(kEgressUdp, "10.0.2.3", 53, a)), EgressVerdict::Allow);
	EXPECT_EQ(policy.decide(packet(kEgressTcp, "fec0::3", 53, a)), EgressVerdict::Allow);
	EXPECT_EQ(policy.decide(packet(kEgressUdp, "10.0.2.2", 69, a)), EgressVerdict::Allow) << "TFTP";
	EXPECT_EQ(policy.decide(packet(kEgressTcp, "192.0.2.1", 443, a)), EgressVerdict::Allow) << "the rest: open";
	// A custom network moves the denied aliases with it.
	EgressPolicy custom(parsed("policy=strict,net=10.9.0.0/16,ipv6-net=fd00:1::5/64"));
	EXPECT_EQ(custom.decide(packet(kEgressTcp, "10.9.3.4", 80, a)), EgressVerdict::Deny);
	EXPECT_EQ(custom.decide(packet(kEgressTcp, "fd00:1::2", 80, a)), EgressVerdict::Deny);
	EXPECT_EQ(custom.decide(packet(kEgressTcp, "10.0.2.2", 80, a)), EgressVerdict::Allow);
}

TEST(EgressClassify, WhatThePolicyLooksAt)
{
	EgressPacket p;
	auto syn = frame(false, IPPROTO_TCP, "192.0.2.1", 20);
	l4(syn)[2] = 0x1f; // port 8080
	l4(syn)[3] = 0x90;
	l4(syn)[12] = 0x50;
	l4(syn)[13] = 0x02;
	ASSERT_EQ(classifyEgress(syn.data(), syn.size(), gateway(), p), EgressClass::Check);
	EXPECT_EQ(p.proto, kEgressTcp);
	EXPECT_EQ(p.port, 8080);
	EXPECT_FALSE(p.v6);
	l4(syn)[13] = 0x12; // SYN+ACK: not a new connection out
	EXPECT_EQ(classifyEgress(syn.data(), syn.size(), gateway(), p), EgressClass::Exempt);
	l4(syn)[13] = 0x10;
	EXPECT_EQ(classifyEgress(syn.data(), syn.size(), gateway(), p), EgressClass::Exempt);

	auto udp6 = frame(true, IPPROTO_UDP, "2001:db8::1", 8);
	l4(udp6)[3] = 53;
	ASSERT_EQ(classifyEgress(udp6.data(), udp6.size(), gateway(), p), EgressClass::Check);
	EXPECT_TRUE(p.v6);
	EXPECT_EQ(p.port, 53);

	auto echo6 = frame(true, IPPROTO_ICMPV6, "2001:db8::1", 8);
	l4(echo6)[0] = 128;
	EXPECT_EQ(classifyEgress(echo6.data(), echo6.size(), gateway(), p), EgressClass::Check);
	l4(echo6)[0] = 135; // neighbour solicitation
	EXPECT_EQ(classifyEgress(echo6.data(), echo6.size(), gateway(), p), EgressClass::Exempt);

	auto dhcp = frame(false, IPPROTO_UDP, "255.255.255.255", 8);
	l4(dhcp)[3] = 67;
	EXPECT_EQ(classifyEgress(dhcp.data(), dhcp.size(), gateway(), p), EgressClass::Exempt);
	auto dhcpOut = frame(false, IPPROTO_UDP, "192.0.2.1", 8);
	l4(dhcpOut)[3] = 67;
	EXPECT_EQ(classifyEgress(dhcpOut.data(), dhcpOut.size(), gateway(), p), EgressClass::Check)
		<< "port 67 elsewhere is ordinary UDP";
}

TEST(EgressClassify, TruncatedAndFragmentedHeaders)
{
	EgressPacket p;
	// Truncated transport headers of whole packets: libslirp's to drop, as without a policy.
	for (bool v6 : { false, true })
		for (uint8_t proto : { uint8_t(IPPROTO_TCP), uint8_t(IPPROTO_UDP) })
			for (size_t l4len : { 0, 3, 7 }) {
				auto f = frame(v6, proto, v6 ? "2001:db8::1" : "192.0.2.1", l4len);
				EXPECT_EQ(classifyEgress(f.data(), f.size(), gateway(), p), EgressClass::Exempt);
			}
	// Truncated IP headers and frames.
	auto f = frame(false, IPPROTO_TCP, "192.0.2.1", 20);
	for (size_t len = 0; len < f.size(); len++)
		classifyEgress(f.data(), len, gateway(), p); // no read past len (ASan, valgrind)
	f[kEthHeaderLen] = 0x4f; // IHL 60 > what is there
	EXPECT_EQ(classifyEgress(f.data(), f.size(), gateway(), p), EgressClass::Exempt);

	// Fragments are reassembled before the policy; one that came anyway is never judged
	// (its ports may be in another fragment), whatever it shows: a first fragment with
	// ports, one that hides them, RFC 1858's offset-8 TCP fragment, an IPv6 fragment.
	auto first = frame(false, IPPROTO_UDP, "192.0.2.1", 8);
	first[kEthHeaderLen + 6] = 0x20; // MF
	EXPECT_EQ(classifyEgress(first.data(), first.size(), gateway(), p), EgressClass::Drop);
	auto hiding = frame(false, IPPROTO_UDP, "192.0.2.1", 4);
	hiding[kEthHeaderLen + 6] = 0x20;
	EXPECT_EQ(classifyEgress(hiding.data(), hiding.size(), gateway(), p), EgressClass::Drop);
	for (uint8_t offset : { 1, 2 }) {
		auto later = frame(false, IPPROTO_TCP, "192.0.2.1", 8);
		later[kEthHeaderLen + 7] = offset;
		EXPECT_EQ(classifyEgress(later.data(), later.size(), gateway(), p), EgressClass::Drop);
	}
	auto df = frame(false, IPPROTO_UDP, "192.0.2.1", 8);
	df[kEthHeaderLen + 6] = 0x40; // DF alone: a whole datagram
	EXPECT_EQ(classifyEgress(df.data(), df.size(), gateway(), p), EgressClass::Check);
	auto frag6 = frame(true, 44, "2001:db8::1", 16);
	EXPECT_EQ(classifyEgress(frag6.data(), frag6.size(), gateway(), p), EgressClass::Drop);
}

TEST(Reject, RstAnswersASyn)
{
	for (bool v6 : { false, true }) {
		auto syn = frame(v6, IPPROTO_TCP, v6 ? "2001:db8::1" : "192.0.2.1", 20);
		uint8_t *t = l4(syn);
		t[0] = 0xc0; // sport 49152
		t[3] = 80;
		t[4] = 0x11; // seq 0x11223344
		t[5] = 0x22;
		t[6] = 0x33;
		t[7] = 0x44;
		t[12] = 0x50;
		t[13] = 0x02;
		EgressPacket p;
		ASSERT_EQ(classifyEgress(syn.data(), syn.size(), gateway(), p), EgressClass::Check);
		std::vector<uint8_t> out;
		in6_addr gw6{};
		ASSERT_TRUE(buildReject(syn.data(), syn.size(), p, gateway(), gw6, out));
		EXPECT_EQ(0, std::memcmp(out.data(), syn.data() + 6, 6)) << "to the guest's MAC";
		EXPECT_EQ(0, std::memcmp(out.data() + 6, syn.data(), 6)) << "from the gateway's MAC";
		uint8_t *r = l4(out);
		EXPECT_EQ(r[0], 0);
		EXPECT_EQ(r[1], 80);
		EXPECT_EQ(r[2], 0xc0);
		EXPECT_EQ(r[13], 0x14) << "RST+ACK";
		EXPECT_EQ(r[11], 0x45) << "ack = seq + 1";
		const uint8_t *ip = out.data() + kEthHeaderLen;
		if (!v6) {
			EXPECT_EQ(checksumFold(checksumAdd(0, ip, 20)), 0xffff) << "IPv4 header checksum";
			EXPECT_EQ(0, std::memcmp(ip + 12, syn.data() + kEthHeaderLen + 16, 4))
				<< "from the destination";
		}
		// The TCP checksum over the pseudo-header.
		uint64_t sum = checksumAdd(0, v6 ? ip + 8 : ip + 12, v6 ? 32 : 8);
		uint8_t tail[4] = { 0, 0, 0, 20 };
		sum = checksumAdd(sum, tail, 4);
		uint8_t proto[4] = { 0, 0, 0, IPPROTO_TCP };
		sum = checksumAdd(sum, proto, 4);
		EXPECT_EQ(checksumFold(checksumAdd(sum, r, 20)), 0xffff) << (v6 ? "v6" : "v4");
	}
}

TEST(Reject, AdministrativelyProhibitedForUdpAndEcho)
{
	auto udp = frame(false, IPPROTO_UDP, "192.0.2.1", 8 + 100);
	EgressPacket p;
	ASSERT_EQ(classifyEgress(udp.data(), udp.size(), gateway(), p), EgressClass::Check);
	std::vector<uint8_t> out;
	in6_addr gw6{};
	inet_pton(AF_INET6, "fec0::2", &gw6);
	ASSERT_TRUE(buildReject(udp.data(), udp.size(), p, gateway(), gw6, out));
	const uint8_t *ip = out.data() + kEthHeaderLen, *icmp = ip + 20;
	EXPECT_EQ(ip[9], IPPROTO_ICMP);
	EXPECT_EQ(icmp[0], 3);
	EXPECT_EQ(icmp[1], 13);
	EXPECT_EQ(out.size(), kEthHeaderLen + 20 + 8 + 20 + 8) << "quotes the header and 8 bytes";
	EXPECT_EQ(checksumFold(checksumAdd(0, icmp, out.size() - kEthHeaderLen - 20)), 0xffff);
	auto gw = gateway();
	EXPECT_EQ(0, std::memcmp(ip + 12, &gw, 4)) << "from the gateway";

	auto echo6 = frame(true, IPPROTO_ICMPV6, "2001:db8::1", 16);
	l4(echo6)[0] = 128;
	ASSERT_EQ(classifyEgress(echo6.data(), echo6.size(), gateway(), p), EgressClass::Check);
	ASSERT_TRUE(buildReject(echo6.data(), echo6.size(), p, gateway(), gw6, out));
	ip = out.data() + kEthHeaderLen;
	EXPECT_EQ(ip[6], IPPROTO_ICMPV6);
	EXPECT_EQ(ip[40], 1);
	EXPECT_EQ(ip[41], 1);
	EXPECT_EQ(0, std::memcmp(ip + 8, &gw6, 16));
	EXPECT_EQ(out.size(), kEthHeaderLen + 40 + 8 + 40 + 16);
}

TEST(EgressOptions, LibslirpSwitches)
{
	Config cfg = parsed("dns=off,loopback=off,outbound-addr=127.0.0.1,outbound-addr6=::1");
	EXPECT_FALSE(cfg.virtualDns);
	EXPECT_FALSE(cfg.hostLoopback);
	ASSERT_TRUE(cfg.outboundAddr && cfg.outboundAddr6);
	EXPECT_EQ(formatAddr(*cfg.outboundAddr), "127.0.0.1");
	EXPECT_EQ(formatAddr(*cfg.outboundAddr6), "::1");
	// dns= is still QEMU's address of the virtual DNS server.
	Config addr = parsed("dns=10.0.2.4");
	EXPECT_TRUE(addr.virtualDns);
	EXPECT_EQ(formatAddr(addr.dns), "10.0.2.4");
	Config defaults = parsed("restrict=off");
	EXPECT_TRUE(defaults.virtualDns && defaults.hostLoopback && !defaults.outboundAddr && !defaults.policyStrict);
	EXPECT_FALSE(defaults.egressDefaultDeny);
	OptionList list;
	std::string error;
	ASSERT_TRUE(splitOptions("dns=no", list, error));
	EXPECT_FALSE(parseConfig(list, defaults, error)) << "only the words on and off";
	EXPECT_NE(error.find("'no'"), std::string::npos) << error;
}

TEST(Reject, NoErrorAboutAGroupPacket)
{
	std::vector<uint8_t> out;
	in6_addr gw6{};
	for (auto [v6, dst] : { std::pair{ false, "255.255.255.255" }, { false, "239.1.2.3" }, { true, "ff02::fb" } }) {
		auto f = frame(v6, IPPROTO_UDP, dst, 8);
		EgressPacket p;
		ASSERT_EQ(classifyEgress(f.data(), f.size(), gateway(), p), EgressClass::Check) << dst;
		EXPECT_FALSE(buildReject(f.data(), f.size(), p, gateway(), gw6, out)) << dst;
		EXPECT_TRUE(out.empty());
	}
}
