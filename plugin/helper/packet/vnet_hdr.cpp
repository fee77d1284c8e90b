// packet/vnet_hdr.cpp - virtio-net header offloads on the plugin wire: partial checksums, TSO in, GSO out, MSS, fragments.
#include "packet/vnet_hdr.hpp"

#include <arpa/inet.h>
#include <endian.h>

#include <algorithm>
#include <cstring>

#include "byte_order.hpp"

namespace slirpnet {

namespace {

constexpr size_t kEth = 14;
constexpr uint8_t kTcp = 6;
constexpr uint8_t kTcpSyn = 0x02;
constexpr uint8_t kOptEnd = 0, kOptNop = 1, kOptMss = 2;

// The sums below are of native-order 16-bit words (RFC 1071 is byte-order independent),
// so a field stored back with memcpy lands in network order.
uint64_t addNative16(uint64_t sum, uint16_t hostValue)
{
	return sum + htons(hostValue);
}

// The TCP pseudo-header sum of the segment at t.l4 (length t.end - t.l4).
uint64_t pseudoHeaderSum(const uint8_t *frame, const TcpFrame &t)
{
	const uint8_t *ip = frame + kEth;
	uint64_t sum = t.v6 ? checksumAdd(0, ip + 8, 32) : checksumAdd(0, ip + 12, 8);
	sum = addNative16(sum, kTcp);
	return addNative16(sum, static_cast<uint16_t>(t.end - t.l4));
}

void storeChecksum(uint8_t *field, uint16_t v)
{
	memcpy(field, &v, 2);
}

// Compute the full TCP checksum of the segment at t into its header.
void setTcpChecksum(uint8_t *frame, const TcpFrame &t)
{
	storeChecksum(frame + t.l4 + 16, 0);
	uint64_t sum = checksumAdd(pseudoHeaderSum(frame, t), frame + t.l4, t.end - t.l4);
	storeChecksum(frame + t.l4 + 16, static_cast<uint16_t>(~checksumFold(sum)));
}

} // namespace

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

size_t ipPacketEnd(const uint8_t *frame, size_t len)
{
	if (len >= kEth + 20 && loadBe16(frame + 12) == 0x0800 && (frame[kEth] >> 4) == 4)
		return std::min(len, kEth + loadBe16(frame + kEth + 2));
	if (len >= kEth + 40 && loadBe16(frame + 12) == 0x86dd && (frame[kEth] >> 4) == 6)
		return std::min(len, kEth + 40 + loadBe16(frame + kEth + 4));
	return len;
}

bool completeChecksum(uint8_t *frame, size_t len, size_t start, size_t offset)
{
	if (start >= len || offset > len - start || len - start - offset < 2)
		return false;
	storeChecksum(frame + start + offset, static_cast<uint16_t>(~checksumFold(checksumAdd(0, frame + start, len - start))));
	return true;
}

bool parseTcpFrame(const uint8_t *frame, size_t len, TcpFrame &t)
{
	if (len < kEth + 20)
		return false;
	const uint8_t *ip = frame + kEth;
	uint16_t type = loadBe16(frame + 12);
	if (type == 0x0800) {
		size_t ihl = (ip[0] & 0x0f) * 4u;
		if ((ip[0] >> 4) != 4 || ihl < 20 || ip[9] != kTcp || (loadBe16(ip + 6) & 0x3fff) != 0)
			return false; // not an unfragmented TCP segment over IPv4
		size_t total = loadBe16(ip + 2);
		if (total < ihl + 20 || kEth + total > len)
			return false;
		t.v6 = false;
		t.l4 = kEth + ihl;
		t.end = kEth + total;
	} else if (type == 0x86dd) {
		if (len < kEth + 40 + 20 || (ip[0] >> 4) != 6 || ip[6] != kTcp)
			return false; // extension headers: neither libslirp nor TSO makes them
		size_t payload = loadBe16(ip + 4);
		if (payload < 20 || kEth + 40 + payload > len)
			return false;
		t.v6 = true;
		t.l4 = kEth + 40;
		t.end = kEth + 40 + payload;
	} else {
		return false;
	}
	size_t doff = (frame[t.l4 + 12] >> 4) * 4u;
	if (doff < 20 || t.l4 + doff > t.end)
		return false;
	t.payload = t.l4 + doff;
	return true;
}

bool raiseSynMss(uint8_t *frame, size_t len, uint16_t mss)
{
	TcpFrame t;
	if (!parseTcpFrame(frame, len, t) || !(frame[t.l4 + 13] & kTcpSyn))
		return false;
	for (size_t o = t.l4 + 20; o < t.payload;) {
		uint8_t kind = frame[o];
		if (kind == kOptEnd)
			break;
		if (kind == kOptNop) {
			o++;
			continue;
		}
		if (o + 1 >= t.payload || frame[o + 1] < 2 || o + frame[o + 1] > t.payload)
			return false; // malformed options: leave the segment to libslirp as it is
		if (kind == kOptMss && frame[o + 1] == 4) {
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
	size_t headers = t.payload - kEth; // IP + TCP headers
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
		hdr.csum_offset = htole16(16);
		storeChecksum(frame + t.l4 + 16, checksumFold(pseudoHeaderSum(frame, t)));
	}
	return true;
}

bool planSplit(const uint8_t *frame, size_t len, unsigned linkMtu, SplitPlan &plan)
{
	if (parseTcpFrame(frame, len, plan.t)) {
		size_t headers = plan.t.payload - kEth;
		if (linkMtu <= headers)
			return false;
		plan.tcp = true;
		plan.first = plan.t.payload;
		plan.chunk = linkMtu - headers;
		return plan.first < plan.t.end; // nothing to cut in a segment without payload
	}
	if (len < kEth + 20 || loadBe16(frame + 12) != 0x0800)
		return false;
	const uint8_t *ip = frame + kEth;
	size_t ihl = (ip[0] & 0x0f) * 4u;
	size_t total = loadBe16(ip + 2);
	if ((ip[0] >> 4) != 4 || ihl < 20 || total < ihl || kEth + total > len || (loadBe16(ip + 6) & 0x4000))
		return false; // malformed, or DF
	if (linkMtu < ihl + 8)
		return false;
	plan.ihl = ihl;
	plan.ipEnd = kEth + total;
	plan.first = kEth + ihl;
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
	storeChecksum(ip + 10, 0);
	storeChecksum(ip + 10, static_cast<uint16_t>(~checksumFold(checksumAdd(0, ip, ihl))));
}

} // namespace

size_t writeSplit(const uint8_t *frame, const SplitPlan &plan, size_t offset, size_t index, uint8_t *out)
{
	size_t end = plan.tcp ? plan.t.end : plan.ipEnd;
	size_t n = std::min(plan.chunk, end - offset);
	memcpy(out, frame, plan.first);
	memcpy(out + plan.first, frame + offset, n);
	uint8_t *ip = out + kEth;
	if (!plan.tcp) {
		uint16_t orig = loadBe16(frame + kEth + 6);
		size_t units = (orig & 0x1fff) + (offset - plan.first) / 8;
		bool more = offset + n < end || (orig & 0x2000);
		setIpv4Header(ip, plan.ihl, plan.ihl + n, loadBe16(ip + 4),
			      static_cast<uint16_t>(units | (more ? 0x2000 : 0)));
		return plan.first + n;
	}
	const TcpFrame &t = plan.t;
	if (t.v6) {
		uint16_t payload = static_cast<uint16_t>(t.payload - kEth - 40 + n);
		ip[4] = uint8_t(payload >> 8);
		ip[5] = uint8_t(payload);
	} else {
		setIpv4Header(ip, t.l4 - kEth, t.payload - kEth + n, static_cast<uint16_t>(loadBe16(ip + 4) + index),
			      loadBe16(ip + 6));
	}
	uint8_t *tcp = out + t.l4;
	storeBe32(tcp + 4, loadBe32(tcp + 4) + static_cast<uint32_t>(offset - t.payload));
	constexpr uint8_t kFin = 0x01, kPsh = 0x08, kCwr = 0x80;
	if (offset + n < t.end)
		tcp[13] &= static_cast<uint8_t>(~(kFin | kPsh)); // only the last one ends or pushes
	if (index > 0)
		tcp[13] &= static_cast<uint8_t>(~kCwr); // only the first one reports congestion
	TcpFrame seg = t;
	seg.end = t.payload + n;
	setTcpChecksum(out, seg);
	return seg.end;
}

} // namespace slirpnet
