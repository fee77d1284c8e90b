// SPDX-License-Identifier: BSD-2-Clause
// sandbox/landlock.hpp - Landlock through its raw system calls: which paths the helper may still read and write.
#pragma once

#include <string>
#include <vector>

namespace slirpnet {

// What a path may be used for once the ruleset is in force; everything else is refused.
enum class LandlockAccess {
	ReadFile, // open a file (or the one file named) for reading: /etc/resolv.conf
	ReadTree, // read files and list directories beneath: tftp=
	CreateIn, // create, write, truncate and remove files beneath: pcap, control socket, pid file
	RemoveIn, // remove files beneath: the --socket or --dgram socket, at exit
};

struct LandlockRule {
	std::string path;
	LandlockAccess access;
};

// The highest ABI the running kernel offers, 0 where Landlock is not built or not enabled.
int landlockAbi();

/*
 * Restrict the calling process (and the threads it starts later; the ones running now
 * keep their access: GLib's worker only waits on signals) to rules, using every file-system
 * right the kernel's ABI knows; on ABI 6 and later also signals and abstract UNIX sockets
 * outside the sandbox. A rule whose path does not exist is skipped (it names nothing to
 * protect). Needs PR_SET_NO_NEW_PRIVS. On success abiInForce is the ABI used; false with
 * error set when the kernel has Landlock but refused it.
 */
bool applyLandlock(const std::vector<LandlockRule> &rules, int &abiInForce, std::string &error);

} // namespace slirpnet
