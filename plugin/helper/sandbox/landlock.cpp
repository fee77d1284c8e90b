// SPDX-License-Identifier: BSD-2-Clause
// sandbox/landlock.cpp - Landlock through its raw system calls: which paths the helper may still read and write.
#include "sandbox/landlock.hpp"

#include <fcntl.h>
#include <linux/landlock.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

#include "unique_fd.hpp"

// Debian 12's kernel headers stop at ABI 2; the rights and scopes of later ABIs, from the
// kernel's include/uapi/linux/landlock.h (the kernel refuses bits its ABI does not know,
// so each is used only when landlockAbi() says it is there).
#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE (1ULL << 14) // ABI 3
#endif
#ifndef LANDLOCK_ACCESS_FS_IOCTL_DEV
#define LANDLOCK_ACCESS_FS_IOCTL_DEV (1ULL << 15) // ABI 5
#endif
#ifndef LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET
#define LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET (1ULL << 0) // ABI 6
#define LANDLOCK_SCOPE_SIGNAL (1ULL << 1) // ABI 6
#endif
#ifndef SYS_landlock_create_ruleset
#define SYS_landlock_create_ruleset 444
#define SYS_landlock_add_rule 445
#define SYS_landlock_restrict_self 446
#endif

namespace slirpnet {

namespace {

// The kernel's struct landlock_ruleset_attr as of ABI 6; its size tells the kernel which
// fields we fill (8 bytes: ABI 1-3, 16: ABI 4-5 with network rights, 24: ABI 6 scopes).
struct RulesetAttr {
	uint64_t handledAccessFs;
	uint64_t handledAccessNet;
	uint64_t scoped;
};

constexpr uint64_t kReadFile = LANDLOCK_ACCESS_FS_READ_FILE;
constexpr uint64_t kReadDir = LANDLOCK_ACCESS_FS_READ_DIR;
constexpr uint64_t kCreate = LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_MAKE_REG |
			     LANDLOCK_ACCESS_FS_REMOVE_FILE | LANDLOCK_ACCESS_FS_TRUNCATE;

// Every file-system right the ABI knows: what is not granted below is then refused.
uint64_t handledFs(int abi)
{
	uint64_t fs = LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_READ_FILE |
		      LANDLOCK_ACCESS_FS_READ_DIR | LANDLOCK_ACCESS_FS_REMOVE_DIR | LANDLOCK_ACCESS_FS_REMOVE_FILE |
		      LANDLOCK_ACCESS_FS_MAKE_CHAR | LANDLOCK_ACCESS_FS_MAKE_DIR | LANDLOCK_ACCESS_FS_MAKE_REG |
		      LANDLOCK_ACCESS_FS_MAKE_SOCK | LANDLOCK_ACCESS_FS_MAKE_FIFO | LANDLOCK_ACCESS_FS_MAKE_BLOCK |
		      LANDLOCK_ACCESS_FS_MAKE_SYM;
	if (abi >= 2)
		fs |= LANDLOCK_ACCESS_FS_REFER;
	if (abi >= 3)
		fs |= LANDLOCK_ACCESS_FS_TRUNCATE;
	if (abi >= 5)
		fs |= LANDLOCK_ACCESS_FS_IOCTL_DEV;
	return fs;
}

uint64_t rightsFor(LandlockAccess a)
{
	switch (a) {
	case LandlockAccess::ReadFile:
		return kReadFile;
	case LandlockAccess::ReadTree:
		return kReadFile | kReadDir;
	case LandlockAccess::CreateIn:
		return kCreate;
	case LandlockAccess::RemoveIn:
		return LANDLOCK_ACCESS_FS_REMOVE_FILE;
	}
	return 0;
}

} // namespace

int landlockAbi()
{
	long abi = syscall(SYS_landlock_create_ruleset, nullptr, 0, LANDLOCK_CREATE_RULESET_VERSION);
	return abi < 0 ? 0 : static_cast<int>(abi);
}

bool applyLandlock(const std::vector<LandlockRule> &rules, int &abiInForce, std::string &error)
{
	abiInForce = 0;
	int abi = landlockAbi();
	if (abi <= 0) {
		error = std::string("Landlock is not available: ") + strerror(errno);
		return false;
	}
	const uint64_t handled = handledFs(abi);
	RulesetAttr attr{ handled, 0, 0 };
	size_t attrSize = sizeof(uint64_t);
	if (abi >= 6) {
		// The helper signals no one and uses no abstract sockets: a compromised one
		// cannot reach processes or abstract listeners outside its domain.
		attr.scoped = LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET | LANDLOCK_SCOPE_SIGNAL;
		attrSize = sizeof(attr);
	}
	UniqueFd ruleset(static_cast<int>(syscall(SYS_landlock_create_ruleset, &attr, attrSize, 0)));
	if (!ruleset) {
		error = std::string("landlock_create_ruleset: ") + strerror(errno);
		return false;
	}
	for (const auto &r : rules) {
		// O_PATH follows a symbolic link (/etc/resolv.conf often is one): the rule is on
		// the file libslirp will really open.
		UniqueFd target(open(r.path.c_str(), O_PATH | O_CLOEXEC));
		if (!target) {
			if (errno == ENOENT)
				continue;
			error = "Landlock rule for '" + r.path + "': " + strerror(errno);
			return false;
		}
		struct stat st;
		if (fstat(target.get(), &st) < 0) {
			error = "Landlock rule for '" + r.path + "': " + strerror(errno);
			return false;
		}
		uint64_t rights = rightsFor(r.access) & handled;
		// A rule on a file may only carry the rights that apply to files.
		if (!S_ISDIR(st.st_mode))
			rights &= LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_WRITE_FILE |
				  LANDLOCK_ACCESS_FS_TRUNCATE;
		landlock_path_beneath_attr beneath{};
		beneath.allowed_access = rights;
		beneath.parent_fd = target.get();
		if (syscall(SYS_landlock_add_rule, ruleset.get(), LANDLOCK_RULE_PATH_BENEATH, &beneath, 0) < 0) {
			error = "Landlock rule for '" + r.path + "': " + strerror(errno);
			return false;
		}
	}
	if (syscall(SYS_landlock_restrict_self, ruleset.get(), 0) < 0) {
		error = std::string("landlock_restrict_self: ") + strerror(errno);
		return false;
	}
	abiInForce = abi;
	return true;
}

} // namespace slirpnet
