// SPDX-License-Identifier: BSD-2-Clause
// fuzz/fuzz_virtqueue.cpp - a hostile guest's split rings: guest memory, ring placement, queue size and ring edits from the input.
#include <endian.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "fuzz_common.hpp"
#include "unique_fd.hpp"
#include "vhost/guest_memory.hpp"
#include "vhost/virtqueue.hpp"

using namespace slirpnet;

namespace {

constexpr size_t kMemSize = 64 * 1024;
constexpr uint64_t kUaddr = 0x7f0000000000; // the front-end's address of the file's byte 0
constexpr size_t kHeader = 14;

UniqueFd g_fd; // the guest's RAM, one memfd for every input
uint8_t *g_view; // the guest's own view of it (the fuzz input is written here)

[[noreturn]] void fail(const char *what)
{
	fprintf(stderr, "fuzz_virtqueue: %s\n", what);
	abort();
}

struct Layout {
	VhostMemRegion r[2];
	size_t n;
};

bool mapMemory(GuestMemory &mem, const Layout &l)
{
	std::vector<UniqueFd> fds;
	for (size_t i = 0; i < l.n; i++)
		fds.emplace_back(dup(g_fd.get()));
	std::string error;
	return mem.replace(l.r, l.n, std::move(fds), error);
}

/*
 * Every pointer a chain holds must be inside a region as the table says - checked here
 * from the table itself, not only by ASan (which does not know where an mmap() ends, and
 * would take a pointer into some other mapping) - and the counts must add up.
 */
void checkChain(const GuestMemory &mem, const Layout &l, const VirtqChain &c)
{
	if (c.readable + c.writable > VirtqChain::kMaxSegments)
		fail("more iovecs than kMaxSegments");
	uint64_t bytes[2] = { 0, 0 };
	for (size_t i = 0; i < c.readable + c.writable; i++) {
		const uint8_t *p = static_cast<const uint8_t *>(c.iov[i].iov_base);
		size_t len = c.iov[i].iov_len;
		if (len == 0)
			fail("an empty iovec");
		bool inside = false;
		for (size_t k = 0; k < l.n; k++) {
			const uint8_t *base = mem.fromGuestRange(l.r[k].guestPhysAddr, l.r[k].memorySize);
			if (base && p >= base && len <= l.r[k].memorySize &&
			    p - base <= static_cast<ptrdiff_t>(l.r[k].memorySize - len))
				inside = true;
		}
		if (!inside)
			fail("an iovec outside the guest's regions");
		bytes[i >= c.readable] += len;
	}
	if (bytes[0] != c.readableBytes || bytes[1] != c.writableBytes)
		fail("iovec lengths do not add up to the chain's byte counts");
}

volatile uint8_t g_sink;
bool g_trace; // SLIRPNET_FUZZ_LOG=1: each pop's result on stderr (reproducing a finding)

// Takes chains until Empty or Broken (bounded), uses their buffers as the device would, gives them back.
void popAll(Virtqueue &vq, const GuestMemory &mem, const Layout &l, VirtqChain &c)
{
	for (unsigned n = 0; n <= vq.size() + 1; n++) {
		Virtqueue::Pop r = vq.pop(mem, c);
		if (g_trace)
			fprintf(stderr, "pop: %d head %u readable %zu/%llu writable %zu/%llu %s\n", static_cast<int>(r),
				c.head, c.readable, static_cast<unsigned long long>(c.readableBytes), c.writable,
				static_cast<unsigned long long>(c.writableBytes), vq.brokenReason().c_str());
		if (r == Virtqueue::Pop::Empty || r == Virtqueue::Pop::Broken) {
			if ((r == Virtqueue::Pop::Broken) != vq.isBroken() ||
			    (vq.isBroken() && vq.brokenReason().empty()))
				fail("Broken and isBroken()/brokenReason() disagree");
			return;
		}
		if (c.head >= vq.size())
			fail("a head out of range");
		if (r == Virtqueue::Pop::TooLong) {
			vq.push(c.head, 0);
			continue;
		}
		checkChain(mem, l, c);
		// Touched at both ends (checkChain() vouched for what lies between): a pointer
		// outside every mapping faults here, one in a redzone is ASan's.
		uint8_t sum = 0;
		for (size_t i = 0; i < c.readable; i++) {
			const uint8_t *p = static_cast<const uint8_t *>(c.iov[i].iov_base);
			sum += p[0] + p[c.iov[i].iov_len - 1];
		}
		g_sink = sum;
		for (size_t i = c.readable; i < c.readable + c.writable; i++)
			memset(c.iov[i].iov_base, 0xa5, c.iov[i].iov_len);
		vq.push(c.head, static_cast<uint32_t>(c.writableBytes));
	}
}

} // namespace

extern "C" int LLVMFuzzerInitialize(int *, char ***)
{
	fuzz::quietLog();
	g_trace = getenv("SLIRPNET_FUZZ_LOG") != nullptr;
	// Sealable, as QEMU's memory-backend-memfd: GuestMemory seals it against shrinking.
	g_fd.reset(memfd_create("fuzz_virtqueue", MFD_CLOEXEC | MFD_ALLOW_SEALING));
	if (!g_fd || ftruncate(g_fd.get(), kMemSize) < 0)
		fail("memfd");
	void *p = mmap(nullptr, kMemSize, PROT_READ | PROT_WRITE, MAP_SHARED, g_fd.get(), 0);
	if (p == MAP_FAILED)
		fail("mmap");
	g_view = static_cast<uint8_t *>(p);
	return 0;
}

/*
 * Input (little-endian):
 *   byte 0      queue size: 1 << (byte % 11)
 *   byte 1      bit 0 EVENT_IDX; bit 1 two regions (split at bytes 10-11); bit 2 a page's
 *               gap in guest-physical addresses between them
 *   bytes 2-7   descriptor table, available and used ring: offsets in the file (the
 *               front-end addresses are kUaddr + offset; guest-physical = offset below
 *               the split, + 0x1000 above it with the gap)
 *   bytes 8-9   base (the next available entry) and the used index found in memory
 *   bytes 10-11 where region 1 starts in the file (not page aligned in general)
 *   bytes 12-13 the length L of the memory image, then L bytes: the file's first bytes
 *               (the rest is zero)
 *   then ops, one byte each (some with arguments): 0 pop until Empty/Broken, 1 publish,
 *   2 shouldCall, 3 setKickWanted(arg bit 0) (arg bit 1 toggles EVENT_IDX), 4 the guest
 *   writes a byte (offset u16, value), 5 give back arg % 4 chains (setBase(base - n), as
 *   rx does), 6 stop and start again (resume from memory), 7 a new memory table (the same
 *   layout, new mappings; once per input) and remap.
 * Without ops: pop, publish, shouldCall, setKickWanted(true), hasAvailable.
 */
extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < kHeader)
		return 0;
	auto u16 = [data](size_t at) { return static_cast<uint16_t>(data[at] | data[at + 1] << 8); };
	unsigned num = 1u << (data[0] % 11);
	uint8_t flags = data[1];
	uint64_t descOff = u16(2), availOff = u16(4), usedOff = u16(6);
	uint16_t base = u16(8);
	size_t split = u16(10) % kMemSize;
	size_t imageLen = std::min<size_t>(u16(12), size - kHeader);
	memset(g_view, 0, kMemSize);
	memcpy(g_view, data + kHeader, imageLen);
	const uint8_t *ops = data + kHeader + imageLen, *end = data + size;

	Layout l;
	if ((flags & 2) && split > 0) {
		uint64_t gap = (flags & 4) ? 0x1000 : 0;
		l.r[0] = { 0, split, kUaddr, 0 };
		l.r[1] = { split + gap, kMemSize - split, kUaddr + split, split };
		l.n = 2;
	} else {
		l.r[0] = { 0, kMemSize, kUaddr, 0 };
		l.n = 1;
	}
	/*
	 * Mapping the table is most of an input's time (mmap, page faults, munmap's TLB
	 * flush): kept while the layout stays the same. Op 7 maps it anew.
	 */
	static GuestMemory mem;
	static Layout mapped;
	if (mem.empty() || mapped.n != l.n || memcmp(mapped.r, l.r, l.n * sizeof(l.r[0])) != 0) {
		if (!mapMemory(mem, l))
			fail("the test's own memory table was refused");
		mapped = l;
	}

	Virtqueue vq;
	std::string error;
	if (!vq.setSize(num, error))
		fail("a power of two refused");
	if (!vq.setAddresses(mem, kUaddr + descOff, kUaddr + availOff, kUaddr + usedOff, error))
		return 0;
	vq.setEventIdx(flags & 1);
	memcpy(g_view + usedOff + 2, &base, 2); // inside the file: setAddresses() checked
	vq.setBase(base);
	if (!vq.start(error))
		fail("start() refused a set-up queue");

	static VirtqChain chain; // large: not on the stack
	if (ops == end) {
		popAll(vq, mem, l, chain);
		vq.publish();
		(void)vq.shouldCall();
		vq.setKickWanted(true);
		(void)vq.hasAvailable();
		return 0;
	}
	auto arg = [&ops, end]() -> uint8_t { return ops < end ? *ops++ : 0; };
	unsigned remapped = 0;
	while (ops < end) {
		switch (*ops++ % 8) {
		case 0:
			popAll(vq, mem, l, chain);
			break;
		case 1:
			vq.publish();
			break;
		case 2:
			(void)vq.shouldCall();
			break;
		case 3: {
			uint8_t a = arg();
			if (a & 2)
				vq.setEventIdx(!(a & 4));
			vq.setKickWanted(a & 1);
			(void)vq.hasAvailable();
			break;
		}
		case 4: {
			size_t at = arg();
			at |= static_cast<size_t>(arg()) << 8;
			g_view[at % kMemSize] = arg();
			break;
		}
		case 5:
			vq.setBase(static_cast<uint16_t>(vq.base() - arg() % 4));
			break;
		case 6:
			vq.stop();
			if (vq.isStarted() || vq.hasAvailable())
				fail("a stopped queue has something");
			if (Virtqueue::Pop r = vq.pop(mem, chain);
			    r == Virtqueue::Pop::Ok || r == Virtqueue::Pop::TooLong)
				fail("a stopped queue gave a chain");
			if (!vq.setAddresses(mem, kUaddr + descOff, kUaddr + availOff, kUaddr + usedOff, error) ||
			    !vq.start(error))
				fail("the same rings refused the second time");
			break;
		case 7:
			if (remapped++)
				break; // once per input: mapping is slow
			if (!mapMemory(mem, l))
				fail("the same memory table refused the second time");
			if (!vq.remap(mem, error))
				fail("remap refused the same layout");
			break;
		}
	}
	return 0;
}
