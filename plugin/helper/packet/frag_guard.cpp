// packet/frag_guard.cpp - keeps IPv4 fragments that would crash libslirp 4.7's reassembly away from it.
#include "packet/frag_guard.hpp"
#include "byte_order.hpp"

#include <cstring>

namespace slirpnet {

constexpr size_t kEthHeader = 14;

// The checks of libslirp 4.7's ip_input(), in its order.
static bool validHeader(const uint8_t *ip, size_t avail)
{
	if ((ip[0] >> 4) != 4)
		return false;
	size_t hlen = (ip[0] & 0x0f) * 4u;
	if (hlen < 20 || hlen > avail)
		return false;
	uint32_t sum = 0;
	for (size_t i = 0; i < hlen; i += 2)
		sum += loadBe16(ip + i);
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	if (sum != 0xffff)
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
	// Only IPv4 (EtherType 0x0800) with a whole fixed header is of interest; libslirp
	// rejects shorter ones itself.
	if (len < kEthHeader + 20 || loadBe16(frame + 12) != 0x0800)
		return true;
	const uint8_t *ip = frame + kEthHeader;
	uint16_t fragField = loadBe16(ip + 6);
	bool moreFragments = fragField & 0x2000;
	uint16_t offset = fragField & 0x1fff;
	if (offset == 0 && !moreFragments)
		return true; // not a fragment

	// A fragment libslirp's ip_input() would discard before reassembly is dropped here,
	// and above all never starts a train: libslirp creates no queue for it, so the next
	// fragment would reach ip_reass() as a first arrival.
	if (!validHeader(ip, len - kEthHeader))
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
