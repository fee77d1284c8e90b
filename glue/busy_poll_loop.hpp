// busy_poll_loop.hpp - runs a GMainContext, polling without sleeping for a while after each burst of work.
#pragma once

#include <glib.h>

#include <atomic>
#include <cstdint>

namespace slirpnet {

/*
 * A main loop for the helper. Plain g_main_loop_run() sleeps in poll() as soon as nothing
 * is ready, and every frame of a request/response exchange then costs a wake-up of this
 * process (tens of µs on a VM) on top of the emulator's own. Like QEMU's iothread
 * polling (poll-max-ns), this loop keeps dispatching without sleeping for spinUs after
 * the last dispatch that did work, so a reply that arrives within that window is
 * handled at once. It yields the CPU on every empty round (sched_yield), so it never
 * keeps a runnable process off a busy machine, and it sleeps as usual once idle: an idle
 * helper uses no CPU. spinUs = 0 is g_main_loop_run().
 */
class BusyPollLoop
{
public:
	BusyPollLoop(GMainContext *ctx, unsigned spinUs);
	~BusyPollLoop();

	// Dispatch until quit(); may be called again after it returns.
	void run();
	// Stop run(): from a callback on the context, or from any thread.
	void quit();

	// Counters for tests and logs: blocking waits, and empty rounds spent polling.
	uint64_t sleeps() const { return sleeps_; }
	uint64_t spins() const { return spins_; }

private:
	GMainContext *ctx_;
	gint64 spinUs_;
	std::atomic<bool> stop_{ false };
	uint64_t sleeps_ = 0;
	uint64_t spins_ = 0;
};

} // namespace slirpnet
