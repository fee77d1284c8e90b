// SPDX-License-Identifier: BSD-2-Clause
// frag_guard_test.cpp - which IPv4 fragments may reach libslirp 4.7's reassembly.
#include <gtest/gtest.h>

#include <vector>

#include "ethernet.hpp"
#include "packet/frag_guard.hpp"

using namespace slirpnet;

namespace {

void setChecksum(uint8_t *ip)
{
	ip[10] = ip[11] = 0;
	uint32_t sum = 0;
	for (int i = 0; i < 20; i += 2)
		sum += (ip[i] << 8) | ip[i + 1];
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	ip[10] = uint8_t(~sum >> 8);
	ip[11] = uint8_t(~sum);
}

// An Ethernet + IPv4 header with 8 bytes of payload, valid as libslirp checks it.
std::vector<uint8_t> frag(uint16_t id, uint16_t offsetUnits, bool more, uint8_t proto = 17, uint8_t lastSrcByte = 15)
{
	std::vector<uint8_t> f(kEthHeaderLen + kIpv4MinHeaderLen + 8, 0);
	f[12] = 0x08;
	f[13] = 0x00;
	uint8_t *ip = f.data() + kEthHeaderLen;
	ip[0] = 0x45;
	ip[3] = 28; // total length
	ip[8] = 64; // TTL
	ip[4] = uint8_t(id >> 8);
	ip[5] = uint8_t(id);
	uint16_t field = uint16_t((more ? 0x2000 : 0) | offsetUnits);
	ip[6] = uint8_t(field >> 8);
	ip[7] = uint8_t(field);
	ip[9] = proto;
	ip[12] = 10, ip[13] = 0, ip[14] = 2, ip[15] = lastSrcByte;
	ip[16] = 10, ip[17] = 0, ip[18] = 2, ip[19] = 2;
	setChecksum(ip);
	return f;
}

// A first fragment (of train id) with byte ipByte of its IPv4 header set to value, and the
// header checksum made right again.
std::vector<uint8_t> firstWith(uint16_t id, size_t ipByte, uint8_t value)
{
	auto f = frag(id, 0, true);
	f[kEthHeaderLen + ipByte] = value;
	setChecksum(f.data() + kEthHeaderLen);
	return f;
}

bool admit(FragGuard &g, const std::vector<uint8_t> &f, int64_t now = 1000)
{
	return g.admit(f.data(), f.size(), now);
}

} // namespace

TEST(FragGuard, UnfragmentedAndNonIpv4PassUntouched)
{
	FragGuard g;
	EXPECT_TRUE(admit(g, frag(1, 0, false)));
	std::vector<uint8_t> arp(42, 0);
	arp[12] = 0x08, arp[13] = 0x06;
	EXPECT_TRUE(admit(g, arp));
	std::vector<uint8_t> shortIp(20, 0);
	shortIp[12] = 0x08;
	EXPECT_TRUE(admit(g, shortIp)); // libslirp rejects it itself
}

TEST(FragGuard, LoneOrEarlyNonFirstFragmentsAreDropped)
{
	FragGuard g;
	EXPECT_FALSE(admit(g, frag(7, 185, false))); // a last fragment alone: the 4.7.0 crash
	EXPECT_FALSE(admit(g, frag(7, 100, true))); // a middle one alone
}

TEST(FragGuard, InOrderTrainPassesThenEnds)
{
	FragGuard g;
	EXPECT_TRUE(admit(g, frag(9, 0, true)));
	EXPECT_TRUE(admit(g, frag(9, 185, true)));
	EXPECT_TRUE(admit(g, frag(9, 370, false))); // last: the train ends
	EXPECT_FALSE(admit(g, frag(9, 185, true))); // a late duplicate finds no queue
}

TEST(FragGuard, TrainsAreKeyedBySourceDestinationIdAndProtocol)
{
	FragGuard g;
	EXPECT_TRUE(admit(g, frag(5, 0, true, 17)));
	EXPECT_FALSE(admit(g, frag(5, 185, false, 1))); // other protocol
	EXPECT_FALSE(admit(g, frag(6, 185, false, 17))); // other id
	EXPECT_FALSE(admit(g, frag(5, 185, false, 17, 16))); // other source
	EXPECT_TRUE(admit(g, frag(5, 185, false, 17)));
}

TEST(FragGuard, TrainsExpireBeforeLibslirpsQueue)
{
	FragGuard g;
	EXPECT_TRUE(admit(g, frag(3, 0, true), 1000));
	EXPECT_TRUE(admit(g, frag(3, 185, true), 1000 + FragGuard::kTtlMs - 1));
	// The first fragment refreshed nothing: the train started at 1000.
	EXPECT_FALSE(admit(g, frag(3, 370, false), 1000 + FragGuard::kTtlMs));
}

TEST(FragGuard, TableIsBoundedOldestReplaced)
{
	FragGuard g;
	for (uint16_t id = 0; id < FragGuard::kSlots + 1; id++)
		EXPECT_TRUE(admit(g, frag(id, 0, true), 1000 + id));
	EXPECT_FALSE(admit(g, frag(0, 185, false), 2000)); // the oldest was replaced
	EXPECT_TRUE(admit(g, frag(FragGuard::kSlots, 185, false), 2000));
}

// A first fragment libslirp discards creates no queue there, so it must start no train
// here: the next fragment would otherwise reach libslirp 4.7's crashing path.
TEST(FragGuard, MalformedFirstFragmentsStartNoTrain)
{
	auto badChecksum = frag(11, 0, true);
	badChecksum[kEthHeaderLen + 10] ^= 0xff;
	auto tooLong = firstWith(12, 3, 200); // total length past the frame's end
	auto shortHeader = firstWith(13, 0, 0x44); // IHL 4: shorter than an IPv4 header
	auto ttlZero = firstWith(14, 8, 0);
	auto notV4 = firstWith(15, 0, 0x65); // version 6
	uint16_t id = 11;
	for (const auto &f : { badChecksum, tooLong, shortHeader, ttlZero, notV4 }) {
		FragGuard g;
		EXPECT_FALSE(admit(g, f)) << "id " << id;
		EXPECT_FALSE(admit(g, frag(id, 1, false))) << "id " << id;
		id++;
	}
}
