// SPDX-License-Identifier: BSD-2-Clause
// dhcp_mtu_test.cpp - option 26 added to DHCP OFFER/ACK frames, and only to them.
#include <gtest/gtest.h>

#include <vector>

#include "ethernet.hpp"
#include "packet/dhcp_mtu.hpp"

using namespace slirpnet;

namespace {

// Ethernet + IPv4 + UDP 67->68 + BOOTP reply with the given options, padded like libslirp's
// (312 bytes of options area) unless room is given.
std::vector<uint8_t> reply(std::vector<uint8_t> options, uint8_t op = 2, size_t room = 312)
{
	std::vector<uint8_t> bootp(236, 0);
	bootp[0] = op;
	bootp.insert(bootp.end(), { 99, 130, 83, 99 });
	options.resize(std::max(room, options.size()), 0);
	bootp.insert(bootp.end(), options.begin(), options.end());
	size_t udpLen = 8 + bootp.size(), ipLen = 20 + udpLen;
	std::vector<uint8_t> f = { 0x52, 0x54, 0, 0x12, 0x34, 0x56, 0x52, 0x55, 10, 0, 2, 2, 0x08, 0x00 };
	f.insert(f.end(),
		 { 0x45, 0,  uint8_t(ipLen >> 8), uint8_t(ipLen), 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 2, 2, 255, 255,
		   255,  255 });
	f.insert(f.end(), { 0, 67, 0, 68, uint8_t(udpLen >> 8), uint8_t(udpLen), 0xab, 0xcd });
	f.insert(f.end(), bootp.begin(), bootp.end());
	return f;
}

constexpr size_t kOptions = kEthHeaderLen + kIpv4MinHeaderLen + kUdpHeaderLen + 236 + 4;

} // namespace

TEST(DhcpMtu, AckAndOfferGetOption26BeforeEnd)
{
	for (uint8_t type : { 2, 5 }) {
		auto f = reply({ 53, 1, type, 1, 4, 255, 255, 255, 0, 255 });
		size_t len = f.size();
		ASSERT_TRUE(addDhcpMtuOption(f.data(), f.size(), 9000));
		EXPECT_EQ(f.size(), len);
		const uint8_t *o = f.data() + kOptions + 9;
		EXPECT_EQ(o[0], 26);
		EXPECT_EQ(o[1], 2);
		EXPECT_EQ((o[2] << 8) | o[3], 9000);
		EXPECT_EQ(o[4], 255);
		EXPECT_EQ(f[kEthHeaderLen + kIpv4MinHeaderLen + 6], 0); // UDP checksum cleared
		EXPECT_EQ(f[kEthHeaderLen + kIpv4MinHeaderLen + 7], 0);
	}
}

TEST(DhcpMtu, LeavesOtherFramesAlone)
{
	auto withMtu = reply({ 53, 1, 5, 26, 2, 0x05, 0xdc, 255 });
	auto discover = reply({ 53, 1, 1, 255 }, 1);
	auto nak = reply({ 53, 1, 6, 255 });
	auto noRoom = reply({ 53, 1, 5, 255 }, 2, 3);
	auto malformed = reply({ 53, 1, 5, 1, 200 });
	for (auto *f : { &withMtu, &discover, &nak, &noRoom, &malformed }) {
		auto before = *f;
		EXPECT_FALSE(addDhcpMtuOption(f->data(), f->size(), 9000));
		EXPECT_EQ(*f, before);
	}
	auto other = reply({ 53, 1, 5, 255 });
	other[kEthHeaderLen + kIpv4MinHeaderLen + 1] = 53; // from port 53, not 67
	EXPECT_FALSE(addDhcpMtuOption(other.data(), other.size(), 9000));
	std::vector<uint8_t> arp(60, 0);
	arp[12] = 0x08, arp[13] = 0x06;
	EXPECT_FALSE(addDhcpMtuOption(arp.data(), arp.size(), 9000));
}
