// SPDX-License-Identifier: BSD-2-Clause
// slirp_driver_test.cpp - the libslirp bridge: callbacks, timers on a fake clock, sockets through GLib.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <malloc.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "slirp_driver.hpp"
#include "unique_fd.hpp"

using namespace slirpnet;

namespace {

const uint8_t kGuestMac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };
const uint8_t kGuestIp[4] = { 10, 0, 2, 15 };
const uint8_t kGatewayIp[4] = { 10, 0, 2, 2 };

SlirpConfig config(bool ipv6)
{
	SlirpConfig c{};
	c.version = 4;
	c.in_enabled = true;
	inet_pton(AF_INET, "10.0.2.0", &c.vnetwork);
	inet_pton(AF_INET, "255.255.255.0", &c.vnetmask);
	inet_pton(AF_INET, "10.0.2.2", &c.vhost);
	inet_pton(AF_INET, "10.0.2.15", &c.vdhcp_start);
	inet_pton(AF_INET, "10.0.2.3", &c.vnameserver);
	c.in6_enabled = ipv6;
	inet_pton(AF_INET6, "fec0::", &c.vprefix_addr6);
	c.vprefix_len = 64;
	inet_pton(AF_INET6, "fec0::2", &c.vhost6);
	inet_pton(AF_INET6, "fec0::3", &c.vnameserver6);
	c.if_mtu = 1500;
	c.if_mru = 1500;
	return c;
}

std::vector<uint8_t> arpWhoHasGateway()
{
	std::vector<uint8_t> f = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
	f.insert(f.end(), kGuestMac, kGuestMac + 6);
	f.insert(f.end(), { 0x08, 0x06, 0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01 });
	f.insert(f.end(), kGuestMac, kGuestMac + 6);
	f.insert(f.end(), kGuestIp, kGuestIp + 4);
	f.insert(f.end(), { 0, 0, 0, 0, 0, 0 });
	f.insert(f.end(), kGatewayIp, kGatewayIp + 4);
	return f;
}

uint16_t ipChecksum(const uint8_t *p, size_t n)
{
	uint32_t sum = 0;
	for (size_t i = 0; i + 1 < n; i += 2)
		sum += (p[i] << 8) | p[i + 1];
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return static_cast<uint16_t>(~sum);
}

// Guest 10.0.2.15:40000 -> 10.0.2.2:port, UDP checksum 0 (allowed for IPv4).
std::vector<uint8_t> udpToGateway(uint16_t port, const std::string &payload)
{
	std::vector<uint8_t> f = { 0x52, 0x55, 0x0a, 0x00, 0x02, 0x02 };
	f.insert(f.end(), kGuestMac, kGuestMac + 6);
	f.insert(f.end(), { 0x08, 0x00 });
	size_t ipLen = 20 + 8 + payload.size();
	uint8_t ip[20] = { 0x45, 0, uint8_t(ipLen >> 8), uint8_t(ipLen), 0, 1, 0x40, 0, 64, 17, 0, 0 };
	memcpy(ip + 12, kGuestIp, 4);
	memcpy(ip + 16, kGatewayIp, 4);
	uint16_t cs = ipChecksum(ip, 20);
	ip[10] = uint8_t(cs >> 8);
	ip[11] = uint8_t(cs);
	f.insert(f.end(), ip, ip + 20);
	size_t udpLen = 8 + payload.size();
	f.insert(f.end(),
		 { 0x9c, 0x40, uint8_t(port >> 8), uint8_t(port), uint8_t(udpLen >> 8), uint8_t(udpLen), 0, 0 });
	f.insert(f.end(), payload.begin(), payload.end());
	return f;
}

// Guest 10.0.2.15:40001 -> 10.0.2.2:port, a segment without data (with its TCP checksum:
// libslirp checks it).
std::vector<uint8_t> tcpToGateway(uint16_t port, uint32_t seq, uint32_t ack, uint8_t flags, uint16_t sport = 40001)
{
	std::vector<uint8_t> f = { 0x52, 0x55, 0x0a, 0x00, 0x02, 0x02 };
	f.insert(f.end(), kGuestMac, kGuestMac + 6);
	f.insert(f.end(), { 0x08, 0x00 });
	uint8_t ip[20] = { 0x45, 0, 0, 40, 0, 2, 0x40, 0, 64, 6, 0, 0 };
	memcpy(ip + 12, kGuestIp, 4);
	memcpy(ip + 16, kGatewayIp, 4);
	uint16_t cs = ipChecksum(ip, 20);
	ip[10] = uint8_t(cs >> 8);
	ip[11] = uint8_t(cs);
	f.insert(f.end(), ip, ip + 20);
	uint8_t tcp[20] = { uint8_t(sport >> 8),
			    uint8_t(sport),
			    uint8_t(port >> 8),
			    uint8_t(port),
			    uint8_t(seq >> 24),
			    uint8_t(seq >> 16),
			    uint8_t(seq >> 8),
			    uint8_t(seq),
			    uint8_t(ack >> 24),
			    uint8_t(ack >> 16),
			    uint8_t(ack >> 8),
			    uint8_t(ack),
			    0x50,
			    flags,
			    0xff,
			    0xff };
	// Pseudo-header (addresses, protocol, length), then the header.
	std::vector<uint8_t> sum(ip + 12, ip + 20);
	sum.insert(sum.end(), { 0, 6, 0, 20 });
	sum.insert(sum.end(), tcp, tcp + 20);
	cs = ipChecksum(sum.data(), sum.size());
	tcp[16] = uint8_t(cs >> 8);
	tcp[17] = uint8_t(cs);
	f.insert(f.end(), tcp, tcp + 20);
	return f;
}

// The TCP flags of a frame to the guest, or -1 if it is no TCP segment.
int tcpFlags(const std::vector<uint8_t> &f)
{
	if (f.size() < 14 + 20 + 20 || f[12] != 0x08 || f[13] != 0x00 || f[14 + 9] != 6)
		return -1;
	return f[14 + 20 + 13];
}

UniqueFd loopbackSocket(int type, uint16_t &port)
{
	UniqueFd s(socket(AF_INET, type, 0));
	sockaddr_in sa{};
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	bind(s.get(), reinterpret_cast<sockaddr *>(&sa), sizeof(sa));
	socklen_t sl = sizeof(sa);
	getsockname(s.get(), reinterpret_cast<sockaddr *>(&sa), &sl);
	port = ntohs(sa.sin_port);
	return s;
}

struct Fixture : ::testing::Test {
	GMainContextPtr ctx{ g_main_context_new() };
	int64_t fakeNs = 1'000'000'000'000; // an arbitrary start
	std::vector<std::vector<uint8_t>> out;
	std::unique_ptr<SlirpDriver> make(bool ipv6, bool fakeClock)
	{
		std::string err;
		auto d = SlirpDriver::create(
			config(ipv6), ctx.get(),
			[this](const uint8_t *f, size_t n) {
				out.emplace_back(f, f + n);
				return static_cast<ssize_t>(n);
			},
			err, fakeClock ? SlirpDriver::Clock([this] { return fakeNs; }) : nullptr);
		EXPECT_TRUE(d) << err;
		return d;
	}
};

} // namespace

TEST_F(Fixture, ArpReplyGoesToTheSink)
{
	auto d = make(false, true);
	auto arp = arpWhoHasGateway();
	d->input(arp.data(), arp.size());
	ASSERT_EQ(out.size(), 1u);
	const auto &r = out[0];
	ASSERT_GE(r.size(), 42u);
	EXPECT_EQ(memcmp(r.data(), kGuestMac, 6), 0);
	EXPECT_EQ(r[21], 2); // ARP reply
	EXPECT_EQ(memcmp(r.data() + 28, kGatewayIp, 4), 0);
	const uint8_t gwMac[6] = { 0x52, 0x55, 0x0a, 0x00, 0x02, 0x02 };
	EXPECT_EQ(memcmp(r.data() + 22, gwMac, 6), 0);
}

// The RA timer is created inside slirp_new(), before it returns: init_completed and
// timer_new_opaque must cope. Driving the fake clock past it makes the RA come out.
TEST_F(Fixture, RouterAdvertisementTimerOnFakeClock)
{
	auto d = make(true, true);
	ASSERT_GE(d->timerCount(), 1u);
	int64_t due = d->nextTimerMs();
	ASSERT_GT(due, d->nowMs());
	EXPECT_EQ(d->runDueTimers(), 0); // not yet
	EXPECT_TRUE(out.empty());

	fakeNs = due * 1000000;
	// One non-blocking iteration of the context: prepare sees the due timer (timeout 0),
	// dispatch fires it.
	g_main_context_iteration(ctx.get(), FALSE);
	ASSERT_FALSE(out.empty());
	const auto &ra = out.back();
	ASSERT_GE(ra.size(), 14u + 40 + 1);
	EXPECT_EQ(ra[12], 0x86);
	EXPECT_EQ(ra[13], 0xdd);
	EXPECT_EQ(ra[14 + 6], 58); // ICMPv6
	EXPECT_EQ(ra[14 + 40], 134); // Router Advertisement
	EXPECT_GT(d->nextTimerMs(), due); // re-armed by libslirp
}

TEST_F(Fixture, NoTimersWithoutIpv6)
{
	auto d = make(false, true);
	EXPECT_EQ(d->nextTimerMs(), -1);
}

// A UDP datagram to the gateway reaches a real socket on 127.0.0.1, and the reply comes
// back through libslirp's socket, polled by the GSource.
TEST_F(Fixture, UdpThroughHostLoopback)
{
	UniqueFd server(socket(AF_INET, SOCK_DGRAM, 0));
	sockaddr_in sa{};
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ASSERT_EQ(bind(server.get(), reinterpret_cast<sockaddr *>(&sa), sizeof(sa)), 0);
	socklen_t sl = sizeof(sa);
	getsockname(server.get(), reinterpret_cast<sockaddr *>(&sa), &sl);
	uint16_t port = ntohs(sa.sin_port);

	auto d = make(false, false);
	auto arp = arpWhoHasGateway(); // teaches libslirp the guest's MAC
	d->input(arp.data(), arp.size());
	out.clear();
	auto udp = udpToGateway(port, "hello slirp");
	d->input(udp.data(), udp.size());

	char buf[64];
	sockaddr_in from{};
	socklen_t fl = sizeof(from);
	ssize_t n = recvfrom(server.get(), buf, sizeof(buf), 0, reinterpret_cast<sockaddr *>(&from), &fl);
	ASSERT_EQ(n, 11);
	EXPECT_EQ(std::string(buf, n), "hello slirp");
	ASSERT_EQ(sendto(server.get(), "pong", 4, 0, reinterpret_cast<sockaddr *>(&from), fl), 4);

	gint64 deadline = g_get_monotonic_time() + 5 * G_USEC_PER_SEC;
	while (out.empty() && g_get_monotonic_time() < deadline)
		g_main_context_iteration(ctx.get(), TRUE);
	ASSERT_EQ(out.size(), 1u);
	const auto &r = out[0];
	ASSERT_EQ(r.size(), 14u + 20 + 8 + 4);
	EXPECT_EQ(memcmp(r.data(), kGuestMac, 6), 0);
	EXPECT_EQ(memcmp(r.data() + 14 + 12, kGatewayIp, 4), 0); // from the gateway
	EXPECT_EQ(memcmp(r.data() + 14 + 16, kGuestIp, 4), 0);
	EXPECT_EQ((r[14 + 20] << 8) | r[14 + 21], port);
	EXPECT_EQ(memcmp(r.data() + 14 + 28, "pong", 4), 0);
}

TEST_F(Fixture, DestroyDetachesTheSource)
{
	auto d = make(true, true);
	d.reset();
	EXPECT_FALSE(g_main_context_pending(ctx.get()));
	g_main_context_iteration(ctx.get(), FALSE);
}

// A guest TCP connection to the host is reset (the host side sees ECONNRESET), the RST
// libslirp sends the guest comes while resetSettling(), and a UDP flow and a hostfwd
// listener are left alone.
TEST_F(Fixture, ResetGuestConnectionsResetsTcpOnly)
{
	uint16_t tcpPort, udpPort;
	UniqueFd server = loopbackSocket(SOCK_STREAM, tcpPort);
	ASSERT_EQ(listen(server.get(), 4), 0);
	UniqueFd udpServer = loopbackSocket(SOCK_DGRAM, udpPort);
	auto d = make(false, false);
	in_addr lo{ htonl(INADDR_LOOPBACK) }, guest{};
	inet_pton(AF_INET, "10.0.2.15", &guest);
	ASSERT_EQ(slirp_add_hostfwd(d->slirp(), 0, lo, 0, guest, 22), 0);
	EXPECT_EQ(d->resetGuestConnections(), 0u); // only the listener so far
	EXPECT_FALSE(d->resetSettling());

	auto arp = arpWhoHasGateway();
	d->input(arp.data(), arp.size());
	auto udp = udpToGateway(udpPort, "flow");
	d->input(udp.data(), udp.size());
	out.clear();
	const uint32_t iss = 0x1000;
	auto syn = tcpToGateway(tcpPort, iss, 0, 0x02);
	d->input(syn.data(), syn.size());
	// libslirp connects to the host, then answers the guest (SYN-ACK); the guest's ACK
	// makes the connection established (before that libslirp does not poll its socket).
	const std::vector<uint8_t> *synAck = nullptr;
	gint64 deadline = g_get_monotonic_time() + 5 * G_USEC_PER_SEC;
	while (!synAck && g_get_monotonic_time() < deadline) {
		g_main_context_iteration(ctx.get(), FALSE);
		for (const auto &f : out)
			if (tcpFlags(f) == 0x12)
				synAck = &f;
	}
	ASSERT_TRUE(synAck);
	const uint8_t *t = synAck->data() + 14 + 20;
	uint32_t theirSeq = (uint32_t(t[4]) << 24) | (t[5] << 16) | (t[6] << 8) | t[7];
	auto ack = tcpToGateway(tcpPort, iss + 1, theirSeq + 1, 0x10);
	d->input(ack.data(), ack.size());
	d->flushInput();
	UniqueFd accepted(accept4(server.get(), nullptr, nullptr, SOCK_NONBLOCK));
	ASSERT_TRUE(accepted);
	for (int i = 0; i < 5; i++)
		g_main_context_iteration(ctx.get(), FALSE);

	out.clear();
	EXPECT_EQ(d->resetGuestConnections(), 1u);
	EXPECT_TRUE(d->resetSettling());
	char c;
	EXPECT_EQ(recv(accepted.get(), &c, 1, 0), -1);
	EXPECT_EQ(errno, ECONNRESET);
	deadline = g_get_monotonic_time() + 5 * G_USEC_PER_SEC;
	while (d->resetSettling() && g_get_monotonic_time() < deadline)
		g_main_context_iteration(ctx.get(), FALSE);
	ASSERT_FALSE(d->resetSettling());
	size_t settledAt = out.size();
	bool rst = false;
	for (const auto &f : out)
		if (tcpFlags(f) >= 0 && (tcpFlags(f) & 0x04))
			rst = true;
	EXPECT_TRUE(rst) << "libslirp sent the guest no RST while the reset settled";
	EXPECT_EQ(d->resetGuestConnections(), 0u); // libslirp closed it: nothing left
	EXPECT_EQ(out.size(), settledAt);
}

// Run the context until a TCP segment with these flags comes out; nullptr after 5 s.
static const std::vector<uint8_t> *awaitTcp(GMainContext *ctx, const std::vector<std::vector<uint8_t>> &out, int flags)
{
	gint64 deadline = g_get_monotonic_time() + 5 * G_USEC_PER_SEC;
	while (g_get_monotonic_time() < deadline) {
		for (const auto &f : out)
			if (tcpFlags(f) == flags)
				return &f;
		g_main_context_iteration(ctx, FALSE);
	}
	return nullptr;
}

static uint32_t tcpSeq(const std::vector<uint8_t> &f)
{
	const uint8_t *t = f.data() + 14 + 20;
	return (uint32_t(t[4]) << 24) | (t[5] << 16) | (t[6] << 8) | t[7];
}

// Flows: the sockets a guest packet opened (UDP, TCP) and the connections a hostfwd
// listener accepted count; the listener does not. A repeated datagram of a UDP flow opens
// nothing. At the limit the listener is not polled (the host's connection waits in its
// backlog); below it, it is accepted and counted. A flow libslirp frees is reported.
TEST_F(Fixture, FlowsCountGuestSocketsAndAcceptedConnections)
{
	uint16_t tcpPort, udpPort;
	UniqueFd server = loopbackSocket(SOCK_STREAM, tcpPort);
	ASSERT_EQ(listen(server.get(), 4), 0);
	UniqueFd udpServer = loopbackSocket(SOCK_DGRAM, udpPort);
	std::vector<int> closed; // outlives d, whose destruction reports the flows it frees
	auto d = make(false, false);
	d->setFlowClosed([&closed](int fd) { closed.push_back(fd); });
	in_addr lo{ htonl(INADDR_LOOPBACK) }, guest{};
	inet_pton(AF_INET, "10.0.2.15", &guest);
	uint16_t fwdPort;
	{
		UniqueFd probe = loopbackSocket(SOCK_STREAM, fwdPort); // a free port, released below
	}
	ASSERT_EQ(slirp_add_hostfwd(d->slirp(), 0, lo, fwdPort, guest, 22), 0);
	for (int i = 0; i < 3; i++)
		g_main_context_iteration(ctx.get(), FALSE);
	EXPECT_EQ(d->flowCount(), 0u); // the listener is no flow

	auto arp = arpWhoHasGateway();
	d->input(arp.data(), arp.size());
	EXPECT_EQ(d->lastInputFlow(), -1);
	// libslirp reads its clock (curtime) only when it polls: without this poll the UDP
	// flow would get an expiry in the past and be freed at the next fill.
	d->flushInput();
	auto udp = udpToGateway(udpPort, "flow");
	d->input(udp.data(), udp.size());
	int udpFd = d->lastInputFlow();
	EXPECT_GE(udpFd, 0);
	EXPECT_EQ(d->flowCount(), 1u);
	d->input(udp.data(), udp.size()); // same source port: the same flow
	EXPECT_EQ(d->lastInputFlow(), -1);
	EXPECT_EQ(d->flowCount(), 1u);

	out.clear();
	auto syn = tcpToGateway(tcpPort, 0x1000, 0, 0x02);
	d->input(syn.data(), syn.size());
	int tcpFd = d->lastInputFlow();
	EXPECT_GE(tcpFd, 0);
	EXPECT_NE(tcpFd, udpFd);
	EXPECT_EQ(d->flowCount(), 2u);

	for (int i = 0; i < 5; i++)
		g_main_context_iteration(ctx.get(), FALSE);
	EXPECT_EQ(d->flowCount(), 2u);
	// At the limit: a host connection to the hostfwd port is not accepted.
	d->setMaxFlows(2);
	out.clear();
	UniqueFd client(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0));
	sockaddr_in fa{};
	fa.sin_family = AF_INET;
	fa.sin_addr = lo;
	fa.sin_port = htons(fwdPort);
	connect(client.get(), reinterpret_cast<sockaddr *>(&fa), sizeof fa);
	gint64 until = g_get_monotonic_time() + G_USEC_PER_SEC / 2;
	while (g_get_monotonic_time() < until)
		g_main_context_iteration(ctx.get(), FALSE);
	for (const auto &f : out)
		EXPECT_NE(tcpFlags(f), 0x02) << "a hostfwd connection was accepted past the flow limit";

	// Below it: accepted, libslirp's SYN to the guest; once the guest answers, it is polled
	// and counted (4.7 announced it as fd -1).
	d->setMaxFlows(3);
	g_main_context_wakeup(ctx.get());
	const auto *guestSyn = awaitTcp(ctx.get(), out, 0x02);
	ASSERT_TRUE(guestSyn);
	uint16_t fwdSport = (guestSyn->at(14 + 20) << 8) | guestSyn->at(14 + 21);
	auto synAck = tcpToGateway(fwdSport, 0x5000, tcpSeq(*guestSyn) + 1, 0x12, 22);
	d->input(synAck.data(), synAck.size());
	d->flushInput();
	for (int i = 0; i < 5; i++)
		g_main_context_iteration(ctx.get(), FALSE);
	EXPECT_EQ(d->flowCount(), 3u);
	EXPECT_TRUE(closed.empty());

	// The guest's TCP connection (still in SYN_SENT to the host: never completed) is
	// reset away: libslirp frees it and reports its fd.
	auto rst = tcpToGateway(tcpPort, 0x1001, 0, 0x04);
	d->input(rst.data(), rst.size());
	EXPECT_EQ(d->flowCount(), 2u);
	ASSERT_EQ(closed.size(), 1u);
	EXPECT_EQ(closed[0], tcpFd);
}

#if defined(__SANITIZE_ADDRESS__)
#define SLIRP_DRIVER_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SLIRP_DRIVER_TEST_ASAN 1
#endif
#endif

/*
 * Connection churn: libslirp's two socket buffers of a TCP connection (128 KiB, then
 * realloc'd to a multiple of the MSS) must come from the heap, and the heap top must stay
 * mapped when a connection frees them: otherwise every connection faults its buffers' pages
 * back in (see SlirpDriver::tuneAllocator). Checked with allocations of that size and
 * pattern, as libslirp makes them through g_realloc.
 */
TEST(SlirpDriverAllocator, ConnectionBuffersStayMappedAfterClose)
{
#ifdef SLIRP_DRIVER_TEST_ASAN
	GTEST_SKIP() << "AddressSanitizer replaces glibc's allocator";
#endif
	std::string err;
	GMainContextPtr ctx{ g_main_context_new() };
	auto d = SlirpDriver::create(
		config(false), ctx.get(), [](const uint8_t *, size_t n) { return static_cast<ssize_t>(n); }, err);
	ASSERT_TRUE(d) << err;
	constexpr size_t kSpace = 128 * 1024, kMss = 1460;
	constexpr size_t kBuf = kSpace + (kMss - kSpace % kMss); // tcp_mss()'s size for MSS 1460
	for (int round = 0; round < 3; round++) {
		struct mallinfo2 before = mallinfo2();
		std::vector<void *> bufs;
		for (int conn = 0; conn < 4; conn++)
			for (int dir = 0; dir < 2; dir++) {
				void *p = g_malloc(kSpace);
				p = g_realloc(p, kBuf);
				memset(p, 0, kBuf); // the pages are faulted in, as data through them does
				bufs.push_back(p);
			}
		EXPECT_EQ(mallinfo2().hblks, before.hblks) << "the buffers were mmapped, round " << round;
		void *top = sbrk(0);
		for (void *p : bufs)
			g_free(p);
		EXPECT_EQ(sbrk(0), top) << "the heap was trimmed when the buffers were freed, round " << round;
	}
}
