// SPDX-License-Identifier: BSD-2-Clause
// packet/frag_guard.hpp - keeps IPv4 fragments that would crash libslirp 4.7's reassembly away from it.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace slirpnet {

/*
 * libslirp 4.7.0 (Debian 12) crashes (SIGBUS) when the first fragment of a datagram to
 * reach ip_reass() is not the one at offset 0: a lone or early last fragment is enough,
 * from any guest. Newer libslirp rewrote ip_reass(); until then the helper only lets a
 * non-first fragment through when libslirp holds a reassembly queue for it, i.e. when the
 * offset-0 fragment of the same (src, dst, id, protocol) went in recently and the train
 * has not ended. In-order trains, which is what guests send, pass untouched; out-of-order
 * ones lose the datagram (UDP) or are retransmitted (TCP rarely fragments).
 *
 * Fixed-size table, no allocation: at most kSlots trains are tracked at once, the oldest
 * replaced first.
 */
class FragGuard
{
public:
	static constexpr size_t kSlots = 64;
	// Well under libslirp's IPFRAGTTL (60 slow ticks, 30 s), so a queue libslirp expired
	// is never assumed to exist.
	static constexpr int64_t kTtlMs = 10000;

	// true: hand the frame to libslirp; false: drop it (count it as drop_fragment).
	bool admit(const uint8_t *frame, size_t len, int64_t nowMs);

private:
	struct Train {
		uint32_t src = 0, dst = 0;
		uint16_t id = 0;
		uint8_t proto = 0;
		int64_t expiresMs = 0; // 0: free slot
	};
	Train *find(uint32_t src, uint32_t dst, uint16_t id, uint8_t proto, int64_t nowMs);

	std::array<Train, kSlots> trains_{};
};

} // namespace slirpnet
