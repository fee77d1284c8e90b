// SPDX-License-Identifier: BSD-2-Clause
// control/control_server.hpp - the control socket: line-delimited requests from many local clients.
#pragma once

#include <glib.h>
#include <sys/types.h>

#include <cstddef>
#include <functional>
#include <list>
#include <memory>
#include <string>
#include <string_view>

#include "fd_watch.hpp"
#include "glib_ptr.hpp"
#include "unique_fd.hpp"
#include "unix_listener.hpp"

namespace slirpnet {

/*
 * Serves one request per line, one reply per request, to several clients at once, from
 * the helper's main loop. Nothing a client does may stall the data path that shares the
 * loop, so every socket is non-blocking and every client is bounded:
 *  - a request line longer than maxLine bytes disconnects the client;
 *  - at most requestsPerTurn requests of a client are handled per wake-up; the rest wait
 *    for an idle moment of the loop (G_PRIORITY_DEFAULT_IDLE, after the frames);
 *  - a client's requests are not read while more than outputHighWater bytes of its
 *    replies are unsent, so a client that writes without reading only stalls itself;
 *  - a client whose unsent replies would exceed maxOutput is disconnected;
 *  - beyond maxClients, a new client gets one error line and is closed.
 * A client that half-closes still gets the replies to what it sent. Accepting is
 * UnixListener's (batched per wake-up; out of descriptors, a client is told so and closed
 * at once).
 *
 * A request whose work must not run on the loop (compiling a capture filter) can be
 * answered later: the handler calls deferReply() and returns "". The client's next
 * requests wait until that reply is given (replies stay in request order); other
 * clients and the frames go on meanwhile.
 */
class ControlServer
{
public:
	// One request line (no '\n') -> the reply line (ending in '\n'), or "" for none.
	using Handler = std::function<std::string(std::string_view line)>;
	// Gives a deferred reply (a line ending in '\n'): call it once, on the thread
	// iterating the server's context. Harmless after the client or the server is gone.
	using Responder = std::function<void(std::string reply)>;

	/*
	 * From inside the Handler only: the reply to the request being handled will be given
	 * through the returned Responder instead (the Handler then returns ""). Outside a
	 * Handler (a request not from a ControlServer, as in unit tests): an empty function,
	 * and the caller answers at once.
	 */
	static Responder deferReply();

	struct Limits {
		size_t maxLine = 64 * 1024;
		size_t outputHighWater = 64 * 1024;
		size_t maxOutput = 4 * 1024 * 1024;
		size_t maxClients = 32;
		int requestsPerTurn = 32;
		// Who may connect: the socket file's mode and group (socket-group=); owner only
		// by default, as the socket can open ports on the host.
		SocketAccess access;
	};

	/*
	 * Listen on path (limits.access: mode 0600 by default). A stale socket file nobody listens on is replaced; a
	 * live one, or a path that is not a socket, is an error naming the path.
	 */
	static std::unique_ptr<ControlServer> create(const std::string &path, GMainContext *ctx, Handler handler,
						     std::string &error);
	static std::unique_ptr<ControlServer> create(const std::string &path, GMainContext *ctx, Handler handler,
						     std::string &error, const Limits &limits);
	// Closes every client and removes the socket file (if it is still ours).
	~ControlServer();
	ControlServer(const ControlServer &) = delete;
	ControlServer &operator=(const ControlServer &) = delete;

	size_t clientCount() const;
	const std::string &path() const { return listener_->path(); }

private:
	struct Client;

	ControlServer(GMainContext *ctx, Handler handler, const Limits &limits);
	void onAccept(UniqueFd fd);
	void onReadable(Client &c, GIOCondition cond);
	void onWritable(Client &c);
	void service(Client &c);
	void queueReply(Client &c, std::string reply);
	void flushOutput(Client &c);
	void updateWatches(Client &c);
	void drop(Client &c, const char *why);
	void scheduleIdle();
	static gboolean onIdle(gpointer self);
	void deliver(unsigned clientId, std::string reply);

	GMainContextPtr ctx_;
	Handler handler_;
	Limits limits_;
	std::unique_ptr<UnixListener> listener_;
	std::list<std::unique_ptr<Client>> clients_;
	GSourcePtr idle_; // pending requests and dead clients, handled when the loop is idle
	unsigned nextClientId_ = 1;
	// Responders hold it weakly: a reply that comes after the server is gone is dropped.
	std::shared_ptr<ControlServer *> alive_;
};

} // namespace slirpnet
