// SPDX-License-Identifier: BSD-2-Clause
// fuzz/fuzz_hostfwd.cpp - a hostfwd rule (and hostfwd_remove's key) through its parsers; accepted rules must round-trip.
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_common.hpp"
#include "options.hpp"

using namespace slirpnet;

static Config g_cfg;

extern "C" int LLVMFuzzerInitialize(int *, char ***)
{
	fuzz::quietLog();
	return 0;
}

/*
 * "[tcp|udp]:[HADDR]:HPORT-[GADDR]:GPORT" from the command line, the plugin spec or the
 * control socket's hostfwd-add. An accepted rule, resolved and printed as the control
 * socket lists it, must parse again to the same text.
 */
extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	std::string_view text(reinterpret_cast<const char *>(data), size);
	std::string error;
	HostFwd key;
	parseHostFwdKey(text, key, error);

	HostFwd f;
	if (!parseHostFwd(text, f, error)) {
		if (error.empty())
			abort();
		return 0;
	}
	if (!resolveHostFwd(f, g_cfg, error))
		return 0;
	std::string printed = formatHostFwd(f);
	HostFwd again;
	if (!parseHostFwd(printed, again, error) || !resolveHostFwd(again, g_cfg, error) ||
	    formatHostFwd(again) != printed) {
		fprintf(stderr, "'%s' printed as '%s' does not round-trip: %s\n", std::string(text).c_str(),
			printed.c_str(), error.c_str());
		abort();
	}
	return 0;
}
