// SPDX-License-Identifier: BSD-2-Clause
// unix_socket_test.cpp - socket files: mode and group whatever the umask, stale detection that unlinks only on ECONNREFUSED.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "glib_ptr.hpp"
#include "unix_socket.hpp"

using namespace slirpnet;

namespace {

struct SocketFile : ::testing::Test {
	std::string dir;
	std::string path;
	mode_t savedMask = 0;

	void SetUp() override
	{
		GCharPtr d(g_dir_make_tmp("unix-socket-XXXXXX", nullptr));
		ASSERT_TRUE(d);
		dir = d.get();
		path = dir + "/sock";
		savedMask = umask(022);
	}
	void TearDown() override
	{
		umask(savedMask);
		unlink(path.c_str());
		rmdir(dir.c_str());
	}
	// A socket file at path that nobody is bound to any more (its process died).
	void leaveStaleSocket(int type = SOCK_STREAM)
	{
		UniqueFd s(socket(AF_UNIX, type, 0));
		sockaddr_un sa{};
		sa.sun_family = AF_UNIX;
		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path.c_str());
		ASSERT_EQ(::bind(s.get(), reinterpret_cast<sockaddr *>(&sa), sizeof(sa)), 0) << strerror(errno);
	}
	ino_t inode()
	{
		struct stat st;
		return lstat(path.c_str(), &st) == 0 ? st.st_ino : 0;
	}
};

TEST_F(SocketFile, Mode0600UnderAnyUmask)
{
	for (mode_t mask : { 0000, 0077, 0277 }) {
		for (int type : { SOCK_STREAM, SOCK_DGRAM }) {
			umask(mask);
			std::string error;
			auto s = UnixSocketFile::bind(path, type, SocketAccess{}, error);
			ASSERT_TRUE(s) << error;
			struct stat st;
			ASSERT_EQ(lstat(path.c_str(), &st), 0);
			EXPECT_TRUE(S_ISSOCK(st.st_mode));
			EXPECT_EQ(st.st_mode & 07777, 0600u) << "umask " << std::oct << mask;
			// The umask is the process's again.
			EXPECT_EQ(umask(mask), mask);
		}
	}
}

TEST_F(SocketFile, GroupGivesMode0660AndTheGroup)
{
	umask(077); // would take the group's bits from a mode set through the umask
	SocketAccess a;
	std::string error;
	// Our own group: a change any owner may make.
	ASSERT_TRUE(socketAccessForGroup(std::to_string(getegid()), a, error)) << error;
	EXPECT_EQ(a.mode, 0660u);
	auto s = UnixSocketFile::listen(path, 4, a, error);
	ASSERT_TRUE(s) << error;
	struct stat st;
	ASSERT_EQ(lstat(path.c_str(), &st), 0);
	EXPECT_EQ(st.st_mode & 07777, 0660u);
	EXPECT_EQ(st.st_gid, getegid());

	EXPECT_FALSE(socketAccessForGroup("no-such-group-slirpnet", a, error));
	EXPECT_NE(error.find("no-such-group-slirpnet"), std::string::npos) << error;
	ASSERT_TRUE(socketAccessForGroup("", a, error));
	EXPECT_EQ(a.mode, 0600u);
	EXPECT_EQ(a.group, static_cast<gid_t>(-1));
}

TEST_F(SocketFile, StaleFileReplacedOnlyWhenTheProbeWasRefused)
{
	for (int type : { SOCK_STREAM, SOCK_DGRAM }) {
		leaveStaleSocket(type);
		std::string error;
		auto s = type == SOCK_STREAM ? UnixSocketFile::listen(path, 4, SocketAccess{}, error)
					     : UnixSocketFile::bind(path, type, SocketAccess{}, error);
		ASSERT_TRUE(s) << error;
		// A live one of either type is refused, and left alone.
		ino_t live = inode();
		auto again = UnixSocketFile::bind(path, type, SocketAccess{}, error);
		EXPECT_FALSE(again);
		EXPECT_NE(error.find("in use"), std::string::npos) << error;
		EXPECT_EQ(inode(), live);
	}
}

TEST_F(SocketFile, ProbeOfTheWrongTypeIsNotStale)
{
	// A datagram socket is bound there: a stream probe gets EPROTOTYPE, not ECONNREFUSED.
	std::string error;
	auto d = UnixSocketFile::bind(path, SOCK_DGRAM, SocketAccess{}, error);
	ASSERT_TRUE(d) << error;
	ino_t live = inode();
	EXPECT_FALSE(UnixSocketFile::listen(path, 4, SocketAccess{}, error));
	EXPECT_NE(error.find("not replacing"), std::string::npos) << error;
	EXPECT_EQ(inode(), live);
}

TEST_F(SocketFile, NoProbeSocketMeansNotReplaced)
{
	leaveStaleSocket();
	ino_t stale = inode();
	// Every descriptor in use: the probe socket cannot be made (EMFILE).
	struct rlimit saved;
	ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &saved), 0);
	std::vector<UniqueFd> fill;
	struct rlimit low = { 64, saved.rlim_max };
	ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
	for (;;) {
		int fd = dup(0);
		if (fd < 0)
			break;
		fill.emplace_back(fd);
	}
	std::string error;
	auto s = UnixSocketFile::bind(path, SOCK_STREAM, SocketAccess{}, error);
	fill.clear();
	setrlimit(RLIMIT_NOFILE, &saved);
	EXPECT_FALSE(s);
	EXPECT_NE(error.find("cannot probe"), std::string::npos) << error;
	EXPECT_EQ(inode(), stale);
}

TEST_F(SocketFile, ProbeRefusedForPermissionIsNotStale)
{
	// A stale file the prober may not connect to (EACCES): it cannot tell whether someone
	// serves it, so the file stays. As root, the probe runs as nobody in a child.
	leaveStaleSocket();
	ASSERT_EQ(chmod(path.c_str(), 0), 0);
	ino_t stale = inode();
	if (geteuid() != 0) {
		std::string error;
		EXPECT_FALSE(UnixSocketFile::bind(path, SOCK_STREAM, SocketAccess{}, error));
		EXPECT_NE(error.find("Permission denied"), std::string::npos) << error;
		EXPECT_EQ(inode(), stale);
		return;
	}
	// nobody may unlink in the directory: only the probe keeps the file.
	ASSERT_EQ(chmod(dir.c_str(), 0777), 0);
	pid_t pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		if (setresgid(65534, 65534, 65534) < 0 || setresuid(65534, 65534, 65534) < 0)
			_exit(3);
		std::string error;
		auto s = UnixSocketFile::bind(path, SOCK_STREAM, SocketAccess{}, error);
		_exit(s ? 1 : error.find("Permission denied") != std::string::npos ? 0 : 2);
	}
	int status = 0;
	ASSERT_EQ(waitpid(pid, &status, 0), pid);
	ASSERT_TRUE(WIFEXITED(status));
	EXPECT_EQ(WEXITSTATUS(status), 0);
	EXPECT_EQ(inode(), stale);
}

TEST_F(SocketFile, RegularFileRefused)
{
	UniqueFd f(open(path.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600));
	ASSERT_TRUE(f);
	std::string error;
	EXPECT_FALSE(UnixSocketFile::bind(path, SOCK_DGRAM, SocketAccess{}, error));
	EXPECT_NE(error.find("not a socket"), std::string::npos) << error;
	struct stat st;
	EXPECT_EQ(lstat(path.c_str(), &st), 0);
}

TEST(PeerPolicy, OwnUidAndRootAndTheAddedOnes)
{
	PeerPolicy p({ 4242 });
	EXPECT_TRUE(p.allows(0));
	EXPECT_TRUE(p.allows(geteuid()));
	EXPECT_TRUE(p.allows(4242));
	EXPECT_FALSE(p.allows(4243));
}

TEST(WarningLimiter, FirstThenOnePerInterval)
{
	WarningLimiter w(3600);
	uint64_t held = 99;
	EXPECT_TRUE(w.shouldLog(held));
	EXPECT_EQ(held, 0u);
	EXPECT_FALSE(w.shouldLog(held));
	EXPECT_FALSE(w.shouldLog(held));
}

} // namespace
