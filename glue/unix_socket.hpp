// SPDX-License-Identifier: BSD-2-Clause
// unix_socket.hpp - a UNIX socket bound to a path that the process owns: stale files replaced, ours unlinked.
#pragma once

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

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

// Who may connect to a socket file: its permission bits and, optionally, its group.
struct SocketAccess {
	mode_t mode = 0600;
	gid_t group = static_cast<gid_t>(-1); // -1: the creator's (no chown)
};

/*
 * The access socket-group=NAME asks for: 0600 when name is empty, else 0660 and the
 * group's gid (a name, or a number). False (error naming the group) when there is no such
 * group.
 */
bool socketAccessForGroup(const std::string &name, SocketAccess &access, std::string &error);

/*
 * Which peers a local socket serves, by uid: the helper's own (its real and effective
 * uid), root, and those added (peer-uid=). A launcher running as root starts QEMU as
 * another user: that user is added, nobody else gets in.
 */
class PeerPolicy
{
public:
	explicit PeerPolicy(std::vector<uid_t> extra = {});
	bool allows(uid_t uid) const;

private:
	std::vector<uid_t> uids_;
};

// The uid, gid and pid of a connected UNIX socket's peer (SO_PEERCRED); false on error.
bool peerCredentials(int fd, ucred &out);

/*
 * A warning that may repeat at the peer's pace (a refused client reconnecting in a loop):
 * the first one is logged, then at most one per interval, with the number held back.
 */
class WarningLimiter
{
public:
	explicit WarningLimiter(unsigned intervalSec = 10) : intervalUs_(int64_t(intervalSec) * 1000000) {}
	// True when this occurrence is to be logged; heldBack is then the count since the last.
	bool shouldLog(uint64_t &heldBack);

private:
	int64_t intervalUs_;
	int64_t last_ = 0; // monotonic µs of the last logged one; 0: none yet
	uint64_t heldBack_ = 0;
};

/*
 * A non-blocking, close-on-exec UNIX socket bound to a path.
 *
 * What may be at the path: nothing; or a socket file left by a process that died, which
 * is replaced. A socket file is "stale" only when a probe connect() of the same type got
 * ECONNREFUSED (nobody bound to it): a live one is refused ("in use"), and so is one the
 * probe could not judge (EACCES, EMFILE, no probe socket...), which is never unlinked.
 * Any path that is not a socket is refused ("not a socket").
 *
 * Access: the socket file is created with exactly access.mode whatever the umask: the mode
 * is set on the socket's inode through the fd (fchmod) before bind(), which Linux gives to
 * the file it creates, with the umask cleared around bind() (the helper creates its files
 * from one thread). With access.group the file is created 0600, then its group is set and
 * the mode widened through an O_PATH|O_NOFOLLOW descriptor of the file checked to be our
 * socket (the kernel offers no way to give a group at bind(): the file takes the creator's
 * fsgid), so nobody but the owner can connect until the group is right.
 *
 * On destruction the socket is closed and the file unlinked only if it is still the one
 * we bound (a successor may have replaced it).
 */
class UnixSocketFile
{
public:
	static std::unique_ptr<UnixSocketFile> bind(const std::string &path, int type, const SocketAccess &access,
						    std::string &error);
	// A listening SOCK_STREAM socket: bind(), then listen(backlog).
	static std::unique_ptr<UnixSocketFile> listen(const std::string &path, int backlog, const SocketAccess &access,
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
