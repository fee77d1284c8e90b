// SPDX-License-Identifier: BSD-2-Clause
// busy_poll_loop.cpp - runs a GMainContext, polling without sleeping for a while after each burst of work.
#include "busy_poll_loop.hpp"

#include <sched.h>

namespace slirpnet {

BusyPollLoop::BusyPollLoop(GMainContext *ctx, unsigned maxUs)
	: ctx_(ctx ? g_main_context_ref(ctx) : g_main_context_ref(g_main_context_default())), maxUs_(maxUs)
{
}

BusyPollLoop::~BusyPollLoop()
{
	g_main_context_unref(ctx_);
}

void BusyPollLoop::run()
{
	gint64 lastWork = g_get_monotonic_time();
	while (!stop_) {
		if (maxUs_ == 0) {
			sleeps_++;
			g_main_context_iteration(ctx_, TRUE);
			continue;
		}
		// One round: poll() with a zero timeout, then dispatch what is ready.
		if (g_main_context_iteration(ctx_, FALSE)) {
			lastWork = g_get_monotonic_time();
			continue;
		}
		// Nothing ready: poll on for the rest of the window when that has been paying,
		// and now and then anyway, to notice when it starts paying again.
		bool probe = ++waitsSkipped_ >= kProbeEvery;
		if (polling() || probe) {
			waitsSkipped_ = 0;
			bool hit = pollWindow(lastWork);
			record(hit);
			if (hit) {
				lastWork = g_get_monotonic_time();
				continue;
			}
		}
		if (stop_)
			break;
		sleeps_++;
		g_main_context_iteration(ctx_, TRUE);
		lastWork = g_get_monotonic_time();
	}
	stop_ = false; // here, not on entry: a quit() just before run() is not lost
}

bool BusyPollLoop::pollWindow(gint64 lastWork)
{
	windows_++;
	while (!stop_ && g_get_monotonic_time() - lastWork < maxUs_) {
		spins_++;
		sched_yield();
		if (g_main_context_iteration(ctx_, FALSE))
			return true;
	}
	return false;
}

void BusyPollLoop::record(bool hit)
{
	hitRate_ += ((hit ? kScale : 0) - hitRate_) / 8;
}

void BusyPollLoop::quit()
{
	stop_ = true;
	g_main_context_wakeup(ctx_);
}

} // namespace slirpnet
