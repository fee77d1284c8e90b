// SPDX-License-Identifier: BSD-2-Clause
// glib_ptr.hpp - std::unique_ptr aliases that free GLib objects with the right function.
#pragma once

#include <glib.h>

#include <memory>

namespace slirpnet {

struct GSourceDeleter {
	void operator()(GSource *s) const
	{
		g_source_destroy(s);
		g_source_unref(s);
	}
};
struct GVariantDeleter {
	void operator()(GVariant *v) const { g_variant_unref(v); }
};
struct GMainContextDeleter {
	void operator()(GMainContext *c) const { g_main_context_unref(c); }
};
struct GFreeDeleter {
	void operator()(void *p) const { g_free(p); }
};

/*
 * Wake ctx from another thread. From the thread iterating it nothing is needed: the
 * next prepare() sees the change. (An unconditional wakeup costs an eventfd write and an
 * extra poll() per call: GLib does not skip it for its owner.)
 */
inline void wakeContextFromOtherThread(GMainContext *ctx)
{
	if (!g_main_context_is_owner(ctx))
		g_main_context_wakeup(ctx);
}

// A source that is destroyed (detached) and unreferenced when the pointer goes away.
using GSourcePtr = std::unique_ptr<GSource, GSourceDeleter>;
using GVariantPtr = std::unique_ptr<GVariant, GVariantDeleter>;
using GMainContextPtr = std::unique_ptr<GMainContext, GMainContextDeleter>;
using GCharPtr = std::unique_ptr<char, GFreeDeleter>;

} // namespace slirpnet
