// SPDX-License-Identifier: BSD-2-Clause
// sandbox/seccomp_filter.hpp - the helper's seccomp allowlist: the system calls it really makes, per transport.
#pragma once

#include <string>

namespace slirpnet {

// What the helper still needs once it is serving: the allowlist grows only by these.
struct SeccompNeeds {
	bool acceptsClients = false; // --socket or control=: accept4 on a listening socket
	bool capture = false; // capture-start at run time: open/create a file (Landlock bounds where)
	bool tftp = false; // tftp=: libslirp opens files to serve them
};

// What happens to a system call outside the allowlist.
enum class SeccompAction {
	Kill, // the process is killed (SECCOMP_RET_KILL_PROCESS): the default
	Log, // allowed but logged by the kernel (SECCOMP_RET_LOG, see dmesg/audit): seccomp-log=on,
	     // for finding what a new libslirp or GLib needs
};

/*
 * Install the filter on the calling thread and every thread it creates later (the helper
 * is single-threaded; GLib may start helper threads, which inherit it). Needs
 * PR_SET_NO_NEW_PRIVS (or CAP_SYS_ADMIN). Returns false with error set (the helper then
 * refuses to start: a sandbox asked for and not there must not pass silently).
 */
bool installSeccompFilter(const SeccompNeeds &needs, SeccompAction action, std::string &error);

} // namespace slirpnet
