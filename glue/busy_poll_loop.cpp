// busy_poll_loop.cpp - runs a GMainContext, polling without sleeping for a while after each burst of work.
#include "busy_poll_loop.hpp"

#include <sched.h>

namespace slirpnet {

BusyPollLoop::BusyPollLoop(GMainContext *ctx, unsigned spinUs)
	: ctx_(ctx ? g_main_context_ref(ctx) : g_main_context_ref(g_main_context_default())), spinUs_(spinUs)
{
}

BusyPollLoop::~BusyPollLoop()
{
	g_main_context_unref(ctx_);
}

void BusyPollLoop::run()
{
	stop_ = false;
	gint64 lastWork = g_get_monotonic_time();
	while (!stop_) {
		if (spinUs_ == 0) {
			sleeps_++;
			g_main_context_iteration(ctx_, TRUE);
			continue;
		}
		// One non-blocking round: poll() with a zero timeout, then dispatch.
		if (g_main_context_iteration(ctx_, FALSE)) {
			lastWork = g_get_monotonic_time();
			continue;
		}
		if (g_get_monotonic_time() - lastWork < spinUs_) {
			spins_++;
			sched_yield();
			continue;
		}
		sleeps_++;
		g_main_context_iteration(ctx_, TRUE);
		lastWork = g_get_monotonic_time();
	}
}

void BusyPollLoop::quit()
{
	stop_ = true;
	g_main_context_wakeup(ctx_);
}

} // namespace slirpnet
