// SPDX-License-Identifier: BSD-2-Clause
// flow_limit_test.cpp - max-flows=: which guest packets are refused at the limit, UDP flows learnt and forgotten.
#include <gtest/gtest.h>

#include <arpa/inet.h>

#include <cstring>
#include <vector>

#include "ethernet.hpp"
#include "packet/egress_policy.hpp"
#include "packet/flow_limit.hpp"

using namespace slirpnet;

namespace {

FlowLimit::Addresses addresses()
{
	FlowLimit::Addresses a;
	inet_pton(AF_INET, "10.0.2.2", &a.gateway);
	inet_pton(AF_INET, "10.0.2.3", &a.dns);
	inet_pton(AF_INET6, "fec0::2", &a.gateway6);
	inet_pton(AF_INET6, "fec0::3", &a.dns6);
	return a;
}

// An Ethernet frame with an IPv4 or IPv6 header (no checksums: the limit reads none) and
// the first bytes of its transport header.
std::vector<uint8_t> frame(uint8_t proto, const char *src, const char *dst, uint16_t sport, uint16_t dport,
			   uint8_t tcpFlags = 0x02)
{
	bool v6 = std::strchr(dst, ':') != nullptr;
	std::vector<uint8_t> f(12, 0x52);
	f.push_back(v6 ? 0x86 : 0x08);
	f.push_back(v6 ? 0xdd : 0x00);
	std::vector<uint8_t> l4;
	if (proto == IPPROTO_TCP) {
		l4.assign(20, 0);
		l4[12] = 0x50;
		l4[13] = tcpFlags;
	} else if (proto == IPPROTO_UDP) {
		l4.assign(8 + 4, 0);
		l4[5] = 12;
	} else {
		l4.assign(8 + 4, 0);
		l4[0] = v6 ? 128 : 8; // echo request
	}
	if (proto != IPPROTO_ICMP && proto != IPPROTO_ICMPV6) {
		l4[0] = uint8_t(sport >> 8);
		l4[1] = uint8_t(sport);
		l4[2] = uint8_t(dport >> 8);
		l4[3] = uint8_t(dport);
	}
	if (v6) {
		uint8_t ip[40] = { 0x60, 0, 0, 0, uint8_t(l4.size() >> 8), uint8_t(l4.size()), proto, 64 };
		inet_pton(AF_INET6, src, ip + 8);
		inet_pton(AF_INET6, dst, ip + 24);
		f.insert(f.end(), ip, ip + 40);
	} else {
		size_t total = 20 + l4.size();
		uint8_t ip[20] = { 0x45, 0, uint8_t(total >> 8), uint8_t(total), 0, 1, 0x40, 0, 64, proto };
		inet_pton(AF_INET, src, ip + 12);
		inet_pton(AF_INET, dst, ip + 16);
		f.insert(f.end(), ip, ip + 20);
	}
	f.insert(f.end(), l4.begin(), l4.end());
	return f;
}

struct Sorted {
	std::vector<uint8_t> f;
	EgressPacket p;
	EgressClass c;
};

Sorted sort(std::vector<uint8_t> f)
{
	Sorted s{ std::move(f), {}, {} };
	in_addr gw{};
	inet_pton(AF_INET, "10.0.2.2", &gw);
	s.c = classifyEgress(s.f.data(), s.f.size(), gw, s.p);
	return s;
}

bool admits(const FlowLimit &l, const Sorted &s, size_t flows)
{
	EXPECT_EQ(s.c, EgressClass::Check);
	return l.admits(s.f.data(), s.f.size(), s.p, flows);
}

} // namespace

TEST(FlowLimit, BelowTheLimitEverythingPasses)
{
	FlowLimit l(2, addresses());
	EXPECT_TRUE(admits(l, sort(frame(IPPROTO_TCP, "10.0.2.15", "10.0.2.2", 40000, 80)), 1));
	EXPECT_TRUE(admits(l, sort(frame(IPPROTO_UDP, "10.0.2.15", "127.0.0.1", 40000, 53)), 1));
	EXPECT_TRUE(admits(l, sort(frame(IPPROTO_ICMP, "10.0.2.15", "192.0.2.1", 0, 0)), 1));
}

TEST(FlowLimit, AtTheLimitNewFlowsAreRefused)
{
	FlowLimit l(2, addresses());
	EXPECT_FALSE(admits(l, sort(frame(IPPROTO_TCP, "10.0.2.15", "10.0.2.2", 40000, 80)), 2));
	EXPECT_FALSE(admits(l, sort(frame(IPPROTO_TCP, "fec0::15", "fec0::2", 40000, 80)), 3));
	EXPECT_FALSE(admits(l, sort(frame(IPPROTO_UDP, "10.0.2.15", "10.0.2.3", 40000, 53)), 2));
	EXPECT_FALSE(admits(l, sort(frame(IPPROTO_UDP, "fec0::15", "fec0::3", 40000, 53)), 2));
	EXPECT_FALSE(admits(l, sort(frame(IPPROTO_ICMP, "10.0.2.15", "192.0.2.1", 0, 0)), 2));
}

// libslirp answers these itself, without a socket: they pass at the limit.
TEST(FlowLimit, WhatLibslirpAnswersItselfPasses)
{
	FlowLimit l(1, addresses());
	EXPECT_TRUE(admits(l, sort(frame(IPPROTO_ICMP, "10.0.2.15", "10.0.2.2", 0, 0)), 5));
	EXPECT_TRUE(admits(l, sort(frame(IPPROTO_ICMP, "10.0.2.15", "10.0.2.3", 0, 0)), 5));
	EXPECT_TRUE(admits(l, sort(frame(IPPROTO_ICMPV6, "fec0::15", "fec0::2", 0, 0)), 5));
	EXPECT_TRUE(admits(l, sort(frame(IPPROTO_UDP, "10.0.2.15", "10.0.2.2", 40000, 69)), 5)); // TFTP
	EXPECT_TRUE(admits(l, sort(frame(IPPROTO_UDP, "fec0::15", "fec0::2", 40000, 69)), 5));
	// TFTP elsewhere is a datagram like any other.
	EXPECT_FALSE(admits(l, sort(frame(IPPROTO_UDP, "10.0.2.15", "10.0.2.3", 40000, 69)), 5));
}

// libslirp keys a guest's UDP flow by its source address and port: datagrams of a flow it
// holds pass at the limit, whatever their destination; once it frees the socket, no more.
TEST(FlowLimit, UdpFlowsAreLearntAndForgotten)
{
	FlowLimit l(1, addresses());
	auto first = sort(frame(IPPROTO_UDP, "10.0.2.15", "10.0.2.2", 40000, 5000));
	l.opened(first.f.data(), first.f.size(), first.p, 7);
	EXPECT_EQ(l.udpFlows(), 1u);
	EXPECT_TRUE(admits(l, first, 1));
	EXPECT_TRUE(admits(l, sort(frame(IPPROTO_UDP, "10.0.2.15", "127.0.0.1", 40000, 9)), 1));
	EXPECT_FALSE(admits(l, sort(frame(IPPROTO_UDP, "10.0.2.15", "10.0.2.2", 40001, 5000)), 1));
	EXPECT_FALSE(admits(l, sort(frame(IPPROTO_UDP, "10.0.2.16", "10.0.2.2", 40000, 5000)), 1));

	auto v6 = sort(frame(IPPROTO_UDP, "fec0::15", "fec0::2", 40000, 5000));
	EXPECT_FALSE(admits(l, v6, 1));
	l.opened(v6.f.data(), v6.f.size(), v6.p, 8);
	EXPECT_TRUE(admits(l, v6, 1));
	EXPECT_EQ(l.udpFlows(), 2u);

	l.closed(7);
	EXPECT_FALSE(admits(l, first, 1));
	EXPECT_TRUE(admits(l, v6, 1));
	l.closed(7); // twice: nothing
	l.closed(99); // never a UDP flow (a TCP one): nothing
	EXPECT_EQ(l.udpFlows(), 1u);

	// A new socket for the same source replaces the old one's entry.
	l.opened(v6.f.data(), v6.f.size(), v6.p, 9);
	l.closed(8);
	EXPECT_TRUE(admits(l, v6, 1));
	l.closed(9);
	EXPECT_EQ(l.udpFlows(), 0u);
}

// Only UDP flows are remembered: TCP and ICMP sockets are counted by the driver alone.
TEST(FlowLimit, OnlyUdpIsRemembered)
{
	FlowLimit l(1, addresses());
	auto syn = sort(frame(IPPROTO_TCP, "10.0.2.15", "10.0.2.2", 40000, 80));
	l.opened(syn.f.data(), syn.f.size(), syn.p, 5);
	auto ping = sort(frame(IPPROTO_ICMP, "10.0.2.15", "192.0.2.1", 0, 0));
	l.opened(ping.f.data(), ping.f.size(), ping.p, 6);
	auto udp = sort(frame(IPPROTO_UDP, "10.0.2.15", "10.0.2.2", 40000, 80));
	l.opened(udp.f.data(), udp.f.size(), udp.p, -1); // no socket opened
	EXPECT_EQ(l.udpFlows(), 0u);
}

// Truncated and malformed frames: classifyEgress leaves those with no ports to libslirp
// (Exempt), which drops them; the limit never reads past the frame.
TEST(FlowLimit, TruncatedFramesAreNotReadPastTheirEnd)
{
	FlowLimit l(1, addresses());
	auto udp = frame(IPPROTO_UDP, "10.0.2.15", "10.0.2.2", 40000, 5000);
	for (size_t n = 0; n < udp.size(); n++) {
		std::vector<uint8_t> cut(udp.begin(), udp.begin() + static_cast<long>(n));
		EgressPacket p;
		in_addr gw{};
		inet_pton(AF_INET, "10.0.2.2", &gw);
		if (classifyEgress(cut.data(), cut.size(), gw, p) != EgressClass::Check)
			continue;
		l.opened(cut.data(), cut.size(), p, 3); // must not read past cut
		EXPECT_FALSE(l.admits(cut.data(), cut.size(), p, 1) && l.udpFlows() == 0);
		l.closed(3);
	}
	// An IPv4 header claiming more options than the frame holds.
	auto bad = frame(IPPROTO_UDP, "10.0.2.15", "10.0.2.2", 40000, 5000);
	bad[14] = 0x4f;
	EgressPacket p;
	in_addr gw{};
	inet_pton(AF_INET, "10.0.2.2", &gw);
	if (classifyEgress(bad.data(), bad.size(), gw, p) == EgressClass::Check) {
		l.opened(bad.data(), bad.size(), p, 4);
		EXPECT_FALSE(l.admits(bad.data(), bad.size(), p, 1) && l.udpFlows() == 0);
	}
}

TEST(FlowLimit, ZeroIsNoLimit)
{
	FlowLimit l(0, addresses());
	EXPECT_TRUE(admits(l, sort(frame(IPPROTO_TCP, "10.0.2.15", "10.0.2.2", 40000, 80)), 1000000));
}
