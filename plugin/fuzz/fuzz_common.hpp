// SPDX-License-Identifier: BSD-2-Clause
// fuzz/fuzz_common.hpp - what the fuzz targets share: a quiet log, the network namespace check, length-prefixed records.
#pragma once

#include <glib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace slirpnet::fuzz {

/*
 * Millions of inputs each log malformed frames, refused records...: formatting and writing
 * them would be most of a run. SLIRPNET_FUZZ_LOG=1 keeps the log (reproducing a crash).
 */
inline void quietLog()
{
	if (getenv("SLIRPNET_FUZZ_LOG"))
		return;
	g_log_set_writer_func([](GLogLevelFlags, const GLogField *, gsize, gpointer) { return G_LOG_WRITER_HANDLED; },
			      nullptr, nullptr);
}

/*
 * The targets that reach libslirp or bind sockets run only in a network namespace whose one
 * interface is lo (scripts/fuzz runs them under `unshare -n`): random frames, however
 * restrict=on treats them, must never reach a real network. Checked at start; the run
 * aborts otherwise. Also refused: the namespace of pid 1 (when it can be read), in case a
 * machine with only lo is the host itself.
 */
inline void requireLoopbackOnlyNetns(const char *target)
{
	auto refuse = [target](const std::string &why) {
		fprintf(stderr,
			"%s: refusing to run: %s. Run it in a network namespace of its own with only lo, "
			"e.g. `unshare -rn %s ...` or scripts/fuzz\n",
			target, why.c_str(), target);
		abort();
	};
	// /proc/self/net is this process's namespace (/sys/class/net is that of sysfs' mount).
	FILE *f = fopen("/proc/self/net/dev", "r");
	if (!f)
		refuse(std::string("cannot read /proc/self/net/dev: ") + strerror(errno));
	char line[512];
	for (int n = 0; fgets(line, sizeof(line), f); n++) {
		char *colon = strchr(line, ':');
		if (n < 2 || !colon)
			continue; // the two header lines
		*colon = '\0';
		const char *name = line + strspn(line, " ");
		if (strcmp(name, "lo") != 0) {
			std::string why = std::string("this network namespace has the interface '") + name +
					  "' beside lo";
			fclose(f);
			refuse(why);
		}
	}
	fclose(f);
	struct stat mine, init;
	if (stat("/proc/self/ns/net", &mine) == 0 && stat("/proc/1/ns/net", &init) == 0 && mine.st_ino == init.st_ino &&
	    mine.st_dev == init.st_dev)
		refuse("this is the network namespace of pid 1, not one of its own");
}

/*
 * The input as records, each a 2-byte big-endian length then that many bytes (a last,
 * shorter record takes what is left), so that one input can be a sequence of frames:
 * fragment trains, TCP handshakes, a stream cut anywhere.
 */
class Records
{
public:
	Records(const uint8_t *data, size_t size) : p_(data), end_(data + size) {}
	bool next(const uint8_t *&rec, size_t &len)
	{
		if (end_ - p_ < 2)
			return false;
		size_t want = static_cast<size_t>(p_[0]) << 8 | p_[1];
		p_ += 2;
		len = std::min<size_t>(want, static_cast<size_t>(end_ - p_));
		rec = p_;
		p_ += len;
		return true;
	}

private:
	const uint8_t *p_;
	const uint8_t *end_;
};

} // namespace slirpnet::fuzz
