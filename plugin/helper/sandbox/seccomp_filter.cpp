// SPDX-License-Identifier: BSD-2-Clause
// sandbox/seccomp_filter.cpp - the helper's seccomp allowlist (libseccomp), measured with strace over the tests.
#include "sandbox/seccomp_filter.hpp"

#include <fcntl.h>
#include <linux/sched.h>
#include <seccomp.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

#include <netinet/in.h>

#include "sandbox/sanitizer_build.hpp"

#include <cerrno>
#include <cstring>
#include <initializer_list>
#include <memory>

namespace slirpnet {

namespace {

/*
 * Allowed whatever the arguments, on every transport. The list is what strace saw the
 * helper make after start-up across the frame tests (pytests/), plus what the same code
 * paths make in cases the tests do not reach (noted). Kept as names: libseccomp resolves
 * them per architecture, and one that an architecture lacks (poll on arm64) is skipped.
 */
// clang-format off
constexpr const char *kAlways[] = {
	// The loop: GLib's poll, busy polling's yield, timers. clock_gettime and gettimeofday
	// are vDSO calls but fall back to the system call where the vDSO cannot serve them.
	"poll", "ppoll", "sched_yield", "clock_gettime", "clock_getres", "gettimeofday",
	"nanosleep", "clock_nanosleep",
	// I/O on descriptors the helper holds: links, libslirp's sockets, GLib's wake-up
	// eventfd, stderr (logging), the pcap file.
	"read", "readv", "write", "writev", "close",
	// GLib's wake-ups (a new GMainContext; the pipe is its fallback).
	"eventfd2", "pipe2",
	// Memory. mmap and mprotect are further limited below (no executable mappings).
	"brk", "munmap", "mremap", "madvise",
	// Threads: the helper is single-threaded but GLib runs its worker thread ("gmain", for
	// g_unix_signal), which starts while the filter goes in (TSYNC covers it) and whose
	// first calls are set_robust_list, rseq and rt_sigprocmask.
	"futex", "set_robust_list", "get_robust_list", "rseq", "gettid", "getpid", "exit",
	"exit_group",
	// Signals: SIGTERM/SIGINT/SIGUSR1 arrive through GLib's handlers; abort() blocks
	// signals first; GLib may restore a disposition when a source goes at exit.
	"rt_sigreturn", "rt_sigprocmask", "rt_sigaction", "restart_syscall",
	// GLib's and libslirp's random numbers (g_random_*: TCP initial sequence numbers).
	"getrandom",
	// libslirp's sockets: TCP/UDP out (connections and DNS forwarding), hostfwd listeners
	// (accept, not accept4), hostfwd-add at run time (bind, listen); outbound-addr= binds.
	// socket() itself is limited below.
	"connect", "bind", "listen", "accept", "getsockname", "getpeername", "getsockopt",
	"setsockopt", "shutdown", "sendto", "recvfrom", "sendmsg", "recvmsg", "sendmmsg",
	"recvmmsg",
	// libslirp reads /etc/resolv.conf lazily, at the first DNS query and again when its
	// mtime changes (stat, then fopen); GLib's g_rand_new may read /dev/urandom. openat
	// itself is limited below (read-only unless a capture may be started).
	"fstat", "newfstatat", "statx", "lseek", "fstatfs", // fstatfs: a vhost-user memory file is on tmpfs or hugetlbfs
	// At exit the helper removes its own files: the pid file, --socket/--dgram/control=
	// sockets (lstat first: only if still ours). Landlock bounds where.
	"unlink", "unlinkat",
	// glibc's qsort asks for the memory size (sysconf(_SC_PHYS_PAGES)) on a large array.
	"sysinfo",
	// glibc's resolver (libpcap compiling a capture filter that names a host, e.g. "host
	// localhost") asks for the host name; harmless, and a kill there would end the network.
	"uname",
};
// clang-format on

// 32-bit comparisons: the arguments below are ints, whose upper register half the kernel
// does not promise to clear.
scmp_arg_cmp arg32(unsigned arg, scmp_compare op, scmp_datum_t a, scmp_datum_t b = 0)
{
	return scmp_arg_cmp{ arg, op, a & 0xffffffffu, b & 0xffffffffu };
}

struct CtxFree {
	void operator()(scmp_filter_ctx ctx) const { seccomp_release(ctx); }
};
using Ctx = std::unique_ptr<void, CtxFree>;

class Builder
{
public:
	explicit Builder(scmp_filter_ctx ctx) : ctx_(ctx) {}

	// Allow (or answer with act) name when every comparison holds.
	bool add(uint32_t act, const char *name, std::initializer_list<scmp_arg_cmp> cmps = {})
	{
		if (!error_.empty())
			return false;
		int nr = seccomp_syscall_resolve_name(name);
		if (nr == __NR_SCMP_ERROR) {
			error_ = std::string("seccomp: unknown system call ") + name;
			return false;
		}
		int rc = seccomp_rule_add_array(ctx_, act, nr, static_cast<unsigned>(cmps.size()), cmps.begin());
		if (rc < 0) {
			error_ = std::string("seccomp: adding a rule for ") + name + ": " + strerror(-rc);
			return false;
		}
		return true;
	}
	bool allow(const char *name, std::initializer_list<scmp_arg_cmp> cmps = {})
	{
		return add(SCMP_ACT_ALLOW, name, cmps);
	}
	const std::string &error() const { return error_; }

private:
	scmp_filter_ctx ctx_;
	std::string error_;
};

// socket(): the families libslirp and GLib use; anything else (AF_NETLINK, AF_PACKET, ...)
// is refused with EAFNOSUPPORT, as a kernel without that family would: a library that
// probes copes, and the helper gains nothing.
void addSocketRules(Builder &b)
{
	for (int family : { AF_UNIX, AF_INET, AF_INET6 })
		b.allow("socket", { arg32(0, SCMP_CMP_EQ, static_cast<scmp_datum_t>(family)) });
	for (int family = 0; family < AF_MAX; family++)
		if (family != AF_UNIX && family != AF_INET && family != AF_INET6)
			b.add(SCMP_ACT_ERRNO(EAFNOSUPPORT), "socket",
			      { arg32(0, SCMP_CMP_EQ, static_cast<scmp_datum_t>(family)) });
	b.add(SCMP_ACT_ERRNO(EAFNOSUPPORT), "socket", { arg32(0, SCMP_CMP_GE, AF_MAX) });
	// socketpair: nothing after start-up makes one; no rule, so the default action.
}

// No new executable memory: nothing after start-up loads code. A dlopen (glibc's iconv
// modules, if GLib converts a log message for a non-UTF-8 locale) gets EPERM and fails
// cleanly instead of killing the helper.
void addMemoryRules(Builder &b)
{
	b.allow("mmap", { arg32(2, SCMP_CMP_MASKED_EQ, PROT_EXEC, 0) });
	b.add(SCMP_ACT_ERRNO(EPERM), "mmap", { arg32(2, SCMP_CMP_MASKED_EQ, PROT_EXEC, PROT_EXEC) });
	b.allow("mprotect", { arg32(2, SCMP_CMP_MASKED_EQ, PROT_EXEC, 0) });
	b.add(SCMP_ACT_ERRNO(EPERM), "mprotect", { arg32(2, SCMP_CMP_MASKED_EQ, PROT_EXEC, PROT_EXEC) });
	// pkey_mprotect: not used; default action.
}

// Descriptor control: the flags libslirp and GLib set, nothing else (no F_SETOWN/F_SETSIG,
// no leases or locks).
void addFdRules(Builder &b)
{
	// F_GET_SEALS, F_ADD_SEALS: a vhost-user memfd is sealed against shrinking (vhost/guest_memory).
	for (int cmd : { F_GETFL, F_SETFL, F_GETFD, F_SETFD, F_DUPFD_CLOEXEC, F_GET_SEALS, F_ADD_SEALS })
		b.allow("fcntl", { arg32(1, SCMP_CMP_EQ, static_cast<scmp_datum_t>(cmd)) });
	// ioctl, the widest call: libslirp's FIONREAD (how much a TCP socket holds) and FIONBIO,
	// SIOCOUTQ for the control socket's connection info, isatty()'s TCGETS (stdio, GLib).
	for (unsigned long req : { static_cast<unsigned long>(FIONREAD), static_cast<unsigned long>(FIONBIO),
				   static_cast<unsigned long>(TIOCOUTQ), static_cast<unsigned long>(TCGETS) })
		b.allow("ioctl", { arg32(1, SCMP_CMP_EQ, req) });
	// Any other request takes the default action: a filter rule cannot say "none of these"
	// (libseccomp compares an argument once per rule), and nothing of ours probes.
}

// Threads: GLib may start one (a thread pool, its worker); nothing may fork. clone3's
// arguments are in memory a filter cannot read: ENOSYS makes glibc fall back to clone.
void addThreadRules(Builder &b)
{
	b.allow("clone", { scmp_arg_cmp{ 0, SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD } });
	b.add(SCMP_ACT_ERRNO(ENOSYS), "clone3");
	// GLib names its threads; nothing else of prctl (no PR_SET_NO_NEW_PRIVS undo exists,
	// but PR_SET_DUMPABLE, PR_SET_SECCOMP and friends have no business here).
	b.allow("prctl", { arg32(0, SCMP_CMP_EQ, PR_SET_NAME) });
	b.allow("prctl", { arg32(0, SCMP_CMP_EQ, PR_GET_NAME) });
	// abort() signals its own thread: a failed assertion ends as SIGABRT (with its
	// message), not as SIGSYS.
	b.allow("tgkill", { arg32(0, SCMP_CMP_EQ, static_cast<scmp_datum_t>(getpid())) });
}

// openat: read-only always (resolv.conf, /dev/urandom, tftp=); writing or creating only
// when a capture may start at run time. O_PATH opens nothing readable or writable.
void addOpenRules(Builder &b, const SeccompNeeds &needs)
{
	if (needs.capture) {
		b.allow("openat");
		return;
	}
	constexpr scmp_datum_t kWrites = O_ACCMODE | O_CREAT | O_TRUNC | O_APPEND;
	b.allow("openat", { arg32(2, SCMP_CMP_MASKED_EQ, kWrites, O_RDONLY) });
	// A write open outside a capture is a bug or an attack; EACCES, as a read-only file
	// system would answer, lets the caller report it. (No "masked not equal": one rule per
	// way of asking for writing.)
	for (scmp_datum_t mode : { O_WRONLY, O_RDWR, O_ACCMODE })
		b.add(SCMP_ACT_ERRNO(EACCES), "openat", { arg32(2, SCMP_CMP_MASKED_EQ, O_ACCMODE, mode) });
	for (scmp_datum_t flag : { O_CREAT, O_TRUNC, O_APPEND })
		b.add(SCMP_ACT_ERRNO(EACCES), "openat", { arg32(2, SCMP_CMP_MASKED_EQ, flag, flag) });
}

// The ASan build only (sanitizer_build.hpp), seen with strace around a report of ASan's and
// UBSan's: gcc's runtime opens /proc/self/maps and the binaries with open(2), not openat
// (read-only, as openat without a capture), and readlink()s the libraries' paths to name
// them. A thread started under the filter (seccomp_filter_test's) first has its stack
// found (pthread_getattr_np: sched_getaffinity) and an alternate signal stack set for
// stack-overflow reports (sigaltstack, again at the thread's end). Without these, a report
// or a new thread ends as SIGSYS.
void addSanitizerRules(Builder &b)
{
	constexpr scmp_datum_t kWrites = O_ACCMODE | O_CREAT | O_TRUNC | O_APPEND;
	b.allow("open", { arg32(1, SCMP_CMP_MASKED_EQ, kWrites, O_RDONLY) });
	b.allow("readlink");
	b.allow("sched_getaffinity");
	b.allow("sigaltstack");
}

} // namespace

bool installSeccompFilter(const SeccompNeeds &needs, SeccompAction action, std::string &error)
{
	const uint32_t defaultAction = action == SeccompAction::Log ? SCMP_ACT_LOG : SCMP_ACT_KILL_PROCESS;
	Ctx ctx(seccomp_init(defaultAction));
	if (!ctx) {
		error = "seccomp: seccomp_init failed";
		return false;
	}
	// All threads (GLib's worker already runs); a foreign ABI (x32, i386 via int 0x80) is
	// refused outright, in Log mode too: nothing of ours uses one.
	int rc = seccomp_attr_set(ctx.get(), SCMP_FLTATR_CTL_TSYNC, 1);
	if (rc == 0)
		rc = seccomp_attr_set(ctx.get(), SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
	if (rc < 0) {
		error = std::string("seccomp: setting the filter's attributes: ") + strerror(-rc);
		return false;
	}
	// The filter runs on every system call of the data path: a binary tree of the allowed
	// numbers (libseccomp >= 2.5) instead of a linear list, and the calls of the frame path
	// first. Best effort: an older libseccomp gives the same rules, only slower.
	seccomp_attr_set(ctx.get(), SCMP_FLTATR_CTL_OPTIMIZE, 2);
	for (int nr : { SCMP_SYS(recvmmsg), SCMP_SYS(sendmmsg), SCMP_SYS(ppoll), SCMP_SYS(poll), SCMP_SYS(recvfrom),
			SCMP_SYS(sendto), SCMP_SYS(read), SCMP_SYS(write), SCMP_SYS(recvmsg), SCMP_SYS(sendmsg),
			SCMP_SYS(writev), SCMP_SYS(readv) })
		seccomp_syscall_priority(ctx.get(), nr, 255);

	Builder b(ctx.get());
	for (const char *name : kAlways)
		b.allow(name);
	addSocketRules(b);
	addMemoryRules(b);
	addFdRules(b);
	addThreadRules(b);
	addOpenRules(b, needs);
	if constexpr (kAsanBuild)
		addSanitizerRules(b);
	// --socket and control= accept their clients with accept4 (libslirp's hostfwd uses accept).
	if (needs.acceptsClients)
		b.allow("accept4");
	// tftp=: libslirp opens (read-only, above), stats for the tsize option and seeks.
	// Nothing beyond the base set; the flag stays so that the allowlist follows the need if
	// libslirp's TFTP changes.
	(void)needs.tftp;
	if (!b.error().empty()) {
		error = b.error();
		return false;
	}

	rc = seccomp_load(ctx.get());
	if (rc < 0) {
		error = std::string("seccomp: loading the filter: ") + strerror(-rc);
		return false;
	}
	return true;
}

} // namespace slirpnet
