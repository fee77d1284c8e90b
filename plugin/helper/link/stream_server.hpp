// SPDX-License-Identifier: BSD-2-Clause
// link/stream_server.hpp - the --socket link: one QEMU -netdev stream client at a time.
#pragma once

#include <glib.h>
#include <sys/types.h>

#include <memory>
#include <string>

#include "glib_ptr.hpp"
#include "link/guest_link.hpp"
#include "link/stream_link.hpp"
#include "unix_listener.hpp"

namespace slirpnet {

/*
 * For `-netdev stream,server=off,addr.type=unix,addr.path=PATH`. QEMU 7.2 connects once at
 * start-up and never retries, so the socket is bound and listening when create() returns.
 * One client at a time: a second one is accepted and closed at once (logged) without
 * disturbing the first. When the client leaves, the server listens again; with oneOff the
 * link closes instead (error when the client broke the framing). Frames for the guest while
 * no client is connected are dropped (drop_to_guest_error). The socket file is unlinked on
 * destruction if it is still ours. A client after the first is taken for a new guest: the
 * previous one's TCP connections are reset (GuestPort::forgetGuestConnections), unless
 * socket-keep-state=on.
 *
 * Who may connect: the file is mode 0600 (0660 and the group of socket-group=), and a
 * client whose uid (SO_PEERCRED) is not the helper's, root's or a peer-uid= one is closed
 * at once, counted (refused_peers) and logged (at most one line per 10 s).
 */
class StreamServer : public GuestLink
{
public:
	/*
	 * A stale socket file at path (nobody listening) is replaced; a live one, or any other
	 * kind of file, is an error. Returns nullptr with error set.
	 */
	static std::unique_ptr<StreamServer> create(const std::string &path, GuestPort &port, GMainContext *ctx,
						    bool oneOff, std::string &error);
	~StreamServer() override;

	ssize_t sendFrame(const uint8_t *frame, size_t len) override;

	bool hasClient() const { return client_ && !client_->isClosed(); }

private:
	StreamServer(const std::string &path, GuestPort &port, GMainContext *ctx, bool oneOff);
	void onAccept(UniqueFd fd);
	void onClientClosed(const std::string &why, bool error);
	void retire();

	GMainContext *ctx_;
	bool oneOff_;
	std::unique_ptr<UnixListener> listener_;
	std::unique_ptr<StreamLink> client_;
	// A closed client is destroyed from an idle callback (or at the next accept): it may
	// close from inside its own watch callback or from a send deep in libslirp, where
	// destroying it is not allowed.
	GSourcePtr reaper_;
	uint64_t clients_ = 0;
	PeerPolicy peers_;
	WarningLimiter refusedLog_;
};

} // namespace slirpnet
