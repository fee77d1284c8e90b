// SPDX-License-Identifier: BSD-2-Clause
// seccomp_filter_test.cpp - the helper's seccomp allowlist, installed in a forked child per test.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <netinet/in.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <functional>
#include <string>
#include <thread>

#include "sandbox/seccomp_filter.hpp"

using namespace slirpnet;

namespace {

// Exit codes of the child: which step went wrong (0: every step as expected).
constexpr int kSetupFailed = 100;

/*
 * Fork, install the filter in the child (with no_new_privs, as the helper has it), run body
 * and _exit with what it returns. The parent gets the wait status: a filter is for good, so
 * it can only be tried in a process that ends with the test.
 */
int runFiltered(const SeccompNeeds &needs, SeccompAction action, const std::function<int()> &body)
{
	fflush(nullptr); // nothing buffered is written twice
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		std::string error;
		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || !installSeccompFilter(needs, action, error)) {
			fprintf(stderr, "child: %s\n", error.c_str());
			_exit(kSetupFailed);
		}
		_exit(body());
	}
	int status = 0;
	if (waitpid(pid, &status, 0) != pid)
		return -1;
	return status;
}

::testing::AssertionResult exitedZero(int status)
{
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return ::testing::AssertionSuccess();
	if (WIFEXITED(status))
		return ::testing::AssertionFailure() << "the child exited " << WEXITSTATUS(status);
	return ::testing::AssertionFailure() << "the child was killed by signal " << WTERMSIG(status);
}

::testing::AssertionResult killedBySigsys(int status)
{
	if (WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS)
		return ::testing::AssertionSuccess();
	if (WIFEXITED(status))
		return ::testing::AssertionFailure() << "the child exited " << WEXITSTATUS(status);
	return ::testing::AssertionFailure() << "the child was killed by signal " << WTERMSIG(status);
}

// -1 with errno == expected: the call was refused, not killed and not allowed.
bool refused(long rc, int expected)
{
	return rc == -1 && errno == expected;
}

} // namespace

TEST(SeccompFilter, WhatTheHelperDoesIsAllowed)
{
	int status = runFiltered({}, SeccompAction::Kill, [] {
		int udp = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (udp < 0)
			return 1;
		int tcp6 = socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (tcp6 < 0)
			return 2;
		int unixDgram = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (unixDgram < 0)
			return 3;
		// libslirp's ICMP: a ping socket, where the kernel allows it (net.ipv4.ping_group_range).
		int icmp = socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP);
		if (icmp < 0 && errno != EACCES && errno != EPERM)
			return 4;
		int one = 1;
		if (setsockopt(udp, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
			return 5;
		int flags = fcntl(tcp6, F_GETFL);
		if (flags < 0 || fcntl(tcp6, F_SETFL, flags | O_NONBLOCK) < 0)
			return 6;
		int pending = 0;
		if (ioctl(udp, FIONREAD, &pending) < 0)
			return 7;
		// GLib's wake-up and loop.
		int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		uint64_t one64 = 1;
		if (efd < 0 || write(efd, &one64, sizeof one64) != sizeof one64)
			return 8;
		pollfd pfd{ efd, POLLIN, 0 };
		if (poll(&pfd, 1, 0) != 1 || ppoll(&pfd, 1, nullptr, nullptr) != 1)
			return 9;
		if (read(efd, &one64, sizeof one64) != sizeof one64)
			return 10;
		// The system calls themselves, not the vDSO.
		timespec ts{};
		if (syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &ts) < 0 || sched_yield() < 0)
			return 11;
		// resolv.conf-style reading.
		int ro = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (ro < 0 || close(ro) < 0)
			return 12;
		void *m = mmap(nullptr, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (m == MAP_FAILED || munmap(m, 1 << 20) < 0)
			return 13;
		unsigned char rnd[8];
		if (getrandom(rnd, sizeof rnd, 0) != sizeof rnd)
			return 14;
		return 0;
	});
	EXPECT_TRUE(exitedZero(status));
}

// GLib may start a thread: glibc's pthread_create tries clone3 (ENOSYS), then clone.
TEST(SeccompFilter, ThreadsStartAndForkKills)
{
	EXPECT_TRUE(exitedZero(runFiltered({}, SeccompAction::Kill, [] {
		int value = 0;
		std::thread t([&value] { value = 42; });
		t.join();
		return value == 42 ? 0 : 1;
	})));
	EXPECT_TRUE(killedBySigsys(runFiltered({}, SeccompAction::Kill, [] {
		pid_t pid = fork();
		if (pid == 0)
			_exit(0);
		return 1;
	})));
}

TEST(SeccompFilter, ExecveKills)
{
	EXPECT_TRUE(killedBySigsys(runFiltered({}, SeccompAction::Kill, [] {
		char *const argv[] = { const_cast<char *>("true"), nullptr };
		execve("/bin/true", argv, nullptr);
		return 1;
	})));
}

TEST(SeccompFilter, OtherSocketFamiliesAreRefused)
{
	EXPECT_TRUE(exitedZero(runFiltered({}, SeccompAction::Kill, [] {
		if (!refused(socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, 0), EAFNOSUPPORT))
			return 1;
		if (!refused(socket(AF_PACKET, SOCK_RAW, htons(0x0003)), EAFNOSUPPORT))
			return 2;
		if (!refused(socket(AF_MAX + 5, SOCK_DGRAM, 0), EAFNOSUPPORT))
			return 3;
		return 0;
	})));
	// socketpair is not needed after start-up.
	EXPECT_TRUE(killedBySigsys(runFiltered({}, SeccompAction::Kill, [] {
		int sv[2];
		socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
		return 1;
	})));
}

TEST(SeccompFilter, NoExecutableMemoryAndFewIoctls)
{
	EXPECT_TRUE(exitedZero(runFiltered({}, SeccompAction::Kill, [] {
		if (mmap(nullptr, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) != MAP_FAILED ||
		    errno != EPERM)
			return 1;
		void *m = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (m == MAP_FAILED || !refused(mprotect(m, 4096, PROT_READ | PROT_EXEC), EPERM))
			return 2;
		return 0;
	})));
	// Other ioctl requests than libslirp's and isatty's are not for the helper.
	EXPECT_TRUE(killedBySigsys(runFiltered({}, SeccompAction::Kill, [] {
		int fd = open("/dev/null", O_RDONLY);
		ioctl(fd, FIOCLEX);
		return 1;
	})));
}

// Writing or creating files only with a capture that may start at run time.
TEST(SeccompFilter, WriteOpensNeedCapture)
{
	char dir[] = "/tmp/seccomp-test-XXXXXX";
	ASSERT_NE(mkdtemp(dir), nullptr);
	const std::string path = std::string(dir) + "/capture.pcap";
	EXPECT_TRUE(exitedZero(runFiltered({}, SeccompAction::Kill, [&path] {
		if (!refused(open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600), EACCES))
			return 1;
		if (!refused(open("/dev/null", O_RDWR), EACCES) || !refused(open("/dev/null", O_WRONLY), EACCES))
			return 2;
		if (!refused(open("/dev/null", O_RDONLY | O_APPEND), EACCES))
			return 3;
		return 0;
	})));
	SeccompNeeds capture;
	capture.capture = true;
	EXPECT_TRUE(exitedZero(runFiltered(capture, SeccompAction::Kill, [&path] {
		int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NONBLOCK, 0600);
		if (fd < 0 || write(fd, "x", 1) != 1 || close(fd) < 0)
			return 1;
		return 0;
	})));
	unlink(path.c_str());
	rmdir(dir);
}

// accept4 is --socket's and control='s; libslirp's hostfwd uses accept.
TEST(SeccompFilter, Accept4NeedsClients)
{
	auto acceptBoth = [] {
		int l = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
		sockaddr_in a{};
		a.sin_family = AF_INET;
		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		if (l < 0 || bind(l, reinterpret_cast<sockaddr *>(&a), sizeof a) < 0 || listen(l, 1) < 0)
			return 1;
		if (!refused(accept(l, nullptr, nullptr), EAGAIN))
			return 2;
		if (!refused(accept4(l, nullptr, nullptr, SOCK_CLOEXEC), EAGAIN))
			return 3;
		return 0;
	};
	SeccompNeeds clients;
	clients.acceptsClients = true;
	EXPECT_TRUE(exitedZero(runFiltered(clients, SeccompAction::Kill, acceptBoth)));
	EXPECT_TRUE(killedBySigsys(runFiltered({}, SeccompAction::Kill, acceptBoth)));
}

// seccomp-log=on: what the allowlist lacks happens (and the kernel logs it).
TEST(SeccompFilter, LogModeDoesNotKill)
{
	EXPECT_TRUE(exitedZero(runFiltered({}, SeccompAction::Log, [] {
		int sv[2];
		if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
			return 1;
		if (syscall(SYS_getppid) < 0)
			return 2;
		char *const argv[] = { const_cast<char *>("x"), nullptr };
		if (!refused(execve("/nonexistent/slirpnet-seccomp-test", argv, nullptr), ENOENT))
			return 3;
		// The argument rules still answer as in Kill mode.
		if (!refused(socket(AF_NETLINK, SOCK_RAW, 0), EAFNOSUPPORT))
			return 4;
		return 0;
	})));
}
