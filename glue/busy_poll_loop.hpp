// SPDX-License-Identifier: BSD-2-Clause
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
 * polling (poll-max-ns), this loop keeps polling without sleeping for up to maxUs after
 * the last work, so that a reply arriving within that window is handled at once.
 * It only polls while polling pays: it keeps a moving average of how often a polling
 * window caught work, and stops polling when fewer than a third did (a bulk transfer
 * whose ACKs take longer than the window), trying again every kProbeEvery-th wait.
 * Each empty round yields the CPU (sched_yield), so it never keeps a runnable process off
 * a busy machine, and an idle helper sleeps. maxUs = 0 is g_main_loop_run().
 */
class BusyPollLoop
{
public:
	BusyPollLoop(GMainContext *ctx, unsigned maxUs);
	~BusyPollLoop();

	// Dispatch until quit(); may be called again after it returns.
	void run();
	// Stop run(): from a callback on the context, or from any thread.
	void quit();

	// Counters for tests and logs: blocking waits, polling windows, empty polling rounds.
	uint64_t sleeps() const { return sleeps_; }
	uint64_t windows() const { return windows_; }
	uint64_t spins() const { return spins_; }
	// Whether the loop currently polls before sleeping (see above).
	bool polling() const { return hitRate_ * 3 >= kScale; }
	static constexpr unsigned kProbeEvery = 16;

private:
	GMainContext *ctx_;
	// Poll for up to maxUs_ after lastWork; true when something was dispatched.
	bool pollWindow(gint64 lastWork);
	void record(bool hit);

	static constexpr int kScale = 1 << 10; // hitRate_ is a fraction of kScale
	gint64 maxUs_;
	int hitRate_ = kScale; // moving average (1/8 weight) of windows that caught work
	unsigned waitsSkipped_ = 0;
	std::atomic<bool> stop_{ false };
	uint64_t sleeps_ = 0;
	uint64_t windows_ = 0;
	uint64_t spins_ = 0;
};

} // namespace slirpnet
