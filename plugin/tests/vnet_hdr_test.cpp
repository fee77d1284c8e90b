// SPDX-License-Identifier: BSD-2-Clause
// vnet_hdr_test.cpp - the offload helpers: checksums, MSS raising, GSO marking, cutting frames to the link MTU.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "byte_order.hpp"
#include "ethernet.hpp"
#include "packet/checksum.hpp"
#include "packet/vnet_hdr.hpp"

using namespace slirpnet;

namespace {

// Reference RFC 1071 sum over big-endian words, straight from the definition.
uint16_t referenceSum(const std::vector<uint8_t> &b, size_t from, size_t to, uint32_t sum = 0)
{
	for (size_t i = from; i < to; i += 2)
		sum += (uint32_t(b[i]) << 8) | (i + 1 < to ? b[i + 1] : 0);
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return static_cast<uint16_t>(sum);
}

void put16(std::vector<uint8_t> &b, size_t at, uint16_t v)
{
	b[at] = uint8_t(v >> 8);
	b[at + 1] = uint8_t(v);
}

uint32_t tcpPseudo(const std::vector<uint8_t> &f, size_t tcpLen)
{
	uint32_t s = 0;
	for (size_t i = 26; i < 34; i += 2)
		s += loadBe16(&f[i]);
	return s + 6 + static_cast<uint32_t>(tcpLen);
}

bool tcpChecksumOk(const std::vector<uint8_t> &f)
{
	size_t total = loadBe16(&f[16]);
	return referenceSum(f, 34, kEthHeaderLen + total, tcpPseudo(f, total - 20)) == 0xffff;
}

bool ipChecksumOk(const std::vector<uint8_t> &f)
{
	return referenceSum(f, 14, 34) == 0xffff;
}

void fixChecksums(std::vector<uint8_t> &f)
{
	size_t total = loadBe16(&f[16]);
	put16(f, 24, 0);
	put16(f, 24, static_cast<uint16_t>(~referenceSum(f, 14, 34)));
	if (f[23] == 6) {
		put16(f, 50, 0);
		put16(f, 50,
		      static_cast<uint16_t>(~referenceSum(f, 34, kEthHeaderLen + total, tcpPseudo(f, total - 20))));
	}
}

// Ethernet + IPv4 (20) + TCP (20 + options) + payload, checksums valid.
std::vector<uint8_t> tcpFrame(size_t payload, uint8_t flags, std::vector<uint8_t> options = {})
{
	size_t tcpHdr = 20 + options.size();
	std::vector<uint8_t> f(kEthHeaderLen + kIpv4MinHeaderLen + tcpHdr + payload);
	put16(f, 12, ETHERTYPE_IP);
	f[kEthHeaderLen] = 0x45; // IPv4, 20-byte header
	put16(f, 16, static_cast<uint16_t>(20 + tcpHdr + payload));
	put16(f, 18, 0x1234); // id
	f[22] = 64;
	f[23] = 6;
	const uint8_t src[] = { 10, 0, 2, 2 }, dst[] = { 10, 0, 2, 15 };
	memcpy(&f[26], src, 4);
	memcpy(&f[30], dst, 4);
	put16(f, 34, 80);
	put16(f, 36, 40000);
	storeBe32(&f[38], 1000);
	storeBe32(&f[42], 2000);
	f[46] = static_cast<uint8_t>((tcpHdr / 4) << 4);
	f[47] = flags;
	put16(f, 48, 65535);
	if (!options.empty()) // memcpy from an empty vector's null data() is undefined (UBSan)
		memcpy(&f[54], options.data(), options.size());
	for (size_t i = 0; i < payload; i++)
		f[34 + tcpHdr + i] = static_cast<uint8_t>(i * 7 + 3);
	fixChecksums(f);
	return f;
}

} // namespace

TEST(VnetHdr, ChecksumMatchesTheDefinitionForAnyLength)
{
	std::vector<uint8_t> b(300);
	for (size_t i = 0; i < b.size(); i++)
		b[i] = static_cast<uint8_t>(i * 37 + 11);
	for (size_t len = 0; len < b.size(); len++) {
		uint16_t ours = checksumFold(checksumAdd(0, b.data(), len));
		uint16_t native;
		uint16_t ref = referenceSum(b, 0, len);
		// ours is in native order: as stored bytes it must equal the reference.
		uint8_t bytes[2] = { uint8_t(ref >> 8), uint8_t(ref) };
		memcpy(&native, bytes, 2);
		EXPECT_EQ(ours, native) << "length " << len;
	}
}

TEST(VnetHdr, CompletesAPartialChecksum)
{
	auto f = tcpFrame(1001, 0x18);
	auto want = f;
	size_t total = loadBe16(&f[16]);
	put16(f, 50, referenceSum(f, 0, 0, tcpPseudo(f, total - 20))); // pseudo-header sum only
	ASSERT_TRUE(completeChecksum(f.data(), f.size(), 34, 16));
	EXPECT_EQ(f, want);
	EXPECT_FALSE(completeChecksum(f.data(), f.size(), f.size(), 0));

	// A NIC may pad a short frame to 60 bytes, with anything: not part of the sum.
	auto ack = tcpFrame(0, 0x10);
	auto ackWant = ack;
	put16(ack, 50, referenceSum(ack, 0, 0, tcpPseudo(ack, 20)));
	ack.resize(60, 0xab);
	EXPECT_EQ(ipPacketEnd(ack.data(), ack.size()), 54u);
	ASSERT_TRUE(completeChecksum(ack.data(), ipPacketEnd(ack.data(), ack.size()), 34, 16));
	EXPECT_TRUE(std::equal(ackWant.begin(), ackWant.end(), ack.begin()));
	EXPECT_FALSE(completeChecksum(f.data(), f.size(), 34, f.size() - 35));
	EXPECT_FALSE(completeChecksum(f.data(), f.size(), 34, SIZE_MAX - 10));
}

TEST(VnetHdr, RaisesTheMssOfASynOnly)
{
	auto syn = tcpFrame(0, 0x02, { 1, 2, 4, 0x05, 0xb4, 0, 0, 0 }); // NOP, MSS 1460 (odd offset)
	ASSERT_TRUE(raiseSynMss(syn.data(), syn.size(), 65480));
	EXPECT_EQ(loadBe16(&syn[kEthHeaderLen + kIpv4MinHeaderLen + kTcpMinHeaderLen + 3]), 65480);
	EXPECT_TRUE(tcpChecksumOk(syn));
	EXPECT_FALSE(raiseSynMss(syn.data(), syn.size(), 1000)); // never lowered

	auto ack = tcpFrame(0, 0x10, { 2, 4, 0x05, 0xb4 });
	EXPECT_FALSE(raiseSynMss(ack.data(), ack.size(), 65480));
	auto bad = tcpFrame(0, 0x02, { 2, 9, 0, 0 }); // option runs past the header
	EXPECT_FALSE(raiseSynMss(bad.data(), bad.size(), 65480));
}

TEST(VnetHdr, MarksLargeSegmentsForGso)
{
	auto f = tcpFrame(30000, 0x18);
	VnetHdr h{};
	ASSERT_TRUE(markGso(f.data(), f.size(), 1500, true, h));
	EXPECT_EQ(h.gso_type, kGsoTcpv4);
	EXPECT_EQ(h.flags, kVnetNeedsCsum);
	EXPECT_EQ(le16toh(h.gso_size), 1460);
	EXPECT_EQ(le16toh(h.hdr_len), 54);
	EXPECT_EQ(le16toh(h.csum_start), 34);
	EXPECT_EQ(le16toh(h.csum_offset), 16);
	ASSERT_TRUE(completeChecksum(f.data(), f.size(), 34, 16)); // what the guest's NIC does
	EXPECT_TRUE(tcpChecksumOk(f));

	auto g = tcpFrame(30000, 0x18);
	VnetHdr full{};
	ASSERT_TRUE(markGso(g.data(), g.size(), 1500, false, full));
	EXPECT_EQ(full.flags, 0);
	EXPECT_TRUE(tcpChecksumOk(g)); // left whole

	auto small = tcpFrame(1460, 0x18);
	VnetHdr none{};
	EXPECT_FALSE(markGso(small.data(), small.size(), 1500, true, none));
}

TEST(VnetHdr, CutsTcpSegmentsToTheLink)
{
	auto f = tcpFrame(10000, 0x19); // FIN|PSH|ACK
	std::vector<std::vector<uint8_t>> out;
	std::vector<uint8_t> buf(1514);
	int n = splitForLink(
		f.data(), f.size(), 1500, [&]() { return buf.data(); },
		[&](size_t len) { out.emplace_back(buf.begin(), buf.begin() + static_cast<long>(len)); });
	ASSERT_EQ(n, 7); // 6 * 1460 + 1240
	std::vector<uint8_t> joined;
	for (size_t i = 0; i < out.size(); i++) {
		const auto &s = out[i];
		ASSERT_LE(s.size(), 1514u);
		EXPECT_TRUE(ipChecksumOk(s)) << i;
		EXPECT_TRUE(tcpChecksumOk(s)) << i;
		EXPECT_EQ(loadBe32(&s[38]), 1000 + i * 1460) << i;
		EXPECT_EQ(loadBe16(&s[18]), 0x1234 + i) << i;
		bool last = i + 1 == out.size();
		EXPECT_EQ(s[47], last ? 0x19 : 0x10) << i;
		joined.insert(joined.end(), s.begin() + 54, s.end());
	}
	EXPECT_TRUE(std::equal(joined.begin(), joined.end(), f.begin() + 54, f.end()));
}

TEST(VnetHdr, FragmentsOtherIpv4AndStopsWithoutRoom)
{
	auto f = tcpFrame(4000, 0x10);
	f[23] = 17; // now UDP-ish: not TCP, so IPv4 fragments
	fixChecksums(f);
	std::vector<std::vector<uint8_t>> out;
	std::vector<uint8_t> buf(1514);
	int n = splitForLink(
		f.data(), f.size(), 1500, [&]() { return buf.data(); },
		[&](size_t len) { out.emplace_back(buf.begin(), buf.begin() + static_cast<long>(len)); });
	ASSERT_EQ(n, 3);
	size_t offset = 0;
	for (size_t i = 0; i < out.size(); i++) {
		const auto &s = out[i];
		EXPECT_TRUE(ipChecksumOk(s));
		uint16_t frag = loadBe16(&s[20]);
		EXPECT_EQ((frag & 0x1fff) * 8u, offset);
		EXPECT_EQ(bool(frag & 0x2000), i + 1 < out.size());
		EXPECT_TRUE(std::equal(s.begin() + 34, s.end(), f.begin() + 34 + static_cast<long>(offset)));
		offset += s.size() - 34;
	}
	EXPECT_EQ(offset, 4020u);

	int calls = 0;
	EXPECT_EQ(splitForLink(
			  f.data(), f.size(), 1500, [&]() -> uint8_t * { return calls++ ? nullptr : buf.data(); },
			  [](size_t) {}),
		  1);

	f[20] |= 0x40; // DF: cannot be fragmented
	EXPECT_EQ(splitForLink(
			  f.data(), f.size(), 1500, [&]() { return buf.data(); }, [](size_t) {}),
		  -1);
}
