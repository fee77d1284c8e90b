// SPDX-License-Identifier: BSD-2-Clause
// packet/ip_reassembly.hpp - IPv4 and IPv6 fragments reassembled before libslirp, bounded in datagrams, bytes and time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace slirpnet {

/*
 * libslirp 4.7.0 (Debian 12) crashes (SIGBUS) in ip_reass() when the first fragment of a
 * datagram it sees is not the one at offset 0, and no outside guard can know for sure
 * when it holds a queue (a packet with only the reserved flag set, which its ip_input()
 * takes for a fragment, frees one; its timer is not ours). It takes no IPv6 fragments at
 * all. So the helper reassembles both itself and hands libslirp whole datagrams only:
 * libslirp never sees a packet with (ip_off & ~IP_DF) != 0 nor an IPv6 fragment header.
 *
 * Rules (those of Linux since 2018, RFC 5722 and RFC 8200):
 *   - the IPv4 header is checked as libslirp would (version, IHL, checksum, total length
 *     within the frame) before anything is used; the reserved flag (0x8000, RFC 791: must
 *     be zero) drops the packet, fragment or not;
 *   - an IPv6 fragment header is recognised directly after the base header only (libslirp
 *     drops any other extension header anyway); an atomic fragment (offset 0, no M flag,
 *     RFC 6946) is passed on without its fragment header;
 *   - a fragment other than the last must carry a multiple of 8 bytes; none may end past
 *     the largest datagram (65535 bytes of IP packet); such a fragment is dropped alone;
 *   - an exact duplicate of a held fragment is ignored; any other overlap, or fragments
 *     that contradict each other about the datagram's end, drop the whole datagram;
 *   - a datagram not whole within the timeout (counted from its first fragment's arrival,
 *     as Linux's ipfrag_time, never extended) is dropped; expiry is checked when a fragment
 *     arrives, which is enough since memory is bounded anyway;
 *   - at most maxBytes of fragment data are held (in 1 KiB pages: a tiny fragment costs a
 *     page, as Linux counts an skb's true size) and at most maxBytes / 16 KiB datagrams at
 *     once; when either is full the oldest datagram is dropped to make room (a flood of
 *     fresh first fragments can then only push out datagrams, never grow the helper).
 *
 * The reassembled frame is the first fragment's Ethernet and IP header (IPv4: total
 * length, flags and checksum rewritten; IPv6: the fragment header removed, next header and
 * payload length set) followed by the data: up to 65535 bytes of IP packet, larger than
 * the link MTU, which libslirp's slirp_input() takes (m_inc).
 *
 * No allocation per frame: the page pool, the datagram table, its hash index and the
 * output buffer are allocated at the first fragment and reused for the helper's life.
 */
class IpReassembly
{
public:
	struct Limits {
		size_t maxBytes = size_t{ 4 } << 20; // frag-mem= (Linux's ipfrag_high_thresh); 0: no reassembly
		int64_t timeoutMs = 30000; // frag-timeout= (Linux's ipfrag_time)
	};

	// Cumulative counts, in guest frames (a fragment is counted once, when its fate is known).
	struct Counters {
		uint64_t malformed = 0; // dropped alone: bad header or offset, too long, reserved flag, duplicate
		uint64_t overlap = 0; // dropped with their datagram: overlapping or contradicting fragments
		uint64_t timeout = 0; // dropped with their datagram: not whole in time
		uint64_t limit = 0; // dropped with their datagram to make room, or refused (frag-mem=0)
		uint64_t reassembled = 0; // datagrams made whole
	};

	enum class Verdict : uint8_t {
		Pass, // not a fragment: hand the frame on as it is
		Held, // a fragment, kept until its datagram is whole
		Complete, // this fragment made its datagram whole: datagram()
		Drop, // dropped (and counted in counters())
	};

	static constexpr size_t kPageSize = 1024;
	static constexpr size_t kMinBytes = 128 * 1024; // room for two datagrams of 64 KiB
	static constexpr size_t kMaxBytes = 64u << 20;
	static constexpr size_t kBytesPerQueue = 16 * 1024;

	explicit IpReassembly(const Limits &limits);
	~IpReassembly();
	IpReassembly(const IpReassembly &) = delete;
	IpReassembly &operator=(const IpReassembly &) = delete;

	/*
	 * Take one frame from the guest (at least an Ethernet header). Complete: datagram() and
	 * datagramLen() are the whole datagram as a frame, valid until the next call, made of
	 * datagramFrames() guest frames of datagramFrameBytes() bytes in all.
	 */
	Verdict input(const uint8_t *frame, size_t len, int64_t nowMs);

	const uint8_t *datagram() const { return out_.data(); }
	size_t datagramLen() const { return outLen_; }
	unsigned datagramFrames() const { return outFrames_; }
	size_t datagramFrameBytes() const { return outFrameBytes_; }

	const Counters &counters() const { return counters_; }
	// Gauges: fragments held now, and the pool bytes they take (pages of kPageSize).
	uint64_t heldFrames() const { return heldFrames_; }
	uint64_t heldBytes() const { return usedPages_ * kPageSize; }
	size_t maxQueues() const { return maxQueues_; }

private:
	static constexpr size_t kMaxPayload = 65535; // fragmentable bytes of one datagram at most
	static constexpr size_t kUnits = (kMaxPayload + 7) / 8; // 8-byte fragment units
	static constexpr size_t kWords = (kUnits + 63) / 64;
	static constexpr size_t kPagesPerQueue = (kMaxPayload + kPageSize - 1) / kPageSize;
	static constexpr uint32_t kNone = UINT32_MAX;
	static constexpr size_t kMaxHeader = 14 + 60; // Ethernet + the longest IPv4 header (IPv6: 40)

	struct Key {
		uint8_t src[16], dst[16]; // IPv4: the first 4 bytes
		uint32_t id;
		uint8_t proto; // IPv4's protocol; 0 for IPv6 (not part of its key)
		bool v6;
		bool operator==(const Key &) const = default;
	};

	struct Queue {
		Key key{};
		uint32_t hashNext = kNone; // chain of its hash bucket
		uint32_t older = kNone, newer = kNone; // the age list (creation order), or the free list
		int64_t createdMs = 0;
		uint32_t total = 0; // payload bytes of the datagram, once the last fragment came
		uint32_t received = 0; // payload bytes held
		uint32_t maxEnd = 0; // end of the furthest fragment held
		uint32_t frames = 0; // guest frames held
		size_t frameBytes = 0; // their bytes
		bool haveFirst = false, haveLast = false;
		uint8_t hdrLen = 0;
		uint8_t hdr[kMaxHeader]; // the first fragment's Ethernet + IP header
		uint32_t page[kPagesPerQueue];
		uint64_t covered[kWords]; // 8-byte units held
		uint64_t starts[kWords]; // units where a held fragment starts
	};

	struct Fragment {
		Key key;
		const uint8_t *frame;
		size_t len;
		size_t hdrLen; // Ethernet + IP header (IPv6: base header only; the fragment header is dropped)
		const uint8_t *data;
		uint32_t offset, size;
		bool more;
		uint8_t nextHeader; // IPv6
	};

	bool allocate();
	Verdict add(const Fragment &f, int64_t nowMs);
	void expire(int64_t nowMs);
	uint32_t find(const Key &k) const;
	uint32_t bucket(const Key &k) const;
	uint32_t create(const Key &k, int64_t nowMs, uint32_t keep);
	void release(uint32_t qi);
	void discard(uint32_t qi, uint64_t &counter);
	bool evictOldest(uint32_t keep);
	bool reservePages(uint32_t qi, uint32_t first, uint32_t last);
	Verdict finish(uint32_t qi);
	Verdict atomic(const Fragment &f);

	Limits limits_;
	size_t maxQueues_ = 0;
	size_t poolPages_ = 0;
	std::unique_ptr<uint8_t[]> pool_; // poolPages_ * kPageSize, touched as used
	std::vector<uint32_t> freePages_; // a stack
	std::vector<Queue> queues_;
	std::vector<uint32_t> buckets_; // power of two, >= 2 * maxQueues_
	uint32_t freeQueues_ = kNone; // through Queue::newer
	uint32_t oldest_ = kNone, newest_ = kNone;
	uint64_t seed_ = 0;
	std::vector<uint8_t> out_;
	size_t outLen_ = 0;
	unsigned outFrames_ = 0;
	size_t outFrameBytes_ = 0;
	Counters counters_;
	uint64_t heldFrames_ = 0;
	uint64_t usedPages_ = 0;
};

} // namespace slirpnet
