// SPDX-License-Identifier: BSD-2-Clause
// packet/checksum.hpp - the Internet checksum (RFC 1071) of IP, TCP and UDP headers and data.
#pragma once

#include <cstddef>
#include <cstdint>

namespace slirpnet {

/*
 * RFC 1071 sum of len bytes added to sum (not folded, not complemented). The words are
 * read in native order: the folded sum is byte-order independent, so a checksum stored
 * back with memcpy lands in network order, and a header whose folded sum is 0xffff is
 * valid whichever order it was summed in.
 */
uint64_t checksumAdd(uint64_t sum, const uint8_t *p, size_t len);
// Fold a sum to 16 bits (not complemented).
uint16_t checksumFold(uint64_t sum);

} // namespace slirpnet
