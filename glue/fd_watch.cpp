// SPDX-License-Identifier: BSD-2-Clause
// fd_watch.cpp - bhyve-mevent-style fd watches on a GLib main context.
#include "fd_watch.hpp"

namespace slirpnet {

struct FdWatch::Source {
	GSource base;
	FdWatch *watch;
};

gboolean FdWatch::dispatch(GSource *source, GSourceFunc, gpointer)
{
	FdWatch *w = reinterpret_cast<Source *>(source)->watch;
	g_mutex_lock(&w->lock_);
	GIOCondition revents = w->tag_ ? g_source_query_unix_fd(source, w->tag_) : static_cast<GIOCondition>(0);
	g_mutex_unlock(&w->lock_);
	if (revents)
		w->callback_(w->fd_, revents);
	return G_SOURCE_CONTINUE;
}

GSourceFuncs FdWatch::funcs_ = {
	nullptr, nullptr, &FdWatch::dispatch, nullptr, nullptr, nullptr,
};

FdWatch::FdWatch(int fd, GIOCondition events, Callback callback)
	: fd_(fd), events_(events), callback_(std::move(callback))
{
	g_mutex_init(&lock_);
}

FdWatch::~FdWatch()
{
	source_.reset();
	g_mutex_clear(&lock_);
}

std::unique_ptr<FdWatch> FdWatch::create(GMainContext *ctx, int fd, GIOCondition events, Callback callback,
					 bool mayRecurse)
{
	std::unique_ptr<FdWatch> w(new FdWatch(fd, events, std::move(callback)));
	GSource *s = g_source_new(&funcs_, sizeof(Source));
	reinterpret_cast<Source *>(s)->watch = w.get();
	g_source_set_name(s, "slirpnet-fd-watch");
	// When the callback never iterates the context, blocking the source during dispatch
	// buys nothing and costs a wakeup: GLib removes and re-adds a blocked source's fds
	// around each dispatch, and re-adding one signals the context's wakeup fd.
	g_source_set_can_recurse(s, mayRecurse);
	// Disabled: the fd is not polled until enable().
	w->ctx_.reset(ctx ? g_main_context_ref(ctx) : g_main_context_ref_thread_default());
	g_source_attach(s, w->ctx_.get());
	w->source_.reset(s);
	return w;
}

void FdWatch::enable()
{
	g_mutex_lock(&lock_);
	bool changed = !enabled_;
	if (changed) {
		enabled_ = true;
		tag_ = g_source_add_unix_fd(source_.get(), fd_, events_);
	}
	g_mutex_unlock(&lock_);
	// The owning thread may be asleep in poll() without this fd.
	if (changed)
		wakeContextFromOtherThread(ctx_.get());
}

void FdWatch::disable()
{
	g_mutex_lock(&lock_);
	bool changed = enabled_;
	if (changed) {
		enabled_ = false;
		// Removed rather than given an empty event mask: poll() reports HUP and ERR
		// whatever was asked, so a dead peer would keep firing a "disabled" watch.
		g_source_remove_unix_fd(source_.get(), tag_);
		tag_ = nullptr;
	}
	g_mutex_unlock(&lock_);
	if (changed)
		wakeContextFromOtherThread(ctx_.get());
}

bool FdWatch::isEnabled() const
{
	g_mutex_lock(&lock_);
	bool e = enabled_;
	g_mutex_unlock(&lock_);
	return e;
}

} // namespace slirpnet
