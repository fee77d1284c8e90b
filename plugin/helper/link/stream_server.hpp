// link/stream_server.hpp - listen on a UNIX stream socket and serve one QEMU -netdev stream client at a time.
#pragma once

#include <glib.h>
#include <sys/types.h>

#include <functional>
#include <memory>
#include <string>

#include "fd_watch.hpp"
#include "glib_ptr.hpp"
#include "network.hpp"
#include "link/stream_link.hpp"
#include "unique_fd.hpp"
#include "unix_socket.hpp"

namespace slirpnet {

/*
 * For `-netdev stream,server=off,addr.type=unix,addr.path=PATH`. QEMU 7.2 connects once at
 * start-up and never retries, so the socket is bound and listening when create() returns.
 * One client at a time: a second one is accepted and closed at once (logged) without
 * disturbing the first. When the client leaves, the server listens again, or with oneOff
 * reports the end through onFinished. The socket file is unlinked on destruction if it is
 * still ours.
 */
class StreamServer
{
public:
	// exitCode: 0 when the one-off client left, 1 when it broke the framing.
	using FinishedCallback = std::function<void(int exitCode)>;

	/*
	 * A stale socket file at path (nobody listening) is replaced; a live one, or any other
	 * kind of file, is an error. Returns nullptr with error set.
	 */
	static std::unique_ptr<StreamServer> create(const std::string &path, Network &net,
						    GMainContext *ctx, bool oneOff,
						    FinishedCallback onFinished, std::string &error);
	~StreamServer();

	// PacketSink for the Network: to the connected client; dropped (drop_to_guest_error) if none.
	ssize_t sendFrame(const uint8_t *frame, size_t len);

	bool hasClient() const { return client_ && !client_->isClosed(); }

private:
	StreamServer(const std::string &path, Network &net, GMainContext *ctx, bool oneOff,
		     FinishedCallback onFinished);
	bool listenOn(std::string &error);
	void onAcceptable(GIOCondition cond);
	void onClientClosed(const char *why, bool error);
	void retire();

	std::string path_;
	Network &net_;
	GMainContext *ctx_;
	bool oneOff_;
	FinishedCallback onFinished_;
	std::unique_ptr<UnixSocketFile> listenSock_;
	std::unique_ptr<FdWatch> listenWatch_;
	std::unique_ptr<StreamLink> client_;
	// A closed client is destroyed from an idle callback (or at the next accept): it may
	// close from inside its own watch callback or from a send deep in libslirp, where
	// destroying it is not allowed.
	GSourcePtr reaper_;
	uint64_t clients_ = 0;
};

} // namespace slirpnet
