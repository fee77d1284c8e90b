// SPDX-License-Identifier: BSD-2-Clause
// packet/ip_reassembly.cpp - IPv4 and IPv6 fragments reassembled before libslirp, bounded in datagrams, bytes and time.
#include "packet/ip_reassembly.hpp"

#include <algorithm>
#include <bit>
#include <chrono>
#include <cstring>

#include "byte_order.hpp"
#include "ethernet.hpp"
#include "packet/checksum.hpp"

namespace slirpnet {

namespace {

constexpr uint16_t kIpReservedFlag = 0x8000; // RFC 791: must be zero
constexpr uint8_t kIpv6Fragment = 44; // IPPROTO_FRAGMENT
constexpr size_t kIpv6FragHeaderLen = 8;

// Bit ranges [a, b) of the 8-byte-unit bitmaps.
bool anySet(const uint64_t *bits, size_t a, size_t b)
{
	for (size_t i = a; i < b;) {
		size_t w = i / 64, lo = i % 64, n = std::min<size_t>(64 - lo, b - i);
		uint64_t mask = (n == 64 ? ~uint64_t{ 0 } : ((uint64_t{ 1 } << n) - 1)) << lo;
		if (bits[w] & mask)
			return true;
		i += n;
	}
	return false;
}

bool allSet(const uint64_t *bits, size_t a, size_t b)
{
	for (size_t i = a; i < b;) {
		size_t w = i / 64, lo = i % 64, n = std::min<size_t>(64 - lo, b - i);
		uint64_t mask = (n == 64 ? ~uint64_t{ 0 } : ((uint64_t{ 1 } << n) - 1)) << lo;
		if ((bits[w] & mask) != mask)
			return false;
		i += n;
	}
	return true;
}

void setRange(uint64_t *bits, size_t a, size_t b)
{
	for (size_t i = a; i < b;) {
		size_t w = i / 64, lo = i % 64, n = std::min<size_t>(64 - lo, b - i);
		bits[w] |= (n == 64 ? ~uint64_t{ 0 } : ((uint64_t{ 1 } << n) - 1)) << lo;
		i += n;
	}
}

bool testBit(const uint64_t *bits, size_t i)
{
	return (bits[i / 64] >> (i % 64)) & 1;
}

uint64_t mix(uint64_t h, uint64_t v)
{
	h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
	return h * 0xff51afd7ed558ccdull;
}

} // namespace

IpReassembly::IpReassembly(const Limits &limits) : limits_(limits)
{
	// The hash table is bounded, so a chosen collision costs at most a scan of maxQueues;
	// the seed only makes that harder to aim for.
	seed_ = mix(static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()),
		    reinterpret_cast<uintptr_t>(this));
}

IpReassembly::~IpReassembly() = default;

bool IpReassembly::allocate()
{
	size_t bytes = std::clamp(limits_.maxBytes, kMinBytes, kMaxBytes);
	poolPages_ = bytes / kPageSize;
	maxQueues_ = std::max<size_t>(16, bytes / kBytesPerQueue);
	// Not zeroed: pages are touched (and take memory) only as fragments fill them.
	pool_ = std::make_unique_for_overwrite<uint8_t[]>(poolPages_ * kPageSize);
	freePages_.resize(poolPages_);
	for (size_t i = 0; i < poolPages_; i++)
		freePages_[i] = static_cast<uint32_t>(poolPages_ - 1 - i);
	queues_.resize(maxQueues_);
	for (size_t i = 0; i < maxQueues_; i++) {
		std::fill(std::begin(queues_[i].page), std::end(queues_[i].page), kNone);
		queues_[i].newer = i + 1 < maxQueues_ ? static_cast<uint32_t>(i + 1) : kNone;
	}
	freeQueues_ = 0;
	buckets_.assign(std::bit_ceil(2 * maxQueues_), kNone);
	out_.resize(kMaxHeader + kMaxPayload);
	return true;
}

uint32_t IpReassembly::bucket(const Key &k) const
{
	uint64_t w[4];
	std::memcpy(w, k.src, 16);
	std::memcpy(w + 2, k.dst, 16);
	uint64_t h = seed_;
	for (uint64_t v : w)
		h = mix(h, v);
	h = mix(h, (uint64_t{ k.id } << 16) | (uint64_t{ k.proto } << 8) | k.v6);
	return static_cast<uint32_t>((h >> 32) & (buckets_.size() - 1));
}

uint32_t IpReassembly::find(const Key &k) const
{
	for (uint32_t i = buckets_[bucket(k)]; i != kNone; i = queues_[i].hashNext)
		if (queues_[i].key == k)
			return i;
	return kNone;
}

uint32_t IpReassembly::create(const Key &k, int64_t nowMs, uint32_t keep)
{
	if (freeQueues_ == kNone && !evictOldest(keep))
		return kNone;
	uint32_t qi = freeQueues_;
	Queue &q = queues_[qi];
	freeQueues_ = q.newer;
	q.key = k;
	q.createdMs = nowMs;
	uint32_t b = bucket(k);
	q.hashNext = buckets_[b];
	buckets_[b] = qi;
	q.older = newest_;
	q.newer = kNone;
	if (newest_ != kNone)
		queues_[newest_].newer = qi;
	else
		oldest_ = qi;
	newest_ = qi;
	return qi;
}

void IpReassembly::release(uint32_t qi)
{
	Queue &q = queues_[qi];
	for (uint32_t *p = &buckets_[bucket(q.key)]; *p != kNone; p = &queues_[*p].hashNext)
		if (*p == qi) {
			*p = q.hashNext;
			break;
		}
	(q.older != kNone ? queues_[q.older].newer : oldest_) = q.newer;
	(q.newer != kNone ? queues_[q.newer].older : newest_) = q.older;
	for (size_t p = 0; p * kPageSize < q.maxEnd; p++)
		if (q.page[p] != kNone) {
			freePages_.push_back(q.page[p]);
			q.page[p] = kNone;
			usedPages_--;
		}
	// Only the words a fragment touched need clearing.
	size_t words = ((q.maxEnd + 7) / 8 + 63) / 64;
	std::fill_n(q.covered, words, 0);
	std::fill_n(q.starts, words, 0);
	heldFrames_ -= q.frames;
	q.total = q.received = q.maxEnd = q.frames = 0;
	q.frameBytes = 0;
	q.haveFirst = q.haveLast = false;
	q.hdrLen = 0;
	q.hashNext = kNone;
	q.older = kNone;
	q.newer = freeQueues_;
	freeQueues_ = qi;
}

void IpReassembly::discard(uint32_t qi, uint64_t &counter)
{
	counter += queues_[qi].frames;
	release(qi);
}

bool IpReassembly::evictOldest(uint32_t keep)
{
	uint32_t victim = oldest_;
	if (victim == keep && victim != kNone)
		victim = queues_[victim].newer;
	if (victim == kNone)
		return false;
	discard(victim, counters_.limit);
	return true;
}

void IpReassembly::expire(int64_t nowMs)
{
	while (oldest_ != kNone && nowMs - queues_[oldest_].createdMs >= limits_.timeoutMs)
		discard(oldest_, counters_.timeout);
}

bool IpReassembly::reservePages(uint32_t qi, uint32_t first, uint32_t last)
{
	size_t need = 0;
	for (uint32_t p = first; p <= last; p++)
		need += queues_[qi].page[p] == kNone;
	while (freePages_.size() < need)
		if (!evictOldest(qi))
			return false;
	Queue &q = queues_[qi];
	for (uint32_t p = first; p <= last; p++)
		if (q.page[p] == kNone) {
			q.page[p] = freePages_.back();
			freePages_.pop_back();
			usedPages_++;
		}
	return true;
}

IpReassembly::Verdict IpReassembly::input(const uint8_t *frame, size_t len, int64_t nowMs)
{
	if (len < kEthHeaderLen)
		return Verdict::Pass;
	const uint8_t *ip = frame + kEthHeaderLen;
	size_t avail = len - kEthHeaderLen;
	auto malformed = [this] {
		counters_.malformed++;
		return Verdict::Drop;
	};
	Fragment f{};
	f.frame = frame;
	f.len = len;
	uint16_t type = etherType(frame);
	if (type == ETHERTYPE_IP) {
		if (avail < kIpv4MinHeaderLen)
			return Verdict::Pass; // libslirp drops it before it looks at ip_off
		uint16_t off = loadBe16(ip + 6);
		if ((off & ~IP_DF) == 0)
			return Verdict::Pass;
		// libslirp's ip_input() would take this for a fragment: it never sees it as it is.
		size_t ihl = (ip[0] & 0x0fu) * 4u;
		size_t total = loadBe16(ip + 2);
		if ((ip[0] >> 4) != 4 || ihl < kIpv4MinHeaderLen || ihl > avail || total < ihl || total > avail ||
		    checksumFold(checksumAdd(0, ip, ihl)) != 0xffff || (off & kIpReservedFlag))
			return malformed();
		std::memcpy(f.key.src, ip + 12, 4);
		std::memcpy(f.key.dst, ip + 16, 4);
		f.key.id = loadBe16(ip + 4);
		f.key.proto = ip[9];
		f.hdrLen = kEthHeaderLen + ihl;
		f.data = ip + ihl;
		f.size = static_cast<uint32_t>(total - ihl);
		f.offset = (off & IP_OFFMASK) * 8u;
		f.more = off & IP_MF;
	} else if (type == ETHERTYPE_IPV6) {
		if (avail < kIpv6HeaderLen || (ip[0] >> 4) != 6 || ip[6] != kIpv6Fragment)
			return Verdict::Pass;
		size_t plen = loadBe16(ip + 4);
		if (plen < kIpv6FragHeaderLen || kIpv6HeaderLen + plen > avail)
			return malformed();
		const uint8_t *fh = ip + kIpv6HeaderLen;
		if (fh[0] == kIpv6Fragment)
			return malformed(); // a fragment of a fragment
		uint16_t off = loadBe16(fh + 2);
		std::memcpy(f.key.src, ip + 8, 16);
		std::memcpy(f.key.dst, ip + 24, 16);
		f.key.id = loadBe32(fh + 4);
		f.key.v6 = true;
		f.hdrLen = kEthHeaderLen + kIpv6HeaderLen;
		f.data = fh + kIpv6FragHeaderLen;
		f.size = static_cast<uint32_t>(plen - kIpv6FragHeaderLen);
		f.offset = off & 0xfff8;
		f.more = off & 1;
		f.nextHeader = fh[0];
		if (f.offset == 0 && !f.more)
			return atomic(f);
	} else {
		return Verdict::Pass;
	}
	// IPv4: the first fragment's header comes on top (20 bytes at least).
	size_t maxEnd = kMaxPayload - (f.key.v6 ? 0 : kIpv4MinHeaderLen);
	if (f.size == 0 || (f.more && f.size % 8) || f.offset + f.size > maxEnd)
		return malformed();
	if (limits_.maxBytes == 0) {
		counters_.limit++;
		return Verdict::Drop;
	}
	if (!pool_)
		allocate();
	expire(nowMs);
	return add(f, nowMs);
}

IpReassembly::Verdict IpReassembly::atomic(const Fragment &f)
{
	// RFC 6946: a fragment that is the whole datagram is the datagram without its header.
	// Nothing is held, so this needs the output buffer only (also with frag-mem=0).
	if (out_.empty())
		out_.resize(kMaxHeader + kMaxPayload);
	std::memcpy(out_.data(), f.frame, f.hdrLen);
	out_[kEthHeaderLen + 6] = f.nextHeader;
	storeBe16(out_.data() + kEthHeaderLen + 4, static_cast<uint16_t>(f.size));
	std::memcpy(out_.data() + f.hdrLen, f.data, f.size);
	outLen_ = f.hdrLen + f.size;
	outFrames_ = 1;
	outFrameBytes_ = f.len;
	counters_.reassembled++;
	return Verdict::Complete;
}

IpReassembly::Verdict IpReassembly::add(const Fragment &f, int64_t nowMs)
{
	uint32_t qi = find(f.key);
	if (qi == kNone)
		qi = create(f.key, nowMs, kNone);
	if (qi == kNone) { // cannot happen: create evicts the oldest when the table is full
		counters_.limit++;
		return Verdict::Drop;
	}
	Queue &q = queues_[qi];
	uint32_t end = f.offset + f.size;
	auto dropWhole = [&](uint64_t &counter) {
		counter++; // this fragment, then the ones held
		discard(qi, counter);
		return Verdict::Drop;
	};
	// The datagram's end: one last fragment, and nothing beyond it.
	if (f.more ? (q.haveLast && end > q.total) : ((q.haveLast && end != q.total) || end < q.maxEnd))
		return dropWhole(counters_.overlap);

	size_t a = f.offset / 8, b = (end + 7) / 8;
	if (anySet(q.covered, a, b)) {
		// An exact copy of a held fragment: the same first unit, one fragment up to the same
		// last one (the next unit starts another fragment or is not held).
		bool duplicate = allSet(q.covered, a, b) && testBit(q.starts, a) && !anySet(q.starts, a + 1, b) &&
				 (b >= kUnits || testBit(q.starts, b) || !testBit(q.covered, b));
		if (duplicate) {
			counters_.malformed++;
			return Verdict::Drop;
		}
		return dropWhole(counters_.overlap);
	}

	if (!reservePages(qi, f.offset / kPageSize, (end - 1) / kPageSize)) {
		// Only when the pool cannot hold this datagram even alone (not with kMinBytes).
		return dropWhole(counters_.limit);
	}
	for (uint32_t done = 0; done < f.size;) {
		uint32_t at = f.offset + done;
		uint32_t n = std::min<uint32_t>(f.size - done, static_cast<uint32_t>(kPageSize - at % kPageSize));
		std::memcpy(pool_.get() + size_t{ q.page[at / kPageSize] } * kPageSize + at % kPageSize, f.data + done,
			    n);
		done += n;
	}
	setRange(q.covered, a, b);
	setRange(q.starts, a, a + 1);
	q.received += f.size;
	q.maxEnd = std::max(q.maxEnd, end);
	q.frames++;
	q.frameBytes += f.len;
	heldFrames_++;
	if (!f.more) {
		q.haveLast = true;
		q.total = end;
	}
	if (f.offset == 0) {
		q.haveFirst = true;
		q.hdrLen = static_cast<uint8_t>(f.hdrLen);
		std::memcpy(q.hdr, f.frame, f.hdrLen);
		if (f.key.v6)
			q.hdr[kEthHeaderLen + 6] = f.nextHeader;
	}
	if (q.haveFirst && q.haveLast && q.received == q.total)
		return finish(qi);
	return Verdict::Held;
}

IpReassembly::Verdict IpReassembly::finish(uint32_t qi)
{
	Queue &q = queues_[qi];
	size_t ipHdr = q.hdrLen - kEthHeaderLen;
	if (!q.key.v6 && ipHdr + q.total > kMaxPayload) {
		// The first fragment's options pushed the datagram past 65535 bytes.
		discard(qi, counters_.malformed);
		return Verdict::Drop;
	}
	uint8_t *out = out_.data();
	std::memcpy(out, q.hdr, q.hdrLen);
	for (size_t off = 0; off < q.total; off += kPageSize)
		std::memcpy(out + q.hdrLen + off, pool_.get() + size_t{ q.page[off / kPageSize] } * kPageSize,
			    std::min<size_t>(kPageSize, q.total - off));
	uint8_t *ip = out + kEthHeaderLen;
	if (q.key.v6) {
		storeBe16(ip + 4, static_cast<uint16_t>(q.total)); // next header: set when the first came
	} else {
		storeBe16(ip + 2, static_cast<uint16_t>(ipHdr + q.total));
		ip[6] = ip[7] = 0; // neither a fragment nor one to be: libslirp sees a whole datagram
		ip[10] = ip[11] = 0;
		uint16_t sum = static_cast<uint16_t>(~checksumFold(checksumAdd(0, ip, ipHdr)));
		std::memcpy(ip + 10, &sum, 2);
	}
	outLen_ = q.hdrLen + q.total;
	outFrames_ = q.frames;
	outFrameBytes_ = q.frameBytes;
	counters_.reassembled++;
	release(qi);
	return Verdict::Complete;
}

} // namespace slirpnet
