// SPDX-License-Identifier: BSD-2-Clause
// log.hpp - the helper's g_log writer (one "slirpnet[PID]: LEVEL: text" line per message) and log rate limits.
#pragma once

#include <glib.h>

#include <cstdint>
#include <mutex>

namespace slirpnet {

// Install the writer for the whole process. verbose enables debug messages (as does
// G_MESSAGES_DEBUG=all or a list naming "slirpnet" or "Slirp").
void logInit(const char *progName, bool verbose);

/*
 * A rate limit for one kind of log message, as Linux's printk_ratelimit or passt's
 * logging: at most `burst` messages per `interval`, the rest suppressed and counted; the
 * first message let through after a suppressed streak is preceded by one line saying how
 * many were suppressed ("NAME: 42 similar messages suppressed (at most 10 every 10 s)").
 *
 * For every message that can repeat per event a peer or the guest controls (a frame, a
 * connection, a request): stderr is often a pipe nobody drains, where a flood would
 * block the loop, and the log would lose what matters in the noise. Thread-safe (the
 * counters are under a mutex: a rate-limited call site may run on a worker thread).
 *
 * The clock is injectable for tests (monotonic µs).
 */
class LogRateLimit
{
public:
	using Clock = int64_t (*)();
	static constexpr unsigned kDefaultBurst = 10;
	static constexpr unsigned kDefaultIntervalSec = 10;

	explicit LogRateLimit(const char *name, unsigned burst = kDefaultBurst,
			      unsigned intervalSec = kDefaultIntervalSec, Clock clock = nullptr);
	LogRateLimit(const LogRateLimit &) = delete;
	LogRateLimit &operator=(const LogRateLimit &) = delete;

	// True when this occurrence may be logged (at level). When it follows suppressed
	// ones, the "suppressed" line is logged first, at the same level.
	bool allow(GLogLevelFlags level = G_LOG_LEVEL_WARNING);
	// The same without logging anything: suppressedBefore is then the number held back
	// since the last one let through (for a caller that reports it itself, as the writer).
	bool allow(uint64_t &suppressedBefore);
	const char *name() const { return name_; }
	unsigned burst() const { return burst_; }
	unsigned intervalSec() const { return static_cast<unsigned>(intervalUs_ / G_USEC_PER_SEC); }

	// Totals, for tests and diagnostics.
	uint64_t passed() const;
	uint64_t suppressed() const;

private:
	const char *name_;
	unsigned burst_;
	int64_t intervalUs_;
	Clock clock_;
	mutable std::mutex mutex_;
	int64_t windowStart_ = 0;
	bool started_ = false;
	unsigned inWindow_ = 0;
	uint64_t pending_ = 0; // suppressed, not yet reported
	uint64_t passed_ = 0, suppressed_ = 0;
};

} // namespace slirpnet

/*
 * g_warning()/g_message() behind a limit of their own (the defaults), one per call site:
 *   slirpnet_warning_ratelimited("control: refusing a client: %zu connected", n);
 * The format names the limit in the "suppressed" line. fmt must be a string literal.
 */
#define SLIRPNET_LOG_RATELIMITED_(level, fmt, ...)                                                                     \
	do {                                                                                                           \
		static ::slirpnet::LogRateLimit slirpnetRateLimit_("'" fmt "'");                                       \
		if (slirpnetRateLimit_.allow(level))                                                                   \
			g_log(G_LOG_DOMAIN, level, fmt __VA_OPT__(, ) __VA_ARGS__);                                    \
	} while (0)
#define slirpnet_warning_ratelimited(fmt, ...)                                                                         \
	SLIRPNET_LOG_RATELIMITED_(G_LOG_LEVEL_WARNING, fmt __VA_OPT__(, ) __VA_ARGS__)
#define slirpnet_message_ratelimited(fmt, ...)                                                                         \
	SLIRPNET_LOG_RATELIMITED_(G_LOG_LEVEL_MESSAGE, fmt __VA_OPT__(, ) __VA_ARGS__)
