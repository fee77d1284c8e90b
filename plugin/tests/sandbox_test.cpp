// SPDX-License-Identifier: BSD-2-Clause
// sandbox_test.cpp - the sandbox's steps (fds, Landlock, capture-start's directories), each in a forked child.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <memory>
#include <string>

#include "sandbox/landlock.hpp"
#include "sandbox/sandbox.hpp"
#include "sandbox/sanitizer_build.hpp"

using namespace slirpnet;

namespace {

// A directory of its own for each test, removed afterwards.
class TempDir
{
public:
	TempDir()
	{
		char tmpl[] = "/tmp/sbx-test-XXXXXX";
		path_ = mkdtemp(tmpl);
	}
	~TempDir() { std::system(("rm -rf '" + path_ + "'").c_str()); }
	const std::string &path() const { return path_; }
	std::string operator/(const std::string &name) const { return path_ + "/" + name; }

private:
	std::string path_;
};

// In the child: exit with the number of the first check that failed, 0 when all passed.
#define CHECK_OR_EXIT(n, cond)                                                                                         \
	do {                                                                                                           \
		if (!(cond))                                                                                           \
			_exit(n);                                                                                      \
	} while (0)

bool canCreate(const std::string &path)
{
	int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return false;
	close(fd);
	return true;
}

bool canRead(const std::string &path)
{
	int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	close(fd);
	return true;
}

} // namespace

TEST(Sandbox, OffOnlyWhenTheCommandLineSaysSo)
{
	EXPECT_FALSE(sandboxOffOnCommandLine({}));
	EXPECT_FALSE(sandboxOffOnCommandLine({ { "sandbox", "" } }));
	EXPECT_FALSE(sandboxOffOnCommandLine({ { "sandbox", "on" } }));
	EXPECT_TRUE(sandboxOffOnCommandLine({ { "sandbox", "off" } }));
	EXPECT_FALSE(sandboxOffOnCommandLine({ { "sandbox", "off" }, { "sandbox", "yes" } }));
	// A bad value keeps it on; parseConfig reports it.
	EXPECT_FALSE(sandboxOffOnCommandLine({ { "sandbox", "perhaps" } }));
}

// RLIMIT_NOFILE follows max-flows= and the hostfwd rules, under the inherited hard limit.
TEST(Sandbox, MaxFdsFollowsMaxFlows)
{
	Config def;
	EXPECT_EQ(sandboxMaxFds(def, RLIM_INFINITY), Config::kDefaultMaxFlows + kSandboxFdReserve);
	EXPECT_EQ(sandboxMaxFds(def, 1048576), Config::kDefaultMaxFlows + kSandboxFdReserve);
	EXPECT_EQ(sandboxMaxFds(def, 1024), 1024u); // never above the hard limit
	Config c;
	c.maxFlows = 8;
	c.hostFwds.resize(3);
	EXPECT_EQ(sandboxMaxFds(c, 1048576), 8u + 3 + kSandboxFdReserve);
	c.maxFlows = Config::kMaxMaxFlows;
	EXPECT_EQ(sandboxMaxFds(c, 65536), 65536u);
}

TEST(Sandbox, InheritedFdsClosedButTheKeptOne)
{
	auto child = [&] {
		int stray = open("/dev/zero", O_RDONLY); // no O_CLOEXEC: inherited
		int kept = dup2(stray, 40);
		int high = dup2(stray, 300);
		std::string error;
		const int keep[] = { kept };
		CHECK_OR_EXIT(1, closeInheritedFds(keep, false, error));
		CHECK_OR_EXIT(2, fcntl(stray, F_GETFD) < 0 && errno == EBADF);
		CHECK_OR_EXIT(3, fcntl(high, F_GETFD) < 0 && errno == EBADF);
		CHECK_OR_EXIT(4, fcntl(kept, F_GETFD) >= 0);
		struct stat in, null;
		CHECK_OR_EXIT(5, fstat(STDIN_FILENO, &in) == 0 && stat("/dev/null", &null) == 0);
		CHECK_OR_EXIT(6, in.st_rdev == null.st_rdev);
		CHECK_OR_EXIT(7, fcntl(STDERR_FILENO, F_GETFD) >= 0);
		_exit(0);
	};
	EXPECT_EXIT(child(), ::testing::ExitedWithCode(0), "");
}

TEST(Sandbox, LandlockAllowsOnlyTheRules)
{
	if (landlockAbi() == 0)
		GTEST_SKIP() << "no Landlock in this kernel";
	TempDir create, read, other;
	ASSERT_TRUE(canCreate(read / "file"));
	ASSERT_TRUE(canCreate(other / "file"));
	auto child = [&] {
		CHECK_OR_EXIT(1, prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0);
		int abi = 0;
		std::string error;
		CHECK_OR_EXIT(2, applyLandlock({ { create.path(), LandlockAccess::CreateIn },
						 { read.path(), LandlockAccess::ReadTree },
						 { "/nonexistent/skipped", LandlockAccess::ReadFile } },
					       abi, error));
		CHECK_OR_EXIT(3, abi == landlockAbi());
		CHECK_OR_EXIT(4, canCreate(create / "new"));
		CHECK_OR_EXIT(5, unlink((create / "new").c_str()) == 0);
		CHECK_OR_EXIT(6, canRead(read / "file"));
		CHECK_OR_EXIT(7, !canCreate(read / "new") && errno == EACCES);
		CHECK_OR_EXIT(8, !canRead(other / "file") && errno == EACCES);
		CHECK_OR_EXIT(9, !canCreate(other / "new") && errno == EACCES);
		CHECK_OR_EXIT(10, !canRead("/etc/passwd") && errno == EACCES);
		_exit(0);
	};
	EXPECT_EXIT(child(), ::testing::ExitedWithCode(0), "");
}

TEST(Sandbox, CaptureStartOnlyInTheDirectoriesOfTheFiles)
{
	TempDir ctl, other;
	ASSERT_EQ(mkdir((ctl / "sub").c_str(), 0700), 0);
	std::string error;
	// Before any lock-down (unit tests, sandbox=off) nothing is refused.
	EXPECT_TRUE(sandboxAllowsCreate(other / "x.pcap", error));
	auto child = [&] {
		CHECK_OR_EXIT(9, prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0); // as hardenProcess()
		LockDownPlan plan;
		plan.createFiles = { ctl / "ctl.sock" };
		plan.seccomp = false;
		std::string err;
		CHECK_OR_EXIT(1, lockDown(plan, err));
		CHECK_OR_EXIT(2, sandboxAllowsCreate(ctl / "a.pcap", err));
		CHECK_OR_EXIT(3, sandboxAllowsCreate(ctl / "sub/a.pcap", err));
		CHECK_OR_EXIT(4, sandboxAllowsCreate(ctl / "sub/../b.pcap", err));
		CHECK_OR_EXIT(5, !sandboxAllowsCreate(other / "x.pcap", err));
		CHECK_OR_EXIT(6, err.find(other / "x.pcap") != std::string::npos);
		CHECK_OR_EXIT(7, err.find(ctl.path()) != std::string::npos);
		CHECK_OR_EXIT(8, !sandboxAllowsCreate(ctl / "../x.pcap", err));
		_exit(0);
	};
	EXPECT_EXIT(child(), ::testing::ExitedWithCode(0), "");
}

#if SLIRPNET_ASAN
namespace {

// One byte past a 4-byte block (the index comes from outside, so the compiler cannot see it).
[[gnu::noinline]] void overflowTheHeap(size_t at)
{
	std::unique_ptr<char[]> p(new char[4]);
	volatile char *v = p.get();
	v[at] = 1;
}
volatile size_t gPastTheEnd = 4;

// ASan ends the process after its report: SIGABRT with abort_on_error=1 (the test setup's
// ASAN_OPTIONS), else its exit code 1.
bool endedByTheReport(int status)
{
	return (WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT) || (WIFEXITED(status) && WEXITSTATUS(status) == 1);
}

} // namespace

// The ASan build: a memory error in the locked-down helper prints a report (ASan's, or
// UBSan's object-size check's when it sees the block) with its stack symbolized: seccomp
// allows what the runtime needs for it, Landlock /proc/self and the binaries. Not a SIGSYS,
// nor a CHECK of the runtime's that could not read /proc/self/maps.
TEST(Sandbox, SanitizerReportUnderTheSandbox)
{
	auto child = [] {
		CHECK_OR_EXIT(1, prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0);
		LockDownPlan plan;
		std::string err;
		CHECK_OR_EXIT(2, lockDown(plan, err));
		CHECK_OR_EXIT(3, installSyscallFilter(plan, err));
		overflowTheHeap(gPastTheEnd);
		_exit(4);
	};
	EXPECT_EXIT(child(), endedByTheReport,
		    "(ERROR: AddressSanitizer: heap-buffer-overflow|runtime error: store to address).*"
		    "overflowTheHeap.*sandbox_test.cpp");
}
#endif
