// SPDX-License-Identifier: BSD-2-Clause
// network_test.cpp - the Network alone: frames through libslirp to a fake link, checks and counters, hostfwd rules.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstring>
#include <string>
#include <vector>

#include "byte_order.hpp"
#include "fake_port.hpp"
#include "link/guest_link.hpp"
#include "network.hpp"
#include "unique_fd.hpp"

using namespace slirpnet;

namespace {

// A link that keeps what the network sends and never reads anything itself.
class RecordingLink : public GuestLink
{
public:
	explicit RecordingLink(GuestPort &port) : GuestLink(port, "recording") {}
	ssize_t sendFrame(const uint8_t *frame, size_t len) override
	{
		sent.emplace_back(frame, frame + len);
		countToGuest(len);
		return static_cast<ssize_t>(len);
	}
	void flush() override { flushes++; }
	std::vector<std::vector<uint8_t>> sent;
	int flushes = 0;

private:
	void onReadable(GIOCondition) override {}
};

const uint8_t kGuestMac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };

// An ARP request from the guest (10.0.2.15) for the gateway (10.0.2.2).
std::vector<uint8_t> arpForGateway()
{
	std::vector<uint8_t> f(42, 0);
	memset(f.data(), 0xff, 6);
	memcpy(f.data() + 6, kGuestMac, 6);
	{
		uint16_t v_ = htons(0x0806);
		memcpy(f.data() + 12, &v_, 2);
	}
	const uint8_t arp[] = { 0, 1, 8, 0, 6, 4, 0, 1 };
	memcpy(f.data() + 14, arp, sizeof(arp));
	memcpy(f.data() + 22, kGuestMac, 6);
	const uint8_t spa[] = { 10, 0, 2, 15 }, tpa[] = { 10, 0, 2, 2 };
	memcpy(f.data() + 28, spa, 4);
	memcpy(f.data() + 38, tpa, 4);
	return f;
}

std::unique_ptr<Network> makeNetwork(bool vnetHdr = false)
{
	Config cfg;
	std::string error;
	EXPECT_TRUE(parseConfig({ { "ipv6", "off" }, { "restrict", "on" } }, cfg, error)) << error;
	cfg.vnetHdr = vnetHdr;
	auto n = Network::create(cfg, nullptr, error);
	EXPECT_TRUE(n) << error;
	return n;
}

TEST(Network, AnswersArpThroughTheAttachedLink)
{
	auto net = makeNetwork();
	RecordingLink link(*net);
	net->attach(&link);
	auto f = arpForGateway();
	net->fromGuest(f.data(), f.size());
	net->inputBatchDone();
	ASSERT_EQ(link.sent.size(), 1u);
	const auto &r = link.sent[0];
	EXPECT_EQ(loadBe16(r.data() + 12), 0x0806);
	EXPECT_EQ(loadBe16(r.data() + 20), 2); // reply
	EXPECT_EQ(memcmp(r.data(), kGuestMac, 6), 0);
	EXPECT_EQ(net->stats().fromGuestFrames, 1u);
	EXPECT_EQ(net->stats().toGuestFrames, 1u);
	net->attach(nullptr);
}

TEST(Network, WithoutALinkFramesForTheGuestAreCountedAsDropped)
{
	auto net = makeNetwork();
	auto f = arpForGateway();
	net->fromGuest(f.data(), f.size());
	net->inputBatchDone();
	EXPECT_EQ(net->stats().dropToGuestError, 1u);
}

TEST(Network, RuntsAndOversizedFramesAreDroppedAndCounted)
{
	auto net = makeNetwork();
	RecordingLink link(*net);
	net->attach(&link);
	std::vector<uint8_t> runt(13, 0), big(1515, 0);
	net->fromGuest(runt.data(), runt.size());
	net->fromGuest(big.data(), big.size());
	net->droppedOversize(70000);
	EXPECT_EQ(net->stats().dropRunt, 1u);
	EXPECT_EQ(net->stats().dropOversize, 2u);
	EXPECT_EQ(net->stats().fromGuestFrames, 0u);
	EXPECT_TRUE(link.sent.empty());
	net->attach(nullptr);
}

TEST(Network, OffloadingLinkRunsLibslirpAtALargeMtuFromTheStart)
{
	EXPECT_EQ(makeNetwork(false)->slirpMtu(), 1500u);
	EXPECT_EQ(makeNetwork(true)->slirpMtu(), Config::kLargeSlirpMtu);
}

TEST(Network, ObserversSeeBothDirections)
{
	struct Counter : FrameObserver {
		int from = 0, to = 0;
		void observe(FrameDirection d, const uint8_t *, size_t) override
		{
			(d == FrameDirection::FromGuest ? from : to)++;
		}
	} counter;
	auto net = makeNetwork();
	RecordingLink link(*net);
	net->attach(&link);
	net->addObserver(&counter);
	auto f = arpForGateway();
	net->fromGuest(f.data(), f.size());
	net->inputBatchDone();
	std::vector<uint8_t> runt(5, 0);
	net->fromGuest(runt.data(), runt.size()); // seen before the checks
	net->removeObserver(&counter);
	net->fromGuest(f.data(), f.size());
	EXPECT_EQ(counter.from, 2);
	EXPECT_EQ(counter.to, 1);
	net->attach(nullptr);
}

// A TCP or UDP port on 127.0.0.1 that was free a moment ago.
int freePort(int type)
{
	UniqueFd s(socket(AF_INET, type | SOCK_CLOEXEC, 0));
	sockaddr_in sa{};
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	EXPECT_EQ(bind(s.get(), reinterpret_cast<sockaddr *>(&sa), sizeof(sa)), 0);
	socklen_t sl = sizeof(sa);
	getsockname(s.get(), reinterpret_cast<sockaddr *>(&sa), &sl);
	return ntohs(sa.sin_port);
}

TEST(HostFwdTable, AddListRemoveById)
{
	auto net = makeNetwork();
	HostFwd f;
	std::string error;
	ASSERT_TRUE(parseHostFwd("tcp:127.0.0.1:" + std::to_string(freePort(SOCK_STREAM)) + "-:22", f, error)) << error;
	unsigned id = 0;
	ASSERT_TRUE(net->hostFwds().add(f, false, id, error)) << error;
	ASSERT_EQ(net->hostFwds().entries().size(), 1u);
	EXPECT_EQ(net->hostFwds().entries()[0].id, id);
	EXPECT_NE(net->hostFwds().find(id), nullptr);
	HostFwdEntry removed;
	ASSERT_TRUE(net->hostFwds().remove(id, removed, error)) << error;
	EXPECT_EQ(removed.id, id);
	EXPECT_TRUE(net->hostFwds().entries().empty());
	EXPECT_FALSE(net->hostFwds().remove(id, removed, error));
	EXPECT_NE(error.find("no rule with id " + std::to_string(id)), std::string::npos) << error;
}

TEST(HostFwdTable, APortInUseFailsNamingTheRule)
{
	UniqueFd busy(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
	sockaddr_in sa{};
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ASSERT_EQ(bind(busy.get(), reinterpret_cast<sockaddr *>(&sa), sizeof(sa)), 0);
	ASSERT_EQ(listen(busy.get(), 1), 0);
	socklen_t sl = sizeof(sa);
	getsockname(busy.get(), reinterpret_cast<sockaddr *>(&sa), &sl);
	std::string rule = "tcp:127.0.0.1:" + std::to_string(ntohs(sa.sin_port)) + "-:22";

	auto net = makeNetwork();
	HostFwd f;
	std::string error;
	ASSERT_TRUE(parseHostFwd(rule, f, error)) << error;
	unsigned id = 0;
	EXPECT_FALSE(net->hostFwds().add(f, false, id, error));
	EXPECT_NE(error.find(rule), std::string::npos) << error;
	EXPECT_TRUE(net->hostFwds().entries().empty());
}

TEST(HostFwdTable, RemoveByHostAddressKey)
{
	auto net = makeNetwork();
	HostFwd f, key;
	std::string error;
	std::string port = std::to_string(freePort(SOCK_DGRAM));
	ASSERT_TRUE(parseHostFwd("udp:127.0.0.1:" + port + "-:53", f, error)) << error;
	unsigned id;
	ASSERT_TRUE(net->hostFwds().add(f, true, id, error)) << error;
	EXPECT_TRUE(net->hostFwds().entries()[0].fromConfig);
	ASSERT_TRUE(parseHostFwdKey("tcp:127.0.0.1:" + port, key, error)) << error;
	HostFwdEntry removed;
	EXPECT_FALSE(net->hostFwds().remove(key, removed, error)); // wrong protocol
	ASSERT_TRUE(parseHostFwdKey("udp:127.0.0.1:" + port, key, error)) << error;
	EXPECT_TRUE(net->hostFwds().remove(key, removed, error)) << error;
}

} // namespace
