// SPDX-License-Identifier: BSD-2-Clause
// packet/flow_limit.cpp - max-flows=: which guest packets would open a flow libslirp cannot take any more.
#include "flow_limit.hpp"

#include <netinet/tcp.h>

#include "byte_order.hpp"
#include "checksum.hpp"
#include "ethernet.hpp"

namespace slirpnet {

namespace {
constexpr uint16_t kTftpPort = 69;
}

bool FlowLimit::udpSource(const uint8_t *frame, size_t len, const EgressPacket &p, Key &out)
{
	out = Key{};
	const uint8_t *ip = frame + p.l3;
	size_t l4;
	if (p.v6) {
		// libslirp takes no extension headers: UDP follows the fixed header.
		l4 = p.l3 + kIpv6HeaderLen;
		std::memcpy(out.addr, ip + 8, 16);
	} else {
		l4 = p.l3 + (ip[0] & 0x0fu) * 4u;
		std::memcpy(out.addr, ip + 12, 4);
	}
	if (l4 + 2 > len)
		return false;
	out.port = loadBe16(frame + l4);
	out.v6 = p.v6;
	return true;
}

bool FlowLimit::answeredByLibslirp(const EgressPacket &p) const
{
	auto is = [&p](const void *a) { return std::memcmp(p.dst, a, p.v6 ? 16 : 4) == 0; };
	const void *gw = p.v6 ? static_cast<const void *>(&addr_.gateway6) : &addr_.gateway;
	const void *dns = p.v6 ? static_cast<const void *>(&addr_.dns6) : &addr_.dns;
	if (p.proto == kEgressIcmp)
		return is(gw) || is(dns);
	if (p.proto == kEgressUdp)
		return p.port == kTftpPort && is(gw);
	return false;
}

bool FlowLimit::admits(const uint8_t *frame, size_t len, const EgressPacket &p, size_t flows) const
{
	if (max_ == 0 || flows < max_)
		return true;
	if (answeredByLibslirp(p))
		return true;
	if (p.proto == kEgressUdp) {
		Key k;
		return udpSource(frame, len, p, k) && byKey_.count(k);
	}
	return false; // a TCP SYN, an echo request that would get a socket
}

void FlowLimit::opened(const uint8_t *frame, size_t len, const EgressPacket &p, int fd)
{
	if (fd < 0 || p.proto != kEgressUdp)
		return;
	Key k;
	if (!udpSource(frame, len, p, k))
		return;
	closed(fd); // a number libslirp reused without telling (never in 4.7): forget the old key
	auto [it, inserted] = byKey_.try_emplace(k, fd);
	if (!inserted) {
		// libslirp opened a second socket for the same source (its first expired unseen):
		// the key now names the new one.
		byFd_.erase(it->second);
		it->second = fd;
	}
	byFd_[fd] = k;
}

void FlowLimit::closed(int fd)
{
	auto it = byFd_.find(fd);
	if (it == byFd_.end())
		return;
	auto k = byKey_.find(it->second);
	if (k != byKey_.end() && k->second == fd)
		byKey_.erase(k);
	byFd_.erase(it);
}

TimeWaitReaper::TimeWaitReaper() : slots_(kSlots) {}

bool TimeWaitReaper::parse(const uint8_t *f, size_t len, bool fromGuest, Segment &s)
{
	if (len < kEthHeaderLen)
		return false;
	const uint8_t *ip = f + kEthHeaderLen;
	size_t avail = len - kEthHeaderLen;
	const uint8_t *src, *dst;
	size_t addrLen, l4len;
	uint16_t type = etherType(f);
	if (type == ETHERTYPE_IP) {
		if (avail < kIpv4MinHeaderLen || (ip[0] >> 4) != 4 || ip[9] != IPPROTO_TCP)
			return false;
		size_t ihl = (ip[0] & 0x0fu) * 4u;
		size_t total = loadBe16(ip + 2);
		if (ihl < kIpv4MinHeaderLen || total < ihl || total > avail || (loadBe16(ip + 6) & 0x3fff) != 0)
			return false; // short, or a fragment
		s.v6 = false;
		s.l4 = kEthHeaderLen + ihl;
		l4len = total - ihl;
		src = ip + 12;
		dst = ip + 16;
		addrLen = 4;
	} else if (type == ETHERTYPE_IPV6) {
		if (avail < kIpv6HeaderLen || (ip[0] >> 4) != 6 || ip[6] != IPPROTO_TCP)
			return false;
		l4len = loadBe16(ip + 4);
		if (l4len > avail - kIpv6HeaderLen)
			return false;
		s.v6 = true;
		s.l4 = kEthHeaderLen + kIpv6HeaderLen;
		src = ip + 8;
		dst = ip + 24;
		addrLen = 16;
	} else {
		return false;
	}
	if (l4len < kTcpMinHeaderLen) // before reading the header: the packet may end at the IP header
		return false;
	const uint8_t *t = f + s.l4;
	size_t doff = (t[12] >> 4) * 4u;
	if (doff < kTcpMinHeaderLen || doff > l4len)
		return false;
	s.l3 = kEthHeaderLen;
	s.flags = t[13];
	s.seq = loadBe32(t + 4);
	s.ack = loadBe32(t + 8);
	s.dataLen = static_cast<uint32_t>(l4len - doff);
	// The key is (guest address, port, remote address, port) whichever way the frame goes.
	const uint8_t *gAddr = fromGuest ? src : dst, *rAddr = fromGuest ? dst : src;
	const uint8_t *gPort = fromGuest ? t : t + 2, *rPort = fromGuest ? t + 2 : t;
	std::memset(s.key, 0, sizeof s.key);
	s.key[0] = s.v6;
	std::memcpy(s.key + 1, gAddr, addrLen);
	std::memcpy(s.key + 17, gPort, 2);
	std::memcpy(s.key + 19, rAddr, addrLen);
	std::memcpy(s.key + 35, rPort, 2);
	return true;
}

TimeWaitReaper::Slot &TimeWaitReaper::slot(const uint8_t *key)
{
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < kKeyLen; i++)
		h = (h ^ key[i]) * 1099511628211ull;
	return slots_[(h ^ (h >> 32)) % kSlots];
}

void TimeWaitReaper::toGuest(const uint8_t *frame, size_t len)
{
	Segment s;
	if (!parse(frame, len, false, s) || !(s.flags & (TH_FIN | TH_SYN)))
		return;
	Slot &sl = slot(s.key);
	if (s.flags & TH_SYN) {
		if (sl.used && std::memcmp(sl.key, s.key, kKeyLen) == 0)
			sl.used = false; // a new connection on these ports
		return;
	}
	std::memcpy(sl.key, s.key, kKeyLen);
	sl.finEnd = s.seq + s.dataLen + 1;
	sl.used = true;
}

bool TimeWaitReaper::fromGuest(const uint8_t *frame, size_t len, std::vector<uint8_t> &rst)
{
	Segment s;
	if (!parse(frame, len, true, s) || !(s.flags & (TH_FIN | TH_SYN | TH_RST) || s.dataLen))
		return false;
	Slot &sl = slot(s.key);
	if (!sl.used || std::memcmp(sl.key, s.key, kKeyLen) != 0)
		return false;
	if (s.flags & (TH_SYN | TH_RST) || s.dataLen) {
		// Data after libslirp's FIN: the host only half-closed (a client's shutdown() after
		// its request) and reads what the guest sends. libslirp may still hold some of it
		// for a slow host reader, and a RST would make it drop that: this connection keeps
		// its TIME_WAIT.
		sl.used = false;
		return false;
	}
	// Only the FIN that acknowledges libslirp's: libslirp then goes to TIME_WAIT. (A FIN
	// crossing libslirp's, acking less, leaves it in CLOSING, to its own timers.)
	if (!(s.flags & TH_ACK) || s.ack != sl.finEnd)
		return false;
	sl.used = false;
	// The guest frame's own Ethernet and IP headers (its addresses, as libslirp knows the
	// connection), then a bare TCP header: RST at the sequence number after the FIN.
	size_t l3len = s.l4 - s.l3;
	rst.assign(frame, frame + s.l4 + kTcpMinHeaderLen);
	uint8_t *ip = rst.data() + s.l3;
	uint8_t *t = rst.data() + s.l4;
	if (s.v6) {
		storeBe16(ip + 4, kTcpMinHeaderLen);
	} else {
		storeBe16(ip + 2, static_cast<uint16_t>(l3len + kTcpMinHeaderLen));
		ip[10] = ip[11] = 0;
		uint16_t c = static_cast<uint16_t>(~checksumFold(checksumAdd(0, ip, l3len)));
		std::memcpy(ip + 10, &c, 2);
	}
	storeBe32(t + 4, s.seq + s.dataLen + 1);
	storeBe32(t + 8, 0);
	t[12] = 5 << 4;
	t[13] = TH_RST;
	t[14] = t[15] = t[16] = t[17] = t[18] = t[19] = 0; // window, checksum, urgent pointer
	uint8_t pseudo[8] = {};
	uint64_t sum = checksumAdd(0, s.v6 ? ip + 8 : ip + 12, s.v6 ? 32 : 8);
	if (s.v6) {
		storeBe32(pseudo, kTcpMinHeaderLen);
		pseudo[7] = IPPROTO_TCP;
		sum = checksumAdd(sum, pseudo, 8);
	} else {
		pseudo[1] = IPPROTO_TCP;
		storeBe16(pseudo + 2, kTcpMinHeaderLen);
		sum = checksumAdd(sum, pseudo, 4);
	}
	uint16_t c = static_cast<uint16_t>(~checksumFold(checksumAdd(sum, t, kTcpMinHeaderLen)));
	std::memcpy(t + 16, &c, 2);
	return true;
}

} // namespace slirpnet
