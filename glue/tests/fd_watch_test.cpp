// SPDX-License-Identifier: BSD-2-Clause
// fd_watch_test.cpp - fd watches: created disabled, enable/disable, cross-thread wake-up, removal.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "fd_watch.hpp"
#include "unique_fd.hpp"

using namespace slirpnet;

namespace {

struct Fixture : ::testing::Test {
	GMainContextPtr ctx{ g_main_context_new() };
	UniqueFd rd, wr;
	int calls = 0;
	void SetUp() override
	{
		int p[2];
		ASSERT_EQ(pipe(p), 0);
		rd.reset(p[0]);
		wr.reset(p[1]);
	}
	void drainIterations(int n = 5)
	{
		for (int i = 0; i < n; i++)
			g_main_context_iteration(ctx.get(), FALSE);
	}
	std::unique_ptr<FdWatch> watch()
	{
		return FdWatch::create(ctx.get(), rd.get(), G_IO_IN, [this](int fd, GIOCondition c) {
			EXPECT_EQ(fd, rd.get());
			EXPECT_TRUE(c & G_IO_IN);
			calls++;
		});
	}
};

} // namespace

TEST_F(Fixture, CreatedDisabled)
{
	auto w = watch();
	ASSERT_EQ(write(wr.get(), "x", 1), 1);
	drainIterations();
	EXPECT_EQ(calls, 0);
	EXPECT_FALSE(w->isEnabled());
}

TEST_F(Fixture, EnableDisableIsLevelTriggered)
{
	auto w = watch();
	ASSERT_EQ(write(wr.get(), "x", 1), 1);
	w->enable();
	w->enable(); // idempotent
	EXPECT_TRUE(w->isEnabled());
	drainIterations(3);
	EXPECT_EQ(calls, 3); // still readable: fires every iteration, like mevent/kqueue
	w->disable();
	drainIterations(3);
	EXPECT_EQ(calls, 3);
	w->enable();
	drainIterations(1);
	EXPECT_EQ(calls, 4);
}

TEST_F(Fixture, EnableFromAnotherThreadWakesABlockedIteration)
{
	auto w = watch();
	ASSERT_EQ(write(wr.get(), "x", 1), 1);
	std::thread t([&] {
		g_usleep(100000);
		w->enable();
	});
	gint64 start = g_get_monotonic_time();
	while (calls == 0 && g_get_monotonic_time() - start < 5 * G_USEC_PER_SEC)
		g_main_context_iteration(ctx.get(), TRUE); // blocks until woken
	t.join();
	EXPECT_EQ(calls, 1);
}

TEST_F(Fixture, DestroyRemovesTheSource)
{
	auto w = watch();
	w->enable();
	ASSERT_EQ(write(wr.get(), "x", 1), 1);
	EXPECT_TRUE(g_main_context_pending(ctx.get()));
	w.reset();
	drainIterations();
	EXPECT_EQ(calls, 0);
	EXPECT_FALSE(g_main_context_pending(ctx.get()));
}
