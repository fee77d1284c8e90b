// SPDX-License-Identifier: BSD-2-Clause
// vhost/guest_memory.hpp - the guest's RAM as the vhost-user front-end shares it: regions mapped, addresses checked.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "unique_fd.hpp"

namespace slirpnet {

// One region of VHOST_USER_SET_MEM_TABLE (struct vhost_user_memory_region, little-endian).
struct VhostMemRegion {
	uint64_t guestPhysAddr;
	uint64_t memorySize;
	uint64_t userspaceAddr; // the front-end's (QEMU's) virtual address of the region
	uint64_t mmapOffset; // where the region starts in its fd
};
static_assert(sizeof(VhostMemRegion) == 32);

/*
 * The regions the front-end shares, each mmap()ed MAP_SHARED from the fd it sent. Every
 * address the guest or the front-end gives (a descriptor's guest-physical address, a ring's
 * front-end virtual address) is translated here and only here: a range that is not wholly
 * inside a mapped region yields nullptr, never a pointer outside a mapping. Unmapped on
 * destruction and on replace().
 */
class GuestMemory
{
public:
	// VHOST_MEMORY_BASELINE_NREGIONS: what a front-end without the CONFIGURE_MEM_SLOTS
	// protocol feature may send.
	static constexpr size_t kMaxRegions = 8;

	GuestMemory() = default;
	~GuestMemory();
	GuestMemory(const GuestMemory &) = delete;
	GuestMemory &operator=(const GuestMemory &) = delete;

	/*
	 * Replace the table with n regions backed by fds[i] (taken; closed once mapped, the
	 * mapping keeps the memory). Checks: 1 <= n <= kMaxRegions, one fd per region, sizes
	 * non-zero, no overflow of gpa/uaddr/offset + size, no two regions overlapping in guest
	 * physical or front-end address space. On failure the previous table is kept and error
	 * says which region is wrong and why.
	 */
	bool replace(const VhostMemRegion *regions, size_t n, std::vector<UniqueFd> fds, std::string &error);
	void clear(); // unmap everything

	/*
	 * Guest-physical address gpa: the host pointer and, in contiguous, how many bytes from
	 * there stay inside the same region (>= 1). nullptr when gpa is in no region.
	 */
	uint8_t *fromGuest(uint64_t gpa, uint64_t &contiguous) const;
	// [gpa, gpa+len) wholly inside one region: its host pointer, else nullptr (len 0: nullptr).
	uint8_t *fromGuestRange(uint64_t gpa, uint64_t len) const;
	// [uaddr, uaddr+len) of the front-end's address space (vring addresses), wholly in one
	// region: its host pointer, else nullptr.
	uint8_t *fromFrontEnd(uint64_t uaddr, uint64_t len) const;

	size_t regionCount() const { return regions_.size(); }
	bool empty() const { return regions_.empty(); }

private:
	struct Mapped {
		VhostMemRegion r;
		uint8_t *host; // the region's first byte (mapping + mmapOffset)
		void *map;
		size_t mapLen;
	};
	std::vector<Mapped> regions_; // reserved for kMaxRegions: no allocation on lookups
	mutable size_t lastHit_ = 0; // fromGuest() tries the region of its last hit first
};

} // namespace slirpnet
