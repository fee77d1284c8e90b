// SPDX-License-Identifier: BSD-2-Clause
// unix_listener_test.cpp - the UNIX listener: bind rules, accepted fds' flags, batches, EMFILE (reserve fd, pause), unlink.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "unix_listener.hpp"

using namespace slirpnet;

namespace {

struct Fixture : ::testing::Test {
	GMainContextPtr ctx{ g_main_context_new() };
	std::string dir;
	std::string path;
	std::vector<UniqueFd> accepted;

	void SetUp() override
	{
		GCharPtr d(g_dir_make_tmp("unix-listener-XXXXXX", nullptr));
		ASSERT_TRUE(d);
		dir = d.get();
		path = dir + "/sock";
	}
	void TearDown() override
	{
		unlink(path.c_str());
		rmdir(dir.c_str());
	}
	std::unique_ptr<UnixListener> listen(const UnixListenerOptions &o, std::string &error)
	{
		return UnixListener::create(
			path, ctx.get(), o, [this](UniqueFd fd) { accepted.push_back(std::move(fd)); }, error);
	}
	std::unique_ptr<UnixListener> listen(const UnixListenerOptions &o = {})
	{
		std::string error;
		auto l = listen(o, error);
		EXPECT_TRUE(l) << error;
		return l;
	}
	UniqueFd connectClient()
	{
		UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
		sockaddr_un sa{};
		sa.sun_family = AF_UNIX;
		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path.c_str());
		EXPECT_EQ(connect(fd.get(), reinterpret_cast<sockaddr *>(&sa), sizeof(sa)), 0) << strerror(errno);
		return fd;
	}
	void iterate(int n = 1)
	{
		for (int i = 0; i < n; i++)
			g_main_context_iteration(ctx.get(), FALSE);
	}
	// Iterate (blocking) until pred holds or timeoutMs passes.
	template <typename P>
	bool waitFor(P pred, int timeoutMs = 2000)
	{
		int64_t end = g_get_monotonic_time() + int64_t(timeoutMs) * 1000;
		GSourceFunc done = [](gpointer) -> gboolean { return G_SOURCE_REMOVE; };
		while (!pred() && g_get_monotonic_time() < end) {
			GSource *t = g_timeout_source_new(10); // bounds each blocking iteration
			g_source_set_callback(t, done, nullptr, nullptr);
			g_source_attach(t, ctx.get());
			g_main_context_iteration(ctx.get(), TRUE);
			g_source_destroy(t);
			g_source_unref(t);
		}
		return pred();
	}
};

} // namespace

TEST_F(Fixture, AcceptedFdsAreNonBlockingCloseOnExecAndOwnedByTheCallback)
{
	auto l = listen();
	ASSERT_TRUE(l);
	EXPECT_EQ(l->path(), path);
	UniqueFd c = connectClient();
	ASSERT_TRUE(waitFor([&] { return accepted.size() == 1; }));
	int fd = accepted[0].get();
	EXPECT_TRUE(fcntl(fd, F_GETFL) & O_NONBLOCK);
	EXPECT_TRUE(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	ASSERT_EQ(write(c.get(), "hi", 2), 2);
	char buf[4];
	EXPECT_EQ(read(fd, buf, sizeof(buf)), 2);
	accepted.clear(); // the client sees the end
	EXPECT_EQ(read(c.get(), buf, sizeof(buf)), 0);
}

TEST_F(Fixture, ModeIsAppliedAndTheFileUnlinkedOnDestruction)
{
	UnixListenerOptions o;
	o.mode = 0600;
	auto l = listen(o);
	ASSERT_TRUE(l);
	struct stat st;
	ASSERT_EQ(lstat(path.c_str(), &st), 0);
	EXPECT_TRUE(S_ISSOCK(st.st_mode));
	EXPECT_EQ(st.st_mode & 0777, 0600u);
	l.reset();
	EXPECT_NE(lstat(path.c_str(), &st), 0);
}

TEST_F(Fixture, LeavesASuccessorsFileAlone)
{
	auto l = listen();
	ASSERT_TRUE(l);
	// Someone else took the path over (after unlinking ours): theirs stays.
	ASSERT_EQ(unlink(path.c_str()), 0);
	UniqueFd other(socket(AF_UNIX, SOCK_STREAM, 0));
	sockaddr_un sa{};
	sa.sun_family = AF_UNIX;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path.c_str());
	ASSERT_EQ(bind(other.get(), reinterpret_cast<sockaddr *>(&sa), sizeof(sa)), 0);
	l.reset();
	struct stat st;
	EXPECT_EQ(lstat(path.c_str(), &st), 0);
}

TEST_F(Fixture, ReplacesAStaleFileButRefusesALiveOneOrANonSocket)
{
	{
		// A socket file nobody listens on (its process died).
		UniqueFd stale(socket(AF_UNIX, SOCK_STREAM, 0));
		sockaddr_un sa{};
		sa.sun_family = AF_UNIX;
		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path.c_str());
		ASSERT_EQ(bind(stale.get(), reinterpret_cast<sockaddr *>(&sa), sizeof(sa)), 0);
	}
	auto l = listen();
	ASSERT_TRUE(l);

	std::string error;
	EXPECT_FALSE(listen({}, error));
	EXPECT_NE(error.find(path), std::string::npos) << error;
	EXPECT_NE(error.find("in use"), std::string::npos) << error;

	l.reset();
	UniqueFd file(open(path.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600));
	ASSERT_TRUE(file);
	error.clear();
	EXPECT_FALSE(listen({}, error));
	EXPECT_NE(error.find("not a socket"), std::string::npos) << error;
}

TEST_F(Fixture, AcceptsAtMostABatchPerWakeUp)
{
	UnixListenerOptions o;
	o.acceptBatch = 4;
	o.backlog = 32;
	auto l = listen(o);
	ASSERT_TRUE(l);
	std::vector<UniqueFd> clients;
	for (int i = 0; i < 10; i++)
		clients.push_back(connectClient());
	iterate();
	EXPECT_EQ(accepted.size(), 4u);
	iterate();
	EXPECT_EQ(accepted.size(), 8u);
	iterate(3);
	EXPECT_EQ(accepted.size(), 10u);
}

namespace {

// Lowers the soft RLIMIT_NOFILE to the lowest free descriptor for its lifetime: every
// descriptor below the limit is in use, so the next accept4() fails with EMFILE.
struct OutOfDescriptors {
	struct rlimit saved {
	};
	bool ok = false;
	OutOfDescriptors()
	{
		if (getrlimit(RLIMIT_NOFILE, &saved) != 0)
			return;
		int lowest = dup(0);
		if (lowest < 0)
			return;
		close(lowest);
		struct rlimit low = saved;
		low.rlim_cur = static_cast<rlim_t>(lowest);
		ok = setrlimit(RLIMIT_NOFILE, &low) == 0;
	}
	~OutOfDescriptors() { restore(); }
	void restore()
	{
		if (ok)
			setrlimit(RLIMIT_NOFILE, &saved);
		ok = false;
	}
};

// The client's end saw the connection end (EOF or reset), without waiting.
bool sawEnd(int fd)
{
	pollfd p{ fd, POLLIN, 0 };
	if (poll(&p, 1, 0) != 1)
		return false;
	char b;
	ssize_t n = recv(fd, &b, 1, MSG_DONTWAIT);
	return n == 0 || (n < 0 && errno == ECONNRESET);
}

} // namespace

TEST_F(Fixture, OutOfDescriptorsTheReserveAcceptsAndClosesTheClient)
{
	UnixListenerOptions o;
	o.pauseMs = 300;
	o.refuseMessage = "busy\n";
	auto l = listen(o);
	ASSERT_TRUE(l);
	EXPECT_TRUE(l->hasReserve());
	UniqueFd c1 = connectClient();
	UniqueFd c2 = connectClient();
	{
		OutOfDescriptors limit;
		ASSERT_TRUE(limit.ok);
		iterate();
		// Both taken off the backlog and closed at once; nothing handed to the callback,
		// no pause, and the reserve is back.
		EXPECT_TRUE(accepted.empty());
		EXPECT_EQ(l->refused(), 2u);
		EXPECT_FALSE(l->isPaused());
		EXPECT_TRUE(l->hasReserve());
		// And the socket is no longer readable: the loop does not spin on it.
		EXPECT_FALSE(g_main_context_iteration(ctx.get(), FALSE));
	}
	char buf[8] = {};
	EXPECT_EQ(recv(c1.get(), buf, sizeof(buf), MSG_DONTWAIT), 5);
	EXPECT_STREQ(buf, "busy\n");
	EXPECT_TRUE(sawEnd(c1.get()));
	EXPECT_EQ(recv(c2.get(), buf, sizeof(buf), MSG_DONTWAIT), 5);
	EXPECT_TRUE(sawEnd(c2.get()));
	// With descriptors again, a new client is served.
	UniqueFd c3 = connectClient();
	EXPECT_TRUE(waitFor([&] { return accepted.size() == 1; }));
	EXPECT_EQ(l->refused(), 2u);
}

TEST_F(Fixture, OutOfDescriptorsWithoutAReservePausesInsteadOfSpinning)
{
	UnixListenerOptions o;
	o.pauseMs = 300; // long enough that the loop below sees no retry
	o.reserveFd = false;
	auto l = listen(o);
	ASSERT_TRUE(l);
	EXPECT_FALSE(l->hasReserve());
	UniqueFd c = connectClient();

	OutOfDescriptors limit;
	ASSERT_TRUE(limit.ok);
	iterate();
	bool pausedAfterError = l->isPaused();
	// Paused: the still-readable socket is not polled, so these iterations find nothing.
	for (int i = 0; i < 20; i++)
		EXPECT_FALSE(g_main_context_iteration(ctx.get(), FALSE));
	limit.restore();

	EXPECT_TRUE(pausedAfterError);
	EXPECT_TRUE(accepted.empty());
	// The client waited in the backlog and is accepted once the pause is over.
	EXPECT_TRUE(waitFor([&] { return accepted.size() == 1; }, 3000));
	EXPECT_FALSE(l->isPaused());
}

TEST_F(Fixture, PathTooLongIsAnError)
{
	std::string error;
	auto l = UnixListener::create(
		dir + "/" + std::string(200, 'x'), ctx.get(), {}, [](UniqueFd) {}, error);
	EXPECT_FALSE(l);
	EXPECT_NE(error.find("too long"), std::string::npos) << error;
}
