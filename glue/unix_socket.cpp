// SPDX-License-Identifier: BSD-2-Clause
// unix_socket.cpp - a UNIX socket bound to a path that the process owns: stale files replaced, ours unlinked.
#include "unix_socket.hpp"

#include <glib.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
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

// Make room for our socket at path: nothing there, or a socket file nobody serves.
static bool claimPath(const std::string &path, const sockaddr_un &sa, int type, std::string &error)
{
	struct stat st;
	if (lstat(path.c_str(), &st) < 0)
		return true; // nothing there (or bind() will say why)
	if (!S_ISSOCK(st.st_mode)) {
		error = "'" + path + "' exists and is not a socket";
		return false;
	}
	if (type == SOCK_STREAM) {
		UniqueFd probe(socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
		if (probe && connect(probe.get(), reinterpret_cast<const sockaddr *>(&sa), sizeof(sa)) == 0) {
			error = "'" + path + "' is in use: another process listens on it";
			return false;
		}
		if (probe && errno == EAGAIN) {
			error = "'" + path + "' is in use: another process listens on it (backlog full)";
			return false;
		}
	}
	g_debug("replacing stale socket file '%s'", path.c_str());
	if (unlink(path.c_str()) < 0 && errno != ENOENT) {
		error = "removing stale socket '" + path + "': " + strerror(errno);
		return false;
	}
	return true;
}

std::unique_ptr<UnixSocketFile> UnixSocketFile::bind(const std::string &path, int type, mode_t mode, std::string &error)
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
	if (::bind(s->fd_.get(), reinterpret_cast<const sockaddr *>(&sa), sizeof(sa)) < 0) {
		error = "binding '" + path + "': " + strerror(errno);
		return nullptr;
	}
	struct stat st;
	if ((mode && chmod(path.c_str(), mode) < 0) || lstat(path.c_str(), &st) < 0) {
		error = "'" + path + "': " + strerror(errno);
		unlink(path.c_str());
		return nullptr;
	}
	s->dev_ = st.st_dev;
	s->ino_ = st.st_ino;
	return s;
}

std::unique_ptr<UnixSocketFile> UnixSocketFile::listen(const std::string &path, int backlog, mode_t mode,
						       std::string &error)
{
	auto s = bind(path, SOCK_STREAM, mode, error);
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
