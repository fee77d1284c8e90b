// SPDX-License-Identifier: BSD-2-Clause
// sandbox/seccomp_filter.hpp - the helper's seccomp allowlist: the system calls it really makes, per transport.
#pragma once

#include <string>

namespace slirpnet {

// What the helper still needs once it is serving: the allowlist grows only by these.
struct SeccompNeeds {
	bool acceptsClients = false; // --socket or control=: accept4 on a listening socket
	bool capture = false; // capture-start at run time: open/create a file (Landlock bounds where)
	bool tftp = false; // tftp=: libslirp opens files to serve them (read-only: in the base set today)
};

// What happens to a system call outside the allowlist.
enum class SeccompAction {
	Kill, // the process is killed (SECCOMP_RET_KILL_PROCESS): the default
	Log, // allowed but logged by the kernel (SECCOMP_RET_LOG, see dmesg/audit): seccomp-log=on,
	     // for finding what a new libslirp or GLib needs
};

/*
 * Install the filter on every thread of the process (SECCOMP_FILTER_FLAG_TSYNC: GLib's
 * worker thread already runs once signal handlers are added) and on every thread created
 * later, which inherits it. Sets PR_SET_NO_NEW_PRIVS if it is not set yet. Meant to be the
 * last step of start-up: the allowlist holds what the helper does while serving and at
 * exit, not how it binds its sockets. Returns false with error set (the helper then refuses
 * to start: a sandbox asked for and not there must not pass silently).
 *
 * Some calls outside the list are refused rather than fatal, where the caller copes:
 * socket() of another family (EAFNOSUPPORT), executable mappings (EPERM), clone3 (ENOSYS,
 * glibc falls back to clone), openat for writing without SeccompNeeds::capture (EACCES).
 */
bool installSeccompFilter(const SeccompNeeds &needs, SeccompAction action, std::string &error);

} // namespace slirpnet
