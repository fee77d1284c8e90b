// SPDX-License-Identifier: BSD-2-Clause
// log_test.cpp - LogRateLimit: a burst per interval, the rest counted and reported once, per call site.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "log.hpp"

using namespace slirpnet;

namespace {

int64_t gNow = 1'000'000;
int64_t fakeClock()
{
	return gNow;
}

// Collects what reaches g_log, so that the "suppressed" line can be checked.
std::vector<std::string> gLines;
GLogWriterOutput collect(GLogLevelFlags, const GLogField *fields, gsize n, gpointer)
{
	for (gsize i = 0; i < n; i++)
		if (g_strcmp0(fields[i].key, "MESSAGE") == 0)
			gLines.emplace_back(static_cast<const char *>(fields[i].value));
	return G_LOG_WRITER_HANDLED;
}

struct LogTest : ::testing::Test {
	void SetUp() override
	{
		// GLib takes a writer once per process.
		static bool writerSet = false;
		if (!writerSet)
			g_log_set_writer_func(collect, nullptr, nullptr);
		writerSet = true;
		gLines.clear();
		gNow = 1'000'000;
	}
};

} // namespace

TEST_F(LogTest, BurstThenSuppressedThenOneCountLine)
{
	LogRateLimit r("thing", 3, 10, fakeClock);
	uint64_t before = 99;
	for (int i = 0; i < 3; i++) {
		EXPECT_TRUE(r.allow(before));
		EXPECT_EQ(before, 0u);
	}
	for (int i = 0; i < 1000; i++)
		EXPECT_FALSE(r.allow(before));
	EXPECT_EQ(r.suppressed(), 1000u);
	gNow += 9 * G_USEC_PER_SEC; // same window
	EXPECT_FALSE(r.allow(before));
	gNow += 1 * G_USEC_PER_SEC; // next window: the first one says how many were held back
	EXPECT_TRUE(r.allow(before));
	EXPECT_EQ(before, 1001u);
	EXPECT_TRUE(r.allow(before));
	EXPECT_EQ(before, 0u);
	EXPECT_EQ(r.passed(), 5u);
}

TEST_F(LogTest, TheSuppressedLineIsLoggedOnceBeforeTheNextMessage)
{
	LogRateLimit r("'refusing %s'", 2, 5, fakeClock);
	int logged = 0;
	for (int i = 0; i < 50; i++)
		if (r.allow(G_LOG_LEVEL_WARNING))
			logged++;
	EXPECT_EQ(logged, 2);
	EXPECT_TRUE(gLines.empty()); // allow() itself logs only the count line
	gNow += 5 * G_USEC_PER_SEC;
	EXPECT_TRUE(r.allow(G_LOG_LEVEL_WARNING));
	ASSERT_EQ(gLines.size(), 1u);
	EXPECT_NE(gLines[0].find("'refusing %s': 48 similar messages suppressed"), std::string::npos) << gLines[0];
	EXPECT_NE(gLines[0].find("at most 2 every 5 s"), std::string::npos) << gLines[0];
}

TEST_F(LogTest, TheMacroLimitsEachCallSiteOnItsOwn)
{
	for (int i = 0; i < 100; i++) {
		slirpnet_warning_ratelimited("flood a %d", i);
		slirpnet_message_ratelimited("flood b");
	}
	size_t a = 0, b = 0;
	for (const auto &l : gLines) {
		a += l.rfind("flood a", 0) == 0;
		b += l == "flood b";
	}
	EXPECT_EQ(a, LogRateLimit::kDefaultBurst);
	EXPECT_EQ(b, LogRateLimit::kDefaultBurst);
	EXPECT_EQ(gLines.size(), 2 * LogRateLimit::kDefaultBurst);
}
