// SPDX-License-Identifier: BSD-2-Clause
// busy_poll_loop_test.cpp - the helper's main loop: dispatches, polls for a while after work, sleeps when idle, quits.
#include <gtest/gtest.h>

#include <functional>
#include <thread>

#include "busy_poll_loop.hpp"

using namespace slirpnet;

namespace {

struct Ctx {
	GMainContext *ctx = g_main_context_new();
	~Ctx() { g_main_context_unref(ctx); }
};

// Attach a one-shot timeout that calls fn after ms.
template <typename F>
void after(GMainContext *ctx, guint ms, F *fn)
{
	GSource *s = g_timeout_source_new(ms);
	g_source_set_callback(
		s,
		[](gpointer p) -> gboolean {
			(*static_cast<F *>(p))();
			return G_SOURCE_REMOVE;
		},
		fn, nullptr);
	g_source_attach(s, ctx);
	g_source_unref(s);
}

// Quits loop after ms unless it has ended before: a lost wake-up then fails the test
// (fired) instead of hanging it.
struct Rescue {
	Rescue(GMainContext *ctx, BusyPollLoop &loop, guint ms)
		: quit([this, &loop] {
			  fired = true;
			  loop.quit();
		  })
	{
		after(ctx, ms, &quit);
	}
	bool fired = false;
	std::function<void()> quit;
};

} // namespace

TEST(BusyPollLoop, QuitFromACallbackEndsRun)
{
	for (unsigned spin : { 0u, 50u }) {
		Ctx c;
		BusyPollLoop loop(c.ctx, spin);
		int fired = 0;
		auto fn = [&] {
			fired++;
			loop.quit();
		};
		after(c.ctx, 10, &fn);
		loop.run();
		EXPECT_EQ(fired, 1) << spin;
	}
}

TEST(BusyPollLoop, SleepsWhenIdleInsteadOfSpinning)
{
	Ctx c;
	BusyPollLoop loop(c.ctx, 50);
	auto stop = [&] { loop.quit(); };
	after(c.ctx, 200, &stop);
	gint64 t0 = g_get_monotonic_time();
	loop.run();
	gint64 elapsed = g_get_monotonic_time() - t0;
	EXPECT_GE(elapsed, 190000);
	// 200 ms idle: one short polling window at the start, then one sleep until the timer.
	// Spinning all along would be hundreds of thousands of rounds.
	EXPECT_LE(loop.sleeps(), 3u);
	EXPECT_LT(loop.spins(), 20000u);
}

// Events every gapMs, n of them; returns the loop's counters.
struct LoopRun {
	uint64_t sleeps, windows, spins;
	bool polling;
};
LoopRun ticks(unsigned maxUs, guint gapMs, int n)
{
	Ctx c;
	BusyPollLoop loop(c.ctx, maxUs);
	int count = 0;
	std::function<void()> tick;
	tick = [&] {
		if (++count == n)
			loop.quit();
		else
			after(c.ctx, gapMs, &tick);
	};
	after(c.ctx, gapMs, &tick);
	loop.run();
	EXPECT_EQ(count, n);
	return { loop.sleeps(), loop.windows(), loop.spins(), loop.polling() };
}

TEST(BusyPollLoop, WorkInsideTheWindowIsHandledWithoutSleeping)
{
	// Work every 2 ms, polling allowed for 100 ms: every wait is caught by polling.
	LoopRun r = ticks(100000, 2, 20);
	EXPECT_LE(r.sleeps, 1u); // at most before the first event
	EXPECT_GT(r.spins, 0u);
	EXPECT_TRUE(r.polling);
}

TEST(BusyPollLoop, StopsPollingWhenItDoesNotPay)
{
	// 100 waits of 2 ms with 300 µs of polling: no window catches anything. The hit rate
	// falls below a third after 9 misses; from then on only every kProbeEvery-th wait
	// polls, the others sleep at once.
	LoopRun r = ticks(300, 2, 100);
	EXPECT_FALSE(r.polling);
	EXPECT_GE(r.windows, 9u);
	EXPECT_LE(r.windows, 9u + 100u / BusyPollLoop::kProbeEvery + 2u);
	EXPECT_GE(r.sleeps, 99u);
}

TEST(BusyPollLoop, QuitBeforeRunIsNotLost)
{
	Ctx c;
	BusyPollLoop loop(c.ctx, 50);
	// A lost quit() would leave run() waiting for this timer rather than hang the test.
	Rescue rescue(c.ctx, loop, 2000);
	loop.quit();
	gint64 t0 = g_get_monotonic_time();
	loop.run(); // returns at once: not a single wait, poll or dispatch
	EXPECT_FALSE(rescue.fired);
	EXPECT_LT(g_get_monotonic_time() - t0, 1000000);
	EXPECT_EQ(loop.sleeps(), 0u);
	EXPECT_EQ(loop.windows(), 0u);
	EXPECT_EQ(loop.spins(), 0u);
}

TEST(BusyPollLoop, QuitFromAnotherThread)
{
	Ctx c;
	BusyPollLoop loop(c.ctx, 0);
	Rescue rescue(c.ctx, loop, 5000); // only if the other thread's quit() did not wake run()
	gint64 t0 = g_get_monotonic_time();
	std::thread t([&] {
		g_usleep(20000);
		loop.quit();
	});
	loop.run(); // blocked in poll(): quit() must wake it
	t.join();
	gint64 elapsed = g_get_monotonic_time() - t0;
	EXPECT_FALSE(rescue.fired);
	EXPECT_GE(elapsed, 19000); // it did wait for the other thread...
	EXPECT_LT(elapsed, 2000000); // ...and woke with it, not with the rescue timer
	EXPECT_GE(loop.sleeps(), 1u); // in a blocking wait, as maxUs = 0 does
	EXPECT_EQ(loop.windows(), 0u); // never polling
}
