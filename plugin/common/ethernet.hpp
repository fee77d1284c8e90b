// SPDX-License-Identifier: BSD-2-Clause
// ethernet.hpp - Ethernet, IP, TCP and UDP header sizes and a frame's EtherType, shared by libslirpnet and the helper.
#pragma once

#include <net/ethernet.h>
#include <netinet/ip.h>
#include <netinet/ip6.h>
#include <netinet/tcp.h>
#include <netinet/udp.h>

#include <cstddef>
#include <cstdint>

#include "byte_order.hpp"

namespace slirpnet {

/*
 * The system headers name the values (ETH_HLEN, ETHERTYPE_IP/IPV6/ARP, IPPROTO_TCP/UDP,
 * IP_MF/IP_DF/IP_OFFMASK, IP_MAXPACKET); these are the header sizes as size_t, so that
 * frame arithmetic reads as what it is rather than as 14 + 20 + 8.
 */
constexpr size_t kEthHeaderLen = ETH_HLEN;
constexpr size_t kIpv4MinHeaderLen = sizeof(struct ip); // without options
constexpr size_t kIpv6HeaderLen = sizeof(struct ip6_hdr); // without extension headers
constexpr size_t kTcpMinHeaderLen = sizeof(struct tcphdr); // without options
constexpr size_t kUdpHeaderLen = sizeof(struct udphdr);
static_assert(kEthHeaderLen == 14 && kIpv4MinHeaderLen == 20 && kIpv6HeaderLen == 40 && kTcpMinHeaderLen == 20 &&
	      kUdpHeaderLen == 8);

// The EtherType of a frame of at least kEthHeaderLen bytes (no VLAN tags: neither side
// makes them), in host order, to compare with ETHERTYPE_*.
inline uint16_t etherType(const uint8_t *frame)
{
	return loadBe16(frame + offsetof(struct ether_header, ether_type));
}

} // namespace slirpnet
