// SPDX-License-Identifier: BSD-2-Clause
// pid_file.hpp - the --pid file: created safely, held with a lock, removed at exit only if still ours.
#pragma once

#include <sys/types.h>

#include <string>

#include "unique_fd.hpp"

namespace slirpnet {

/*
 * The helper's pid file (--pid FILE, as passt's). Written once the helper is ready:
 *  - created with O_CREAT|O_EXCL|O_NOFOLLOW|O_CLOEXEC (mode 0644): never through a
 *    symlink, never into a file someone else prepared;
 *  - an existing file is taken over only when it is stale: a regular file (not a link),
 *    owned by us, that no live helper holds. A helper holds its pid file with an
 *    exclusive flock() for as long as it runs, so "stale" needs no guess from a pid that
 *    may have been reused, and two helpers cannot both take it: the lock decides. A pid
 *    file held by a running helper is an error naming its pid;
 *  - removed at exit only if the path still names our file (same device and inode): a
 *    successor that replaced it keeps its own.
 * The descriptor stays open (close-on-exec) to hold the lock.
 */
class PidFile
{
public:
	PidFile() = default;
	~PidFile();
	PidFile(const PidFile &) = delete;
	PidFile &operator=(const PidFile &) = delete;

	// path nullptr: no pid file (true). False with error naming the path.
	bool write(const char *path, std::string &error);

private:
	std::string path_;
	UniqueFd fd_;
	dev_t dev_ = 0;
	ino_t ino_ = 0;
};

} // namespace slirpnet
