// SPDX-License-Identifier: BSD-2-Clause
// unix_socket.hpp - a UNIX socket bound to a path that the process owns: stale files replaced, ours unlinked.
#pragma once

#include <sys/stat.h>
#include <sys/un.h>

#include <memory>
#include <string>

#include "unique_fd.hpp"

namespace slirpnet {

/*
 * After recv() returned 0 on a SOCK_SEQPACKET socket: true if the peer has gone (end of
 * file), false if that was an empty record (which is just a runt frame, not the end).
 */
bool peerHungUp(int fd);

/*
 * Let a UNIX socket hold more in flight than the 208 KiB default (three frames at MTU
 * 65520): a AF_UNIX sender's send buffer is what bounds the frames queued for its peer.
 * SO_SNDBUFFORCE where permitted (CAP_NET_ADMIN), else SO_SNDBUF (capped by
 * net.core.wmem_max). Best effort: failure only leaves the default.
 */
void growSendBuffer(int fd, int bytes);

// Fill sa with path; false (error set) when the path is empty or does not fit sun_path.
bool makeUnixAddr(const std::string &path, sockaddr_un &sa, std::string &error);

/*
 * A non-blocking, close-on-exec UNIX socket bound to a path. A socket file left there by
 * a process that died is replaced; for SOCK_STREAM a file someone still accepts on is
 * refused ("in use"), and any path that is not a socket is refused ("not a socket").
 * A datagram socket has no listener to probe, so its file is taken over, as QEMU's own
 * dgram netdev does. mode (e.g. 0600), when not 0, is applied before anyone can connect
 * (before listen()). On destruction the socket is closed and the file unlinked only if it
 * is still the one we bound (a successor may have replaced it).
 */
class UnixSocketFile
{
public:
	static std::unique_ptr<UnixSocketFile> bind(const std::string &path, int type, mode_t mode, std::string &error);
	// A listening SOCK_STREAM socket: bind(), then listen(backlog).
	static std::unique_ptr<UnixSocketFile> listen(const std::string &path, int backlog, mode_t mode,
						      std::string &error);
	~UnixSocketFile();
	UnixSocketFile(const UnixSocketFile &) = delete;
	UnixSocketFile &operator=(const UnixSocketFile &) = delete;

	int fd() const { return fd_.get(); }
	const std::string &path() const { return path_; }

private:
	UnixSocketFile(const std::string &path) : path_(path) {}

	std::string path_;
	UniqueFd fd_;
	dev_t dev_ = 0; // identity of the file we bound
	ino_t ino_ = 0;
};

} // namespace slirpnet
