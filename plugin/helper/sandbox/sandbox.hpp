// SPDX-License-Identifier: BSD-2-Clause
// sandbox/sandbox.hpp - the helper's containment: fds, no new privileges, the drop from root, Landlock, seccomp.
#pragma once

#include <sys/types.h>

#include <span>
#include <string>
#include <vector>

#include "options.hpp"
#include "sandbox/seccomp_filter.hpp"

namespace slirpnet {

/*
 * The helper parses everything the guest sends through libslirp, an old C stack with a
 * record of CVEs, so it gives up what it will not need in three steps (README, "Security
 * model"); sandbox=off skips all of them, for debugging only:
 *  1. closeInheritedFds(), as main() starts: nothing it was not given to serve stays open;
 *  2. hardenProcess(), once the configuration is known and before anything is created:
 *     no new privileges, not dumpable, no core files, a bounded RLIMIT_NOFILE, an empty
 *     environment;
 *  3. lockDown(), once everything is bound (hostfwd listeners, the link, the control
 *     socket, the pid file, the pcap): the drop from root to user=, then Landlock, then
 *     the seccomp allowlist, last so that the steps before need not be allowed.
 */

/*
 * RLIMIT_NOFILE of a sandboxed helper, soft and hard: max-flows= (the sockets libslirp may
 * hold for the guest, lingering closed connections included: packet/flow_limit.hpp) plus
 * one per hostfwd rule given at start plus kSandboxFdReserve for everything else (stdio,
 * links, the control socket and its clients, the pcap, the pid file, GLib's wake-up fd,
 * resolv.conf, rules added at run time, the few accepts past the limit in one poll),
 * never above the inherited hard limit. This bounds the helper's descriptors, and so its
 * kernel socket memory, whatever the guest does.
 */
constexpr unsigned kSandboxFdReserve = 1024;
unsigned long sandboxMaxFds(const Config &cfg, unsigned long inheritedHard);

// What is in force in this process (version reply), or would be (--print-capabilities).
struct SandboxReport {
	bool enabled = false; // sandbox=on
	bool fdsClosed = false; // inherited descriptors closed, stdin from /dev/null
	bool noNewPrivs = false;
	bool notDumpable = false; // no ptrace by the same uid, no core file (RLIMIT_CORE 0 too)
	bool environmentScrubbed = false;
	unsigned long maxFds = 0; // RLIMIT_NOFILE set (0: left as inherited)
	bool droppedRoot = false; // started as root and became user
	std::string user; // the user the helper runs (or would run) as
	uid_t uid = static_cast<uid_t>(-1);
	gid_t gid = static_cast<gid_t>(-1);
	bool noCapabilities = false; // checked: every capability set empty, bounding set too
	int landlockAbi = 0; // the ABI in force; 0 when not (landlockNote says why)
	std::string landlockNote;
	bool seccomp = false;
	bool seccompLog = false; // seccomp-log=on: refused calls are logged, not fatal
	std::string tftpDir; // readable (tftp=)
	std::vector<std::string> createDirs; // where files may be created: capture-start
};

// sandbox=off given on the command line (the plugin's config record comes later).
bool sandboxOffOnCommandLine(const OptionList &opts);

// Step 1: close every descriptor but 0-2 and keep (the link given by -S or --fd), and
// point stdin at /dev/null unless it is one of keep; stdout too when quietStdout (the
// plugin reads nothing there: it is the emulator's).
bool closeInheritedFds(std::span<const int> keep, bool quietStdout, std::string &error);

// Step 2 (cfg.sandbox): also looks up the user a root helper will become, so that a bad
// user= fails at start.
bool hardenProcess(const Config &cfg, std::string &error);

// What lockDown() must leave reachable.
struct LockDownPlan {
	std::string tftpDir;
	std::vector<std::string> createFiles; // pcap, control socket, pid file: capture-start may create there
	std::vector<std::string> removeFiles; // --socket/--dgram path: only unlinked at exit
	int parentDeathSignal = 0; // --exit-with-parent: re-armed after the change of user
	pid_t parent = 0; // the parent it watches
	bool seccomp = true;
	bool seccompLog = false;
	SeccompNeeds seccompNeeds;
};

/*
 * Step 3, the drop from root and Landlock. False with error set when a protection asked
 * for could not be put in place (the helper then refuses to start); a kernel without
 * Landlock is not an error (noted in the report).
 */
bool lockDown(const LockDownPlan &plan, std::string &error);

/*
 * Step 3, last: the seccomp allowlist (plan.seccomp). Threads started between lockDown()
 * and this call (GLib's signal worker) get Landlock from the thread that starts them and
 * the filter from this call.
 */
bool installSyscallFilter(const LockDownPlan &plan, std::string &error);

// This process's protections.
const SandboxReport &sandboxReport();

// What a helper with cfg would get on this kernel and as this user (--print-capabilities).
SandboxReport sandboxProbe(const Config &cfg);

/*
 * capture-start's check, before it opens path: with the sandbox on, files are created only
 * in (or under) the directories of the configured pcap file, control socket and pid file,
 * where Landlock allows it. False with error naming the path and those directories.
 */
bool sandboxAllowsCreate(const std::string &path, std::string &error);

// A hostfwd that failed to bind with EACCES: why, when the drop from root is the cause.
std::string privilegedPortHint(unsigned port);

} // namespace slirpnet
