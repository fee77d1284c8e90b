// SPDX-License-Identifier: BSD-2-Clause
// vhost/guest_memory.cpp - the front-end's memory table: each region checked, mapped MAP_SHARED, and addresses translated.
#include "vhost/guest_memory.hpp"

#include "log.hpp"

#include <fcntl.h>
#include <glib.h>
#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#include <cerrno>
#include <cinttypes>
#include <cstring>
#include <limits>

namespace slirpnet {

namespace {

// [a, a+as) and [b, b+bs) share a byte (both ends known not to overflow).
bool overlap(uint64_t a, uint64_t as, uint64_t b, uint64_t bs)
{
	return a < b + bs && b < a + as;
}

std::string hex(uint64_t v)
{
	char buf[24];
	snprintf(buf, sizeof(buf), "0x%" PRIx64, v);
	return buf;
}

} // namespace

GuestMemory::~GuestMemory()
{
	clear();
}

void GuestMemory::clear()
{
	for (const Mapped &m : regions_)
		munmap(m.map, m.mapLen);
	regions_.clear();
	lastHit_ = 0;
}

namespace {

/*
 * Seal a memfd against shrinking (see replace()). A memfd made without MFD_ALLOW_SEALING
 * (QEMU's memory-backend-memfd with seal=off) and any other file cannot be sealed: they are
 * served, and the log says that the front-end is trusted not to shrink them (it is a peer
 * the uid check let in; shrinking would crash the helper serving its own guest).
 */
void sealAgainstShrinking(int fd)
{
	int seals = fcntl(fd, F_GET_SEALS);
	if (seals >= 0 && ((seals & F_SEAL_SHRINK) || fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK) == 0))
		return;
	slirpnet_message_ratelimited("vhost-user: the guest memory file cannot be sealed against shrinking (not a "
				     "memfd, or one made without sealing); the front-end is trusted not to shrink it");
}

} // namespace

bool GuestMemory::replace(const VhostMemRegion *regions, size_t n, std::vector<UniqueFd> fds, std::string &error)
{
	if (n == 0 || n > kMaxRegions) {
		error = "memory table with " + std::to_string(n) + " regions (1 to " + std::to_string(kMaxRegions) +
			" are accepted)";
		return false;
	}
	if (fds.size() != n) {
		error = "memory table with " + std::to_string(n) + " regions but " + std::to_string(fds.size()) +
			" file descriptors";
		return false;
	}
	auto fail = [&error](size_t i, const std::string &why) {
		error = "memory region " + std::to_string(i) + ": " + why;
		return false;
	};
	constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();
	for (size_t i = 0; i < n; i++) {
		const VhostMemRegion &r = regions[i];
		if (!fds[i])
			return fail(i, "no file descriptor");
		if (r.memorySize == 0)
			return fail(i, "size 0");
		// The mapping is mmapOffset + memorySize long: it must fit size_t and off_t too.
		if (r.guestPhysAddr > kMax - r.memorySize || r.userspaceAddr > kMax - r.memorySize ||
		    r.mmapOffset > static_cast<uint64_t>(std::numeric_limits<off_t>::max()) - r.memorySize ||
		    r.mmapOffset + r.memorySize > std::numeric_limits<size_t>::max())
			return fail(i, "address + size " + hex(r.memorySize) + " overflows (guest " +
					       hex(r.guestPhysAddr) + ", front-end " + hex(r.userspaceAddr) +
					       ", offset " + hex(r.mmapOffset) + ")");
		for (size_t j = 0; j < i; j++) {
			const VhostMemRegion &o = regions[j];
			if (overlap(r.guestPhysAddr, r.memorySize, o.guestPhysAddr, o.memorySize))
				return fail(i, "guest-physical range " + hex(r.guestPhysAddr) + "+" +
						       hex(r.memorySize) + " overlaps region " + std::to_string(j));
			if (overlap(r.userspaceAddr, r.memorySize, o.userspaceAddr, o.memorySize))
				return fail(i, "front-end range " + hex(r.userspaceAddr) + "+" + hex(r.memorySize) +
						       " overlaps region " + std::to_string(j));
		}
		/*
		 * Guest RAM is a file in memory: a memfd, or a file of tmpfs (/dev/shm) or
		 * hugetlbfs (memory-backend-file). Anything else is refused: a page fault on a
		 * FUSE file waits for its daemon (the loop would block), a device may be anything.
		 */
		struct stat st;
		struct statfs sfs;
		if (fstat(fds[i].get(), &st) < 0 || fstatfs(fds[i].get(), &sfs) < 0)
			return fail(i, std::string("fstat: ") + strerror(errno));
		if (!S_ISREG(st.st_mode) || (sfs.f_type != TMPFS_MAGIC && sfs.f_type != HUGETLBFS_MAGIC))
			return fail(i, "not a memfd or a file of tmpfs or hugetlbfs");
		/*
		 * A file shorter than the region would map, but touching the part past its end
		 * raises SIGBUS: a front-end's mistake must not kill the helper. Checked now is not
		 * checked forever, so a memfd is sealed against shrinking first (QEMU's
		 * memory-backend-memfd seals its own by default; otherwise the helper adds the
		 * seal, which costs QEMU nothing: guest RAM never shrinks), then measured.
		 */
		sealAgainstShrinking(fds[i].get());
		if (fstat(fds[i].get(), &st) < 0)
			return fail(i, std::string("fstat: ") + strerror(errno));
		if (static_cast<uint64_t>(st.st_size) < r.mmapOffset + r.memorySize)
			return fail(i, "the file has " + std::to_string(st.st_size) +
					       " bytes, less than offset + size " + hex(r.mmapOffset + r.memorySize));
	}

	Mapped next[kMaxRegions];
	for (size_t i = 0; i < n; i++) {
		const VhostMemRegion &r = regions[i];
		// mmapOffset need not be page aligned: map the fd from 0 and skip the offset.
		size_t len = static_cast<size_t>(r.mmapOffset + r.memorySize);
		void *map = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED, fds[i].get(), 0);
		if (map == MAP_FAILED) {
			int err = errno;
			for (size_t j = 0; j < i; j++)
				munmap(next[j].map, next[j].mapLen);
			return fail(i, "mmap of " + hex(len) + " bytes: " + strerror(err));
		}
		next[i] = { r, static_cast<uint8_t *>(map) + r.mmapOffset, map, len };
	}

	clear();
	regions_.reserve(kMaxRegions);
	for (size_t i = 0; i < n; i++) {
		regions_.push_back(next[i]);
		g_debug("vhost memory region %zu: guest 0x%" PRIx64 " front-end 0x%" PRIx64 " size 0x%" PRIx64
			" offset 0x%" PRIx64,
			i, next[i].r.guestPhysAddr, next[i].r.userspaceAddr, next[i].r.memorySize,
			next[i].r.mmapOffset);
	}
	return true; // fds close here: the mappings keep the memory
}

uint8_t *GuestMemory::fromGuest(uint64_t gpa, uint64_t &contiguous) const
{
	size_t n = regions_.size();
	// Most lookups hit the region of the last one (a buffer, the next descriptor): try it first.
	for (size_t k = 0; k < n; k++) {
		size_t i = (lastHit_ + k) % n;
		const Mapped &m = regions_[i];
		uint64_t off = gpa - m.r.guestPhysAddr; // wraps to a large value below the region
		if (off < m.r.memorySize) {
			lastHit_ = i;
			contiguous = m.r.memorySize - off;
			return m.host + off;
		}
	}
	contiguous = 0;
	return nullptr;
}

uint8_t *GuestMemory::fromGuestRange(uint64_t gpa, uint64_t len) const
{
	if (len == 0)
		return nullptr;
	uint64_t contiguous;
	uint8_t *p = fromGuest(gpa, contiguous);
	return p && len <= contiguous ? p : nullptr;
}

uint8_t *GuestMemory::fromFrontEnd(uint64_t uaddr, uint64_t len) const
{
	if (len == 0)
		return nullptr;
	for (const Mapped &m : regions_) {
		uint64_t off = uaddr - m.r.userspaceAddr;
		if (off < m.r.memorySize && len <= m.r.memorySize - off)
			return m.host + off;
	}
	return nullptr;
}

} // namespace slirpnet
