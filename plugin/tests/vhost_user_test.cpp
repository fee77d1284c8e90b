// SPDX-License-Identifier: BSD-2-Clause
// tests/vhost_user_test.cpp - the vhost-user wire format (checks, framing, fds) and a session driven by a front-end played here.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/magic.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "fake_port.hpp"
#include "link/vhost_user_link.hpp"
#include "vhost/vhost_user_proto.hpp"

using namespace slirpnet;
using namespace slirpnet::vhost;

namespace {

std::vector<uint8_t> message(uint32_t req, const void *payload = nullptr, uint32_t size = 0, uint32_t flags = 1)
{
	MsgHeader h{ req, flags, size };
	std::vector<uint8_t> m(sizeof(h) + size);
	memcpy(m.data(), &h, sizeof(h));
	if (size)
		memcpy(m.data() + sizeof(h), payload, size);
	return m;
}

void sendWithFds(int fd, const std::vector<uint8_t> &m, const std::vector<int> &fds)
{
	iovec iov{ const_cast<uint8_t *>(m.data()), m.size() };
	msghdr msg{};
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	std::vector<uint8_t> control(CMSG_SPACE(sizeof(int) * std::max<size_t>(fds.size(), 1)));
	if (!fds.empty()) {
		msg.msg_control = control.data();
		msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
		cmsghdr *c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
		memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
	}
	ASSERT_EQ(sendmsg(fd, &msg, MSG_NOSIGNAL), static_cast<ssize_t>(m.size()));
}

struct Pair {
	UniqueFd a, b;
	Pair()
	{
		int sv[2];
		EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
		a.reset(sv[0]);
		b.reset(sv[1]);
	}
};

int openFds()
{
	int n = 0;
	for (int fd = 0; fd < 1024; fd++)
		n += fcntl(fd, F_GETFD) >= 0;
	return n;
}

TEST(VhostUserProto, FixedPayloadSizesAreChecked)
{
	std::string error;
	uint8_t payload[64] = {};
	EXPECT_TRUE(checkMessage({ kGetFeatures, 1, 0 }, payload, 0, error)) << error;
	EXPECT_TRUE(checkMessage({ kSetFeatures, 1, 8 }, payload, 0, error)) << error;
	EXPECT_FALSE(checkMessage({ kSetFeatures, 1, 4 }, payload, 0, error));
	EXPECT_NE(error.find("SET_FEATURES (2): 4-byte payload (expected 8)"), std::string::npos) << error;
	EXPECT_FALSE(checkMessage({ kSetVringAddr, 1, 32 }, payload, 0, error));
	EXPECT_TRUE(checkMessage({ kSetVringAddr, 1, 40 }, payload, 0, error)) << error;
	// fds where none belong
	EXPECT_FALSE(checkMessage({ kSetFeatures, 1, 8 }, payload, 1, error));
	EXPECT_NE(error.find("1 file descriptors (expected 0)"), std::string::npos) << error;
}

TEST(VhostUserProto, VersionAndReplyFlagsAreChecked)
{
	std::string error;
	uint8_t payload[8] = {};
	EXPECT_FALSE(checkMessage({ kGetFeatures, 2, 0 }, payload, 0, error));
	EXPECT_NE(error.find("protocol version 2"), std::string::npos) << error;
	EXPECT_FALSE(checkMessage({ kGetFeatures, 1 | kFlagReply, 0 }, payload, 0, error));
	EXPECT_NE(error.find("a reply where a request was expected"), std::string::npos) << error;
	EXPECT_TRUE(checkMessage({ kSetOwner, 1 | kFlagNeedReply, 0 }, payload, 0, error)) << error;
}

TEST(VhostUserProto, KickFdsFollowTheNoFdBit)
{
	std::string error;
	uint64_t withFd = 1, noFd = 1 | kVringNoFd;
	EXPECT_TRUE(checkMessage({ kSetVringKick, 1, 8 }, reinterpret_cast<uint8_t *>(&withFd), 1, error)) << error;
	EXPECT_FALSE(checkMessage({ kSetVringKick, 1, 8 }, reinterpret_cast<uint8_t *>(&withFd), 0, error));
	EXPECT_TRUE(checkMessage({ kSetVringCall, 1, 8 }, reinterpret_cast<uint8_t *>(&noFd), 0, error)) << error;
	EXPECT_FALSE(checkMessage({ kSetVringCall, 1, 8 }, reinterpret_cast<uint8_t *>(&noFd), 1, error));
}

TEST(VhostUserProto, MemTableRegionsAndFdsMustAgree)
{
	std::string error;
	MemTable t{};
	t.nregions = 2;
	const uint8_t *p = reinterpret_cast<const uint8_t *>(&t);
	EXPECT_TRUE(checkMessage({ kSetMemTable, 1, 8 + 2 * 32 }, p, 2, error)) << error;
	EXPECT_FALSE(checkMessage({ kSetMemTable, 1, 8 + 2 * 32 }, p, 1, error));
	EXPECT_NE(error.find("1 file descriptors for 2 regions"), std::string::npos) << error;
	EXPECT_FALSE(checkMessage({ kSetMemTable, 1, 8 + 3 * 32 }, p, 2, error));
	t.nregions = 0;
	EXPECT_FALSE(checkMessage({ kSetMemTable, 1, 8 }, p, 0, error));
	EXPECT_NE(error.find("0 regions"), std::string::npos) << error;
	t.nregions = 9;
	EXPECT_FALSE(checkMessage({ kSetMemTable, 1, 8 + 9 * 32 }, p, 9, error));
	EXPECT_FALSE(checkMessage({ kSetMemTable, 1, 4 }, p, 0, error));
}

TEST(VhostUserProto, ReaderAssemblesAMessageCutAnywhere)
{
	Pair p;
	uint64_t f = 0x1234;
	std::vector<uint8_t> m = message(kSetFeatures, &f, sizeof(f));
	MsgReader r;
	std::string error;
	for (size_t i = 0; i < m.size(); i++) {
		ASSERT_EQ(r.read(p.b.get(), error), MsgReader::Result::Again) << i;
		ASSERT_EQ(write(p.a.get(), &m[i], 1), 1);
	}
	ASSERT_EQ(r.read(p.b.get(), error), MsgReader::Result::Message) << error;
	EXPECT_EQ(r.header().request, kSetFeatures);
	EXPECT_EQ(r.header().size, 8u);
	EXPECT_EQ(memcmp(r.payload(), &f, 8), 0);
	r.next();
	EXPECT_FALSE(r.partial());
	EXPECT_EQ(r.read(p.b.get(), error), MsgReader::Result::Again);
}

TEST(VhostUserProto, ReaderRefusesAnOversizedPayloadBeforeReadingIt)
{
	Pair p;
	MsgHeader h{ kSetMemTable, 1, static_cast<uint32_t>(kMaxPayload + 1) };
	ASSERT_EQ(write(p.a.get(), &h, sizeof(h)), static_cast<ssize_t>(sizeof(h)));
	MsgReader r;
	std::string error;
	EXPECT_EQ(r.read(p.b.get(), error), MsgReader::Result::Error);
	EXPECT_NE(error.find("SET_MEM_TABLE (5): 265-byte payload (at most 264"), std::string::npos) << error;
}

TEST(VhostUserProto, ReaderClosesExcessFdsAndSaysSo)
{
	Pair p;
	int before = openFds();
	std::vector<int> fds;
	for (size_t i = 0; i < kMaxFds + 2; i++)
		fds.push_back(eventfd(0, EFD_CLOEXEC));
	sendWithFds(p.a.get(), message(kGetFeatures), fds);
	for (int fd : fds)
		close(fd);
	{
		MsgReader r;
		std::string error;
		EXPECT_EQ(r.read(p.b.get(), error), MsgReader::Result::Error);
		EXPECT_NE(error.find("GET_FEATURES (1): more than 8 file descriptors"), std::string::npos) << error;
	}
	EXPECT_EQ(openFds(), before); // none leaked, the kept ones closed with the reader
}

TEST(VhostUserProto, ReaderSeesClosedInsideAMessage)
{
	Pair p;
	MsgHeader h{ kSetFeatures, 1, 8 };
	ASSERT_EQ(write(p.a.get(), &h, sizeof(h)), static_cast<ssize_t>(sizeof(h)));
	p.a.reset();
	MsgReader r;
	std::string error;
	EXPECT_EQ(r.read(p.b.get(), error), MsgReader::Result::Closed);
	EXPECT_TRUE(r.partial());
}

// ---- a session, with this test as the front-end

class Session : public ::testing::Test
{
protected:
	void SetUp() override
	{
		cfg_.vnetHdr = true;
		port_ = std::make_unique<FakePort>(cfg_);
		ctx_ = g_main_context_new();
		int sv[2];
		ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
		fe_.reset(sv[0]);
		session_ = VhostUserSession::create(UniqueFd(sv[1]), *port_, ctx_, "test");
		session_->setClosedCallback([this](const std::string &why, bool error) {
			closedWhy_ = why;
			closedError_ = error;
		});
	}
	void TearDown() override
	{
		session_.reset();
		g_main_context_unref(ctx_);
	}
	// Send a request, let the session handle it, and return the reply's payload (if any).
	std::vector<uint8_t> request(uint32_t req, const void *payload = nullptr, uint32_t size = 0,
				     std::vector<int> fds = {}, uint32_t flags = 1)
	{
		sendWithFds(fe_.get(), message(req, payload, size, flags), fds);
		session_->processMessages();
		std::vector<uint8_t> reply(64);
		ssize_t n = recv(fe_.get(), reply.data(), reply.size(), MSG_DONTWAIT);
		reply.resize(n > 0 ? static_cast<size_t>(n) : 0);
		return reply;
	}
	uint64_t replyU64(const std::vector<uint8_t> &r)
	{
		EXPECT_EQ(r.size(), sizeof(MsgHeader) + 8);
		MsgHeader h;
		memcpy(&h, r.data(), sizeof(h));
		EXPECT_EQ(h.flags, kFlagVersion | kFlagReply);
		uint64_t v = 0;
		if (r.size() >= sizeof(h) + 8)
			memcpy(&v, r.data() + sizeof(h), 8);
		return v;
	}

	Config cfg_;
	std::unique_ptr<FakePort> port_;
	GMainContext *ctx_ = nullptr;
	UniqueFd fe_;
	std::unique_ptr<VhostUserSession> session_;
	std::string closedWhy_;
	bool closedError_ = false;
};

TEST_F(Session, OffersTheNetFeaturesAndAcksWhenAsked)
{
	uint64_t f = replyU64(request(kGetFeatures));
	EXPECT_EQ(f, VhostUserSession::offeredFeatures());
	EXPECT_TRUE(f & kFeatVersion1);
	EXPECT_TRUE(f & kFeatMrgRxbuf);
	EXPECT_TRUE(f & kFeatProtocolFeatures);
	EXPECT_EQ(f & kOffloadFeatures, kOffloadFeatures);
	uint64_t pf = replyU64(request(kGetProtocolFeatures));
	EXPECT_TRUE(pf & kProtoReplyAck);
	uint64_t ack = kProtoReplyAck;
	EXPECT_TRUE(request(kSetProtocolFeatures, &ack, 8).empty()); // no NEED_REPLY: no reply
	EXPECT_EQ(replyU64(request(kSetOwner, nullptr, 0, {}, 1 | kFlagNeedReply)), 0u);
	uint64_t acked = kFeatVersion1 | kFeatCsum | kFeatHostTso4;
	EXPECT_EQ(replyU64(request(kSetFeatures, &acked, 8, {}, 1 | kFlagNeedReply)), 0u);
	EXPECT_EQ(session_->features(), kFeatCsum | kFeatHostTso4);
	EXPECT_FALSE(session_->isClosed());
}

TEST_F(Session, TsoWithoutItsChecksumOffloadIsNotActedOn)
{
	// QEMU's csum=off,guest_csum=off with the TSO properties on acks TSO alone.
	uint64_t acked = kFeatVersion1 | kFeatGuestTso4 | kFeatGuestTso6 | kFeatHostTso4 | kFeatHostTso6;
	request(kSetFeatures, &acked, 8);
	EXPECT_FALSE(session_->isClosed()) << closedWhy_;
	EXPECT_EQ(session_->features(), 0u);
	acked |= kFeatGuestCsum;
	request(kSetFeatures, &acked, 8);
	EXPECT_EQ(session_->features(), kFeatGuestCsum | kFeatGuestTso4 | kFeatGuestTso6);
	acked |= kFeatCsum;
	request(kSetFeatures, &acked, 8);
	EXPECT_EQ(session_->features(), kOffloadFeatures);
}

TEST_F(Session, RepliesAreStillAckedAfterADeviceReset)
{
	// QEMU negotiates protocol features once per connection and keeps asking for acks.
	uint64_t ack = kProtoReplyAck;
	request(kSetProtocolFeatures, &ack, 8);
	EXPECT_EQ(replyU64(request(kResetDevice, nullptr, 0, {}, 1 | kFlagNeedReply)), 0u);
	EXPECT_EQ(replyU64(request(kResetOwner, nullptr, 0, {}, 1 | kFlagNeedReply)), 0u);
	EXPECT_EQ(replyU64(request(kSetOwner, nullptr, 0, {}, 1 | kFlagNeedReply)), 0u);
	EXPECT_FALSE(session_->isClosed()) << closedWhy_;
}

TEST_F(Session, AKickThatIsNotAnEventfdIsRefused)
{
	// /dev/zero as a kick would always be readable: the loop would spin.
	int zero = open("/dev/zero", O_RDONLY | O_CLOEXEC);
	uint64_t u = 1;
	request(kSetVringKick, &u, 8, { zero });
	close(zero);
	EXPECT_TRUE(session_->isClosed());
	EXPECT_NE(closedWhy_.find("SET_VRING_KICK (12): the file descriptor is not an eventfd"), std::string::npos)
		<< closedWhy_;
}

TEST_F(Session, GuestMemoryOutsideTmpfsOrHugetlbfsIsRefused)
{
	// A FUSE or disk file would make page faults wait on I/O or another process.
	char path[] = "/var/tmp/slirpnet-vhost-test-XXXXXX";
	int fd = mkstemp(path);
	ASSERT_GE(fd, 0);
	unlink(path);
	struct statfs sfs;
	if (fstatfs(fd, &sfs) == 0 && (sfs.f_type == TMPFS_MAGIC || sfs.f_type == HUGETLBFS_MAGIC)) {
		close(fd);
		GTEST_SKIP() << "/var/tmp is in memory here";
	}
	ASSERT_EQ(ftruncate(fd, 1 << 16), 0);
	MemTable t{};
	t.nregions = 1;
	t.regions[0] = { 0, 1 << 16, 0x7f0000000000, 0 };
	request(kSetMemTable, &t, 8 + 32, { fd });
	close(fd);
	EXPECT_TRUE(session_->isClosed());
	EXPECT_NE(closedWhy_.find("not a memfd or a file of tmpfs or hugetlbfs"), std::string::npos) << closedWhy_;
}

TEST_F(Session, FeaturesNotOfferedCloseTheConnection)
{
	uint64_t f = 1ull << 28; // INDIRECT_DESC
	request(kSetFeatures, &f, 8);
	EXPECT_TRUE(session_->isClosed());
	EXPECT_TRUE(closedError_);
	EXPECT_NE(closedWhy_.find("SET_FEATURES (2): features 0x10000000 were not offered"), std::string::npos)
		<< closedWhy_;
}

TEST_F(Session, AQueueOutsideTheQueuePairIsRefused)
{
	VringState s{ 2, 256 };
	request(kSetVringNum, &s, sizeof(s));
	EXPECT_TRUE(session_->isClosed());
	EXPECT_NE(closedWhy_.find("queue 2 (one queue pair"), std::string::npos) << closedWhy_;
}

TEST_F(Session, RingAddressesBeforeAMemoryTableAreRefused)
{
	VringState s{ 0, 256 };
	request(kSetVringNum, &s, sizeof(s));
	VringAddr a{ 0, 0, 0x1000, 0x3000, 0x2000, 0 };
	request(kSetVringAddr, &a, sizeof(a));
	EXPECT_TRUE(session_->isClosed());
	EXPECT_NE(closedWhy_.find("before any SET_MEM_TABLE"), std::string::npos) << closedWhy_;
}

TEST_F(Session, PollingModeIsRefused)
{
	uint64_t u = 0 | kVringNoFd;
	request(kSetVringKick, &u, 8);
	EXPECT_TRUE(session_->isClosed());
	EXPECT_NE(closedWhy_.find("polling (no kick fd) is not supported"), std::string::npos) << closedWhy_;
}

TEST_F(Session, AMemoryFileSmallerThanItsRegionIsRefused)
{
	int mfd = memfd_create("guest", MFD_CLOEXEC);
	ASSERT_EQ(ftruncate(mfd, 4096), 0);
	MemTable t{};
	t.nregions = 1;
	t.regions[0] = { 0, 1 << 20, 0x7f0000000000, 0 };
	request(kSetMemTable, &t, 8 + 32, { mfd });
	close(mfd);
	EXPECT_TRUE(session_->isClosed());
	EXPECT_NE(closedWhy_.find("SET_MEM_TABLE (5)"), std::string::npos) << closedWhy_;
}

TEST_F(Session, AMemfdIsSealedAgainstShrinking)
{
	// A file checked large enough must stay so: shrunk later, it would fault the helper.
	int mfd = memfd_create("guest", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	ASSERT_EQ(ftruncate(mfd, 1 << 16), 0);
	MemTable t{};
	t.nregions = 1;
	t.regions[0] = { 0, 1 << 16, 0x7f0000000000, 0 };
	request(kSetMemTable, &t, 8 + 32, { mfd });
	EXPECT_FALSE(session_->isClosed()) << closedWhy_;
	EXPECT_TRUE(fcntl(mfd, F_GET_SEALS) & F_SEAL_SHRINK);
	EXPECT_EQ(ftruncate(mfd, 4096), -1);
	EXPECT_EQ(errno, EPERM);
	close(mfd);
}

TEST_F(Session, GetVringBaseReturnsWhereTheQueueStopped)
{
	VringState s{ 1, 256 };
	request(kSetVringNum, &s, sizeof(s));
	VringState b{ 1, 4242 };
	request(kSetVringBase, &b, sizeof(b));
	std::vector<uint8_t> r = request(kGetVringBase, &s, sizeof(s));
	ASSERT_EQ(r.size(), sizeof(MsgHeader) + sizeof(VringState));
	VringState got;
	memcpy(&got, r.data() + sizeof(MsgHeader), sizeof(got));
	EXPECT_EQ(got.index, 1u);
	EXPECT_EQ(got.num, 4242u);
	EXPECT_FALSE(session_->isClosed());
}

TEST_F(Session, FramesForAGuestWithoutQueuesAreDroppedAndCounted)
{
	uint8_t frame[60] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
	EXPECT_EQ(session_->sendFrame(frame, sizeof(frame)), static_cast<ssize_t>(sizeof(frame)));
	EXPECT_EQ(port_->stats_.dropToGuestError, 1u);
	EXPECT_EQ(port_->stats_.toGuestFrames, 0u);
}

} // namespace
