// SPDX-License-Identifier: BSD-2-Clause
// ip_reassembly_test.cpp - IPv4/IPv6 reassembly before libslirp: orders, overlaps, duplicates, bounds, a fake clock.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

#include "byte_order.hpp"
#include "ethernet.hpp"
#include "packet/checksum.hpp"
#include "packet/ip_reassembly.hpp"

using namespace slirpnet;
using Verdict = IpReassembly::Verdict;

namespace {

using Bytes = std::vector<uint8_t>;

void setIpv4Checksum(uint8_t *ip)
{
	size_t ihl = (ip[0] & 0x0f) * 4u;
	ip[10] = ip[11] = 0;
	uint16_t sum = static_cast<uint16_t>(~checksumFold(checksumAdd(0, ip, ihl)));
	std::memcpy(ip + 10, &sum, 2);
}

bool ipv4ChecksumOk(const uint8_t *ip)
{
	return checksumFold(checksumAdd(0, ip, (ip[0] & 0x0f) * 4u)) == 0xffff;
}

// The payload of a whole datagram: byte i is a function of i (and seed), so that any
// misplaced byte shows.
Bytes payload(size_t n, uint8_t seed = 0)
{
	Bytes p(n);
	for (size_t i = 0; i < n; i++)
		p[i] = static_cast<uint8_t>(i * 7 + (i >> 8) + seed);
	return p;
}

// An Ethernet + IPv4 fragment carrying data[offset, offset + size) of a datagram.
Bytes v4frag(uint16_t id, const Bytes &data, size_t offset, size_t size, bool more, uint8_t proto = IPPROTO_UDP,
	     size_t options = 0, uint16_t extraFlags = 0)
{
	size_t ihl = kIpv4MinHeaderLen + options;
	Bytes f(kEthHeaderLen + ihl + size, 0);
	f[5] = 2; // gateway MAC's last byte
	f[11] = 0x56;
	f[12] = 0x08;
	uint8_t *ip = f.data() + kEthHeaderLen;
	ip[0] = static_cast<uint8_t>(0x40 | (ihl / 4));
	storeBe16(ip + 2, static_cast<uint16_t>(ihl + size));
	storeBe16(ip + 4, id);
	storeBe16(ip + 6, static_cast<uint16_t>(extraFlags | (more ? IP_MF : 0) | (offset / 8)));
	ip[8] = 64;
	ip[9] = proto;
	const uint8_t src[4] = { 10, 0, 2, 15 }, dst[4] = { 10, 0, 2, 2 };
	std::memcpy(ip + 12, src, 4);
	std::memcpy(ip + 16, dst, 4);
	for (size_t i = 0; i < options; i++)
		ip[20 + i] = 1; // NOP options
	std::memcpy(ip + ihl, data.data() + offset, size);
	setIpv4Checksum(ip);
	return f;
}

// A datagram cut into fragments of at most `step` data bytes (a multiple of 8).
std::vector<Bytes> v4train(uint16_t id, const Bytes &data, size_t step, uint8_t proto = IPPROTO_UDP)
{
	std::vector<Bytes> out;
	for (size_t off = 0; off < data.size(); off += step) {
		size_t n = std::min(step, data.size() - off);
		out.push_back(v4frag(id, data, off, n, off + n < data.size(), proto));
	}
	return out;
}

// An Ethernet + IPv6 + fragment header frame carrying data[offset, offset + size).
Bytes v6frag(uint32_t id, const Bytes &data, size_t offset, size_t size, bool more, uint8_t nh = IPPROTO_UDP)
{
	Bytes f(kEthHeaderLen + kIpv6HeaderLen + 8 + size, 0);
	f[12] = 0x86;
	f[13] = 0xdd;
	uint8_t *ip = f.data() + kEthHeaderLen;
	ip[0] = 0x60;
	storeBe16(ip + 4, static_cast<uint16_t>(8 + size));
	ip[6] = 44;
	ip[7] = 64;
	ip[8] = 0xfe, ip[9] = 0xc0, ip[23] = 0x15; // fec0::15
	ip[24] = 0xfe, ip[25] = 0xc0, ip[39] = 0x02; // fec0::2
	uint8_t *fh = ip + kIpv6HeaderLen;
	fh[0] = nh;
	storeBe16(fh + 2, static_cast<uint16_t>(offset | (more ? 1 : 0)));
	storeBe32(fh + 4, id);
	std::memcpy(fh + 8, data.data() + offset, size);
	return f;
}

IpReassembly::Limits limits(size_t bytes = size_t{ 4 } << 20, int64_t timeoutMs = 30000)
{
	return IpReassembly::Limits{ bytes, timeoutMs };
}

Verdict in(IpReassembly &r, const Bytes &f, int64_t now = 1000)
{
	return r.input(f.data(), f.size(), now);
}

// The IP payload of the reassembled IPv4 datagram, its header checked on the way.
Bytes v4result(const IpReassembly &r, size_t ihl = kIpv4MinHeaderLen)
{
	const uint8_t *ip = r.datagram() + kEthHeaderLen;
	EXPECT_EQ(ip[0] >> 4, 4);
	EXPECT_EQ(loadBe16(ip + 6), 0) << "no fragment bits left for libslirp";
	EXPECT_TRUE(ipv4ChecksumOk(ip));
	EXPECT_EQ(kEthHeaderLen + loadBe16(ip + 2), r.datagramLen());
	return Bytes(ip + ihl, r.datagram() + r.datagramLen());
}

} // namespace

TEST(IpReassembly, NonFragmentsPassUntouched)
{
	IpReassembly r(limits());
	Bytes data = payload(100);
	Bytes whole = v4frag(1, data, 0, 100, false);
	EXPECT_EQ(in(r, whole), Verdict::Pass);
	Bytes df = v4frag(1, data, 0, 100, false, IPPROTO_UDP, 0, IP_DF);
	EXPECT_EQ(in(r, df), Verdict::Pass) << "DF alone is no fragment";
	Bytes arp(42, 0);
	arp[12] = 0x08, arp[13] = 0x06;
	EXPECT_EQ(in(r, arp), Verdict::Pass);
	Bytes shortIp(kEthHeaderLen + 10, 0);
	shortIp[12] = 0x08;
	EXPECT_EQ(in(r, shortIp), Verdict::Pass); // libslirp drops it before looking at ip_off
	Bytes v6(kEthHeaderLen + kIpv6HeaderLen + 8, 0);
	v6[12] = 0x86, v6[13] = 0xdd, v6[14] = 0x60, v6[14 + 5] = 8, v6[14 + 6] = IPPROTO_UDP;
	EXPECT_EQ(in(r, v6), Verdict::Pass);
	EXPECT_EQ(r.counters().malformed, 0u);
	EXPECT_EQ(r.heldBytes(), 0u);
}

TEST(IpReassembly, ReservedFlagIsDroppedFragmentOrNot)
{
	// libslirp 4.7 takes ip_off & ~IP_DF for a fragment: the reserved flag alone would
	// free a queue there (the first way past the old guard). RFC 791: must be zero.
	IpReassembly r(limits());
	Bytes data = payload(64);
	EXPECT_EQ(in(r, v4frag(1, data, 0, 64, false, IPPROTO_UDP, 0, 0x8000)), Verdict::Drop);
	EXPECT_EQ(in(r, v4frag(2, data, 0, 16, true, IPPROTO_UDP, 0, 0x8000)), Verdict::Drop);
	EXPECT_EQ(r.counters().malformed, 2u);
	EXPECT_EQ(r.heldFrames(), 0u);
}

TEST(IpReassembly, InOrderTrainIsOneDatagram)
{
	IpReassembly r(limits());
	Bytes data = payload(3000);
	auto train = v4train(0x4242, data, 1480);
	ASSERT_EQ(train.size(), 3u);
	size_t frameBytes = 0;
	for (size_t i = 0; i < train.size(); i++) {
		frameBytes += train[i].size();
		EXPECT_EQ(in(r, train[i]), i + 1 < train.size() ? Verdict::Held : Verdict::Complete) << i;
	}
	EXPECT_EQ(v4result(r), data);
	EXPECT_EQ(r.datagramFrames(), 3u);
	EXPECT_EQ(r.datagramFrameBytes(), frameBytes);
	EXPECT_EQ(0, std::memcmp(r.datagram(), train[0].data(), kEthHeaderLen))
		<< "the first fragment's Ethernet header";
	EXPECT_EQ(r.datagram()[kEthHeaderLen + 9], IPPROTO_UDP);
	EXPECT_EQ(loadBe16(r.datagram() + kEthHeaderLen + 4), 0x4242);
	EXPECT_EQ(r.counters().reassembled, 1u);
	EXPECT_EQ(r.heldFrames(), 0u);
	EXPECT_EQ(r.heldBytes(), 0u) << "every page back in the pool";
}

TEST(IpReassembly, AnyOrderIsReassembled)
{
	std::mt19937 rng(7);
	IpReassembly r(limits());
	for (int round = 0; round < 50; round++) {
		Bytes data = payload(200 + rng() % 9000, static_cast<uint8_t>(round));
		// Two fragments at least (one alone is a whole datagram).
		auto train = v4train(static_cast<uint16_t>(round), data, 8 * (1 + rng() % ((data.size() - 1) / 8)));
		if (round == 0)
			std::reverse(train.begin(), train.end()); // the last first: libslirp 4.7's crash
		else
			std::shuffle(train.begin(), train.end(), rng);
		for (size_t i = 0; i < train.size(); i++)
			ASSERT_EQ(in(r, train[i]), i + 1 < train.size() ? Verdict::Held : Verdict::Complete)
				<< "round " << round << " fragment " << i;
		ASSERT_EQ(v4result(r), data) << round;
	}
	EXPECT_EQ(r.counters().reassembled, 50u);
	EXPECT_EQ(r.heldBytes(), 0u);
}

TEST(IpReassembly, InterleavedDatagramsAreKeptApart)
{
	IpReassembly r(limits());
	Bytes a = payload(2000, 1), b = payload(2000, 2);
	auto ta = v4train(10, a, 800), tb = v4train(11, b, 800);
	auto tc = v4train(10, b, 800, IPPROTO_ICMP); // same id, another protocol: another datagram
	EXPECT_EQ(in(r, ta[0]), Verdict::Held);
	EXPECT_EQ(in(r, tb[2]), Verdict::Held);
	EXPECT_EQ(in(r, tc[1]), Verdict::Held);
	EXPECT_EQ(in(r, ta[2]), Verdict::Held);
	EXPECT_EQ(in(r, tb[0]), Verdict::Held);
	EXPECT_EQ(in(r, ta[1]), Verdict::Complete);
	EXPECT_EQ(v4result(r), a);
	EXPECT_EQ(in(r, tc[0]), Verdict::Held);
	EXPECT_EQ(in(r, tb[1]), Verdict::Complete);
	EXPECT_EQ(v4result(r), b);
	EXPECT_EQ(in(r, tc[2]), Verdict::Complete);
	EXPECT_EQ(v4result(r), b);
	EXPECT_EQ(r.datagram()[kEthHeaderLen + 9], IPPROTO_ICMP);
}

TEST(IpReassembly, FirstFragmentOptionsAreKept)
{
	IpReassembly r(limits());
	Bytes data = payload(1000);
	Bytes first = v4frag(5, data, 0, 496, true, IPPROTO_UDP, 8);
	Bytes last = v4frag(5, data, 496, 504, false); // later fragments may drop options
	EXPECT_EQ(in(r, last), Verdict::Held);
	EXPECT_EQ(in(r, first), Verdict::Complete);
	EXPECT_EQ(v4result(r, 28), data);
}

TEST(IpReassembly, TheOldGuardsThreeSequencesAreHarmless)
{
	IpReassembly r(limits());
	Bytes data = payload(2000);
	auto t = v4train(20, data, 1000);
	// 1. first, a reserved-flag packet of the same datagram, last: libslirp freed its queue.
	EXPECT_EQ(in(r, t[0]), Verdict::Held);
	Bytes reserved = v4frag(20, data, 0, 8, false, IPPROTO_UDP, 0, 0x8000);
	EXPECT_EQ(in(r, reserved), Verdict::Drop);
	EXPECT_EQ(in(r, t[1]), Verdict::Complete);
	EXPECT_EQ(v4result(r), data);
	// 2. the first re-sent keeps the datagram's timer as it was (a duplicate, ignored).
	EXPECT_EQ(in(r, t[0], 0), Verdict::Held);
	EXPECT_EQ(in(r, t[0], 29000), Verdict::Drop);
	EXPECT_EQ(in(r, t[1], 31000), Verdict::Held) << "the datagram expired 30 s after its first arrival";
	EXPECT_EQ(r.counters().timeout, 1u);
	EXPECT_EQ(in(r, t[0], 31001), Verdict::Complete);
	// 3. first, last with a hole, the first again (the old guard reopened a train), the
	// middle (libslirp completed), the last again (the old guard let it reach no queue).
	auto t3 = v4train(21, data, 664);
	ASSERT_EQ(t3.size(), 4u);
	EXPECT_EQ(in(r, t3[0], 32000), Verdict::Held);
	EXPECT_EQ(in(r, t3[3], 32001), Verdict::Held);
	EXPECT_EQ(in(r, t3[0], 32002), Verdict::Drop) << "a duplicate";
	EXPECT_EQ(in(r, t3[1], 32003), Verdict::Held);
	EXPECT_EQ(in(r, t3[2], 32004), Verdict::Complete);
	EXPECT_EQ(v4result(r), data);
	EXPECT_EQ(in(r, t3[3], 32005), Verdict::Held) << "a new datagram";
	EXPECT_EQ(r.heldFrames(), 1u);
}

TEST(IpReassembly, ExactDuplicatesAreIgnored)
{
	IpReassembly r(limits());
	Bytes data = payload(3000);
	auto t = v4train(30, data, 1000);
	EXPECT_EQ(in(r, t[1]), Verdict::Held);
	EXPECT_EQ(in(r, t[1]), Verdict::Drop);
	EXPECT_EQ(in(r, t[2]), Verdict::Held);
	EXPECT_EQ(in(r, t[2]), Verdict::Drop); // the last, again
	EXPECT_EQ(in(r, t[1]), Verdict::Drop);
	EXPECT_EQ(r.counters().malformed, 3u);
	EXPECT_EQ(r.heldFrames(), 2u);
	EXPECT_EQ(in(r, t[0]), Verdict::Complete);
	EXPECT_EQ(v4result(r), data);
	EXPECT_EQ(r.datagramFrames(), 3u) << "duplicates are not part of the datagram";
	EXPECT_EQ(r.counters().overlap, 0u);
}

TEST(IpReassembly, OverlapsDropTheWholeDatagram)
{
	Bytes data = payload(3000);
	struct Case {
		size_t off, size;
		bool more;
		const char *what;
	};
	// Held: [0, 1000) and [2000, 3000) (the last).
	for (const Case &c :
	     { Case{ 8, 1000, true, "inside the first and beyond" }, Case{ 992, 16, true, "across the first's end" },
	       Case{ 1000, 1008, true, "across the last's start" }, Case{ 0, 504, true, "a prefix of the first" },
	       Case{ 496, 504, true, "a suffix of the first" }, Case{ 2000, 504, true, "a prefix of the last" },
	       Case{ 1000, 2000, false, "a last one covering the other last" },
	       Case{ 1000, 1000, false, "another end before the known one" },
	       Case{ 3000, 8, true, "beyond the known end" } }) {
		IpReassembly r(limits());
		EXPECT_EQ(in(r, v4frag(40, data, 0, 1000, true)), Verdict::Held);
		EXPECT_EQ(in(r, v4frag(40, data, 2000, 1000, false)), Verdict::Held);
		Bytes bad = c.off + c.size <= data.size() ? v4frag(40, data, c.off, c.size, c.more)
							  : v4frag(40, payload(4000), c.off, c.size, c.more);
		EXPECT_EQ(in(r, bad), Verdict::Drop) << c.what;
		EXPECT_EQ(r.counters().overlap, 3u) << c.what << ": the two held and this one";
		EXPECT_EQ(r.heldFrames(), 0u) << c.what;
		EXPECT_EQ(r.heldBytes(), 0u) << c.what;
		// The id is free again: a whole new train goes through.
		for (const Bytes &f : v4train(40, data, 1000))
			in(r, f);
		EXPECT_EQ(r.counters().reassembled, 1u) << c.what;
		EXPECT_EQ(v4result(r), data) << c.what;
	}
}

TEST(IpReassembly, BadFragmentsAreDroppedAlone)
{
	IpReassembly r(limits());
	Bytes data = payload(70000);
	EXPECT_EQ(in(r, v4frag(50, data, 0, 1000, true)), Verdict::Held);
	auto expectDrop = [&](Bytes f, const char *what) {
		uint64_t before = r.counters().malformed;
		EXPECT_EQ(in(r, f), Verdict::Drop) << what;
		EXPECT_EQ(r.counters().malformed, before + 1) << what;
	};
	expectDrop(v4frag(50, data, 1000, 100, true), "not a multiple of 8, not the last");
	expectDrop(v4frag(50, data, 1000, 0, true), "no data");
	expectDrop(v4frag(50, data, 65512, 8, false), "ends past 65535 - 20");
	expectDrop(v4frag(50, data, 64000, 1520, false), "ends at 65520 > 65535 - 20");
	Bytes f = v4frag(50, data, 1000, 8, true);
	f[kEthHeaderLen + 10] ^= 1;
	expectDrop(f, "bad checksum");
	f = v4frag(50, data, 1000, 8, true);
	f[kEthHeaderLen] = 0x44;
	setIpv4Checksum(f.data() + kEthHeaderLen);
	expectDrop(f, "IHL 16");
	f = v4frag(50, data, 1000, 8, true);
	f[kEthHeaderLen] = 0x65;
	expectDrop(f, "version 6");
	f = v4frag(50, data, 1000, 8, true);
	storeBe16(f.data() + kEthHeaderLen + 2, 200);
	setIpv4Checksum(f.data() + kEthHeaderLen);
	expectDrop(f, "total length beyond the frame");
	f = v4frag(50, data, 1000, 8, true);
	storeBe16(f.data() + kEthHeaderLen + 2, 10);
	setIpv4Checksum(f.data() + kEthHeaderLen);
	expectDrop(f, "total length inside the header");
	for (size_t len = kEthHeaderLen + kIpv4MinHeaderLen; len < f.size(); len++)
		r.input(f.data(), len, 1000); // cut frames: no read past len (ASan)
	EXPECT_EQ(r.heldFrames(), 1u) << "the datagram held is untouched";
	EXPECT_EQ(r.counters().overlap, 0u);
}

TEST(IpReassembly, LargestDatagram)
{
	IpReassembly r(limits());
	Bytes data = payload(65535 - 20);
	auto t = v4train(60, data, 1480);
	std::reverse(t.begin(), t.end());
	for (size_t i = 0; i < t.size(); i++)
		ASSERT_EQ(in(r, t[i]), i + 1 < t.size() ? Verdict::Held : Verdict::Complete);
	EXPECT_EQ(r.datagramLen(), kEthHeaderLen + 65535);
	EXPECT_EQ(v4result(r), data);
	// With 4 bytes of options on the first, the same data is one byte too many.
	Bytes first = v4frag(61, data, 0, 1480, true, IPPROTO_UDP, 4);
	EXPECT_EQ(in(r, first), Verdict::Held);
	for (size_t i = 0; i + 1 < t.size(); i++) {
		Bytes f = t[i];
		storeBe16(f.data() + kEthHeaderLen + 4, 61);
		setIpv4Checksum(f.data() + kEthHeaderLen);
		EXPECT_EQ(in(r, f), i + 2 < t.size() ? Verdict::Held : Verdict::Drop);
	}
	EXPECT_EQ(r.heldFrames(), 0u);
}

TEST(IpReassembly, TimeoutIsFromTheFirstArrivalAndLazy)
{
	IpReassembly r(limits(size_t{ 4 } << 20, 5000));
	Bytes data = payload(3000);
	auto t = v4train(70, data, 1000);
	EXPECT_EQ(in(r, t[0], 10000), Verdict::Held);
	EXPECT_EQ(in(r, t[1], 14999), Verdict::Held);
	EXPECT_EQ(r.counters().timeout, 0u);
	// Another datagram's fragment at 15000 expires the first one.
	auto other = v4train(71, data, 1000);
	EXPECT_EQ(in(r, other[0], 15000), Verdict::Held);
	EXPECT_EQ(r.counters().timeout, 2u);
	EXPECT_EQ(r.heldFrames(), 1u);
	EXPECT_EQ(in(r, t[2], 15001), Verdict::Held) << "a new datagram";
	EXPECT_EQ(in(r, other[1], 15002), Verdict::Held);
	EXPECT_EQ(in(r, other[2], 15003), Verdict::Complete);
	EXPECT_EQ(in(r, t[0], 15004), Verdict::Held);
	EXPECT_EQ(in(r, t[1], 15005), Verdict::Complete);
	EXPECT_EQ(v4result(r), data);
}

TEST(IpReassembly, FloodOfFirstFragmentsStaysWithinTheBounds)
{
	constexpr size_t kBytes = 256 * 1024;
	IpReassembly r(limits(kBytes));
	Bytes data = payload(1480);
	uint64_t sent = 0;
	for (uint32_t id = 0; id < 5000; id++) {
		EXPECT_EQ(in(r, v4frag(static_cast<uint16_t>(id), data, 0, 1480, true), 1000 + id), Verdict::Held);
		sent++;
		ASSERT_LE(r.heldBytes(), kBytes);
		ASSERT_LE(r.heldFrames(), r.maxQueues());
	}
	EXPECT_GT(r.counters().limit, 0u);
	EXPECT_EQ(r.counters().limit + r.heldFrames(), sent) << "every fragment counted once";
	// Datagrams of 30 KiB each, never whole: the bytes are the bound.
	Bytes big30k = payload(30000 + 1480); // every fragment below takes 1480 bytes of it
	for (uint32_t id = 0; id < 100; id++)
		for (size_t off = 0; off < 30000; off += 1480) {
			in(r, v4frag(static_cast<uint16_t>(id), big30k, off, 1480, true), 5000 + id);
			ASSERT_LE(r.heldBytes(), kBytes);
		}
	EXPECT_GT(r.heldBytes(), kBytes / 2);
	EXPECT_LT(r.heldFrames(), r.maxQueues() * 21);
	// Tiny ones: the datagram count is the bound.
	Bytes tiny = payload(8);
	for (uint32_t id = 0; id < 5000; id++)
		in(r, v4frag(static_cast<uint16_t>(id), tiny, 0, 8, true, IPPROTO_ICMP), 9000);
	EXPECT_EQ(r.heldFrames(), r.maxQueues());
	EXPECT_LE(r.heldBytes(), kBytes);
	// A datagram sent now still gets through.
	Bytes big = payload(60000);
	auto t = v4train(9, big, 1480, IPPROTO_TCP);
	for (size_t i = 0; i < t.size(); i++)
		ASSERT_EQ(in(r, t[i], 9001), i + 1 < t.size() ? Verdict::Held : Verdict::Complete) << i;
	EXPECT_EQ(v4result(r), big);
}

TEST(IpReassembly, FragMemZeroDropsEveryFragment)
{
	IpReassembly r(limits(0));
	Bytes data = payload(100);
	EXPECT_EQ(in(r, v4frag(1, data, 0, 48, true)), Verdict::Drop);
	EXPECT_EQ(in(r, v4frag(1, data, 0, 100, false)), Verdict::Pass);
	EXPECT_EQ(r.counters().limit, 1u);
	EXPECT_EQ(in(r, v6frag(2, data, 0, 100, false)), Verdict::Complete) << "an atomic fragment holds nothing";
	EXPECT_EQ(r.datagramLen(), kEthHeaderLen + kIpv6HeaderLen + 100);
}

TEST(IpReassembly, Ipv6FragmentsLoseTheirHeader)
{
	IpReassembly r(limits());
	Bytes data = payload(5000);
	std::vector<Bytes> t;
	for (size_t off = 0; off < data.size(); off += 1232)
		t.push_back(v6frag(0xdeadbeef, data, off, std::min<size_t>(1232, data.size() - off),
				   off + 1232 < data.size()));
	std::reverse(t.begin(), t.end());
	for (size_t i = 0; i < t.size(); i++)
		ASSERT_EQ(in(r, t[i]), i + 1 < t.size() ? Verdict::Held : Verdict::Complete) << i;
	const uint8_t *ip = r.datagram() + kEthHeaderLen;
	EXPECT_EQ(ip[6], IPPROTO_UDP) << "next header from the fragment header";
	EXPECT_EQ(loadBe16(ip + 4), data.size());
	EXPECT_EQ(r.datagramLen(), kEthHeaderLen + kIpv6HeaderLen + data.size());
	EXPECT_EQ(0, std::memcmp(ip + 8, t[0].data() + kEthHeaderLen + 8, 32)) << "addresses";
	EXPECT_EQ(Bytes(ip + kIpv6HeaderLen, r.datagram() + r.datagramLen()), data);

	Bytes atomic = v6frag(3, data, 0, 100, false, IPPROTO_ICMPV6);
	EXPECT_EQ(in(r, atomic), Verdict::Complete) << "RFC 6946: an atomic fragment is the datagram";
	EXPECT_EQ(r.datagramLen(), kEthHeaderLen + kIpv6HeaderLen + 100);
	EXPECT_EQ(r.datagram()[kEthHeaderLen + 6], IPPROTO_ICMPV6);

	EXPECT_EQ(in(r, v6frag(4, data, 0, 100, true)), Verdict::Drop) << "not a multiple of 8";
	EXPECT_EQ(in(r, v6frag(4, data, 0, 96, true, 44)), Verdict::Drop) << "a fragment in a fragment";
	Bytes cut = v6frag(4, data, 0, 96, true);
	storeBe16(cut.data() + kEthHeaderLen + 4, 500);
	EXPECT_EQ(in(r, cut), Verdict::Drop) << "payload length beyond the frame";
	EXPECT_EQ(in(r, v6frag(4, payload(70000), 65528, 8, false)), Verdict::Drop) << "past 65535";
	EXPECT_EQ(r.counters().malformed, 4u);
	// Overlap, as for IPv4.
	EXPECT_EQ(in(r, v6frag(5, data, 0, 96, true)), Verdict::Held);
	EXPECT_EQ(in(r, v6frag(5, data, 88, 96, true)), Verdict::Drop);
	EXPECT_EQ(r.counters().overlap, 2u);
	EXPECT_EQ(r.heldFrames(), 0u);
}
