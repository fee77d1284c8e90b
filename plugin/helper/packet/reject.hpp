// SPDX-License-Identifier: BSD-2-Clause
// packet/reject.hpp - the answers to a denied packet: a TCP RST, an ICMP/ICMPv6 administratively prohibited.
#pragma once

#include <netinet/in.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "egress_policy.hpp"

namespace slirpnet {

/*
 * Build in out the frame that refuses the guest's packet p (from classifyEgress) of frame:
 * a TCP SYN gets RST+ACK from the destination it tried (what a closed port answers); UDP and
 * ICMP echo get ICMP destination unreachable, administratively prohibited (type 3 code 13,
 * ICMPv6 type 1 code 1) from the gateway (gw, gw6), the router that refused it, quoting the
 * packet as RFC 792 / RFC 4443 ask. The Ethernet addresses are the guest frame's swapped:
 * its destination is libslirp's gateway MAC, which is what libslirp itself sends from.
 * Returns false (out empty) if the frame is too short to answer or went to a multicast or
 * broadcast address (refused all the same, unanswered).
 */
bool buildReject(const uint8_t *frame, size_t len, const EgressPacket &p, in_addr gw, const in6_addr &gw6,
		 std::vector<uint8_t> &out);

} // namespace slirpnet
