// SPDX-License-Identifier: BSD-2-Clause
// packet/frag_guard.cpp - keeps IPv4 fragments that would crash libslirp 4.7's reassembly away from it.
#include "packet/frag_guard.hpp"

#include "byte_order.hpp"
#include "ethernet.hpp"
#include "packet/checksum.hpp"

namespace slirpnet {

// The checks of libslirp 4.7's ip_input(), in its order.
static bool validHeader(const uint8_t *ip, size_t avail)
{
	if ((ip[0] >> 4) != 4)
		return false;
	size_t hlen = (ip[0] & 0x0f) * 4u;
	if (hlen < kIpv4MinHeaderLen || hlen > avail)
		return false;
	if (checksumFold(checksumAdd(0, ip, hlen)) != 0xffff) // with its checksum, a good header sums to ~0
		return false;
	size_t total = loadBe16(ip + 2);
	if (total < hlen || avail < total)
		return false;
	return ip[8] != 0; // TTL 0: libslirp answers "time exceeded" and drops it
}

FragGuard::Train *FragGuard::find(uint32_t src, uint32_t dst, uint16_t id, uint8_t proto, int64_t nowMs)
{
	for (auto &t : trains_)
		if (t.expiresMs > nowMs && t.src == src && t.dst == dst && t.id == id && t.proto == proto)
			return &t;
	return nullptr;
}

bool FragGuard::admit(const uint8_t *frame, size_t len, int64_t nowMs)
{
	// Only IPv4 with a whole fixed header is of interest; libslirp rejects shorter ones
	// itself.
	if (len < kEthHeaderLen + kIpv4MinHeaderLen || etherType(frame) != ETHERTYPE_IP)
		return true;
	const uint8_t *ip = frame + kEthHeaderLen;
	uint16_t fragField = loadBe16(ip + 6);
	bool moreFragments = fragField & IP_MF;
	uint16_t offset = fragField & IP_OFFMASK;
	if (offset == 0 && !moreFragments)
		return true; // not a fragment

	// A fragment libslirp's ip_input() would discard before reassembly is dropped here,
	// and above all never starts a train: libslirp creates no queue for it, so the next
	// fragment would reach ip_reass() as a first arrival.
	if (!validHeader(ip, len - kEthHeaderLen))
		return false;

	uint32_t src = loadBe32(ip + 12), dst = loadBe32(ip + 16);
	uint16_t id = loadBe16(ip + 4);
	uint8_t proto = ip[9];
	Train *t = find(src, dst, id, proto, nowMs);
	if (offset == 0) {
		// A train starts: libslirp creates its queue from this fragment.
		if (!t) {
			t = &trains_[0];
			for (auto &slot : trains_)
				if (slot.expiresMs < t->expiresMs)
					t = &slot;
			*t = Train{ src, dst, id, proto, 0 };
		}
		t->expiresMs = nowMs + kTtlMs;
		return true;
	}
	if (!t)
		return false;
	if (!moreFragments)
		t->expiresMs = 0; // the last one: libslirp may free the queue after it
	return true;
}

} // namespace slirpnet
