// SPDX-License-Identifier: BSD-2-Clause
// sandbox/sandbox.cpp - the helper's containment: fds, no new privileges, the drop from root, Landlock, seccomp.
#include "sandbox/sandbox.hpp"

#include <fcntl.h>
#include <glib.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/seccomp.h>
#include <pwd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <optional>

#include "sandbox/landlock.hpp"
#include "sandbox/sanitizer_build.hpp"
#include "unique_fd.hpp"

#if SLIRPNET_ASAN
#include <sanitizer/lsan_interface.h>
#endif

namespace slirpnet {

namespace {

SandboxReport gReport;

// The user a root helper becomes, looked up by hardenProcess() (before the environment
// and the file system are taken away).
struct Target {
	std::string name;
	uid_t uid;
	gid_t gid;
};
std::optional<Target> gTarget;

// The directories of createDirs by identity: capture-start compares with stat() alone, as
// realpath() would need readlink, which the seccomp filter need not allow.
struct DirId {
	dev_t dev;
	ino_t ino;
};
std::vector<DirId> gCreateDirIds;

// Environment variables kept: the debug switches of GLib's log and of libslirp (read at
// slirp_init), which only ask for more logging.
constexpr const char *kKeptEnvironment[] = { "G_MESSAGES_DEBUG", "SLIRP_DEBUG" };

// The default user= : a dedicated account if the system has one, else nobody.
constexpr const char *kDedicatedUser = "slirpnet";
constexpr const char *kFallbackUser = "nobody";

bool fail(std::string &error, std::string why)
{
	error = std::move(why);
	return false;
}

std::string errnoText(const char *what)
{
	return std::string(what) + ": " + strerror(errno);
}

std::optional<Target> lookUpUser(const std::string &name)
{
	std::vector<char> buf(16384);
	passwd pw, *res = nullptr;
	if (getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &res) != 0 || !res)
		return std::nullopt;
	return Target{ name, pw.pw_uid, pw.pw_gid };
}

std::string userName(uid_t uid)
{
	std::vector<char> buf(16384);
	passwd pw, *res = nullptr;
	if (getpwuid_r(uid, &pw, buf.data(), buf.size(), &res) == 0 && res)
		return pw.pw_name;
	return std::to_string(uid);
}

bool startedAsRoot()
{
	return geteuid() == 0 || getuid() == 0;
}

bool findTarget(const Config &cfg, std::optional<Target> &out, std::string &error)
{
	if (!cfg.user.empty()) {
		out = lookUpUser(cfg.user);
		if (!out)
			return fail(error, "user: no such user '" + cfg.user + "'");
	} else {
		out = lookUpUser(kDedicatedUser);
		if (!out)
			out = lookUpUser(kFallbackUser);
		if (!out)
			return fail(error, std::string("user: neither '") + kDedicatedUser + "' nor '" + kFallbackUser +
						   "' exists; name the user to run as with user=NAME");
	}
	if (out->uid == 0 || out->gid == 0)
		return fail(error, "user: '" + out->name + "' has uid or gid 0; the helper would keep root's rights");
	return true;
}

int lastCapability()
{
	// The running kernel may know more capabilities than our headers.
	int last = CAP_LAST_CAP;
	if (FILE *f = fopen("/proc/sys/kernel/cap_last_cap", "re")) {
		if (fscanf(f, "%d", &last) != 1)
			last = CAP_LAST_CAP;
		fclose(f);
	}
	return last;
}

bool capabilitySets(__user_cap_data_struct (&data)[2])
{
	__user_cap_header_struct hdr{ _LINUX_CAPABILITY_VERSION_3, 0 };
	return syscall(SYS_capget, &hdr, data) == 0;
}

// Empty the permitted, effective and inheritable sets and the ambient set (a process may
// always give up capabilities; setresuid() from root already emptied all but inheritable).
bool clearCapabilities(std::string &error)
{
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		return fail(error, errnoText("prctl(PR_CAP_AMBIENT_CLEAR_ALL)"));
	__user_cap_header_struct hdr{ _LINUX_CAPABILITY_VERSION_3, 0 };
	__user_cap_data_struct data[2]{};
	if (syscall(SYS_capset, &hdr, data) < 0)
		return fail(error, errnoText("capset"));
	return true;
}

bool noCapabilitiesLeft(bool boundingToo)
{
	__user_cap_data_struct data[2]{};
	if (!capabilitySets(data))
		return false;
	for (const auto &d : data)
		if (d.effective || d.permitted || d.inheritable)
			return false;
	for (int cap = 0; cap <= lastCapability(); cap++) {
		if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, cap, 0, 0) > 0)
			return false;
		if (boundingToo && prctl(PR_CAPBSET_READ, cap, 0, 0, 0) > 0)
			return false;
	}
	return true;
}

/*
 * Root to target: the bounding set first (dropping it needs CAP_SETPCAP, which goes with
 * the uid), then no supplementary groups, the gid, the uid; then prove that none of it can
 * come back. The parent-death signal does not survive a change of credentials: re-armed.
 */
bool dropRoot(const Target &t, int parentDeathSignal, pid_t parent, std::string &error)
{
	for (int cap = 0; cap <= lastCapability(); cap++)
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
			return fail(error, errnoText("prctl(PR_CAPBSET_DROP)"));
	if (setgroups(0, nullptr) < 0)
		return fail(error, errnoText("setgroups"));
	if (setresgid(t.gid, t.gid, t.gid) < 0)
		return fail(error, errnoText("setresgid"));
	if (setresuid(t.uid, t.uid, t.uid) < 0)
		return fail(error, errnoText("setresuid"));
	if (!clearCapabilities(error))
		return false;

	uid_t ru, eu, su;
	gid_t rg, eg, sg;
	if (getresuid(&ru, &eu, &su) < 0 || getresgid(&rg, &eg, &sg) < 0 || ru != t.uid || eu != t.uid || su != t.uid ||
	    rg != t.gid || eg != t.gid || sg != t.gid || getgroups(0, nullptr) != 0)
		return fail(error, "the change to user '" + t.name + "' did not take");
	if (setuid(0) == 0 || setgid(0) == 0)
		return fail(error, "root could be regained after the change to user '" + t.name + "'");
	if (!noCapabilitiesLeft(true))
		return fail(error, "capabilities remain after the change to user '" + t.name + "'");
	// A change of credentials resets these two to the system's defaults.
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		return fail(error, errnoText("prctl(PR_SET_DUMPABLE)"));
	if (parentDeathSignal) {
		if (prctl(PR_SET_PDEATHSIG, parentDeathSignal, 0, 0, 0) < 0)
			return fail(error, errnoText("prctl(PR_SET_PDEATHSIG)"));
		// The parent may have gone while the signal was not armed: then it is owed now.
		if (getppid() != parent)
			raise(parentDeathSignal);
	}
	return true;
}

std::string parentOf(const std::string &path)
{
	size_t slash = path.rfind('/');
	return slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
}

// The directory a file path names (relative paths from the working directory), resolved.
std::optional<std::string> resolvedDir(const std::string &path)
{
	char buf[PATH_MAX];
	if (!realpath(parentOf(path).c_str(), buf))
		return std::nullopt;
	return std::string(buf);
}

// Whether dir is one of gCreateDirIds or beneath one, walking up through "..". nullopt
// when dir cannot be examined (the open will then say why).
std::optional<bool> beneathCreateDirs(std::string dir)
{
	constexpr int kMaxDepth = 128;
	for (int depth = 0; depth < kMaxDepth && dir.size() < PATH_MAX; depth++) {
		struct stat st, up;
		if (stat(dir.c_str(), &st) < 0)
			return depth == 0 ? std::nullopt : std::optional<bool>(false);
		for (const auto &d : gCreateDirIds)
			if (d.dev == st.st_dev && d.ino == st.st_ino)
				return true;
		dir += "/..";
		if (stat(dir.c_str(), &up) == 0 && up.st_dev == st.st_dev && up.st_ino == st.st_ino)
			return false; // the root: its parent is itself
	}
	return false;
}

bool seccompAvailable()
{
	// A kernel built with seccomp filters answers for the action the filter uses.
	uint32_t action = SECCOMP_RET_KILL_PROCESS;
	return syscall(SYS_seccomp, SECCOMP_GET_ACTION_AVAIL, 0, &action) == 0;
}

} // namespace

bool sandboxOffOnCommandLine(const OptionList &opts)
{
	bool on = true;
	for (const auto &[key, value] : opts)
		if (key == "sandbox" && !parseBool(value.empty() ? "on" : value, on))
			on = true; // parseConfig reports the bad value
	return !on;
}

bool closeInheritedFds(std::span<const int> keep, bool quietStdout, std::string &error)
{
	std::vector<unsigned> kept;
	for (int fd : keep)
		if (fd > STDERR_FILENO)
			kept.push_back(static_cast<unsigned>(fd));
	std::sort(kept.begin(), kept.end());
	kept.push_back(UINT_MAX); // sentinel: everything after the last one
	unsigned from = STDERR_FILENO + 1;
	for (unsigned k : kept) {
		if (from < k) {
			unsigned to = k == UINT_MAX ? UINT_MAX : k - 1;
			if (close_range(from, to, 0) < 0) {
				if (errno != ENOSYS)
					return fail(error, errnoText("close_range"));
				// Kernels before 5.9: one by one, up to the descriptor limit.
				rlimit rl{};
				getrlimit(RLIMIT_NOFILE, &rl);
				unsigned end = std::min<rlim_t>(to, rl.rlim_cur == RLIM_INFINITY ? 65536 : rl.rlim_cur);
				for (unsigned fd = from; fd <= end && fd < UINT_MAX; fd++)
					close(static_cast<int>(fd));
			}
		}
		if (k != UINT_MAX)
			from = k + 1;
	}
	// Nothing reads stdin: a terminal or the emulator's stdin must not reach libslirp.
	for (int fd : { STDIN_FILENO, quietStdout ? STDOUT_FILENO : -1 }) {
		if (fd < 0 || std::find(keep.begin(), keep.end(), fd) != keep.end())
			continue;
		UniqueFd null(open("/dev/null", O_RDWR | O_CLOEXEC));
		if (!null || dup2(null.get(), fd) < 0)
			return fail(error, errnoText("stdio to /dev/null"));
	}
	gReport.fdsClosed = true;
	return true;
}

unsigned long sandboxMaxFds(const Config &cfg, unsigned long inheritedHard)
{
	unsigned long want = static_cast<unsigned long>(cfg.maxFlows) + cfg.hostFwds.size() + kSandboxFdReserve;
	return inheritedHard == RLIM_INFINITY ? want : std::min(want, inheritedHard);
}

bool hardenProcess(const Config &cfg, std::string &error)
{
	gReport.enabled = true;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return fail(error, errnoText("prctl(PR_SET_NO_NEW_PRIVS)"));
	gReport.noNewPrivs = true;
	rlimit none{ 0, 0 };
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0 || setrlimit(RLIMIT_CORE, &none) < 0)
		return fail(error, errnoText("no core dumps"));
	gReport.notDumpable = true;
	rlimit fds{};
	if (getrlimit(RLIMIT_NOFILE, &fds) < 0)
		return fail(error, errnoText("getrlimit(RLIMIT_NOFILE)"));
	rlim_t bound = sandboxMaxFds(cfg, fds.rlim_max);
	fds = { bound, bound };
	if (setrlimit(RLIMIT_NOFILE, &fds) < 0)
		return fail(error, errnoText("setrlimit(RLIMIT_NOFILE)"));
	gReport.maxFds = bound;

	if (startedAsRoot()) {
		if (!findTarget(cfg, gTarget, error))
			return false;
	} else if (!cfg.user.empty() && cfg.user != userName(getuid())) {
		g_message("user=%s: not started as root, so the helper stays user '%s'", cfg.user.c_str(),
			  userName(getuid()).c_str());
	}

	std::vector<std::pair<const char *, std::string>> kept;
	for (const char *name : kKeptEnvironment)
		if (const char *v = getenv(name))
			kept.emplace_back(name, v);
	if (clearenv() != 0)
		return fail(error, "clearenv failed");
	for (const auto &[name, value] : kept)
		setenv(name, value.c_str(), 1);
	gReport.environmentScrubbed = true;
	return true;
}

bool lockDown(const LockDownPlan &plan, std::string &error)
{
	gReport.enabled = true;
#if SLIRPNET_ASAN
	// The ASan build: LeakSanitizer's check at exit stops the threads with clone and ptrace
	// and lists /proc/self/task, which the sandbox refuses from here on. So it runs now, on
	// what start-up allocated, and not again at exit (__lsan_do_leak_check runs once per
	// process); sandbox=off runs and the unit tests keep the check at exit.
	__lsan_do_leak_check();
#endif
	if (gTarget) {
		if (!dropRoot(*gTarget, plan.parentDeathSignal, plan.parent, error))
			return false;
		gReport.droppedRoot = true;
	} else if (!clearCapabilities(error)) {
		return false;
	}
	gReport.user = userName(getuid());
	gReport.uid = getuid();
	gReport.gid = getgid();
	gReport.noCapabilities = noCapabilitiesLeft(gReport.droppedRoot);

	std::vector<LandlockRule> rules;
	if (!plan.tftpDir.empty()) {
		rules.push_back({ plan.tftpDir, LandlockAccess::ReadTree });
		gReport.tftpDir = plan.tftpDir;
	}
	// libslirp reads /etc/resolv.conf at the guest's first DNS query and again whenever its
	// mtime changes. Whoever manages it (dhclient-script, resolvconf, NetworkManager,
	// systemd-resolved) replaces it by rename: a new inode, which a rule on the file itself
	// would not cover, and DNS would fail until a restart. So reading (never writing) goes
	// to the directories that hold it and its real target, as slirp4netns' sandbox shows
	// /etc and /run; files there that are not world-readable stay out of reach of the
	// dropped user anyway.
	rules.push_back({ "/etc", LandlockAccess::ReadTree });
	if (char *real = realpath("/etc/resolv.conf", nullptr)) {
		std::string dir = real;
		free(real);
		dir = dir.substr(0, dir.rfind('/'));
		if (!dir.empty() && dir != "/etc")
			rules.push_back({ dir, LandlockAccess::ReadTree });
	}
	// The ASan build: a sanitizer report lists the mapped modules from /proc/self/maps and
	// symbolizes its stack from the binaries themselves (gcc's runtime reads the ELF files
	// and /usr/lib/debug in the process; without them: addresses only, or a failed CHECK
	// instead of the report).
	if constexpr (kAsanBuild) {
		rules.push_back({ "/proc/self", LandlockAccess::ReadTree });
		rules.push_back({ "/usr", LandlockAccess::ReadTree });
		if (char *exe = realpath("/proc/self/exe", nullptr)) {
			rules.push_back({ exe, LandlockAccess::ReadFile });
			free(exe);
		}
	}
	gReport.createDirs.clear();
	for (const auto &f : plan.createFiles) {
		auto dir = resolvedDir(f);
		if (!dir ||
		    std::find(gReport.createDirs.begin(), gReport.createDirs.end(), *dir) != gReport.createDirs.end())
			continue;
		gReport.createDirs.push_back(*dir);
		rules.push_back({ *dir, LandlockAccess::CreateIn });
		if (struct stat st; stat(dir->c_str(), &st) == 0)
			gCreateDirIds.push_back({ st.st_dev, st.st_ino });
	}
	for (const auto &f : plan.removeFiles)
		if (auto dir = resolvedDir(f))
			rules.push_back({ *dir, LandlockAccess::RemoveIn });
	if (landlockAbi() == 0) {
		gReport.landlockNote = "not available in this kernel";
		g_debug("sandbox: Landlock is not available in this kernel; going on without it");
	} else if (!applyLandlock(rules, gReport.landlockAbi, error)) {
		return false;
	}
	return true;
}

bool installSyscallFilter(const LockDownPlan &plan, std::string &error)
{
	if (!plan.seccomp)
		return true;
	if (!installSeccompFilter(plan.seccompNeeds, plan.seccompLog ? SeccompAction::Log : SeccompAction::Kill, error))
		return false;
	gReport.seccomp = true;
	gReport.seccompLog = plan.seccompLog;
	return true;
}

const SandboxReport &sandboxReport()
{
	return gReport;
}

SandboxReport sandboxProbe(const Config &cfg)
{
	SandboxReport r;
	r.enabled = cfg.sandbox;
	r.uid = getuid();
	r.gid = getgid();
	r.user = userName(getuid());
	if (!cfg.sandbox)
		return r;
	r.fdsClosed = r.noNewPrivs = r.notDumpable = r.environmentScrubbed = true;
	rlimit fds{};
	getrlimit(RLIMIT_NOFILE, &fds);
	r.maxFds = sandboxMaxFds(cfg, fds.rlim_max);
	std::optional<Target> t;
	std::string ignored;
	if (startedAsRoot() && findTarget(cfg, t, ignored)) {
		r.droppedRoot = true;
		r.user = t->name;
		r.uid = t->uid;
		r.gid = t->gid;
	}
	r.noCapabilities = true;
	r.landlockAbi = landlockAbi();
	if (r.landlockAbi == 0)
		r.landlockNote = "not available in this kernel";
	r.seccomp = cfg.seccomp && seccompAvailable();
	r.seccompLog = r.seccomp && cfg.seccompLog;
	return r;
}

bool sandboxAllowsCreate(const std::string &path, std::string &error)
{
	if (!gReport.enabled)
		return true;
	auto inside = beneathCreateDirs(parentOf(path));
	if (!inside || *inside)
		return true; // inside, or no such directory: then the open says so
	std::string allowed;
	for (const auto &top : gReport.createDirs)
		allowed += (allowed.empty() ? "'" : ", '") + top + "'";
	return fail(error, "'" + path + "' is outside the directories the sandboxed helper may create files in (" +
				   (allowed.empty() ? std::string("none") : allowed) +
				   ": those of pcap=, control= and --pid)");
}

std::string privilegedPortHint(unsigned port)
{
	if (port >= 1024 || !gReport.droppedRoot)
		return "";
	return " (the helper dropped its root privileges after start-up and now runs as user '" + gReport.user +
	       "': ports below 1024 can only be forwarded from the start, by hostfwd= options)";
}

} // namespace slirpnet
