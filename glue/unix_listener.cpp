// SPDX-License-Identifier: BSD-2-Clause
// unix_listener.cpp - a listening UNIX stream socket at a path that accepts from a GMainContext.
#include "unix_listener.hpp"

#include <sys/eventfd.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace slirpnet {

namespace {

// The reserve: any descriptor will do. An eventfd needs no path (Landlock may refuse
// /dev/null once the sandbox is up) and eventfd2 is on the seccomp allowlist (GLib's
// wake-ups use it).
UniqueFd makeReserve()
{
	return UniqueFd(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
}

bool outOfDescriptors(int err)
{
	return err == EMFILE || err == ENFILE;
}

} // namespace

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
	l->logName_ = "accept errors on '" + path + "'";
	l->warnLimit_ = std::make_unique<LogRateLimit>(l->logName_.c_str());
	if (options.reserveFd)
		l->reserve_ = makeReserve(); // without it (already out of descriptors) it pauses
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
			int err = errno;
			if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR || err == ECONNABORTED)
				return;
			if (outOfDescriptors(err) && refuseWithReserve(err))
				continue; // the next one, or EAGAIN
			pause(err);
			return;
		}
		onAccept_(std::move(fd));
	}
}

// Out of descriptors: give the reserve to the pending client, just long enough to tell it
// and close it. False when that did not work (no reserve, or the freed descriptor went
// elsewhere): then only a pause keeps the loop from spinning.
bool UnixListener::refuseWithReserve(int err)
{
	if (!reserve_)
		return false;
	reserve_.reset();
	UniqueFd fd(accept4(socket_->fd(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
	int acceptErr = errno;
	bool accepted = static_cast<bool>(fd);
	if (accepted) {
		refused_++;
		if (!options_.refuseMessage.empty())
			(void)!send(fd.get(), options_.refuseMessage.data(), options_.refuseMessage.size(),
				    MSG_DONTWAIT | MSG_NOSIGNAL);
		// What the client sent already (a request) is read and dropped: closed with
		// unread data, the client would get ECONNRESET, possibly before our message.
		char sink[512];
		(void)!recv(fd.get(), sink, sizeof(sink), MSG_DONTWAIT);
		fd.reset(); // the client sees the connection end now rather than hang in the backlog
	}
	reserve_ = makeReserve();
	if (!accepted)
		// The client gave up meanwhile (fine), or the descriptor went elsewhere.
		return acceptErr == EAGAIN || acceptErr == EWOULDBLOCK || acceptErr == ECONNABORTED;
	if (warnLimit_->allow())
		g_warning("accepting on '%s': %s; refused a client (closed at once; %llu so far)%s", path().c_str(),
			  strerror(err), static_cast<unsigned long long>(refused_),
			  reserve_ ? "" : "; no reserve descriptor left");
	return true;
}

void UnixListener::pause(int err)
{
	// The connection stays queued and the socket readable: retrying at once would spin.
	if (warnLimit_->allow())
		g_warning("accepting on '%s': %s; not accepting for %u ms", path().c_str(), strerror(err),
			  options_.pauseMs);
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
	if (self->options_.reserveFd && !self->reserve_)
		self->reserve_ = makeReserve();
	self->watch_->enable();
	return G_SOURCE_REMOVE;
}

} // namespace slirpnet
