// SPDX-License-Identifier: BSD-2-Clause
// link/stream_server.cpp - the --socket link: one QEMU -netdev stream client at a time.
#include "link/stream_server.hpp"

#include "log.hpp"

namespace slirpnet {

StreamServer::StreamServer(const std::string &path, GuestPort &port, GMainContext *ctx, bool oneOff)
	: GuestLink(port, path), ctx_(ctx), oneOff_(oneOff)
{
}

std::unique_ptr<StreamServer> StreamServer::create(const std::string &path, GuestPort &port, GMainContext *ctx,
						   bool oneOff, std::string &error)
{
	std::unique_ptr<StreamServer> s(new StreamServer(path, port, ctx, oneOff));
	UnixListenerOptions opts;
	opts.backlog = 4; // one client is served, the others are turned away
	SocketAccess access;
	if (!socketAccessForGroup(port.config().socketGroup, access, error))
		return nullptr;
	opts.mode = access.mode;
	opts.group = access.group;
	s->peers_ = PeerPolicy(port.config().peerUids);
	StreamServer *self = s.get();
	s->listener_ = UnixListener::create(
		path, ctx, opts, [self](UniqueFd fd) { self->onAccept(std::move(fd)); }, error);
	if (!s->listener_)
		return nullptr;
	return s;
}

StreamServer::~StreamServer()
{
	reaper_.reset();
	client_.reset();
	listener_.reset(); // unlinks the socket file if it is still ours
}

void StreamServer::onAccept(UniqueFd fd)
{
	// Before anything else: a refused peer must not disturb the client being served.
	ucred cred{};
	if (!peerCredentials(fd.get(), cred) || !peers_.allows(cred.uid)) {
		port_.stats().refusedPeers++;
		uint64_t heldBack = 0;
		if (refusedLog_.shouldLog(heldBack))
			g_warning("refused a client on '%s': uid %u (pid %d) is not allowed (see peer-uid=); "
				  "%llu more refused since the last warning",
				  name().c_str(), static_cast<unsigned>(cred.uid), static_cast<int>(cred.pid),
				  static_cast<unsigned long long>(heldBack));
		return; // fd closes here
	}
	if (hasClient()) {
		slirpnet_warning_ratelimited("refused a second client on '%s': one is already connected",
					     name().c_str());
		return; // fd closes here
	}
	if (oneOff_ && clients_ > 0) {
		slirpnet_warning_ratelimited("refused a client on '%s': --one-off serves a single connection",
					     name().c_str());
		return;
	}
	retire();
	// A new client is usually another guest (or the same one rebooted): the previous
	// one's connections would only confuse it, and their host peers would wait forever.
	if (clients_ > 0 && !port_.config().socketKeepState)
		port_.forgetGuestConnections();
	clients_++;
	slirpnet_message_ratelimited("client %llu connected on '%s'", static_cast<unsigned long long>(clients_),
				     name().c_str());
	client_ = StreamLink::create(std::move(fd), port_, ctx_, name());
	client_->setClosedCallback([this](const std::string &why, bool error) { onClientClosed(why, error); });
}

void StreamServer::onClientClosed(const std::string &why, bool error)
{
	if (oneOff_) {
		closeLink("the --one-off client left (" + why + ")", error);
		return;
	}
	slirpnet_message_ratelimited("client left (%s); listening again on '%s'", why.c_str(), name().c_str());
	if (!reaper_) {
		auto onIdle = [](gpointer self) -> gboolean {
			static_cast<StreamServer *>(self)->retire();
			return G_SOURCE_REMOVE;
		};
		GSource *s = g_idle_source_new();
		g_source_set_callback(s, onIdle, this, nullptr);
		g_source_attach(s, ctx_);
		reaper_.reset(s);
	}
}

// Destroy a closed client; never called from inside that client's callbacks.
void StreamServer::retire()
{
	reaper_.reset();
	if (client_ && client_->isClosed())
		client_.reset();
}

ssize_t StreamServer::sendFrame(const uint8_t *frame, size_t len)
{
	if (!hasClient()) {
		port_.stats().dropToGuestError++;
		return -1;
	}
	return client_->sendFrame(frame, len);
}

} // namespace slirpnet
