// SPDX-License-Identifier: BSD-2-Clause
// vhost/virtqueue.cpp - a split virtqueue's device side: chains taken from a ring the guest may corrupt at any time.
#include "vhost/virtqueue.hpp"

#include <endian.h>

#include <algorithm>
#include <cinttypes>
#include <cstring>

namespace slirpnet {

// struct virtq_desc (virtio 1.x 2.7.5), little-endian.
struct Virtqueue::Desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

namespace {

constexpr uint16_t kDescNext = 1;
constexpr uint16_t kDescWrite = 2;
constexpr uint16_t kDescIndirect = 4;
constexpr uint16_t kAvailNoInterrupt = 1; // VRING_AVAIL_F_NO_INTERRUPT
constexpr uint16_t kUsedNoNotify = 1; // VRING_USED_F_NO_NOTIFY

// The parts' sizes for a queue of num entries (2.7: with their event fields).
uint64_t descBytes(unsigned num)
{
	return 16ull * num;
}
uint64_t availBytes(unsigned num)
{
	return 6 + 2ull * num;
}
uint64_t usedBytes(unsigned num)
{
	return 6 + 8ull * num;
}

// used ring offsets: flags 0, idx 2, ring[i] at 4 + 8 i ({le32 id; le32 len}), avail_event after.
constexpr size_t kUsedIdx = 2;
constexpr size_t kUsedRing = 4;

// vring_need_event (virtio 1.x 2.7.10): did new_idx pass event since old?
bool needEvent(uint16_t event, uint16_t newIdx, uint16_t old)
{
	return static_cast<uint16_t>(newIdx - event - 1) < static_cast<uint16_t>(newIdx - old);
}

std::string hex(uint64_t v)
{
	char buf[24];
	snprintf(buf, sizeof(buf), "0x%" PRIx64, v);
	return buf;
}

} // namespace

bool Virtqueue::setSize(unsigned num, std::string &error)
{
	if (num == 0 || num > kMaxSize || (num & (num - 1))) {
		error = "queue size " + std::to_string(num) + " (a power of two up to " + std::to_string(kMaxSize) +
			" is needed)";
		return false;
	}
	// The rings were checked for the old size: a larger one would read past them.
	if (num != num_ && desc_)
		stop();
	num_ = num;
	return true;
}

bool Virtqueue::setAddresses(const GuestMemory &mem, uint64_t desc, uint64_t avail, uint64_t used, std::string &error)
{
	if (!num_) {
		error = "ring addresses before the queue size";
		return false;
	}
	struct Part {
		const char *name;
		uint64_t addr, len;
		uintptr_t align;
		uint8_t *host;
	} parts[] = {
		{ "descriptor table", desc, descBytes(num_), 16, nullptr },
		{ "available ring", avail, availBytes(num_), 2, nullptr },
		{ "used ring", used, usedBytes(num_), 4, nullptr },
	};
	for (Part &p : parts) {
		if (p.addr % p.align) {
			error = std::string(p.name) + " at " + hex(p.addr) + " is not aligned to " +
				std::to_string(p.align);
			return false;
		}
		p.host = mem.fromFrontEnd(p.addr, p.len);
		if (!p.host) {
			error = std::string(p.name) + " at " + hex(p.addr) + " (" + std::to_string(p.len) +
				" bytes) is not inside one memory region";
			return false;
		}
		// The host address keeps the alignment only if the region's front-end address and
		// mmap offset agree; the ring's atomic accesses need it.
		if (reinterpret_cast<uintptr_t>(p.host) % p.align) {
			error = std::string(p.name) + " at " + hex(p.addr) + " maps to an address not aligned to " +
				std::to_string(p.align) + " (the region's offset is not)";
			return false;
		}
	}
	static_assert(sizeof(Desc) == 16);
	desc_ = reinterpret_cast<Desc *>(parts[0].host);
	avail_ = reinterpret_cast<uint16_t *>(parts[1].host);
	used_ = parts[2].host;
	descAddr_ = desc;
	availAddr_ = avail;
	usedAddr_ = used;
	return true;
}

bool Virtqueue::remap(const GuestMemory &mem, std::string &error)
{
	if (!desc_)
		return true; // no rings yet: SET_VRING_ADDR will translate them
	if (setAddresses(mem, descAddr_, availAddr_, usedAddr_, error))
		return true;
	stop();
	return false;
}

bool Virtqueue::start(std::string &error)
{
	if (!num_ || !desc_) {
		error = "queue started before its size and ring addresses";
		return false;
	}
	/*
	 * A queue another back-end ran (QEMU reconnecting to a restarted helper) goes on from
	 * the used index it left in memory; ours is only read here, never trusted later.
	 */
	usedIdx_ = le16toh(__atomic_load_n(reinterpret_cast<uint16_t *>(used_ + kUsedIdx), __ATOMIC_ACQUIRE));
	availSeen_ = lastAvail_;
	signalledValid_ = false;
	broken_ = false;
	brokenReason_.clear();
	started_ = true;
	return true;
}

void Virtqueue::stop()
{
	started_ = false;
	desc_ = nullptr;
	avail_ = nullptr;
	used_ = nullptr;
}

Virtqueue::Pop Virtqueue::breakRing(std::string why)
{
	broken_ = true;
	brokenReason_ = std::move(why);
	return Pop::Broken;
}

Virtqueue::Pop Virtqueue::pop(const GuestMemory &mem, VirtqChain &chain)
{
	if (broken_)
		return Pop::Broken;
	if (!started_)
		return Pop::Empty;
	// Acquire: the ring entries and descriptors the guest wrote before idx are visible.
	uint16_t availIdx = le16toh(__atomic_load_n(&avail_[1], __ATOMIC_ACQUIRE));
	uint16_t pending = static_cast<uint16_t>(availIdx - lastAvail_);
	if (pending <= num_)
		availSeen_ = availIdx;
	if (pending == 0)
		return Pop::Empty;
	if (pending > num_)
		return breakRing("available index " + std::to_string(availIdx) + " is " + std::to_string(pending) +
				 " ahead of the device's " + std::to_string(lastAvail_) +
				 ", more than the queue size " + std::to_string(num_));
	uint16_t head = le16toh(__atomic_load_n(&avail_[2 + (lastAvail_ & (num_ - 1))], __ATOMIC_RELAXED));
	if (head >= num_)
		return breakRing("available ring entry " + std::to_string(lastAvail_) + ": head " +
				 std::to_string(head) + " out of range (queue size " + std::to_string(num_) + ")");

	chain.head = head;
	size_t nIov = 0, nReadable = 0;
	uint64_t readableBytes = 0, writableBytes = 0;
	bool tooLong = false, sawWritable = false;
	uint16_t idx = head;
	for (unsigned count = 1;; count++) {
		// A chain visits each descriptor at most once: a longer one has a loop.
		if (count > num_)
			return breakRing("chain from head " + std::to_string(head) + " is longer than the queue size " +
					 std::to_string(num_) + " (a loop)");
		/*
		 * Legal but useless: no driver makes chains this long (Linux: at most 19), and
		 * walking 32768 zero-length descriptors per chain, chain after chain, would let a
		 * guest hold the loop for seconds. Given back unused (TooLong), unwalked beyond.
		 */
		if (count > VirtqChain::kMaxDescriptors) {
			tooLong = true;
			break;
		}
		/*
		 * Copied out once (two aligned 8-byte loads), then only the copy is looked at:
		 * the guest may rewrite the descriptor meanwhile, and a check must hold for the
		 * value used.
		 */
		const uint64_t *src = reinterpret_cast<const uint64_t *>(&desc_[idx]);
		uint64_t raw[2] = { __atomic_load_n(&src[0], __ATOMIC_RELAXED),
				    __atomic_load_n(&src[1], __ATOMIC_RELAXED) };
		Desc d;
		memcpy(&d, raw, sizeof(d));
		uint16_t flags = le16toh(d.flags);
		uint32_t len = le32toh(d.len);
		uint64_t addr = le64toh(d.addr);
		if (flags & kDescIndirect)
			return breakRing("descriptor " + std::to_string(idx) + " is indirect (not offered)");
		bool writable = flags & kDescWrite;
		// A zero-length descriptor carries nothing: skipped, wherever it is.
		if (len) {
			if (!writable && sawWritable)
				return breakRing("descriptor " + std::to_string(idx) +
						 " is readable after a writable one (chain from head " +
						 std::to_string(head) + ")");
			sawWritable |= writable;
			(writable ? writableBytes : readableBytes) += len;
			// One iovec per region the buffer touches.
			for (uint64_t a = addr, left = len; left;) {
				uint64_t contiguous;
				uint8_t *p = mem.fromGuest(a, contiguous);
				if (!p)
					return breakRing("descriptor " + std::to_string(idx) + ": buffer " + hex(addr) +
							 "+" + std::to_string(len) + " is not in guest memory (at " +
							 hex(a) + ")");
				uint64_t take = std::min(left, contiguous);
				if (nIov < VirtqChain::kMaxSegments)
					chain.iov[nIov++] = { p, static_cast<size_t>(take) };
				else
					tooLong = true; // the rest of the chain is still checked
				if (!writable)
					nReadable = nIov;
				a += take; // no wrap: a region's end does not overflow
				left -= take;
			}
		}
		if (!(flags & kDescNext))
			break;
		idx = le16toh(d.next);
		if (idx >= num_)
			return breakRing("descriptor chain from head " + std::to_string(head) + ": next " +
					 std::to_string(idx) + " out of range (queue size " + std::to_string(num_) +
					 ")");
	}

	lastAvail_++;
	if (tooLong) {
		chain.readable = chain.writable = 0;
		chain.readableBytes = chain.writableBytes = 0;
		return Pop::TooLong;
	}
	chain.readable = nReadable;
	chain.writable = nIov - nReadable;
	chain.readableBytes = readableBytes;
	chain.writableBytes = writableBytes;
	return Pop::Ok;
}

void Virtqueue::push(uint16_t head, uint32_t len)
{
	if (!started_)
		return;
	uint8_t *elem = used_ + kUsedRing + 8 * static_cast<size_t>(usedIdx_ & (num_ - 1));
	__atomic_store_n(reinterpret_cast<uint32_t *>(elem), htole32(head), __ATOMIC_RELAXED);
	__atomic_store_n(reinterpret_cast<uint32_t *>(elem + 4), htole32(len), __ATOMIC_RELAXED);
	usedIdx_++;
}

void Virtqueue::publish()
{
	if (!started_)
		return;
	// Release: the used elements are visible before the index that hands them over.
	__atomic_store_n(reinterpret_cast<uint16_t *>(used_ + kUsedIdx), htole16(usedIdx_), __ATOMIC_RELEASE);
}

bool Virtqueue::shouldCall()
{
	if (!started_)
		return false;
	// The used index we published must be ordered before the guest's flags/event we read
	// (the guest does the opposite: writes its flag, then reads used->idx).
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	uint16_t old = signalledUsed_;
	bool valid = signalledValid_;
	signalledUsed_ = usedIdx_;
	signalledValid_ = true;
	if (valid && old == usedIdx_)
		return false; // nothing new since the last decision
	if (!eventIdx_)
		return !(le16toh(__atomic_load_n(&avail_[0], __ATOMIC_RELAXED)) & kAvailNoInterrupt);
	if (!valid)
		return true;
	uint16_t usedEvent = le16toh(__atomic_load_n(&avail_[2 + num_], __ATOMIC_RELAXED));
	return needEvent(usedEvent, usedIdx_, old);
}

void Virtqueue::setKickWanted(bool wanted)
{
	if (!started_)
		return;
	if (eventIdx_) {
		/*
		 * "Kick me when you make entry E available", E the first entry not seen yet: the
		 * available index pop() last read. That is base() after an Empty pop, and beyond
		 * it when chains were given back with setBase() (they are no reason to kick). Not
		 * wanting kicks needs no write: the guest kicks only when it passes E, left behind.
		 */
		uint16_t seen = static_cast<uint16_t>(availSeen_ - lastAvail_) <= num_ ? availSeen_ : lastAvail_;
		if (wanted)
			__atomic_store_n(
				reinterpret_cast<uint16_t *>(used_ + kUsedRing + 8 * static_cast<size_t>(num_)),
				htole16(seen), __ATOMIC_RELAXED);
	} else {
		__atomic_store_n(reinterpret_cast<uint16_t *>(used_), htole16(wanted ? 0 : kUsedNoNotify),
				 __ATOMIC_RELAXED);
	}
	// The flag/event must be visible before the caller looks at avail->idx again.
	if (wanted)
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

uint16_t Virtqueue::availIndex() const
{
	if (!started_)
		return 0;
	return le16toh(__atomic_load_n(&avail_[1], __ATOMIC_ACQUIRE));
}

bool Virtqueue::hasAvailable() const
{
	if (!started_ || broken_)
		return false;
	return le16toh(__atomic_load_n(&avail_[1], __ATOMIC_ACQUIRE)) != lastAvail_;
}

} // namespace slirpnet
