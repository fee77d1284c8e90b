// SPDX-License-Identifier: BSD-2-Clause
// fd_watch.hpp - bhyve-mevent-style fd watches on a GLib main context.
#pragma once

#include <glib.h>

#include <functional>
#include <memory>

#include "glib_ptr.hpp"

namespace slirpnet {

/*
 * A level-triggered watch of one fd, dispatched from a GMainContext, in the spirit of
 * bhyve's mevent: it is created *disabled* (so a backend can finish setting up before
 * the first callback), then enabled and disabled at will, and removed by destroying it.
 * enable()/disable() may be called from any thread; they wake the context.
 * The callback runs on the thread iterating the context. Destroying the watch from
 * inside its own callback is not allowed.
 */
class FdWatch
{
public:
	using Callback = std::function<void(int fd, GIOCondition revents)>;

	// ctx NULL means the calling thread's default context.
	// mayRecurse: the callback never iterates ctx itself, so GLib need not block the
	// source while it runs (which saves a wakeup per dispatch). Pass false when the
	// callback is someone else's (the plugin's rx callback belongs to the emulator).
	static std::unique_ptr<FdWatch> create(GMainContext *ctx, int fd, GIOCondition events, Callback callback,
					       bool mayRecurse = true);
	~FdWatch();
	FdWatch(const FdWatch &) = delete;
	FdWatch &operator=(const FdWatch &) = delete;

	void enable();
	void disable();
	bool isEnabled() const;
	int fd() const { return fd_; }

private:
	struct Source;
	FdWatch(int fd, GIOCondition events, Callback callback);
	static gboolean dispatch(GSource *source, GSourceFunc, gpointer);

	int fd_;
	GIOCondition events_;
	Callback callback_;
	static GSourceFuncs funcs_;

	GMainContextPtr ctx_;
	GSourcePtr source_; // destroyed before ctx_ is released
	gpointer tag_ = nullptr;
	mutable GMutex lock_;
	bool enabled_ = false;
};

} // namespace slirpnet
