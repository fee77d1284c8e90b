// SPDX-License-Identifier: BSD-2-Clause
// packet/dhcp_mtu.cpp - announces the link MTU in libslirp's DHCP replies (option 26), as passt does.
#include "packet/dhcp_mtu.hpp"

#include <cstring>

#include "byte_order.hpp"
#include "ethernet.hpp"

namespace slirpnet {

namespace {

constexpr uint16_t kBootpServerPort = 67, kBootpClientPort = 68;
constexpr size_t kBootpOptions = 236; // options start after the fixed BOOTP fields...
constexpr size_t kMagic = 4; // ...and the magic cookie 99.130.83.99
constexpr uint8_t kPad = 0, kMtu = 26, kMessageType = 53, kEnd = 255;

} // namespace

bool addDhcpMtuOption(uint8_t *frame, size_t len, uint16_t mtu)
{
	if (len < kEthHeaderLen + kIpv4MinHeaderLen || etherType(frame) != ETHERTYPE_IP)
		return false;
	uint8_t *ip = frame + kEthHeaderLen;
	size_t ihl = (ip[0] & 0x0f) * 4u;
	if ((ip[0] >> 4) != 4 || ip[9] != IPPROTO_UDP || ihl < kIpv4MinHeaderLen ||
	    (loadBe16(ip + 6) & (IP_MF | IP_OFFMASK)) != 0)
		return false; // not unfragmented UDP over IPv4
	size_t ipLen = loadBe16(ip + 2);
	if (ipLen > len - kEthHeaderLen || ipLen < ihl + kUdpHeaderLen)
		return false;
	uint8_t *udp = ip + ihl;
	if (loadBe16(udp) != kBootpServerPort || loadBe16(udp + 2) != kBootpClientPort)
		return false;
	size_t udpLen = loadBe16(udp + 4);
	if (udpLen < kUdpHeaderLen || udpLen > ipLen - ihl)
		return false;
	uint8_t *bootp = udp + kUdpHeaderLen;
	size_t bootpLen = udpLen - kUdpHeaderLen;
	static const uint8_t magic[kMagic] = { 99, 130, 83, 99 };
	if (bootpLen < kBootpOptions + kMagic || bootp[0] != 2 /* BOOTREPLY */)
		return false;
	for (size_t i = 0; i < kMagic; i++)
		if (bootp[kBootpOptions + i] != magic[i])
			return false;

	// Walk the options: find END, refuse if option 26 is there or the DHCP type is not
	// OFFER (2) or ACK (5).
	uint8_t *opt = bootp + kBootpOptions + kMagic;
	uint8_t *limit = bootp + bootpLen;
	uint8_t type = 0;
	while (opt < limit && *opt != kEnd) {
		if (*opt == kPad) {
			opt++;
			continue;
		}
		if (opt + 2 > limit || opt + 2 + opt[1] > limit)
			return false; // malformed: leave it alone
		if (opt[0] == kMtu)
			return false;
		if (opt[0] == kMessageType && opt[1] == 1)
			type = opt[2];
		opt += 2 + opt[1];
	}
	if (opt >= limit || (type != 2 && type != 5))
		return false;
	// Option 26 then END must fit in what follows END (libslirp pads its replies).
	if (opt + 5 > limit)
		return false;
	for (uint8_t *p = opt + 1; p < opt + 5; p++)
		if (*p != kPad)
			return false;
	opt[0] = kMtu;
	opt[1] = 2;
	opt[2] = static_cast<uint8_t>(mtu >> 8);
	opt[3] = static_cast<uint8_t>(mtu);
	opt[4] = kEnd;
	// No UDP checksum (zero, RFC 768): cheaper and safer than recomputing it.
	memset(udp + offsetof(struct udphdr, uh_sum), 0, sizeof(uint16_t));
	return true;
}

} // namespace slirpnet
