// SPDX-License-Identifier: BSD-2-Clause
// packet/flow_limit.cpp - max-flows=: which guest packets would open a flow libslirp cannot take any more.
#include "flow_limit.hpp"

#include "byte_order.hpp"
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

} // namespace slirpnet
