// SPDX-License-Identifier: BSD-2-Clause
// unix_listener.hpp - a listening UNIX stream socket at a path that accepts from a GMainContext.
#pragma once

#include <glib.h>
#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "fd_watch.hpp"
#include "glib_ptr.hpp"
#include "log.hpp"
#include "unique_fd.hpp"
#include "unix_socket.hpp"

namespace slirpnet {

// How a UnixListener listens; the defaults suit a socket served to a few local clients.
struct UnixListenerOptions {
	int backlog = 16;
	// The socket file's mode, whatever the umask, and its group (-1: the creator's); set
	// before the file can be connected to (UnixSocketFile). Owner only by default.
	mode_t mode = 0600;
	gid_t group = static_cast<gid_t>(-1);
	// Connections accepted per wake-up: a burst of connects cannot starve the other
	// sources of the context (the watch is level-triggered, the rest come next turn).
	int acceptBatch = 16;
	// Keep a reserve descriptor for running out of descriptors (see below).
	bool reserveFd = true;
	// Sent (best effort, never blocking) to a client refused for want of descriptors,
	// before it is closed; empty: none. E.g. the control socket's error line.
	std::string refuseMessage;
	// How long accepting stops after an accept error the reserve cannot resolve.
	unsigned pauseMs = 100;
};

/*
 * One listener for every UNIX stream socket the helper serves (--socket and the control
 * socket). Its contract:
 *
 *  - create() binds path with UnixSocketFile (a stale socket file nobody listens on is
 *    replaced; a live one, one it cannot probe, or a path that is not a socket, is
 *    refused), creates it with options.mode and options.group, listens, and watches
 *    the socket on ctx (NULL: the thread's default context). When it returns, clients
 *    can connect. On failure it returns nullptr with
 *    error set; the text names the path.
 *  - Each connection is accept4()ed non-blocking and close-on-exec and handed to onAccept,
 *    which owns it from then on (dropping the UniqueFd closes it). onAccept runs on the
 *    thread iterating ctx, at most options.acceptBatch times per wake-up.
 *  - EAGAIN, EINTR and ECONNABORTED (a client that gave up while in the backlog) are
 *    silent.
 *  - Out of descriptors (EMFILE, ENFILE) the connection stays in the backlog and the
 *    socket readable: a level-triggered watch would spin on it and the client would hang.
 *    So the listener holds a reserve descriptor (an eventfd, made at create(): no path to
 *    open, which Landlock may forbid later, and calls the seccomp allowlist has), as
 *    libev and nginx do: on EMFILE/ENFILE it closes the reserve, accepts the pending
 *    client, sends it options.refuseMessage and closes it at once (the client sees the
 *    connection end instead of waiting), then makes the reserve again. The loop neither
 *    spins nor stalls, and each refused client is counted (refused()).
 *  - Any other accept error, or EMFILE when the reserve could not be made again (another
 *    thread took the descriptor), stops accepting for options.pauseMs; the pending clients
 *    wait in the backlog meanwhile, and the reserve is made again when the pause ends.
 *  - Every warning about it is rate-limited (LogRateLimit: a few per interval, then one
 *    line with the number suppressed).
 *  - Destroying the listener stops accepting, closes the socket and unlinks the file if
 *    it is still the one we bound (a successor may have replaced it). It must not be
 *    destroyed from inside onAccept.
 */
class UnixListener
{
public:
	using AcceptCallback = std::function<void(UniqueFd client)>;

	static std::unique_ptr<UnixListener> create(const std::string &path, GMainContext *ctx,
						    const UnixListenerOptions &options, AcceptCallback onAccept,
						    std::string &error);
	~UnixListener();
	UnixListener(const UnixListener &) = delete;
	UnixListener &operator=(const UnixListener &) = delete;

	const std::string &path() const { return socket_->path(); }
	int fd() const { return socket_->fd(); }
	// True while accepting is stopped after an accept error (for tests and diagnostics).
	bool isPaused() const { return pauseTimer_ != nullptr; }
	// Clients accepted and closed at once for want of descriptors.
	uint64_t refused() const { return refused_; }
	// The reserve descriptor is held (for tests).
	bool hasReserve() const { return static_cast<bool>(reserve_); }

private:
	UnixListener(GMainContext *ctx, const UnixListenerOptions &options, AcceptCallback onAccept);
	void onReadable();
	bool refuseWithReserve(int err);
	void pause(int err);
	static gboolean onPauseOver(gpointer self);

	GMainContextPtr ctx_;
	UnixListenerOptions options_;
	AcceptCallback onAccept_;
	std::unique_ptr<UnixSocketFile> socket_; // declared before the sources: they go first
	std::unique_ptr<FdWatch> watch_;
	GSourcePtr pauseTimer_; // set while accepting is paused
	UniqueFd reserve_; // closed to accept (and close) a client when out of descriptors
	uint64_t refused_ = 0;
	std::string logName_; // "accept errors on 'PATH'": names warnLimit_'s suppressed line
	std::unique_ptr<LogRateLimit> warnLimit_;
};

} // namespace slirpnet
