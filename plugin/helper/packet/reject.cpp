// SPDX-License-Identifier: BSD-2-Clause
// packet/reject.cpp - the answers to a denied packet: a TCP RST, an ICMP/ICMPv6 administratively prohibited.
#include "reject.hpp"

#include <algorithm>
#include <cstring>

#include "checksum.hpp"
#include "ethernet.hpp"

namespace slirpnet {

namespace {

constexpr uint8_t kTtl = 64;
constexpr size_t kIcmpHeaderLen = 8;
constexpr size_t kIpv6MinMtu = 1280; // an ICMPv6 error fits in it (RFC 4443 2.4 (c))

void storeChecksum(uint8_t *at, uint64_t sum)
{
	uint16_t c = static_cast<uint16_t>(~checksumFold(sum));
	std::memcpy(at, &c, 2); // the sum is in native word order: memcpy lands it in network order
}

// Ethernet: the guest frame's addresses swapped, then an IPv4 or IPv6 header.
void startFrame(const uint8_t *frame, bool v6, size_t l3len, std::vector<uint8_t> &out)
{
	out.assign(kEthHeaderLen + l3len, 0);
	std::memcpy(out.data(), frame + 6, 6);
	std::memcpy(out.data() + 6, frame, 6);
	storeBe16(out.data() + 12, v6 ? ETHERTYPE_IPV6 : ETHERTYPE_IP);
}

void ipv4Header(uint8_t *ip, size_t total, uint8_t proto, const uint8_t *src, const uint8_t *dst)
{
	ip[0] = 0x45;
	storeBe16(ip + 2, static_cast<uint16_t>(total));
	ip[8] = kTtl;
	ip[9] = proto;
	std::memcpy(ip + 12, src, 4);
	std::memcpy(ip + 16, dst, 4);
	storeChecksum(ip + 10, checksumAdd(0, ip, kIpv4MinHeaderLen));
}

void ipv6Header(uint8_t *ip, size_t payload, uint8_t proto, const uint8_t *src, const uint8_t *dst)
{
	ip[0] = 0x60;
	storeBe16(ip + 4, static_cast<uint16_t>(payload));
	ip[6] = proto;
	ip[7] = kTtl;
	std::memcpy(ip + 8, src, 16);
	std::memcpy(ip + 24, dst, 16);
}

// The transport checksum over the pseudo-header (RFC 793, RFC 8200 8.1) and l4len bytes.
void l4Checksum(const uint8_t *ip, bool v6, uint8_t proto, uint8_t *l4, size_t l4len, size_t checksumAt)
{
	uint64_t sum = checksumAdd(0, v6 ? ip + 8 : ip + 12, v6 ? 32 : 8);
	uint8_t tail[8] = {};
	if (v6) {
		storeBe32(tail, static_cast<uint32_t>(l4len));
		tail[7] = proto;
		sum = checksumAdd(sum, tail, 8);
	} else {
		tail[1] = proto;
		storeBe16(tail + 2, static_cast<uint16_t>(l4len));
		sum = checksumAdd(sum, tail, 4);
	}
	storeChecksum(l4 + checksumAt, checksumAdd(sum, l4, l4len));
}

bool buildRst(const uint8_t *frame, size_t len, const EgressPacket &p, std::vector<uint8_t> &out)
{
	const uint8_t *ip = frame + p.l3;
	size_t ihl = p.v6 ? kIpv6HeaderLen : (ip[0] & 0x0fu) * 4u;
	size_t iplen = p.v6 ? kIpv6HeaderLen + loadBe16(ip + 4) : loadBe16(ip + 2);
	const uint8_t *tcp = ip + ihl;
	if (p.l3 + ihl + kTcpMinHeaderLen > len || iplen < ihl + kTcpMinHeaderLen)
		return false;
	size_t doff = (tcp[12] >> 4) * 4u;
	size_t data = iplen > ihl + doff ? iplen - ihl - doff : 0;
	// RFC 793: a segment without ACK is answered <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>.
	uint32_t ack = loadBe32(tcp + 4) + static_cast<uint32_t>(data) + ((tcp[13] & TH_SYN) ? 1 : 0) +
		       ((tcp[13] & TH_FIN) ? 1 : 0);

	size_t hl = p.v6 ? kIpv6HeaderLen : kIpv4MinHeaderLen;
	startFrame(frame, p.v6, hl + kTcpMinHeaderLen, out);
	uint8_t *oip = out.data() + kEthHeaderLen, *otcp = oip + hl;
	const uint8_t *src = p.v6 ? ip + 8 : ip + 12;
	if (p.v6)
		ipv6Header(oip, kTcpMinHeaderLen, IPPROTO_TCP, p.dst, src);
	else
		ipv4Header(oip, hl + kTcpMinHeaderLen, IPPROTO_TCP, p.dst, src);
	std::memcpy(otcp, tcp + 2, 2); // ports swapped
	std::memcpy(otcp + 2, tcp, 2);
	storeBe32(otcp + 8, ack);
	otcp[12] = 5 << 4;
	otcp[13] = TH_RST | TH_ACK;
	l4Checksum(oip, p.v6, IPPROTO_TCP, otcp, kTcpMinHeaderLen, 16);
	return true;
}

bool buildUnreachable(const uint8_t *frame, size_t len, const EgressPacket &p, in_addr gw, const in6_addr &gw6,
		      std::vector<uint8_t> &out)
{
	const uint8_t *ip = frame + p.l3;
	size_t avail = len - p.l3;
	size_t quote;
	if (p.v6) {
		// As much of the packet as fits in the minimum MTU (RFC 4443 3.1).
		quote = std::min(
			{ avail, kIpv6HeaderLen + loadBe16(ip + 4), kIpv6MinMtu - kIpv6HeaderLen - kIcmpHeaderLen });
	} else {
		// The IP header and the first 8 bytes of its payload (RFC 792).
		size_t ihl = (ip[0] & 0x0fu) * 4u;
		quote = std::min(avail, ihl + 8);
	}
	size_t hl = p.v6 ? kIpv6HeaderLen : kIpv4MinHeaderLen;
	size_t icmpLen = kIcmpHeaderLen + quote;
	startFrame(frame, p.v6, hl + icmpLen, out);
	uint8_t *oip = out.data() + kEthHeaderLen, *icmp = oip + hl;
	const uint8_t *guest = p.v6 ? ip + 8 : ip + 12;
	if (p.v6) {
		ipv6Header(oip, icmpLen, IPPROTO_ICMPV6, gw6.s6_addr, guest);
		icmp[0] = 1; // destination unreachable
		icmp[1] = 1; // communication administratively prohibited
	} else {
		ipv4Header(oip, hl + icmpLen, IPPROTO_ICMP, reinterpret_cast<const uint8_t *>(&gw), guest);
		icmp[0] = 3; // destination unreachable
		icmp[1] = 13; // communication administratively prohibited (RFC 1812)
	}
	std::memcpy(icmp + kIcmpHeaderLen, ip, quote);
	if (p.v6)
		l4Checksum(oip, true, IPPROTO_ICMPV6, icmp, icmpLen, 2);
	else
		storeChecksum(icmp + 2, checksumAdd(0, icmp, icmpLen));
	return true;
}

} // namespace

bool buildReject(const uint8_t *frame, size_t len, const EgressPacket &p, in_addr gw, const in6_addr &gw6,
		 std::vector<uint8_t> &out)
{
	out.clear();
	// RFC 1122 3.2.2 and RFC 4443 2.4 (e): no error about a packet sent to a group.
	bool group = p.v6 ? p.dst[0] == 0xff
			  : (p.dst[0] & 0xf0) == 0xe0 || std::memcmp(p.dst, "\xff\xff\xff\xff", 4) == 0;
	if (group)
		return false;
	bool ok = p.proto == kEgressTcp ? buildRst(frame, len, p, out) : buildUnreachable(frame, len, p, gw, gw6, out);
	if (!ok)
		out.clear();
	return ok;
}

} // namespace slirpnet
