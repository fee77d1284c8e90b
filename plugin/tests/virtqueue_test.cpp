// SPDX-License-Identifier: BSD-2-Clause
// virtqueue_test.cpp - guest memory tables and split virtqueues against rings laid out as a (sometimes hostile) driver would.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "unique_fd.hpp"
#include "vhost/guest_memory.hpp"
#include "vhost/virtqueue.hpp"

using namespace slirpnet;

namespace {

constexpr uint64_t kMemSize = 0x10000;
constexpr uint64_t kSplit = 0x8000; // where region 1 starts in the two-region layout
constexpr uint64_t kUaddr = 0x7f1200000000; // the front-end's address of guest-physical 0
// The rings (room for up to 512 entries) and the buffers, guest-physical.
constexpr uint64_t kDescGpa = 0x0, kAvailGpa = 0x2000, kUsedGpa = 0x3000, kBufGpa = 0x5000;

constexpr uint16_t kNext = 1, kWrite = 2, kIndirect = 4;

UniqueFd memfd(size_t size)
{
	// Sealable, as QEMU's memory-backend-memfd (GuestMemory seals it against shrinking).
	UniqueFd fd(memfd_create("virtqueue_test", MFD_CLOEXEC | MFD_ALLOW_SEALING));
	EXPECT_TRUE(fd) << strerror(errno);
	EXPECT_EQ(ftruncate(fd.get(), static_cast<off_t>(size)), 0) << strerror(errno);
	return fd;
}

std::vector<UniqueFd> dups(const UniqueFd &fd, size_t n)
{
	std::vector<UniqueFd> v;
	for (size_t i = 0; i < n; i++)
		v.emplace_back(dup(fd.get()));
	return v;
}

/*
 * The driver's side: one memfd of guest RAM, seen through a mapping of its own (as the
 * guest sees it), shared with the device as one or two regions (0..kSplit, kSplit..end: a
 * buffer across kSplit becomes two iovecs); rings at kDescGpa/kAvailGpa/kUsedGpa.
 */
struct Driver {
	UniqueFd fd;
	uint8_t *view = nullptr;
	GuestMemory mem;
	Virtqueue vq;
	unsigned num;
	uint16_t availIdx = 0;

	explicit Driver(unsigned num_ = 8, bool twoRegions = true) : fd(memfd(kMemSize)), num(num_)
	{
		void *p = mmap(nullptr, kMemSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
		EXPECT_NE(p, MAP_FAILED);
		view = static_cast<uint8_t *>(p);
		std::string error;
		EXPECT_TRUE(mapMemory(twoRegions, error)) << error;
		EXPECT_TRUE(vq.setSize(num, error)) << error;
		EXPECT_TRUE(vq.setAddresses(mem, kUaddr + kDescGpa, kUaddr + kAvailGpa, kUaddr + kUsedGpa, error))
			<< error;
	}
	~Driver() { munmap(view, kMemSize); }

	bool mapMemory(bool twoRegions, std::string &error)
	{
		if (!twoRegions) {
			VhostMemRegion r = { 0, kMemSize, kUaddr, 0 };
			return mem.replace(&r, 1, dups(fd, 1), error);
		}
		VhostMemRegion r[2] = { { 0, kSplit, kUaddr, 0 },
					{ kSplit, kMemSize - kSplit, kUaddr + kSplit, kSplit } };
		return mem.replace(r, 2, dups(fd, 2), error);
	}

	void start(uint16_t base = 0)
	{
		availIdx = base;
		setAvailIdx(base);
		vq.setBase(base);
		std::string error;
		ASSERT_TRUE(vq.start(error)) << error;
	}

	template <typename T>
	T get(uint64_t gpa) const
	{
		T v;
		memcpy(&v, view + gpa, sizeof(v));
		return v;
	}
	template <typename T>
	void put(uint64_t gpa, T v)
	{
		memcpy(view + gpa, &v, sizeof(v));
	}

	void desc(uint16_t i, uint64_t addr, uint32_t len, uint16_t flags = 0, uint16_t next = 0)
	{
		uint64_t at = kDescGpa + 16ull * i;
		put<uint64_t>(at, htole64(addr));
		put<uint32_t>(at + 8, htole32(len));
		put<uint16_t>(at + 12, htole16(flags));
		put<uint16_t>(at + 14, htole16(next));
	}
	void setAvailIdx(uint16_t idx) { put<uint16_t>(kAvailGpa + 2, htole16(idx)); }
	// Make the chain at head available.
	void offer(uint16_t head)
	{
		put<uint16_t>(kAvailGpa + 4 + 2 * (availIdx % num), htole16(head));
		availIdx++;
		setAvailIdx(availIdx);
	}
	void setAvailFlags(uint16_t f) { put<uint16_t>(kAvailGpa, htole16(f)); }
	void setUsedEvent(uint16_t e) { put<uint16_t>(kAvailGpa + 4 + 2 * num, htole16(e)); }
	uint16_t usedFlags() const { return le16toh(get<uint16_t>(kUsedGpa)); }
	uint16_t usedIdx() const { return le16toh(get<uint16_t>(kUsedGpa + 2)); }
	void setUsedIdx(uint16_t idx) { put<uint16_t>(kUsedGpa + 2, htole16(idx)); }
	uint32_t usedId(uint16_t i) const { return le32toh(get<uint32_t>(kUsedGpa + 4 + 8 * (i % num))); }
	uint32_t usedLen(uint16_t i) const { return le32toh(get<uint32_t>(kUsedGpa + 8 + 8 * (i % num))); }
	uint16_t availEvent() const { return le16toh(get<uint16_t>(kUsedGpa + 4 + 8 * num)); }

	// One chain: a readable descriptor then a writable one, both in region 0.
	void simpleChain(uint16_t head, uint16_t second)
	{
		desc(head, kBufGpa + 0x100 * (head % 0x20), 16, kNext, second);
		desc(second, kBufGpa + 0x100 * (head % 0x20) + 0x80, 64, kWrite);
	}

	Virtqueue::Pop pop(VirtqChain &c) { return vq.pop(mem, c); }
};

// Pops a chain that must break, and returns the reason.
std::string expectBroken(Driver &d)
{
	VirtqChain c;
	Virtqueue::Pop r = d.pop(c);
	EXPECT_EQ(r, Virtqueue::Pop::Broken) << "expected a broken ring, got pop result " << static_cast<int>(r);
	EXPECT_TRUE(d.vq.isBroken());
	EXPECT_EQ(d.pop(c), Virtqueue::Pop::Broken) << "a broken ring must stay broken";
	EXPECT_FALSE(d.vq.hasAvailable()) << "a broken ring offers nothing";
	return d.vq.brokenReason();
}

TEST(Virtqueue, NormalChainSplitAcrossRegions)
{
	Driver d;
	d.start();
	for (uint64_t i = 0; i < kMemSize - kBufGpa; i++)
		d.view[kBufGpa + i] = static_cast<uint8_t>(i * 7 + 3);
	d.desc(3, 0x5000, 100, kNext, 5);
	d.desc(5, kSplit - 0x10, 0x20, kNext, 1); // across the region boundary
	d.desc(1, 0x9000, 1500, kWrite);
	d.offer(3);
	ASSERT_TRUE(d.vq.hasAvailable());

	VirtqChain c;
	ASSERT_EQ(d.pop(c), Virtqueue::Pop::Ok) << d.vq.brokenReason();
	EXPECT_EQ(c.head, 3);
	ASSERT_EQ(c.readable, 3u) << "100 bytes, then 0x20 split in two at the region boundary";
	ASSERT_EQ(c.writable, 1u);
	EXPECT_EQ(c.readableBytes, 132u);
	EXPECT_EQ(c.writableBytes, 1500u);
	EXPECT_EQ(c.iov[0].iov_len, 100u);
	EXPECT_EQ(c.iov[1].iov_len, 0x10u);
	EXPECT_EQ(c.iov[2].iov_len, 0x10u);
	EXPECT_EQ(c.iov[3].iov_len, 1500u);
	EXPECT_EQ(memcmp(c.iov[0].iov_base, d.view + 0x5000, 100), 0);
	EXPECT_EQ(memcmp(c.iov[1].iov_base, d.view + kSplit - 0x10, 0x10), 0);
	EXPECT_EQ(memcmp(c.iov[2].iov_base, d.view + kSplit, 0x10), 0);
	// What the device writes is what the guest reads.
	memset(c.iov[3].iov_base, 0xee, 1500);
	EXPECT_EQ(d.view[0x9000], 0xee);
	EXPECT_EQ(d.view[0x9000 + 1499], 0xee);
	EXPECT_NE(d.view[0x9000 + 1500], 0xee);
	EXPECT_EQ(d.vq.base(), 1);
	EXPECT_FALSE(d.vq.hasAvailable());
	EXPECT_EQ(d.pop(c), Virtqueue::Pop::Empty);
}

TEST(Virtqueue, Empty)
{
	Driver d;
	VirtqChain c;
	EXPECT_FALSE(d.vq.isStarted());
	EXPECT_EQ(d.pop(c), Virtqueue::Pop::Empty) << "a queue not started gives nothing";
	d.simpleChain(0, 1);
	d.offer(0);
	EXPECT_FALSE(d.vq.hasAvailable()) << "not started";
	d.start(0);
	d.availIdx = 0;
	d.setAvailIdx(0);
	EXPECT_TRUE(d.vq.isStarted());
	EXPECT_EQ(d.pop(c), Virtqueue::Pop::Empty);
	EXPECT_FALSE(d.vq.hasAvailable());
	d.offer(0);
	EXPECT_TRUE(d.vq.hasAvailable());
	EXPECT_EQ(d.pop(c), Virtqueue::Pop::Ok);
	EXPECT_EQ(d.pop(c), Virtqueue::Pop::Empty);
}

TEST(Virtqueue, UsedRingAfterPushAndPublish)
{
	Driver d;
	d.start();
	d.simpleChain(2, 3);
	d.simpleChain(6, 7);
	d.offer(2);
	d.offer(6);
	VirtqChain a, b;
	ASSERT_EQ(d.pop(a), Virtqueue::Pop::Ok);
	ASSERT_EQ(d.pop(b), Virtqueue::Pop::Ok);
	EXPECT_EQ(a.head, 2);
	EXPECT_EQ(b.head, 6);
	d.vq.push(b.head, 20); // out of order is allowed
	d.vq.push(a.head, 10);
	EXPECT_EQ(d.usedIdx(), 0) << "not visible before publish()";
	d.vq.publish();
	EXPECT_EQ(d.usedIdx(), 2);
	EXPECT_EQ(d.usedId(0), 6u);
	EXPECT_EQ(d.usedLen(0), 20u);
	EXPECT_EQ(d.usedId(1), 2u);
	EXPECT_EQ(d.usedLen(1), 10u);
}

TEST(Virtqueue, IndicesWrapAround)
{
	Driver d;
	d.setUsedIdx(65533);
	d.start(65533);
	for (uint16_t i = 0; i < 8; i += 2)
		d.simpleChain(i, i + 1);
	for (int n = 0; n < 6; n++) {
		uint16_t head = static_cast<uint16_t>((n % 4) * 2);
		d.offer(head);
		VirtqChain c;
		ASSERT_EQ(d.pop(c), Virtqueue::Pop::Ok) << "chain " << n << ": " << d.vq.brokenReason();
		EXPECT_EQ(c.head, head);
		d.vq.push(c.head, 100 + n);
		d.vq.publish();
	}
	EXPECT_EQ(d.vq.base(), 3) << "65533 + 6 wraps to 3";
	EXPECT_EQ(d.usedIdx(), 3);
	for (int n = 0; n < 6; n++) {
		uint16_t i = static_cast<uint16_t>(65533 + n);
		EXPECT_EQ(d.usedId(i), static_cast<uint32_t>((n % 4) * 2)) << "used entry " << i;
		EXPECT_EQ(d.usedLen(i), static_cast<uint32_t>(100 + n)) << "used entry " << i;
	}
}

TEST(Virtqueue, DescriptorLoopIsBroken)
{
	{
		Driver d;
		d.start();
		d.desc(0, kBufGpa, 10, kNext, 4);
		d.desc(4, kBufGpa, 10, kNext, 0);
		d.offer(0);
		std::string why = expectBroken(d);
		EXPECT_NE(why.find("loop"), std::string::npos) << why;
	}
	{
		Driver d;
		d.start();
		d.desc(2, kBufGpa, 0, kNext, 2); // zero-length descriptors count towards the bound too
		d.offer(2);
		std::string why = expectBroken(d);
		EXPECT_NE(why.find("loop"), std::string::npos) << why;
	}
}

TEST(Virtqueue, ChainAsLongAsTheQueueIsFine)
{
	Driver d(8);
	d.start();
	for (uint16_t i = 0; i < 8; i++)
		d.desc(i, kBufGpa + 0x10 * i, 0x10, i < 7 ? kNext : 0, static_cast<uint16_t>(i + 1));
	d.offer(0);
	VirtqChain c;
	ASSERT_EQ(d.pop(c), Virtqueue::Pop::Ok) << d.vq.brokenReason();
	EXPECT_EQ(c.readable, 8u);
	EXPECT_EQ(c.readableBytes, 0x80u);
}

TEST(Virtqueue, NextOutOfRangeIsBroken)
{
	Driver d(8);
	d.start();
	d.desc(0, kBufGpa, 10, kNext, 8);
	d.offer(0);
	std::string why = expectBroken(d);
	EXPECT_NE(why.find("next 8 out of range"), std::string::npos) << why;
}

TEST(Virtqueue, HeadOutOfRangeIsBroken)
{
	Driver d(8);
	d.start();
	d.offer(8);
	std::string why = expectBroken(d);
	EXPECT_NE(why.find("head 8 out of range"), std::string::npos) << why;
}

TEST(Virtqueue, AvailIdxJumpingMoreThanQueueSizeIsBroken)
{
	{
		Driver d(8);
		d.start(100);
		for (uint16_t i = 0; i < 8; i++) {
			d.desc(i, kBufGpa, 10);
			d.offer(i);
		}
		VirtqChain c;
		for (int i = 0; i < 8; i++)
			ASSERT_EQ(d.pop(c), Virtqueue::Pop::Ok) << "a full ring of 8 is fine: " << d.vq.brokenReason();
	}
	{
		Driver d(8);
		d.start(100);
		for (uint16_t i = 0; i < 8; i++)
			d.desc(i, kBufGpa, 10);
		d.setAvailIdx(109);
		std::string why = expectBroken(d);
		EXPECT_NE(why.find("more than the queue size"), std::string::npos) << why;
	}
	{
		Driver d(8);
		d.start(100);
		d.setAvailIdx(99); // behind: 65535 ahead
		expectBroken(d);
	}
}

TEST(Virtqueue, AddressOutsideMemoryIsBroken)
{
	struct Case {
		const char *what;
		uint64_t addr;
		uint32_t len;
	} cases[] = {
		{ "just past the end", kMemSize, 1 },
		{ "crossing the end", kMemSize - 0x10, 0x20 },
		{ "far away", 0x100000000ull, 64 },
		{ "wrapping around 2^64", std::numeric_limits<uint64_t>::max() - 0x10, 0x100 },
	};
	for (const Case &k : cases) {
		for (bool writable : { false, true }) {
			Driver d;
			d.start();
			d.desc(0, kBufGpa, 10, kNext | (writable ? kWrite : 0), 1);
			d.desc(1, k.addr, k.len, writable ? kWrite : 0);
			d.offer(0);
			std::string why = expectBroken(d);
			EXPECT_NE(why.find("not in guest memory"), std::string::npos) << k.what << ": " << why;
		}
	}
}

TEST(Virtqueue, GapBetweenRegionsIsBroken)
{
	// Region 1 moved up by a page: a buffer across the end of region 0 falls into the gap.
	Driver d;
	VhostMemRegion r[2] = { { 0, kSplit, kUaddr, 0 },
				{ kSplit + 0x1000, kMemSize - kSplit, kUaddr + kSplit, kSplit } };
	std::string error;
	ASSERT_TRUE(d.mem.replace(r, 2, dups(d.fd, 2), error)) << error;
	ASSERT_TRUE(d.vq.remap(d.mem, error)) << error;
	d.start();
	d.desc(0, kSplit - 0x10, 0x20);
	d.offer(0);
	std::string why = expectBroken(d);
	EXPECT_NE(why.find("not in guest memory"), std::string::npos) << why;
}

TEST(Virtqueue, IndirectIsBroken)
{
	Driver d;
	d.start();
	d.desc(0, kBufGpa, 10, kNext, 1);
	d.desc(1, kBufGpa + 0x100, 32, kIndirect); // a table of two descriptors, well-formed
	d.offer(0);
	std::string why = expectBroken(d);
	EXPECT_NE(why.find("indirect"), std::string::npos) << why;
}

TEST(Virtqueue, ReadableAfterWritableIsBroken)
{
	Driver d;
	d.start();
	d.desc(0, kBufGpa, 10, kWrite | kNext, 1);
	d.desc(1, kBufGpa + 0x100, 10, 0);
	d.offer(0);
	std::string why = expectBroken(d);
	EXPECT_NE(why.find("readable after a writable"), std::string::npos) << why;
}

TEST(Virtqueue, ZeroLengthDescriptorsAreSkipped)
{
	Driver d;
	d.start();
	d.desc(0, kBufGpa, 0, kNext, 1);
	d.desc(1, kBufGpa, 10, kNext, 2);
	d.desc(2, 0xdead0000000, 0, kWrite | kNext, 3); // no bytes: its address is never used
	d.desc(3, kBufGpa + 0x100, 20, kWrite | kNext, 4);
	d.desc(4, kBufGpa, 0, kNext, 5); // readable but empty, after a writable one
	d.desc(5, kBufGpa + 0x200, 30, kWrite);
	d.offer(0);
	VirtqChain c;
	ASSERT_EQ(d.pop(c), Virtqueue::Pop::Ok) << d.vq.brokenReason();
	EXPECT_EQ(c.readable, 1u);
	EXPECT_EQ(c.writable, 2u);
	EXPECT_EQ(c.readableBytes, 10u);
	EXPECT_EQ(c.writableBytes, 50u);
	EXPECT_EQ(c.iov[1].iov_len, 20u);
	EXPECT_EQ(c.iov[2].iov_base, d.mem.fromGuestRange(kBufGpa + 0x200, 30));
}

TEST(Virtqueue, TooManySegmentsIsTooLongThenTheQueueGoesOn)
{
	constexpr unsigned kNum = 512;
	constexpr unsigned kLong = VirtqChain::kMaxSegments + 1;
	Driver d(kNum, false);
	d.start();
	// Chain at 0: kMaxSegments + 1 one-byte readable descriptors; chain at 300: a normal one.
	for (uint16_t i = 0; i < kLong; i++)
		d.desc(i, kBufGpa + i, 1, i + 1u < kLong ? kNext : 0, static_cast<uint16_t>(i + 1));
	d.simpleChain(300, 301);
	d.offer(0);
	d.offer(300);
	VirtqChain c;
	ASSERT_EQ(d.pop(c), Virtqueue::Pop::TooLong) << d.vq.brokenReason();
	EXPECT_EQ(c.head, 0);
	EXPECT_FALSE(d.vq.isBroken());
	d.vq.push(c.head, 0);
	ASSERT_EQ(d.pop(c), Virtqueue::Pop::Ok) << d.vq.brokenReason();
	EXPECT_EQ(c.head, 300);
	d.vq.push(c.head, 64);
	d.vq.publish();
	EXPECT_EQ(d.usedIdx(), 2);
	EXPECT_EQ(d.usedId(0), 0u);
	EXPECT_EQ(d.usedLen(0), 0u);
	EXPECT_EQ(d.usedId(1), 300u);
}

TEST(Virtqueue, ExactlyMaxSegmentsIsFine)
{
	constexpr unsigned kNum = 512;
	Driver d(kNum, false);
	d.start();
	for (uint16_t i = 0; i < VirtqChain::kMaxSegments; i++)
		d.desc(i, kBufGpa + i, 1, i + 1u < VirtqChain::kMaxSegments ? kNext : 0, static_cast<uint16_t>(i + 1));
	d.offer(0);
	VirtqChain c;
	ASSERT_EQ(d.pop(c), Virtqueue::Pop::Ok) << d.vq.brokenReason();
	EXPECT_EQ(c.readable, VirtqChain::kMaxSegments);
}

TEST(Virtqueue, TooLongChainWithABadTailIsBroken)
{
	constexpr unsigned kNum = 512;
	constexpr unsigned kLen = 300;
	Driver d(kNum, false);
	d.start();
	for (uint16_t i = 0; i < kLen; i++)
		d.desc(i, i == 290 ? kMemSize : kBufGpa + i, 1, i + 1u < kLen ? kNext : 0,
		       static_cast<uint16_t>(i + 1));
	d.offer(0);
	std::string why = expectBroken(d);
	EXPECT_NE(why.find("descriptor 290"), std::string::npos) << why;
}

TEST(Virtqueue, NotificationsWithoutEventIdx)
{
	Driver d;
	d.start();
	d.vq.setKickWanted(false);
	EXPECT_EQ(d.usedFlags(), 1) << "NO_NOTIFY";
	d.vq.setKickWanted(true);
	EXPECT_EQ(d.usedFlags(), 0);

	d.simpleChain(0, 1);
	VirtqChain c;
	auto round = [&]() {
		d.offer(0);
		EXPECT_EQ(d.pop(c), Virtqueue::Pop::Ok);
		d.vq.push(c.head, 1);
		d.vq.publish();
	};
	round();
	EXPECT_TRUE(d.vq.shouldCall());
	EXPECT_FALSE(d.vq.shouldCall()) << "nothing new since the last call";
	d.setAvailFlags(1); // NO_INTERRUPT
	round();
	EXPECT_FALSE(d.vq.shouldCall()) << "the guest asked for no interrupt";
	d.setAvailFlags(0);
	round();
	EXPECT_TRUE(d.vq.shouldCall());
	d.setUsedEvent(0); // ignored without EVENT_IDX
	round();
	EXPECT_TRUE(d.vq.shouldCall());
}

TEST(Virtqueue, NotificationsWithEventIdx)
{
	Driver d;
	d.vq.setEventIdx(true);
	d.start();
	d.simpleChain(0, 1);
	VirtqChain c;
	auto round = [&](int n) {
		for (int i = 0; i < n; i++) {
			d.offer(0);
			EXPECT_EQ(d.pop(c), Virtqueue::Pop::Ok);
			d.vq.push(c.head, 1);
		}
		d.vq.publish();
	};
	d.setAvailFlags(1); // NO_INTERRUPT means nothing with EVENT_IDX
	d.setUsedEvent(0);
	round(1); // used 0 -> 1
	EXPECT_TRUE(d.vq.shouldCall()) << "used_event 0 passed";
	EXPECT_FALSE(d.vq.shouldCall()) << "nothing new";
	d.setUsedEvent(5);
	round(2); // 1 -> 3
	EXPECT_FALSE(d.vq.shouldCall()) << "used_event 5 not reached";
	round(2); // 3 -> 5
	EXPECT_FALSE(d.vq.shouldCall()) << "entry 5 not yet used";
	round(1); // 5 -> 6
	EXPECT_TRUE(d.vq.shouldCall()) << "entry 5 used";
	d.setUsedEvent(7);
	round(3); // 6 -> 9: passes 7 within the batch
	EXPECT_TRUE(d.vq.shouldCall());
	d.setUsedEvent(8); // behind: already passed
	round(1);
	EXPECT_FALSE(d.vq.shouldCall());

	// Kicks: avail_event = the next entry the device will take; used->flags untouched.
	EXPECT_EQ(d.vq.base(), 10);
	d.vq.setKickWanted(true);
	EXPECT_EQ(d.availEvent(), 10);
	EXPECT_EQ(d.usedFlags(), 0);
	round(2);
	d.vq.setKickWanted(false);
	EXPECT_EQ(d.availEvent(), 10) << "not wanting kicks leaves avail_event behind";
	EXPECT_EQ(d.usedFlags(), 0) << "NO_NOTIFY is not used with EVENT_IDX";
	d.vq.setKickWanted(true);
	EXPECT_EQ(d.availEvent(), 12);
}

TEST(Virtqueue, KickWantedAfterChainsGivenBack)
{
	// RX without enough buffers for a frame: the chains taken are given back with
	// setBase(); the guest must kick for its next buffer, not for those already seen.
	Driver d;
	d.vq.setEventIdx(true);
	d.start();
	d.simpleChain(0, 1);
	d.simpleChain(2, 3);
	d.offer(0);
	d.offer(2);
	VirtqChain c;
	ASSERT_EQ(d.pop(c), Virtqueue::Pop::Ok);
	ASSERT_EQ(d.pop(c), Virtqueue::Pop::Ok);
	EXPECT_EQ(d.pop(c), Virtqueue::Pop::Empty);
	d.vq.setBase(static_cast<uint16_t>(d.vq.base() - 2));
	d.vq.setKickWanted(true);
	EXPECT_EQ(d.availEvent(), 2) << "a kick when entry 2 is made available";
	EXPECT_TRUE(d.vq.hasAvailable()) << "the chains given back are still there";
	ASSERT_EQ(d.pop(c), Virtqueue::Pop::Ok);
	EXPECT_EQ(c.head, 0);
}

TEST(Virtqueue, StartResumesFromUsedIdxInMemory)
{
	Driver d;
	d.setUsedIdx(42); // a previous back-end used 42 entries
	d.start(42);
	d.simpleChain(0, 1);
	d.offer(0);
	VirtqChain c;
	ASSERT_EQ(d.pop(c), Virtqueue::Pop::Ok);
	d.vq.push(c.head, 77);
	d.vq.publish();
	EXPECT_EQ(d.usedIdx(), 43);
	EXPECT_EQ(d.usedLen(42), 77u);
	EXPECT_EQ(d.vq.base(), 43);

	// Stopped and started again (the front-end came back): resumes from memory again.
	d.vq.stop();
	EXPECT_FALSE(d.vq.isStarted());
	std::string error;
	EXPECT_FALSE(d.vq.start(error)) << "stop() forgot the rings";
	ASSERT_TRUE(d.vq.setAddresses(d.mem, kUaddr + kDescGpa, kUaddr + kAvailGpa, kUaddr + kUsedGpa, error)) << error;
	d.setUsedIdx(50);
	d.availIdx = 50;
	d.start(50);
	d.offer(0);
	ASSERT_EQ(d.pop(c), Virtqueue::Pop::Ok);
	d.vq.push(c.head, 5);
	d.vq.publish();
	EXPECT_EQ(d.usedIdx(), 51);
}

TEST(Virtqueue, StartClearsBrokenState)
{
	Driver d;
	d.start();
	d.offer(200);
	expectBroken(d);
	d.simpleChain(0, 1);
	d.start(0);
	EXPECT_FALSE(d.vq.isBroken());
	EXPECT_TRUE(d.vq.brokenReason().empty());
	d.offer(0);
	VirtqChain c;
	EXPECT_EQ(d.pop(c), Virtqueue::Pop::Ok) << d.vq.brokenReason();
}

TEST(Virtqueue, RemapAfterNewMemoryTable)
{
	Driver d;
	d.start();
	d.simpleChain(0, 1);
	d.offer(0);
	VirtqChain c;
	ASSERT_EQ(d.pop(c), Virtqueue::Pop::Ok);
	std::string error;
	ASSERT_TRUE(d.mapMemory(false, error)) << error; // the old mappings are gone
	ASSERT_TRUE(d.vq.remap(d.mem, error)) << error;
	EXPECT_TRUE(d.vq.isStarted());
	d.vq.push(0, 9);
	d.vq.publish();
	EXPECT_EQ(d.usedIdx(), 1);
	d.offer(0);
	ASSERT_EQ(d.pop(c), Virtqueue::Pop::Ok);
	EXPECT_EQ(c.iov[0].iov_base, d.mem.fromGuestRange(kBufGpa, 16));

	// A table without the rings: the queue stops.
	VhostMemRegion r = { 0x100000, kMemSize, kUaddr + 0x100000, 0 };
	ASSERT_TRUE(d.mem.replace(&r, 1, dups(d.fd, 1), error)) << error;
	EXPECT_FALSE(d.vq.remap(d.mem, error));
	EXPECT_NE(error.find("descriptor table"), std::string::npos) << error;
	EXPECT_FALSE(d.vq.isStarted());
}

TEST(Virtqueue, SetSizeAndAddressesChecks)
{
	Virtqueue vq;
	std::string error;
	for (unsigned bad : { 0u, 3u, 100u, 65536u }) {
		EXPECT_FALSE(vq.setSize(bad, error)) << bad;
		EXPECT_NE(error.find(std::to_string(bad)), std::string::npos) << error;
	}
	EXPECT_TRUE(vq.setSize(1, error));
	EXPECT_TRUE(vq.setSize(32768, error));

	Driver d(8);
	EXPECT_FALSE(d.vq.setAddresses(d.mem, kUaddr + 8, kUaddr + kAvailGpa, kUaddr + kUsedGpa, error));
	EXPECT_NE(error.find("not aligned"), std::string::npos) << error;
	EXPECT_FALSE(d.vq.setAddresses(d.mem, kUaddr, kUaddr + kAvailGpa + 1, kUaddr + kUsedGpa, error));
	EXPECT_FALSE(d.vq.setAddresses(d.mem, kUaddr, kUaddr + kAvailGpa, kUaddr + kUsedGpa + 2, error));
	EXPECT_FALSE(d.vq.setAddresses(d.mem, kUaddr, kUaddr + kAvailGpa, kUaddr + kMemSize, error));
	EXPECT_NE(error.find("used ring"), std::string::npos) << error;
	// The used ring (6 + 8 * 8 bytes) across the region boundary: not in one region.
	EXPECT_FALSE(d.vq.setAddresses(d.mem, kUaddr, kUaddr + kAvailGpa, kUaddr + kSplit - 0x20, error));
	EXPECT_NE(error.find("not inside one memory region"), std::string::npos) << error;
	EXPECT_TRUE(d.vq.setAddresses(d.mem, kUaddr, kUaddr + kAvailGpa, kUaddr + kSplit - 0x48, error)) << error;

	// A region whose front-end address is 8 bytes off its mapping: an aligned address maps
	// to a misaligned one and the other way round; both are refused (the ring's atomic
	// accesses need the host address aligned, virtio the guest's).
	VhostMemRegion odd = { 0, kMemSize, kUaddr + 8, 0 };
	ASSERT_TRUE(d.mem.replace(&odd, 1, dups(d.fd, 1), error)) << error;
	EXPECT_FALSE(d.vq.setAddresses(d.mem, kUaddr + 8, kUaddr + kAvailGpa, kUaddr + kUsedGpa, error));
	EXPECT_NE(error.find("descriptor table at 0x7f1200000008 is not aligned"), std::string::npos) << error;
	EXPECT_FALSE(d.vq.setAddresses(d.mem, kUaddr + 16, kUaddr + kAvailGpa, kUaddr + kUsedGpa, error));
	EXPECT_NE(error.find("maps to an address not aligned"), std::string::npos) << error;

	// A new size after the addresses: they were checked for the old size and are forgotten.
	Driver e(8, false);
	e.start();
	ASSERT_TRUE(e.vq.setSize(8, error));
	EXPECT_TRUE(e.vq.isStarted()) << "the same size changes nothing";
	ASSERT_TRUE(e.vq.setSize(4096, error));
	EXPECT_FALSE(e.vq.isStarted());
	EXPECT_FALSE(e.vq.start(error)) << "a descriptor table of 8 is not one of 4096";
	e.offer(0);
	VirtqChain c;
	EXPECT_EQ(e.pop(c), Virtqueue::Pop::Empty);

	Virtqueue noSize;
	EXPECT_FALSE(noSize.setAddresses(d.mem, kUaddr, kUaddr + kAvailGpa, kUaddr + kUsedGpa, error));
}

// ---- GuestMemory on its own.

struct Table {
	UniqueFd fd = memfd(kMemSize);
	uint8_t *view;
	Table()
	{
		view = static_cast<uint8_t *>(mmap(nullptr, kMemSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0));
		for (uint64_t i = 0; i < kMemSize; i++)
			view[i] = static_cast<uint8_t>(i ^ (i >> 8));
	}
	~Table() { munmap(view, kMemSize); }
};

TEST(GuestMemory, Lookups)
{
	Table t;
	GuestMemory mem;
	EXPECT_TRUE(mem.empty());
	uint64_t contiguous = 99;
	EXPECT_EQ(mem.fromGuest(0, contiguous), nullptr);
	// Region 0: guest 0x100000.. (0x1000 bytes at file offset 0x123, not page aligned);
	// region 1: guest 0x200000.. (0x2000 bytes at offset 0x4000).
	VhostMemRegion r[2] = { { 0x100000, 0x1000, 0x7000000, 0x123 }, { 0x200000, 0x2000, 0x9000000, 0x4000 } };
	std::string error;
	ASSERT_TRUE(mem.replace(r, 2, dups(t.fd, 2), error)) << error;
	EXPECT_EQ(mem.regionCount(), 2u);

	uint8_t *p = mem.fromGuest(0x100000, contiguous);
	ASSERT_NE(p, nullptr);
	EXPECT_EQ(contiguous, 0x1000u);
	EXPECT_EQ(memcmp(p, t.view + 0x123, 0x1000), 0) << "the region starts at its mmap offset";
	p = mem.fromGuest(0x200010, contiguous);
	ASSERT_NE(p, nullptr);
	EXPECT_EQ(contiguous, 0x1ff0u);
	EXPECT_EQ(memcmp(p, t.view + 0x4010, 0x1ff0), 0);
	p = mem.fromGuest(0x100fff, contiguous);
	ASSERT_NE(p, nullptr);
	EXPECT_EQ(contiguous, 1u);
	EXPECT_EQ(mem.fromGuest(0x101000, contiguous), nullptr);
	EXPECT_EQ(mem.fromGuest(0xfffff, contiguous), nullptr);
	EXPECT_EQ(mem.fromGuest(0x202000, contiguous), nullptr);

	EXPECT_NE(mem.fromGuestRange(0x100000, 0x1000), nullptr);
	EXPECT_EQ(mem.fromGuestRange(0x100000, 0x1001), nullptr);
	EXPECT_EQ(mem.fromGuestRange(0x100001, 0x1000), nullptr);
	EXPECT_EQ(mem.fromGuestRange(0x100000, 0), nullptr);
	EXPECT_EQ(mem.fromGuestRange(0x100800, std::numeric_limits<uint64_t>::max()), nullptr);
	EXPECT_EQ(mem.fromGuestRange(0x201000, 0x1000), p = mem.fromGuest(0x201000, contiguous));
	EXPECT_NE(p, nullptr);

	EXPECT_EQ(mem.fromFrontEnd(0x9000800, 0x1800), mem.fromGuestRange(0x200800, 0x1800));
	EXPECT_NE(mem.fromFrontEnd(0x9000800, 0x1800), nullptr);
	EXPECT_EQ(mem.fromFrontEnd(0x9000800, 0x1801), nullptr);
	EXPECT_EQ(mem.fromFrontEnd(0x6ffffff, 2), nullptr);
	EXPECT_EQ(mem.fromFrontEnd(0x7000000, 0), nullptr);
	EXPECT_EQ(mem.fromFrontEnd(0x100000, 1), nullptr) << "a guest address is not a front-end one";

	// Writes through the mapping are the guest's memory.
	*mem.fromGuestRange(0x200000, 1) = 0x5a;
	EXPECT_EQ(t.view[0x4000], 0x5a);

	mem.clear();
	EXPECT_TRUE(mem.empty());
	EXPECT_EQ(mem.fromGuest(0x100000, contiguous), nullptr);
}

TEST(GuestMemory, ReplaceFailuresKeepTheOldTable)
{
	Table t;
	GuestMemory mem;
	VhostMemRegion good = { 0x1000, 0x1000, 0x50000, 0x1000 };
	std::string error;
	ASSERT_TRUE(mem.replace(&good, 1, dups(t.fd, 1), error)) << error;
	const uint8_t *before = mem.fromGuestRange(0x1000, 0x1000);
	ASSERT_NE(before, nullptr);

	constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();
	struct Case {
		const char *what;
		std::vector<VhostMemRegion> regions;
		size_t fds;
		const char *expect; // in the error
	} cases[] = {
		{ "no regions", {}, 0, "0 regions" },
		{ "too many regions", std::vector<VhostMemRegion>(9, good), 9, "9 regions" },
		{ "fewer fds", { { 0, 0x1000, 0, 0 }, { 0x2000, 0x1000, 0x2000, 0 } }, 1, "1 file descriptors" },
		{ "more fds", { { 0, 0x1000, 0, 0 } }, 2, "2 file descriptors" },
		{ "size 0", { { 0, 0, 0, 0 } }, 1, "size 0" },
		{ "guest overlap",
		  { { 0, 0x2000, 0, 0 }, { 0x1fff, 0x1000, 0x10000, 0 } },
		  2,
		  "region 1: guest-physical" },
		{ "front-end overlap",
		  { { 0, 0x1000, 0x8000, 0 }, { 0x4000, 0x1000, 0x7001, 0 } },
		  2,
		  "region 1: front-end" },
		{ "guest overflow", { { kMax - 0xfff, 0x1000, 0, 0 } }, 1, "overflows" },
		{ "front-end overflow", { { 0, 0x1000, kMax - 0x10, 0 } }, 1, "overflows" },
		{ "offset overflow", { { 0, 0x1000, 0, kMax - 0x10 } }, 1, "overflows" },
		{ "file too short", { { 0, kMemSize, 0, 1 } }, 1, "less than offset + size" },
		{ "second region bad", { { 0, 0x1000, 0, 0 }, { 0x8000, 0, 0x8000, 0 } }, 2, "region 1: size 0" },
	};
	for (const Case &k : cases) {
		error.clear();
		EXPECT_FALSE(mem.replace(k.regions.data(), k.regions.size(), dups(t.fd, k.fds), error)) << k.what;
		EXPECT_NE(error.find(k.expect), std::string::npos)
			<< k.what << ": expected '" << k.expect << "' in: " << error;
		EXPECT_EQ(mem.regionCount(), 1u) << k.what;
		EXPECT_EQ(mem.fromGuestRange(0x1000, 0x1000), before) << k.what << ": the old table is kept";
	}
	// An invalid fd.
	std::vector<UniqueFd> none;
	none.emplace_back();
	EXPECT_FALSE(mem.replace(&good, 1, std::move(none), error));
	EXPECT_EQ(mem.fromGuestRange(0x1000, 0x1000), before);
	EXPECT_EQ(*before, t.view[0x1000]);

	// Exactly kMaxRegions, adjacent but not overlapping: accepted, and replaces the table.
	std::vector<VhostMemRegion> eight;
	for (uint64_t i = 0; i < GuestMemory::kMaxRegions; i++)
		eight.push_back({ 0x10000 + 0x1000 * i, 0x1000, 0x90000 + 0x1000 * i, 0x1000 * i });
	ASSERT_TRUE(mem.replace(eight.data(), eight.size(), dups(t.fd, eight.size()), error)) << error;
	EXPECT_EQ(mem.regionCount(), GuestMemory::kMaxRegions);
	EXPECT_EQ(mem.fromGuestRange(0x1000, 1), nullptr) << "the old table is gone";
	uint64_t contiguous;
	const uint8_t *last = mem.fromGuest(0x17fff, contiguous);
	ASSERT_NE(last, nullptr);
	EXPECT_EQ(contiguous, 1u);
	EXPECT_EQ(*last, t.view[0x7fff]);
}

} // namespace
