// SPDX-License-Identifier: BSD-2-Clause
// log.cpp - the helper's g_log writer (one "slirpnet[PID]: LEVEL: text" line per message) and log rate limits.
#include "log.hpp"

#include <glib.h>
#include <unistd.h>

#include <cstdio>
#include <string>

namespace slirpnet {

static std::string gProgName = "slirpnet";
static bool gVerbose = false;

// stderr is the emulator's (or a pipe nobody drains): a write to it may block the loop.
// So at most kBurst debug/info lines per second reach it (-v); the rest are counted and
// reported with the next line written. Messages, warnings and errors always go through.
constexpr int kBurst = 100;
static int64_t gWindowStart = 0;
static int gLinesInWindow = 0;
static uint64_t gSuppressed = 0;

// libslirp logs through g_warning/g_message itself (domain "Slirp"), some of it on what a
// guest sends; its call sites cannot be wrapped, so its messages share one limit here.
static LogRateLimit gSlirpLimit("libslirp's messages", 20, 10);

static bool isSlirpDomain(const char *domain)
{
	return domain && g_strcmp0(domain, "Slirp") == 0;
}

static bool allowLine(GLogLevelFlags level)
{
	// Warnings and state changes are rare by design; what can flood is per-event debug.
	if (!(level & (G_LOG_LEVEL_DEBUG | G_LOG_LEVEL_INFO)))
		return true;
	int64_t now = g_get_monotonic_time();
	if (now - gWindowStart >= G_USEC_PER_SEC) {
		gWindowStart = now;
		gLinesInWindow = 0;
	}
	if (gLinesInWindow >= kBurst) {
		gSuppressed++;
		return false;
	}
	gLinesInWindow++;
	return true;
}

static const char *levelName(GLogLevelFlags level)
{
	if (level & G_LOG_LEVEL_ERROR)
		return "error";
	if (level & G_LOG_LEVEL_CRITICAL)
		return "critical";
	if (level & G_LOG_LEVEL_WARNING)
		return "warning";
	if (level & G_LOG_LEVEL_MESSAGE)
		return "message";
	if (level & G_LOG_LEVEL_INFO)
		return "info";
	return "debug";
}

static GLogWriterOutput writer(GLogLevelFlags level, const GLogField *fields, gsize nFields, gpointer)
{
	const char *domain = nullptr;
	const char *message = nullptr;
	for (gsize i = 0; i < nFields; i++) {
		if (g_strcmp0(fields[i].key, "GLIB_DOMAIN") == 0)
			domain = static_cast<const char *>(fields[i].value);
		else if (g_strcmp0(fields[i].key, "MESSAGE") == 0)
			message = static_cast<const char *>(fields[i].value);
	}
	if ((level & (G_LOG_LEVEL_DEBUG | G_LOG_LEVEL_INFO)) && !gVerbose &&
	    g_log_writer_default_would_drop(level, domain))
		return G_LOG_WRITER_HANDLED;

	if (!allowLine(level))
		return G_LOG_WRITER_HANDLED;
	std::string prefix = gProgName + "[" + std::to_string(getpid()) + "]: ";
	uint64_t slirpHeldBack = 0;
	if (!(level & (G_LOG_LEVEL_DEBUG | G_LOG_LEVEL_INFO)) && isSlirpDomain(domain)) {
		if (!gSlirpLimit.allow(slirpHeldBack))
			return G_LOG_WRITER_HANDLED;
		if (slirpHeldBack) {
			// Written here, not through g_log: this is the writer.
			std::string note = prefix + levelName(level) + ": " + gSlirpLimit.name() + ": " +
					   std::to_string(slirpHeldBack) + " suppressed (at most " +
					   std::to_string(gSlirpLimit.burst()) + " every " +
					   std::to_string(gSlirpLimit.intervalSec()) + " s)\n";
			ssize_t w = write(STDERR_FILENO, note.data(), note.size());
			(void)w;
		}
	}
	if (gSuppressed) {
		std::string note = prefix + "warning: " + std::to_string(gSuppressed) +
				   " log messages suppressed (more than " + std::to_string(kBurst) + " a second)\n";
		gSuppressed = 0;
		ssize_t w = write(STDERR_FILENO, note.data(), note.size());
		(void)w;
	}
	// One write() per line so that lines from several processes do not interleave.
	std::string line = gProgName + "[" + std::to_string(getpid()) + "]: " + levelName(level) + ": ";
	if (domain && g_strcmp0(domain, "slirpnet") != 0)
		line += std::string(domain) + ": ";
	line += message ? message : "(null)";
	line += '\n';
	ssize_t r = write(STDERR_FILENO, line.data(), line.size());
	(void)r;
	return G_LOG_WRITER_HANDLED;
}

LogRateLimit::LogRateLimit(const char *name, unsigned burst, unsigned intervalSec, Clock clock)
	: name_(name), burst_(burst), intervalUs_(int64_t(intervalSec) * G_USEC_PER_SEC),
	  clock_(clock ? clock : g_get_monotonic_time)
{
}

bool LogRateLimit::allow(uint64_t &suppressedBefore)
{
	std::lock_guard lock(mutex_);
	int64_t now = clock_();
	suppressedBefore = 0;
	if (!started_ || now - windowStart_ >= intervalUs_) {
		started_ = true;
		windowStart_ = now;
		inWindow_ = 0;
	}
	if (inWindow_ >= burst_) {
		pending_++;
		suppressed_++;
		return false;
	}
	inWindow_++;
	passed_++;
	suppressedBefore = pending_;
	pending_ = 0;
	return true;
}

bool LogRateLimit::allow(GLogLevelFlags level)
{
	uint64_t before = 0;
	if (!allow(before))
		return false;
	if (before)
		g_log(G_LOG_DOMAIN, level,
		      "%s: %" G_GUINT64_FORMAT " similar messages suppressed (at most %u every %u s)", name_, before,
		      burst_, intervalSec());
	return true;
}

uint64_t LogRateLimit::passed() const
{
	std::lock_guard lock(mutex_);
	return passed_;
}

uint64_t LogRateLimit::suppressed() const
{
	std::lock_guard lock(mutex_);
	return suppressed_;
}

void logInit(const char *progName, bool verbose)
{
	if (progName)
		gProgName = progName;
	gVerbose = verbose;
	g_log_set_writer_func(writer, nullptr, nullptr);
}

} // namespace slirpnet
