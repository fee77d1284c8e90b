// SPDX-License-Identifier: BSD-2-Clause
// pid_file.cpp - the --pid file: created safely, held with a lock, removed at exit only if still ours.
#include "pid_file.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace slirpnet {

namespace {

std::string describe(const std::string &path, const std::string &why)
{
	return "pid file '" + path + "': " + why;
}

// An existing file at path: ours to take over if stale (see pid_file.hpp). -1 with error.
int openStale(const std::string &path, std::string &error)
{
	// Look before opening: opening a FIFO or a device read-write (perhaps as root) has
	// effects of its own.
	struct stat lst;
	if (lstat(path.c_str(), &lst) == 0 && !S_ISREG(lst.st_mode)) {
		error = describe(path, S_ISLNK(lst.st_mode) ? "is a symbolic link; not following it"
							    : "exists and is not a regular file");
		return -1;
	}
	UniqueFd fd(open(path.c_str(), O_RDWR | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
	if (!fd) {
		error = describe(path, errno == ELOOP ? "is a symbolic link; not following it" : strerror(errno));
		return -1;
	}
	struct stat st;
	if (fstat(fd.get(), &st) < 0 || !S_ISREG(st.st_mode)) {
		error = describe(path, "exists and is not a regular file");
		return -1;
	}
	if (st.st_uid != geteuid()) {
		error = describe(path,
				 "exists and belongs to uid " + std::to_string(st.st_uid) + "; not taking it over");
		return -1;
	}
	if (flock(fd.get(), LOCK_EX | LOCK_NB) < 0) {
		int err = errno; // before pread can change it
		char buf[32] = {};
		ssize_t n = pread(fd.get(), buf, sizeof(buf) - 1, 0);
		std::string pid = n > 0 ? std::string(buf, strnlen(buf, static_cast<size_t>(n))) : "";
		while (!pid.empty() && (pid.back() == '\n' || pid.back() == ' '))
			pid.pop_back();
		error = describe(path, err == EWOULDBLOCK
					       ? "held by a running helper" + (pid.empty() ? "" : " (pid " + pid + ")")
					       : std::string(strerror(err)));
		return -1;
	}
	return fd.release();
}

} // namespace

bool PidFile::write(const char *path, std::string &error)
{
	if (!path)
		return true;
	std::string p = path;
	UniqueFd fd(open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0644));
	if (fd) {
		if (flock(fd.get(), LOCK_EX | LOCK_NB) < 0) {
			error = describe(p, std::string("locking: ") + strerror(errno));
			unlink(path);
			return false;
		}
	} else if (errno == EEXIST) {
		// Also a symlink, dangling or not: O_EXCL never follows one.
		fd.reset(openStale(p, error));
		if (!fd)
			return false;
	} else {
		error = describe(p, strerror(errno));
		return false;
	}
	std::string text = std::to_string(getpid()) + "\n";
	struct stat st;
	if (ftruncate(fd.get(), 0) < 0 ||
	    pwrite(fd.get(), text.data(), text.size(), 0) != static_cast<ssize_t>(text.size()) ||
	    fstat(fd.get(), &st) < 0) {
		error = describe(p, strerror(errno));
		return false;
	}
	path_ = p;
	fd_ = std::move(fd);
	dev_ = st.st_dev;
	ino_ = st.st_ino;
	return true;
}

PidFile::~PidFile()
{
	if (path_.empty())
		return;
	// Unlinked while the lock is still held, so no other helper has taken it meanwhile.
	struct stat st;
	if (lstat(path_.c_str(), &st) == 0 && st.st_dev == dev_ && st.st_ino == ino_)
		unlink(path_.c_str());
}

} // namespace slirpnet
