// SPDX-License-Identifier: BSD-2-Clause
// links_test.cpp - each guest link on its own against a fake port: framing, oversize, padding, close, back-pressure.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "byte_order.hpp"
#include "fake_port.hpp"
#include "link/dgram_link.hpp"
#include "link/link_factory.hpp"
#include "link/seqpacket_link.hpp"
#include "link/stream_link.hpp"
#include "link/stream_server.hpp"
#include "unique_fd.hpp"
#include "virtio_net.hpp"

using namespace slirpnet;

namespace {

struct Pair {
	UniqueFd ours; // the link's end
	UniqueFd peer; // the test plays the emulator here
};

Pair socketPair(int type)
{
	int sv[2];
	EXPECT_EQ(socketpair(AF_UNIX, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv), 0);
	return { UniqueFd(sv[0]), UniqueFd(sv[1]) };
}

std::vector<uint8_t> frame(size_t len, uint8_t fill = 0xab)
{
	std::vector<uint8_t> f(len, fill);
	f[12] = 0x08; // IPv4 ethertype, so nothing mistakes it for a special frame
	f[13] = 0x00;
	return f;
}

struct Closed {
	bool called = false;
	bool error = false;
	std::string why;
	GuestLink::ClosedCallback cb()
	{
		return [this](const std::string &w, bool e) {
			called = true;
			error = e;
			why = w;
		};
	}
};

TEST(SeqpacketLink, FramesBothWaysOneRecordEach)
{
	FakePort port;
	auto [ours, peer] = socketPair(SOCK_SEQPACKET);
	auto link = SeqpacketLink::create(std::move(ours), port, nullptr);
	auto f = frame(100);
	ASSERT_EQ(send(peer.get(), f.data(), f.size(), 0), 100);
	ASSERT_TRUE(iterateUntil(nullptr, [&] { return port.frames.size() == 1; }));
	EXPECT_EQ(port.frames[0], f);
	EXPECT_GE(port.batches, 1);

	auto g = frame(60, 0x11);
	EXPECT_EQ(link->sendFrame(g.data(), g.size()), 60);
	link->flush();
	std::vector<uint8_t> got(2000);
	ssize_t n = recv(peer.get(), got.data(), got.size(), MSG_DONTWAIT);
	ASSERT_EQ(n, 60);
	got.resize(60);
	EXPECT_EQ(got, g);
	EXPECT_EQ(port.stats_.toGuestFrames, 1u);
	EXPECT_EQ(port.stats_.toGuestBytes, 60u);
}

TEST(SeqpacketLink, OversizedRecordIsReportedNotPassedOn)
{
	FakePort port;
	auto [ours, peer] = socketPair(SOCK_SEQPACKET);
	auto link = SeqpacketLink::create(std::move(ours), port, nullptr);
	auto big = frame(port.cfg_.maxFrame() + 100);
	auto ok = frame(200);
	ASSERT_GT(send(peer.get(), big.data(), big.size(), 0), 0);
	ASSERT_GT(send(peer.get(), ok.data(), ok.size(), 0), 0);
	ASSERT_TRUE(iterateUntil(nullptr, [&] { return port.frames.size() == 1; }));
	ASSERT_EQ(port.oversize.size(), 1u);
	EXPECT_EQ(port.oversize[0], big.size()); // its real length, thanks to MSG_TRUNC
	EXPECT_EQ(port.frames[0], ok);
}

TEST(SeqpacketLink, PeerCloseClosesTheLinkOnce)
{
	FakePort port;
	auto [ours, peer] = socketPair(SOCK_SEQPACKET);
	auto link = SeqpacketLink::create(std::move(ours), port, nullptr);
	Closed closed;
	link->setClosedCallback(closed.cb());
	peer.reset();
	ASSERT_TRUE(iterateUntil(nullptr, [&] { return closed.called; }));
	EXPECT_FALSE(closed.error);
	EXPECT_TRUE(link->isClosed());
	auto g = frame(60);
	EXPECT_EQ(link->sendFrame(g.data(), g.size()), -1);
}

TEST(SeqpacketLink, VnetHeaderLinkCutsLargeFramesWithoutGuestTso)
{
	Config cfg;
	cfg.vnetHdr = true;
	FakePort port(cfg);
	auto [ours, peer] = socketPair(SOCK_SEQPACKET);
	auto link = SeqpacketLink::create(std::move(ours), port, nullptr);
	EXPECT_TRUE(link->offloadCapable());
	// A 3000-byte UDP/IPv4 datagram without DF: cut into IPv4 fragments for the link.
	std::vector<uint8_t> f(14 + 20 + 8 + 2958, 0);
	f[12] = 0x08;
	f[14] = 0x45;
	{
		uint16_t v_ = htons(static_cast<uint16_t>(f.size() - 14));
		memcpy(f.data() + 16, &v_, 2);
	}
	f[14 + 8] = 64;
	f[14 + 9] = 17;
	EXPECT_EQ(link->sendFrame(f.data(), f.size()), static_cast<ssize_t>(f.size()));
	link->flush();
	EXPECT_EQ(port.stats_.toGuestSplit, 3u);
	int records = 0;
	std::vector<uint8_t> got(70000);
	ssize_t n;
	while ((n = recv(peer.get(), got.data(), got.size(), MSG_DONTWAIT)) > 0) {
		EXPECT_LE(static_cast<size_t>(n), kVnetHdrLen + 1514);
		records++;
	}
	EXPECT_EQ(records, 3);
}

TEST(StreamLink, ReassemblesFramesWhateverTheSplit)
{
	FakePort port;
	auto [ours, peer] = socketPair(SOCK_STREAM);
	auto link = StreamLink::create(std::move(ours), port, nullptr, "test");
	std::vector<uint8_t> wire;
	for (size_t len : { 60u, 1514u, 100u }) {
		uint8_t h[4];
		storeBe32(h, static_cast<uint32_t>(len));
		wire.insert(wire.end(), h, h + 4);
		auto f = frame(len, static_cast<uint8_t>(len));
		wire.insert(wire.end(), f.begin(), f.end());
	}
	// One byte at a time for the first frame, then the rest at once.
	for (size_t i = 0; i < 64; i++) {
		ASSERT_EQ(send(peer.get(), &wire[i], 1, 0), 1);
		g_main_context_iteration(nullptr, FALSE);
	}
	ASSERT_EQ(send(peer.get(), wire.data() + 64, wire.size() - 64, 0), static_cast<ssize_t>(wire.size() - 64));
	ASSERT_TRUE(iterateUntil(nullptr, [&] { return port.frames.size() == 3; }));
	EXPECT_EQ(port.frames[1].size(), 1514u);
	EXPECT_EQ(port.frames[2].size(), 100u);
}

TEST(StreamLink, OversizedLengthClosesWithAnError)
{
	FakePort port;
	auto [ours, peer] = socketPair(SOCK_STREAM);
	auto link = StreamLink::create(std::move(ours), port, nullptr, "test");
	Closed closed;
	link->setClosedCallback(closed.cb());
	uint8_t h[4];
	storeBe32(h, static_cast<uint32_t>(kQemuMaxFrame + 1));
	ASSERT_EQ(send(peer.get(), h, 4, 0), 4);
	ASSERT_TRUE(iterateUntil(nullptr, [&] { return closed.called; }));
	EXPECT_TRUE(closed.error);
	EXPECT_TRUE(port.frames.empty());
}

TEST(StreamLink, ShortFramesArePaddedAndPrefixed)
{
	FakePort port;
	auto [ours, peer] = socketPair(SOCK_STREAM);
	auto link = StreamLink::create(std::move(ours), port, nullptr, "test");
	auto f = frame(42);
	EXPECT_EQ(link->sendFrame(f.data(), f.size()), 42);
	uint8_t got[100];
	ASSERT_EQ(recv(peer.get(), got, sizeof(got), MSG_DONTWAIT), 64);
	EXPECT_EQ(loadBe32(got), 60u);
	EXPECT_EQ(memcmp(got + 4, f.data(), 42), 0);
	for (int i = 4 + 42; i < 64; i++)
		EXPECT_EQ(got[i], 0);
}

TEST(DgramLink, ConnectedFramesBothWays)
{
	FakePort port;
	auto [ours, peer] = socketPair(SOCK_DGRAM);
	auto link = DgramLink::connected(std::move(ours), SOCK_DGRAM, port, nullptr, "fd test");
	auto f = frame(300);
	ASSERT_EQ(send(peer.get(), f.data(), f.size(), 0), 300);
	ASSERT_TRUE(iterateUntil(nullptr, [&] { return port.frames.size() == 1; }));
	EXPECT_EQ(port.frames[0], f);
	auto g = frame(20);
	EXPECT_EQ(link->sendFrame(g.data(), g.size()), 20);
	uint8_t got[100];
	EXPECT_EQ(recv(peer.get(), got, sizeof(got), MSG_DONTWAIT), 60); // padded to ETH_ZLEN
}

TEST(DgramLink, FullSocketQueuesThenReportsBackpressure)
{
	Config cfg;
	cfg.sndbuf = 64 * 1024;
	FakePort port(cfg);
	auto [ours, peer] = socketPair(SOCK_DGRAM);
	auto link = DgramLink::connected(std::move(ours), SOCK_DGRAM, port, nullptr, "fd test");
	auto f = frame(1514);
	// The peer reads nothing: the socket fills, then frames wait in the link's queue.
	for (int i = 0; i < 20000 && port.lastQueued == 0; i++)
		ASSERT_EQ(link->sendFrame(f.data(), f.size()), 1514);
	EXPECT_GT(port.lastQueued, 0u);
	EXPECT_GT(port.lastCapacity, port.lastQueued);
}

// A --socket client connected to path; the server takes it in ctx's next iterations.
UniqueFd connectClient(const std::string &path)
{
	UniqueFd c(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
	sockaddr_un sa{};
	sa.sun_family = AF_UNIX;
	strncpy(sa.sun_path, path.c_str(), sizeof sa.sun_path - 1);
	EXPECT_EQ(connect(c.get(), reinterpret_cast<sockaddr *>(&sa), sizeof sa), 0);
	return c;
}

// Three clients in turn: the second and third are new guests, whose arrival makes the port
// forget the previous one's connections; socket-keep-state=on never does.
void clientsInTurn(bool keepState, int expectedForgets)
{
	char dir[] = "/tmp/sn-links-XXXXXX";
	ASSERT_NE(mkdtemp(dir), nullptr);
	std::string path = std::string(dir) + "/s.sock";
	Config cfg;
	cfg.socketKeepState = keepState;
	FakePort port(cfg);
	GMainContextPtr ctx(g_main_context_new());
	std::string error;
	auto server = StreamServer::create(path, port, ctx.get(), false, error);
	ASSERT_TRUE(server) << error;
	for (int i = 0; i < 3; i++) {
		UniqueFd c = connectClient(path);
		ASSERT_TRUE(iterateUntil(ctx.get(), [&] { return server->hasClient(); }));
		EXPECT_EQ(port.forgets, keepState ? 0 : i);
		c.reset();
		ASSERT_TRUE(iterateUntil(ctx.get(), [&] { return !server->hasClient(); }));
	}
	EXPECT_EQ(port.forgets, expectedForgets);
	server.reset();
	rmdir(dir);
}

TEST(StreamServer, NewClientMakesThePortForgetThePreviousGuest)
{
	clientsInTurn(false, 2);
}

TEST(StreamServer, KeepStateNeverForgets)
{
	clientsInTurn(true, 0);
}

TEST(LinkFactory, RefusesWhatIsNotASocketNamingTheOption)
{
	int p[2];
	ASSERT_EQ(pipe(p), 0);
	LinkRequest req;
	req.kind = LinkRequest::Kind::Fd;
	req.fd = p[0];
	std::string error;
	EXPECT_FALSE(checkLinkRequest(req, error));
	EXPECT_NE(error.find("--fd " + std::to_string(p[0])), std::string::npos) << error;
	req.kind = LinkRequest::Kind::Plugin;
	req.fd = 999;
	EXPECT_FALSE(checkLinkRequest(req, error));
	EXPECT_NE(error.find("-S 999: not an open file descriptor"), std::string::npos) << error;
	close(p[0]);
	close(p[1]);
}

TEST(LinkFactory, PluginNeedsSeqpacket)
{
	auto [a, b] = socketPair(SOCK_STREAM);
	LinkRequest req;
	req.kind = LinkRequest::Kind::Plugin;
	req.fd = a.get();
	std::string error;
	EXPECT_FALSE(checkLinkRequest(req, error));
	EXPECT_NE(error.find("SOCK_SEQPACKET"), std::string::npos) << error;
}

} // namespace
