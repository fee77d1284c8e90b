// SPDX-License-Identifier: BSD-2-Clause
// unix_socket.cpp - a UNIX socket bound to a path that the process owns: stale files replaced, ours unlinked.
#include "unix_socket.hpp"

#include <fcntl.h>
#include <glib.h>
#include <grp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>

namespace slirpnet {

bool peerHungUp(int fd)
{
	struct pollfd p = { fd, POLLRDHUP, 0 };
	return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

void growSendBuffer(int fd, int bytes)
{
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &bytes, sizeof(bytes)) < 0)
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof(bytes));
}

bool makeUnixAddr(const std::string &path, sockaddr_un &sa, std::string &error)
{
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	if (path.empty() || path.size() >= sizeof(sa.sun_path)) {
		error = "socket path '" + path + "' is empty or too long (at most " +
			std::to_string(sizeof(sa.sun_path) - 1) + " bytes)";
		return false;
	}
	memcpy(sa.sun_path, path.c_str(), path.size());
	return true;
}

bool socketAccessForGroup(const std::string &name, SocketAccess &access, std::string &error)
{
	access = SocketAccess{};
	if (name.empty())
		return true;
	unsigned long gid = 0;
	auto [p, ec] = std::from_chars(name.data(), name.data() + name.size(), gid, 10);
	if (ec != std::errc() || p != name.data() + name.size() || gid >= 0xffffffffu) {
		struct group *g = getgrnam(name.c_str());
		if (!g) {
			error = "socket-group: no group '" + name + "'";
			return false;
		}
		gid = g->gr_gid;
	}
	access.mode = 0660;
	access.group = static_cast<gid_t>(gid);
	return true;
}

PeerPolicy::PeerPolicy(std::vector<uid_t> extra) : uids_(std::move(extra))
{
	uids_.push_back(0);
	uids_.push_back(getuid());
	uids_.push_back(geteuid());
}

bool PeerPolicy::allows(uid_t uid) const
{
	return std::find(uids_.begin(), uids_.end(), uid) != uids_.end();
}

bool peerCredentials(int fd, ucred &out)
{
	socklen_t len = sizeof(out);
	return getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &out, &len) == 0 && len == sizeof(out);
}

bool WarningLimiter::shouldLog(uint64_t &heldBack)
{
	int64_t now = g_get_monotonic_time();
	if (last_ != 0 && now - last_ < intervalUs_) {
		heldBack_++;
		return false;
	}
	last_ = now;
	heldBack = heldBack_;
	heldBack_ = 0;
	return true;
}

// Make room for our socket at path: nothing there, or a socket file nobody is bound to.
static bool claimPath(const std::string &path, const sockaddr_un &sa, int type, std::string &error)
{
	struct stat st;
	if (lstat(path.c_str(), &st) < 0)
		return true; // nothing there (or bind() will say why)
	if (!S_ISSOCK(st.st_mode)) {
		error = "'" + path + "' exists and is not a socket";
		return false;
	}
	// Only a probe refused by the kernel for want of a socket bound there proves the file
	// stale: any other failure says nothing about whether someone still serves it.
	UniqueFd probe(socket(AF_UNIX, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
	if (!probe) {
		error = "'" + path + "' exists; cannot probe it (socket: " + strerror(errno) + "), not replacing it";
		return false;
	}
	if (connect(probe.get(), reinterpret_cast<const sockaddr *>(&sa), sizeof(sa)) == 0) {
		error = "'" + path + "' is in use: another process " +
			(type == SOCK_STREAM ? "listens on it" : "is bound to it");
		return false;
	}
	if (errno == EAGAIN) {
		error = "'" + path + "' is in use: another process listens on it (backlog full)";
		return false;
	}
	if (errno != ECONNREFUSED) {
		error = "'" + path + "' exists and probing it failed (" + strerror(errno) + "), not replacing it";
		return false;
	}
	g_debug("replacing stale socket file '%s'", path.c_str());
	if (unlink(path.c_str()) < 0 && errno != ENOENT) {
		error = "removing stale socket '" + path + "': " + strerror(errno);
		return false;
	}
	return true;
}

// Give the socket file we just bound (0600, identity in st) its group, then mode.
static bool grantGroup(const std::string &path, const struct stat &bound, const SocketAccess &access,
		       std::string &error)
{
	// Through a descriptor of the very file, never following a symlink put in its place.
	UniqueFd f(open(path.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
	struct stat st;
	if (!f || fstat(f.get(), &st) < 0) {
		error = "'" + path + "': " + strerror(errno);
		return false;
	}
	if (!S_ISSOCK(st.st_mode) || st.st_dev != bound.st_dev || st.st_ino != bound.st_ino) {
		error = "'" + path + "' was replaced while it was being set up";
		return false;
	}
	if (fchownat(f.get(), "", static_cast<uid_t>(-1), access.group, AT_EMPTY_PATH) < 0) {
		error = "'" + path + "': setting group " + std::to_string(access.group) + ": " + strerror(errno);
		return false;
	}
	// chmod has no AT_EMPTY_PATH before Linux 6.6's fchmodat2: /proc's link to the fd is
	// the same file, whatever happens to the path meanwhile.
	std::string viaFd = "/proc/self/fd/" + std::to_string(f.get());
	if (chmod(viaFd.c_str(), access.mode) < 0) {
		error = "'" + path + "': setting mode: " + strerror(errno);
		return false;
	}
	return true;
}

std::unique_ptr<UnixSocketFile> UnixSocketFile::bind(const std::string &path, int type, const SocketAccess &access,
						     std::string &error)
{
	sockaddr_un sa;
	if (!makeUnixAddr(path, sa, error) || !claimPath(path, sa, type, error))
		return nullptr;
	std::unique_ptr<UnixSocketFile> s(new UnixSocketFile(path));
	s->fd_.reset(socket(AF_UNIX, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
	if (!s->fd_) {
		error = std::string("socket: ") + strerror(errno);
		return nullptr;
	}
	const bool withGroup = access.group != static_cast<gid_t>(-1);
	const mode_t first = withGroup ? (access.mode & 0700) : access.mode;
	// bind() creates the file with the socket inode's mode minus the umask: set the one,
	// clear the other, so that the file never exists with wider permissions.
	if (fchmod(s->fd_.get(), first) < 0) {
		error = std::string("fchmod on the socket: ") + strerror(errno);
		return nullptr;
	}
	mode_t oldMask = umask(0);
	int rc = ::bind(s->fd_.get(), reinterpret_cast<const sockaddr *>(&sa), sizeof(sa));
	int bindErr = errno;
	umask(oldMask);
	if (rc < 0) {
		error = "binding '" + path + "': " + strerror(bindErr);
		return nullptr;
	}
	struct stat st;
	if (lstat(path.c_str(), &st) < 0) {
		error = "'" + path + "': " + strerror(errno);
		return nullptr;
	}
	s->dev_ = st.st_dev; // from here on the destructor unlinks it
	s->ino_ = st.st_ino;
	if (withGroup && !grantGroup(path, st, access, error))
		return nullptr;
	return s;
}

std::unique_ptr<UnixSocketFile> UnixSocketFile::listen(const std::string &path, int backlog, const SocketAccess &access,
						       std::string &error)
{
	auto s = bind(path, SOCK_STREAM, access, error);
	if (s && ::listen(s->fd(), backlog) < 0) {
		error = "listening on '" + path + "': " + strerror(errno);
		return nullptr; // the destructor unlinks the file
	}
	return s;
}

UnixSocketFile::~UnixSocketFile()
{
	fd_.reset();
	struct stat st;
	if (ino_ != 0 && lstat(path_.c_str(), &st) == 0 && st.st_dev == dev_ && st.st_ino == ino_)
		unlink(path_.c_str());
}

} // namespace slirpnet
