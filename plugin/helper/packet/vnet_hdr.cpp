// SPDX-License-Identifier: BSD-2-Clause
// packet/vnet_hdr.cpp - TCP parsing, partial checksums, MSS, GSO marking, cutting to the link MTU.
#include "packet/vnet_hdr.hpp"

#include <arpa/inet.h>
#include <endian.h>

#include <algorithm>
#include <cstring>

#include "byte_order.hpp"
#include "ethernet.hpp"
#include "packet/checksum.hpp"

namespace slirpnet {

namespace {

// Fields of the TCP header that are rewritten here.
constexpr size_t kTcpFlags = offsetof(struct tcphdr, th_flags);
constexpr size_t kTcpCsum = offsetof(struct tcphdr, th_sum);
// <netinet/tcp.h> names the flags up to URG only.
constexpr uint8_t kTcpCwr = 0x80;

// The sums below are of native-order 16-bit words (RFC 1071 is byte-order independent),
// so a field stored back with memcpy lands in network order.
uint64_t addNative16(uint64_t sum, uint16_t hostValue)
{
	return sum + htons(hostValue);
}

// The TCP pseudo-header sum of the segment at t.l4 (length t.end - t.l4): the source and
// destination addresses, which are adjacent in both IP headers, the protocol and length.
uint64_t pseudoHeaderSum(const uint8_t *frame, const TcpFrame &t)
{
	const uint8_t *ip = frame + kEthHeaderLen;
	uint64_t sum = t.v6 ? checksumAdd(0, ip + offsetof(struct ip6_hdr, ip6_src), 2 * sizeof(struct in6_addr))
			    : checksumAdd(0, ip + offsetof(struct ip, ip_src), 2 * sizeof(struct in_addr));
	sum = addNative16(sum, IPPROTO_TCP);
	return addNative16(sum, static_cast<uint16_t>(t.end - t.l4));
}

void storeChecksum(uint8_t *field, uint16_t v)
{
	memcpy(field, &v, 2);
}

// Compute the full TCP checksum of the segment at t into its header.
void setTcpChecksum(uint8_t *frame, const TcpFrame &t)
{
	storeChecksum(frame + t.l4 + kTcpCsum, 0);
	uint64_t sum = checksumAdd(pseudoHeaderSum(frame, t), frame + t.l4, t.end - t.l4);
	storeChecksum(frame + t.l4 + kTcpCsum, static_cast<uint16_t>(~checksumFold(sum)));
}

} // namespace

size_t ipPacketEnd(const uint8_t *frame, size_t len)
{
	if (len < kEthHeaderLen + kIpv4MinHeaderLen)
		return len;
	const uint8_t *ip = frame + kEthHeaderLen;
	if (etherType(frame) == ETHERTYPE_IP && (ip[0] >> 4) == 4)
		return std::min(len, kEthHeaderLen + loadBe16(ip + 2));
	if (len >= kEthHeaderLen + kIpv6HeaderLen && etherType(frame) == ETHERTYPE_IPV6 && (ip[0] >> 4) == 6)
		return std::min(len, kEthHeaderLen + kIpv6HeaderLen + loadBe16(ip + 4));
	return len;
}

bool completeChecksum(uint8_t *frame, size_t len, size_t start, size_t offset)
{
	if (start >= len || offset > len - start || len - start - offset < 2)
		return false;
	storeChecksum(frame + start + offset,
		      static_cast<uint16_t>(~checksumFold(checksumAdd(0, frame + start, len - start))));
	return true;
}

bool parseTcpFrame(const uint8_t *frame, size_t len, TcpFrame &t)
{
	if (len < kEthHeaderLen + kIpv4MinHeaderLen)
		return false;
	const uint8_t *ip = frame + kEthHeaderLen;
	uint16_t type = etherType(frame);
	if (type == ETHERTYPE_IP) {
		size_t ihl = (ip[0] & 0x0f) * 4u;
		if ((ip[0] >> 4) != 4 || ihl < kIpv4MinHeaderLen || ip[9] != IPPROTO_TCP ||
		    (loadBe16(ip + 6) & (IP_MF | IP_OFFMASK)) != 0)
			return false; // not an unfragmented TCP segment over IPv4
		size_t total = loadBe16(ip + 2);
		if (total < ihl + kTcpMinHeaderLen || kEthHeaderLen + total > len)
			return false;
		t.v6 = false;
		t.l4 = kEthHeaderLen + ihl;
		t.end = kEthHeaderLen + total;
	} else if (type == ETHERTYPE_IPV6) {
		if (len < kEthHeaderLen + kIpv6HeaderLen + kTcpMinHeaderLen || (ip[0] >> 4) != 6 ||
		    ip[6] != IPPROTO_TCP)
			return false; // extension headers: neither libslirp nor TSO makes them
		size_t payload = loadBe16(ip + 4);
		if (payload < kTcpMinHeaderLen || kEthHeaderLen + kIpv6HeaderLen + payload > len)
			return false;
		t.v6 = true;
		t.l4 = kEthHeaderLen + kIpv6HeaderLen;
		t.end = kEthHeaderLen + kIpv6HeaderLen + payload;
	} else {
		return false;
	}
	size_t doff = (frame[t.l4 + 12] >> 4) * 4u;
	if (doff < kTcpMinHeaderLen || t.l4 + doff > t.end)
		return false;
	t.payload = t.l4 + doff;
	return true;
}

bool raiseSynMss(uint8_t *frame, size_t len, uint16_t mss)
{
	TcpFrame t;
	if (!parseTcpFrame(frame, len, t) || !(frame[t.l4 + kTcpFlags] & TH_SYN))
		return false;
	for (size_t o = t.l4 + kTcpMinHeaderLen; o < t.payload;) {
		uint8_t kind = frame[o];
		if (kind == TCPOPT_EOL)
			break;
		if (kind == TCPOPT_NOP) {
			o++;
			continue;
		}
		if (o + 1 >= t.payload || frame[o + 1] < 2 || o + frame[o + 1] > t.payload)
			return false; // malformed options: leave the segment to libslirp as it is
		if (kind == TCPOPT_MAXSEG && frame[o + 1] == TCPOLEN_MAXSEG) {
			if (loadBe16(frame + o + 2) >= mss)
				return false;
			frame[o + 2] = static_cast<uint8_t>(mss >> 8);
			frame[o + 3] = static_cast<uint8_t>(mss);
			// A SYN is small: recompute rather than patch (the option may sit at an odd offset).
			setTcpChecksum(frame, t);
			return true;
		}
		o += frame[o + 1];
	}
	return false;
}

bool markGso(uint8_t *frame, size_t len, unsigned linkMtu, bool partialCsum, VnetHdr &hdr)
{
	TcpFrame t;
	if (!parseTcpFrame(frame, len, t))
		return false;
	size_t headers = t.payload - kEthHeaderLen; // IP + TCP headers
	if (linkMtu <= headers)
		return false;
	size_t mss = linkMtu - headers;
	if (t.end - t.payload <= mss)
		return false; // fits the link as it is
	hdr.gso_type = t.v6 ? kGsoTcpv6 : kGsoTcpv4;
	hdr.gso_size = htole16(static_cast<uint16_t>(mss));
	hdr.hdr_len = htole16(static_cast<uint16_t>(t.payload));
	if (partialCsum) {
		hdr.flags = kVnetNeedsCsum;
		hdr.csum_start = htole16(static_cast<uint16_t>(t.l4));
		hdr.csum_offset = htole16(static_cast<uint16_t>(kTcpCsum));
		storeChecksum(frame + t.l4 + kTcpCsum, checksumFold(pseudoHeaderSum(frame, t)));
	}
	return true;
}

bool planSplit(const uint8_t *frame, size_t len, unsigned linkMtu, SplitPlan &plan)
{
	if (parseTcpFrame(frame, len, plan.t)) {
		size_t headers = plan.t.payload - kEthHeaderLen;
		if (linkMtu <= headers)
			return false;
		plan.tcp = true;
		plan.first = plan.t.payload;
		plan.chunk = linkMtu - headers;
		return plan.first < plan.t.end; // nothing to cut in a segment without payload
	}
	if (len < kEthHeaderLen + kIpv4MinHeaderLen || etherType(frame) != ETHERTYPE_IP)
		return false;
	const uint8_t *ip = frame + kEthHeaderLen;
	size_t ihl = (ip[0] & 0x0f) * 4u;
	size_t total = loadBe16(ip + 2);
	if ((ip[0] >> 4) != 4 || ihl < kIpv4MinHeaderLen || total < ihl || kEthHeaderLen + total > len ||
	    (loadBe16(ip + 6) & IP_DF))
		return false; // malformed, or DF
	if (linkMtu < ihl + 8)
		return false;
	plan.ihl = ihl;
	plan.ipEnd = kEthHeaderLen + total;
	plan.first = kEthHeaderLen + ihl;
	plan.chunk = (linkMtu - ihl) / 8 * 8; // fragment offsets count 8-byte units
	return plan.first < plan.ipEnd;
}

namespace {

void setIpv4Header(uint8_t *ip, size_t ihl, size_t total, uint16_t id, uint16_t frag)
{
	ip[2] = uint8_t(total >> 8);
	ip[3] = uint8_t(total);
	ip[4] = uint8_t(id >> 8);
	ip[5] = uint8_t(id);
	ip[6] = uint8_t(frag >> 8);
	ip[7] = uint8_t(frag);
	uint8_t *sum = ip + offsetof(struct ip, ip_sum);
	storeChecksum(sum, 0);
	storeChecksum(sum, static_cast<uint16_t>(~checksumFold(checksumAdd(0, ip, ihl))));
}

} // namespace

size_t writeSplit(const uint8_t *frame, const SplitPlan &plan, size_t offset, size_t index, uint8_t *out)
{
	size_t end = plan.tcp ? plan.t.end : plan.ipEnd;
	size_t n = std::min(plan.chunk, end - offset);
	memcpy(out, frame, plan.first);
	memcpy(out + plan.first, frame + offset, n);
	uint8_t *ip = out + kEthHeaderLen;
	if (!plan.tcp) {
		uint16_t orig = loadBe16(frame + kEthHeaderLen + 6);
		size_t units = (orig & IP_OFFMASK) + (offset - plan.first) / 8;
		bool more = offset + n < end || (orig & IP_MF);
		setIpv4Header(ip, plan.ihl, plan.ihl + n, loadBe16(ip + 4),
			      static_cast<uint16_t>(units | (more ? IP_MF : 0)));
		return plan.first + n;
	}
	const TcpFrame &t = plan.t;
	if (t.v6) {
		uint16_t payload = static_cast<uint16_t>(t.payload - kEthHeaderLen - kIpv6HeaderLen + n);
		ip[4] = uint8_t(payload >> 8);
		ip[5] = uint8_t(payload);
	} else {
		setIpv4Header(ip, t.l4 - kEthHeaderLen, t.payload - kEthHeaderLen + n,
			      static_cast<uint16_t>(loadBe16(ip + 4) + index), loadBe16(ip + 6));
	}
	uint8_t *tcp = out + t.l4;
	storeBe32(tcp + 4, loadBe32(tcp + 4) + static_cast<uint32_t>(offset - t.payload));
	if (offset + n < t.end)
		tcp[kTcpFlags] &= static_cast<uint8_t>(~(TH_FIN | TH_PUSH)); // only the last one ends or pushes
	if (index > 0)
		tcp[kTcpFlags] &= static_cast<uint8_t>(~kTcpCwr); // only the first one reports congestion
	TcpFrame seg = t;
	seg.end = t.payload + n;
	setTcpChecksum(out, seg);
	return seg.end;
}

} // namespace slirpnet
