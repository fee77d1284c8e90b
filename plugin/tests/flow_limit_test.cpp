// SPDX-License-Identifier: BSD-2-Clause
// flow_limit_test.cpp - max-flows=: which guest packets are refused at the limit, UDP flows learnt and forgotten; TimeWaitReaper.
#include <gtest/gtest.h>

#include <arpa/inet.h>

#include <cstring>
#include <memory>
#include <vector>

#include "byte_order.hpp"
#include "ethernet.hpp"
#include "packet/checksum.hpp"
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

namespace {

// A TCP segment between the guest (10.0.2.15:8080) and the gateway (10.0.2.2:50000), or
// their IPv6 addresses, either way, with valid checksums.
std::vector<uint8_t> segment(bool fromGuest, bool v6, uint8_t flags, uint32_t seq, uint32_t ack, size_t data = 0)
{
	const char *guest = v6 ? "fec0::15" : "10.0.2.15", *gw = v6 ? "fec0::2" : "10.0.2.2";
	auto f = frame(IPPROTO_TCP, fromGuest ? guest : gw, fromGuest ? gw : guest, fromGuest ? 8080 : 50000,
		       fromGuest ? 50000 : 8080, flags);
	size_t l4 = kEthHeaderLen + (v6 ? kIpv6HeaderLen : kIpv4MinHeaderLen);
	f.resize(l4 + 20 + data, 'x');
	uint8_t *ip = f.data() + kEthHeaderLen;
	if (v6)
		storeBe16(ip + 4, static_cast<uint16_t>(20 + data));
	else
		storeBe16(ip + 2, static_cast<uint16_t>(20 + 20 + data));
	storeBe32(f.data() + l4 + 4, seq);
	storeBe32(f.data() + l4 + 8, ack);
	return f;
}

// The folded one's-complement sum of the TCP pseudo-header and segment: 0xffff if valid.
uint16_t tcpSum(const std::vector<uint8_t> &f, bool v6)
{
	const uint8_t *ip = f.data() + kEthHeaderLen;
	size_t l4 = kEthHeaderLen + (v6 ? kIpv6HeaderLen : kIpv4MinHeaderLen);
	size_t len = f.size() - l4;
	uint8_t pseudo[8] = {};
	uint64_t sum = checksumAdd(0, v6 ? ip + 8 : ip + 12, v6 ? 32 : 8);
	if (v6) {
		storeBe32(pseudo, static_cast<uint32_t>(len));
		pseudo[7] = IPPROTO_TCP;
		sum = checksumAdd(sum, pseudo, 8);
	} else {
		pseudo[1] = IPPROTO_TCP;
		storeBe16(pseudo + 2, static_cast<uint16_t>(len));
		sum = checksumAdd(sum, pseudo, 4);
	}
	return checksumFold(checksumAdd(sum, f.data() + l4, len));
}

constexpr uint8_t kFin = 0x01, kSyn = 0x02, kRst = 0x04, kAck = 0x10;

} // namespace

// libslirp's FIN first, then the guest's acknowledging it: a RST in sequence after the
// guest's FIN, with valid checksums, from the guest's addresses and ports.
TEST(TimeWaitReaper, TheGuestsFinAfterLibslirpsGetsARst)
{
	for (bool v6 : { false, true }) {
		TimeWaitReaper r;
		std::vector<uint8_t> rst;
		auto fin = segment(false, v6, kFin | kAck, 5000, 9000, 3); // with 3 bytes of data
		r.toGuest(fin.data(), fin.size());
		auto guestFin = segment(true, v6, kFin | kAck, 9000, 5004);
		ASSERT_TRUE(r.fromGuest(guestFin.data(), guestFin.size(), rst)) << v6;
		size_t l4 = kEthHeaderLen + (v6 ? kIpv6HeaderLen : kIpv4MinHeaderLen);
		ASSERT_EQ(rst.size(), l4 + 20);
		EXPECT_EQ(std::memcmp(rst.data(), guestFin.data(), kEthHeaderLen), 0);
		size_t addrs = kEthHeaderLen + (v6 ? 8 : 12); // the addresses: the guest frame's
		EXPECT_EQ(std::memcmp(rst.data() + addrs, guestFin.data() + addrs, v6 ? 32 : 8), 0);
		EXPECT_EQ(rst[l4 + 13], kRst);
		EXPECT_EQ(loadBe32(rst.data() + l4 + 4), 9000u + 1);
		EXPECT_EQ(loadBe16(rst.data() + l4), 8080);
		EXPECT_EQ(loadBe16(rst.data() + l4 + 2), 50000);
		EXPECT_EQ(tcpSum(rst, v6), 0xffff);
		if (!v6) {
			EXPECT_EQ(loadBe16(rst.data() + kEthHeaderLen + 2), 40);
			EXPECT_EQ(checksumFold(checksumAdd(0, rst.data() + kEthHeaderLen, 20)), 0xffff);
		} else {
			EXPECT_EQ(loadBe16(rst.data() + kEthHeaderLen + 4), 20);
		}
		// Once only.
		EXPECT_FALSE(r.fromGuest(guestFin.data(), guestFin.size(), rst));
	}
}

// The host only half-closed (a client's shutdown() after its request) and reads what the
// guest sends after libslirp's FIN: libslirp may still hold some of it for a slow reader,
// which a RST would make it drop, so such a connection keeps its TIME_WAIT.
TEST(TimeWaitReaper, DataAfterLibslirpsFinKeepsTheConnection)
{
	for (bool v6 : { false, true }) {
		TimeWaitReaper r;
		std::vector<uint8_t> rst;
		auto fin = segment(false, v6, kFin | kAck, 5000, 9000);
		r.toGuest(fin.data(), fin.size());
		auto data = segment(true, v6, kAck, 9000, 5001, 1000);
		EXPECT_FALSE(r.fromGuest(data.data(), data.size(), rst)) << v6;
		auto guestFin = segment(true, v6, kFin | kAck, 10000, 5001);
		EXPECT_FALSE(r.fromGuest(guestFin.data(), guestFin.size(), rst)) << v6;
		// A FIN that carries the data itself: the same.
		r.toGuest(fin.data(), fin.size());
		auto finWithData = segment(true, v6, kFin | kAck, 9000, 5001, 2);
		EXPECT_FALSE(r.fromGuest(finWithData.data(), finWithData.size(), rst)) << v6;
	}
}

// A TCP packet that ends with its IP header (total length 20, or an IPv6 payload of 0):
// no byte of a TCP header is read. (The frame is exactly that long, for ASan to see.)
TEST(TimeWaitReaper, PacketEndingAtItsIpHeaderIsNotRead)
{
	for (bool v6 : { false, true }) {
		TimeWaitReaper r;
		std::vector<uint8_t> rst;
		auto f = segment(true, v6, kFin | kAck, 9000, 5001);
		size_t l4 = kEthHeaderLen + (v6 ? kIpv6HeaderLen : kIpv4MinHeaderLen);
		storeBe16(f.data() + kEthHeaderLen + (v6 ? 4 : 2), static_cast<uint16_t>(v6 ? 0 : 20));
		auto exact = std::make_unique<uint8_t[]>(l4);
		std::memcpy(exact.get(), f.data(), l4);
		r.toGuest(exact.get(), l4);
		EXPECT_FALSE(r.fromGuest(exact.get(), l4, rst));
	}
}

TEST(TimeWaitReaper, OtherOrdersAndSegmentsGetNothing)
{
	TimeWaitReaper r;
	std::vector<uint8_t> rst;
	// The guest closes first: no FIN of libslirp's recorded, nothing.
	auto guestFin = segment(true, false, kFin | kAck, 9000, 5000);
	EXPECT_FALSE(r.fromGuest(guestFin.data(), guestFin.size(), rst));
	// libslirp's FIN then comes (LAST_ACK); the guest only ACKs it: nothing.
	auto fin = segment(false, false, kFin | kAck, 5000, 9001);
	r.toGuest(fin.data(), fin.size());
	auto ack = segment(true, false, kAck, 9001, 5001);
	EXPECT_FALSE(r.fromGuest(ack.data(), ack.size(), rst));
	// A FIN crossing libslirp's (not acking it): CLOSING, left alone.
	auto crossing = segment(true, false, kFin | kAck, 9001, 5000);
	EXPECT_FALSE(r.fromGuest(crossing.data(), crossing.size(), rst));
	// A new connection on the same ports clears the record: its FIN, even with a matching
	// ack number, gets nothing.
	auto syn = segment(true, false, kSyn, 1, 0);
	EXPECT_FALSE(r.fromGuest(syn.data(), syn.size(), rst));
	auto laterFin = segment(true, false, kFin | kAck, 9001, 5001);
	EXPECT_FALSE(r.fromGuest(laterFin.data(), laterFin.size(), rst));
	// libslirp's SYN (a hostfwd connection) clears it too.
	r.toGuest(fin.data(), fin.size());
	auto synAck = segment(false, false, kSyn, 1, 0);
	r.toGuest(synAck.data(), synAck.size());
	EXPECT_FALSE(r.fromGuest(laterFin.data(), laterFin.size(), rst));
	// Another connection's FIN (other port) gets nothing.
	r.toGuest(fin.data(), fin.size());
	auto other = segment(true, false, kFin | kAck, 9001, 5001);
	storeBe16(other.data() + kEthHeaderLen + 20, 8081);
	EXPECT_FALSE(r.fromGuest(other.data(), other.size(), rst));
	EXPECT_TRUE(r.fromGuest(laterFin.data(), laterFin.size(), rst));
}

// Truncated and malformed frames both ways are ignored, never read past their end.
TEST(TimeWaitReaper, MalformedFramesAreIgnored)
{
	for (bool v6 : { false, true }) {
		TimeWaitReaper r;
		std::vector<uint8_t> rst;
		auto fin = segment(false, v6, kFin | kAck, 5000, 9000);
		auto guestFin = segment(true, v6, kFin | kAck, 9000, 5001);
		for (size_t n = 0; n < fin.size(); n++) {
			std::vector<uint8_t> cut(fin.begin(), fin.begin() + static_cast<long>(n));
			r.toGuest(cut.data(), cut.size());
			std::vector<uint8_t> gcut(guestFin.begin(), guestFin.begin() + static_cast<long>(n));
			EXPECT_FALSE(r.fromGuest(gcut.data(), gcut.size(), rst));
		}
		// A data offset past the segment, a length past the frame.
		auto bad = guestFin;
		bad[bad.size() - 20 + 12] = 0xf0;
		r.toGuest(fin.data(), fin.size());
		EXPECT_FALSE(r.fromGuest(bad.data(), bad.size(), rst));
		bad = guestFin;
		storeBe16(bad.data() + kEthHeaderLen + (v6 ? 4 : 2), 1000);
		EXPECT_FALSE(r.fromGuest(bad.data(), bad.size(), rst));
		EXPECT_TRUE(r.fromGuest(guestFin.data(), guestFin.size(), rst));
	}
	// An IPv4 fragment is no segment.
	TimeWaitReaper r;
	std::vector<uint8_t> rst;
	auto fin = segment(false, false, kFin | kAck, 5000, 9000);
	r.toGuest(fin.data(), fin.size());
	auto frag = segment(true, false, kFin | kAck, 9000, 5001);
	frag[kEthHeaderLen + 6] = 0x20; // more fragments
	EXPECT_FALSE(r.fromGuest(frag.data(), frag.size(), rst));
}
