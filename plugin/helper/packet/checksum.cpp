// SPDX-License-Identifier: BSD-2-Clause
// packet/checksum.cpp - the Internet checksum (RFC 1071) of IP, TCP and UDP headers and data.
#include "packet/checksum.hpp"

#include <cstring>

namespace slirpnet {

uint64_t checksumAdd(uint64_t sum, const uint8_t *p, size_t len)
{
	// 32-bit halves of 64-bit loads into a 64-bit accumulator: no carry is lost for any
	// length below 2^32 bytes.
	while (len >= 8) {
		uint64_t w;
		memcpy(&w, p, 8);
		sum += (w & 0xffffffffu) + (w >> 32);
		p += 8;
		len -= 8;
	}
	if (len >= 4) {
		uint32_t w;
		memcpy(&w, p, 4);
		sum += w;
		p += 4;
		len -= 4;
	}
	if (len >= 2) {
		uint16_t w;
		memcpy(&w, p, 2);
		sum += w;
		p += 2;
		len -= 2;
	}
	if (len) {
		uint16_t w = 0; // the odd byte, padded with a zero byte after it
		memcpy(&w, p, 1);
		sum += w;
	}
	return sum;
}

uint16_t checksumFold(uint64_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return static_cast<uint16_t>(sum);
}

} // namespace slirpnet
