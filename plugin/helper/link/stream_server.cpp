// link/stream_server.cpp - listen on a UNIX stream socket and serve one QEMU -netdev stream client at a time.
#include "link/stream_server.hpp"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace slirpnet {

StreamServer::StreamServer(const std::string &path, Network &net, GMainContext *ctx, bool oneOff,
			   FinishedCallback onFinished)
	: path_(path), net_(net), ctx_(ctx), oneOff_(oneOff), onFinished_(std::move(onFinished))
{
}

std::unique_ptr<StreamServer> StreamServer::create(const std::string &path, Network &net,
						   GMainContext *ctx, bool oneOff,
						   FinishedCallback onFinished, std::string &error)
{
	std::unique_ptr<StreamServer> s(new StreamServer(path, net, ctx, oneOff, std::move(onFinished)));
	if (!s->listenOn(error))
		return nullptr;
	return s;
}

bool StreamServer::listenOn(std::string &error)
{
	// A small backlog is enough: one client is served, the others are turned away.
	listenSock_ = UnixSocketFile::listen(path_, 4, 0, error);
	if (!listenSock_)
		return false;
	listenWatch_ = FdWatch::create(ctx_, listenSock_->fd(), static_cast<GIOCondition>(G_IO_IN | G_IO_ERR),
				       [this](int, GIOCondition c) { onAcceptable(c); });
	listenWatch_->enable();
	return true;
}

StreamServer::~StreamServer()
{
	reaper_.reset();
	client_.reset();
	listenWatch_.reset();
	listenSock_.reset(); // unlinks the socket file if it is still ours
}

void StreamServer::onAcceptable(GIOCondition cond)
{
	for (;;) {
		UniqueFd fd(accept4(listenSock_->fd(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
		if (!fd) {
			if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED)
				break;
			// EMFILE and the like: keep serving the current client, try again later.
			g_warning("accepting on '%s': %s", path_.c_str(), strerror(errno));
			break;
		}
		if (hasClient()) {
			g_warning("refused a second client on '%s': one is already connected", path_.c_str());
			continue; // fd closes here
		}
		if (oneOff_ && clients_ > 0) {
			g_warning("refused a client on '%s': --one-off serves a single connection", path_.c_str());
			continue;
		}
		retire();
		clients_++;
		g_message("client %llu connected on '%s'", static_cast<unsigned long long>(clients_), path_.c_str());
		client_ = StreamLink::create(std::move(fd), net_, ctx_,
					     [this](const char *why, bool error) { onClientClosed(why, error); });
	}
	if ((cond & G_IO_ERR) && !(cond & G_IO_IN))
		g_warning("listening socket '%s' reported an error", path_.c_str());
}

void StreamServer::onClientClosed(const char *why, bool error)
{
	if (oneOff_) {
		g_message("client left (%s); --one-off: exiting", why);
		onFinished_(error ? 1 : 0);
		return;
	}
	g_message("client left (%s); listening again on '%s'", why, path_.c_str());
	if (!reaper_) {
		GSource *s = g_idle_source_new();
		g_source_set_callback(s, [](gpointer self) -> gboolean {
			static_cast<StreamServer *>(self)->retire();
			return G_SOURCE_REMOVE;
		}, this, nullptr);
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
		net_.stats().dropToGuestError++;
		return -1;
	}
	return client_->sendFrame(frame, len);
}

} // namespace slirpnet
