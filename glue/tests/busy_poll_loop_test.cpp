// busy_poll_loop_test.cpp - the helper's main loop: dispatches, polls for a while after work, sleeps when idle, quits.
#include <gtest/gtest.h>

#include <thread>

#include "busy_poll_loop.hpp"

using namespace slirpnet;

namespace {

struct Ctx {
	GMainContext *ctx = g_main_context_new();
	~Ctx() { g_main_context_unref(ctx); }
};

// Attach a one-shot timeout that calls fn after ms.
template<typename F>
void after(GMainContext *ctx, guint ms, F *fn)
{
	GSource *s = g_timeout_source_new(ms);
	g_source_set_callback(
		s, [](gpointer p) -> gboolean {
			(*static_cast<F *>(p))();
			return G_SOURCE_REMOVE;
		},
		fn, nullptr);
	g_source_attach(s, ctx);
	g_source_unref(s);
}

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

TEST(BusyPollLoop, WorkArrivingInsideTheWindowIsHandledWithoutSleeping)
{
	Ctx c;
	BusyPollLoop loop(c.ctx, 200000); // 200 ms window: the test's events all fall inside it
	int n = 0;
	std::function<void()> tick;
	tick = [&] {
		if (++n == 5)
			loop.quit();
		else
			after(c.ctx, 5, &tick);
	};
	auto first = [&] { tick(); };
	after(c.ctx, 0, &first);
	loop.run();
	EXPECT_EQ(n, 5);
	EXPECT_LE(loop.sleeps(), 1u); // at most the wait for the very first dispatch
	EXPECT_GT(loop.spins(), 0u);
}

TEST(BusyPollLoop, QuitFromAnotherThread)
{
	Ctx c;
	BusyPollLoop loop(c.ctx, 0);
	std::thread t([&] {
		g_usleep(20000);
		loop.quit();
	});
	loop.run(); // blocked in poll(): quit() must wake it
	t.join();
	SUCCEED();
}
