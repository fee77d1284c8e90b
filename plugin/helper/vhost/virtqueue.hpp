// SPDX-License-Identifier: BSD-2-Clause
// vhost/virtqueue.hpp - one split virtqueue in guest memory, read as a hostile guest may have written it.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "vhost/guest_memory.hpp"

namespace slirpnet {

/*
 * A descriptor chain taken from the available ring: its head (to give back with push())
 * and its buffers as host iovecs, the device-readable ones first (what the guest sent),
 * then the device-writable ones (where the device may write). A descriptor that crosses
 * a region boundary is split into two iovecs. Bounded: at most kMaxSegments iovecs.
 */
struct VirtqChain {
	static constexpr size_t kMaxSegments = 256;
	// Descriptors walked per chain, zero-length ones included (a longer chain is TooLong).
	static constexpr unsigned kMaxDescriptors = 1024;
	uint16_t head = 0;
	size_t readable = 0; // iov[0, readable)
	size_t writable = 0; // iov[readable, readable + writable)
	uint64_t readableBytes = 0;
	uint64_t writableBytes = 0;
	iovec iov[kMaxSegments];
};

/*
 * The device side of a split virtqueue (virtio 1.x, 2.7), driven by the vhost-user
 * messages: setSize (SET_VRING_NUM), setAddresses (SET_VRING_ADDR), setBase
 * (SET_VRING_BASE), start() once kicked/enabled, base() for GET_VRING_BASE.
 *
 * The guest is hostile: it may write anything into the rings at any time, also while the
 * device reads them. So every index read from guest memory is checked against the queue
 * size, every descriptor is copied out once and then checked (address range inside a
 * mapped region, length, flags, next in range), a chain is bounded by the queue size (so a
 * loop ends as an error) and by kMaxSegments, readable descriptors must precede writable
 * ones, and indirect descriptors (not offered) are refused. A ring that breaks a rule is
 * broken: pop() returns Broken from then on, brokenReason() says why, and the caller stops
 * the queue and logs it. Nothing the guest writes can make the device touch memory outside
 * the mapped regions.
 *
 * Ring indices: lastAvail is the next available entry the device will take (the base),
 * usedIdx the next used entry it will write; used->idx is read from memory at start() so
 * a queue handed over from a previous back-end resumes where it was.
 *
 * Notifications: without EVENT_IDX, used->flags' NO_NOTIFY asks the guest not to kick and
 * avail->flags' NO_INTERRUPT tells the device not to call; with EVENT_IDX (setEventIdx),
 * avail_event / used_event are used instead (virtio 1.x 2.7.7, 2.7.10).
 *
 * Single-threaded: the caller's loop; memory barriers order the ring accesses against the
 * guest's vCPUs (acquire on avail->idx, release on used->idx, a full fence before a
 * notification decision).
 */
class Virtqueue
{
public:
	static constexpr unsigned kMaxSize = 32768; // virtio's limit for a split queue

	enum class Pop {
		Ok, // chain filled
		Empty, // nothing available
		TooLong, // a valid chain with more than kMaxSegments iovecs: chain.head is set, the
			 // caller gives it back with push(head, 0) and counts it; the queue goes on
		Broken, // the ring broke a rule (brokenReason()); nothing more is taken from it
	};

	// SET_VRING_NUM: a power of two in [1, kMaxSize]; false with error otherwise. A new
	// size forgets the ring addresses (stop()): they were checked for the old one.
	bool setSize(unsigned num, std::string &error);
	unsigned size() const { return num_; }
	/*
	 * SET_VRING_ADDR: the three parts' front-end virtual addresses, translated through mem
	 * (each part wholly inside one region, aligned as virtio requires: desc 16, avail 2,
	 * used 4). Needs setSize() first. False with error when a part is not mapped.
	 */
	bool setAddresses(const GuestMemory &mem, uint64_t desc, uint64_t avail, uint64_t used, std::string &error);
	// SET_VRING_BASE: the next available index to take.
	void setBase(uint16_t lastAvail) { lastAvail_ = lastAvail; }
	// GET_VRING_BASE: where the device stopped.
	uint16_t base() const { return lastAvail_; }
	void setEventIdx(bool on) { eventIdx_ = on; }

	/*
	 * SET_MEM_TABLE while the rings are set: translate the addresses setAddresses() was
	 * given again through the new table (the old mappings are gone), keeping the indices
	 * and the started state. False with error (and the rings forgotten, the queue stopped)
	 * when a part is no longer mapped. Call it right after GuestMemory::replace().
	 */
	bool remap(const GuestMemory &mem, std::string &error);

	// The rings are set up (size and addresses): reads used->idx and clears broken state.
	bool start(std::string &error);
	void stop(); // forget the ring addresses (memory is about to change, or the queue stops)
	bool isStarted() const { return started_; }

	/*
	 * Take the next available chain, its descriptors translated through mem (the same
	 * table setAddresses() used, or its replacement). See Pop.
	 */
	Pop pop(const GuestMemory &mem, VirtqChain &chain);
	/*
	 * Give a chain back: a used element (head, len = bytes written into its writable
	 * buffers). Becomes visible to the guest at publish().
	 */
	void push(uint16_t head, uint32_t len);
	// Make the pushed elements visible (used->idx, release order).
	void publish();
	/*
	 * After publish(): true when the guest asked to be told (so the caller writes the call
	 * eventfd). Tracks what was signalled, so each batch is signalled at most once.
	 */
	bool shouldCall();
	/*
	 * Ask the guest to kick (true) or not (false) when it adds buffers. After enabling, the
	 * caller must check hasAvailable() again: buffers added before the guest saw the flag
	 * would otherwise wait for the next kick. With EVENT_IDX the kick is asked for the first
	 * entry beyond the available index pop() last read, not beyond base(): chains given back
	 * with setBase(base() - n) (not enough buffers for a frame) are not worth a kick, only
	 * new ones are.
	 */
	void setKickWanted(bool wanted);
	bool hasAvailable() const;
	// avail->idx as the last pop() read it, and as it is now (0 when not started).
	uint16_t availSeen() const { return availSeen_; }
	uint16_t availIndex() const;

	bool isBroken() const { return broken_; }
	const std::string &brokenReason() const { return brokenReason_; }

private:
	Pop breakRing(std::string why);

	unsigned num_ = 0;
	struct Desc; // struct virtq_desc
	Desc *desc_ = nullptr;
	uint16_t *avail_ = nullptr; // flags, idx, ring[num], used_event
	uint8_t *used_ = nullptr; // flags, idx, ring[num] of {id, len}, avail_event
	uint64_t descAddr_ = 0, availAddr_ = 0, usedAddr_ = 0; // front-end addresses, for remap()
	bool started_ = false;
	uint16_t lastAvail_ = 0;
	uint16_t availSeen_ = 0; // avail->idx as pop() last read it (avail_event: kick beyond it)
	uint16_t usedIdx_ = 0;
	uint16_t signalledUsed_ = 0; // usedIdx_ at the last call (EVENT_IDX)
	bool signalledValid_ = false;
	bool eventIdx_ = false;
	bool broken_ = false;
	std::string brokenReason_;
};

} // namespace slirpnet
