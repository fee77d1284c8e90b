// SPDX-License-Identifier: BSD-2-Clause
// unix_listener.cpp - a listening UNIX stream socket at a path that accepts from a GMainContext.
#include "unix_listener.hpp"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace slirpnet {

UnixListener::UnixListener(GMainContext *ctx, const UnixListenerOptions &options, AcceptCallback onAccept)
	: ctx_(ctx ? g_main_context_ref(ctx) : g_main_context_ref_thread_default()), options_(options),
	  onAccept_(std::move(onAccept))
{
}

std::unique_ptr<UnixListener> UnixListener::create(const std::string &path, GMainContext *ctx,
						   const UnixListenerOptions &options, AcceptCallback onAccept,
						   std::string &error)
{
	std::unique_ptr<UnixListener> l(new UnixListener(ctx, options, std::move(onAccept)));
	l->socket_ = UnixSocketFile::listen(path, options.backlog, SocketAccess{ options.mode, options.group }, error);
	if (!l->socket_)
		return nullptr;
	UnixListener *self = l.get();
	// G_IO_ERR too: poll() reports it anyway, and accept4() then says what it is.
	l->watch_ = FdWatch::create(l->ctx_.get(), l->socket_->fd(), static_cast<GIOCondition>(G_IO_IN | G_IO_ERR),
				    [self](int, GIOCondition) { self->onReadable(); });
	l->watch_->enable();
	return l;
}

UnixListener::~UnixListener()
{
	pauseTimer_.reset();
	watch_.reset();
	socket_.reset(); // unlinks the socket file if it is still ours
}

void UnixListener::onReadable()
{
	for (int i = 0; i < options_.acceptBatch; i++) {
		UniqueFd fd(accept4(socket_->fd(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
		if (!fd) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED)
				pause(errno);
			return;
		}
		onAccept_(std::move(fd));
	}
}

void UnixListener::pause(int err)
{
	// Out of descriptors the connection stays queued and the socket stays readable:
	// retrying at once would spin, and warning each time would flood the log.
	int64_t now = g_get_monotonic_time();
	if (lastWarning_ == 0 || now - lastWarning_ >= int64_t(kWarnIntervalSec) * G_USEC_PER_SEC) {
		if (heldBack_)
			g_warning("accepting on '%s': %s; not accepting for %u ms (%llu more since the last warning)",
				  path().c_str(), strerror(err), options_.pauseMs,
				  static_cast<unsigned long long>(heldBack_));
		else
			g_warning("accepting on '%s': %s; not accepting for %u ms", path().c_str(), strerror(err),
				  options_.pauseMs);
		lastWarning_ = now;
		heldBack_ = 0;
	} else {
		heldBack_++;
	}
	watch_->disable();
	GSource *s = g_timeout_source_new(options_.pauseMs);
	g_source_set_callback(s, &UnixListener::onPauseOver, this, nullptr);
	g_source_set_name(s, "slirpnet-listener-pause");
	g_source_attach(s, ctx_.get());
	pauseTimer_.reset(s);
}

gboolean UnixListener::onPauseOver(gpointer p)
{
	auto *self = static_cast<UnixListener *>(p);
	// Destroying the running source from its own callback is allowed.
	self->pauseTimer_.reset();
	self->watch_->enable();
	return G_SOURCE_REMOVE;
}

} // namespace slirpnet
