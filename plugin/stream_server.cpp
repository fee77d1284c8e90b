// stream_server.cpp - listen on a UNIX stream socket and serve one QEMU -netdev stream client at a time.
#include "stream_server.hpp"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <cerrno>
#include <cstring>

namespace slirpnet {

static bool makeUnixAddr(const std::string &path, sockaddr_un &sa, std::string &error)
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

// Remove a socket file left by a helper that died; refuse to touch a live or foreign one.
static bool removeStale(const std::string &path, const sockaddr_un &sa, std::string &error)
{
	struct stat st;
	if (lstat(path.c_str(), &st) < 0)
		return true; // nothing there (or bind will say why)
	if (!S_ISSOCK(st.st_mode)) {
		error = "'" + path + "' exists and is not a socket";
		return false;
	}
	UniqueFd probe(socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
	if (probe && connect(probe.get(), reinterpret_cast<const sockaddr *>(&sa), sizeof(sa)) == 0) {
		error = "'" + path + "' is in use: another process listens on it";
		return false;
	}
	if (probe && errno == EAGAIN) {
		error = "'" + path + "' is in use: another process listens on it (backlog full)";
		return false;
	}
	g_debug("removing stale socket '%s'", path.c_str());
	if (unlink(path.c_str()) < 0 && errno != ENOENT) {
		error = "removing stale socket '" + path + "': " + strerror(errno);
		return false;
	}
	return true;
}

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
	sockaddr_un sa;
	if (!makeUnixAddr(path_, sa, error) || !removeStale(path_, sa, error))
		return false;
	listenFd_.reset(socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
	if (!listenFd_) {
		error = std::string("socket: ") + strerror(errno);
		return false;
	}
	if (bind(listenFd_.get(), reinterpret_cast<const sockaddr *>(&sa), sizeof(sa)) < 0) {
		error = "binding '" + path_ + "': " + strerror(errno);
		return false;
	}
	struct stat st;
	if (lstat(path_.c_str(), &st) == 0) {
		dev_ = st.st_dev;
		ino_ = st.st_ino;
	}
	// A small backlog is enough: one client is served, the others are turned away.
	if (listen(listenFd_.get(), 4) < 0) {
		error = "listening on '" + path_ + "': " + strerror(errno);
		unlink(path_.c_str());
		ino_ = 0;
		return false;
	}
	listenWatch_ = FdWatch::create(ctx_, listenFd_.get(), static_cast<GIOCondition>(G_IO_IN | G_IO_ERR),
				       [this](int, GIOCondition c) { onAcceptable(c); });
	listenWatch_->enable();
	return true;
}

StreamServer::~StreamServer()
{
	reaper_.reset();
	client_.reset();
	listenWatch_.reset();
	listenFd_.reset();
	struct stat st;
	if (ino_ != 0 && lstat(path_.c_str(), &st) == 0 && st.st_dev == dev_ && st.st_ino == ino_)
		unlink(path_.c_str());
}

void StreamServer::onAcceptable(GIOCondition cond)
{
	for (;;) {
		UniqueFd fd(accept4(listenFd_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
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
		net_.stats().dropTxError++;
		return -1;
	}
	return client_->sendFrame(frame, len);
}

} // namespace slirpnet
