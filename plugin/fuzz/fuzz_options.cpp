// SPDX-License-Identifier: BSD-2-Clause
// fuzz/fuzz_options.cpp - a whole option string (key=value,... as -netdev slirpnet,... or the plugin spec) through splitOptions and parseConfig.
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_common.hpp"
#include "options.hpp"

using namespace slirpnet;

extern "C" int LLVMFuzzerInitialize(int *, char ***)
{
	fuzz::quietLog();
	return 0;
}

/*
 * The text is what an emulator's user typed: split (",," escapes, ';' joins hostfwd
 * rules), then every row of the option table checks its value. A failure must name what
 * it refused; a success must survive a second parse of the same pairs (parseConfig is a
 * pure function of them).
 */
extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	std::string_view text(reinterpret_cast<const char *>(data), size);
	OptionList opts;
	std::string error;
	if (!splitOptions(text, opts, error)) {
		if (error.empty())
			abort();
		return 0;
	}
	Config cfg;
	if (!parseConfig(opts, cfg, error)) {
		if (error.empty())
			abort();
		return 0;
	}
	Config again;
	std::string error2;
	if (!parseConfig(opts, again, error2) || again.mtu != cfg.mtu || again.hostFwds.size() != cfg.hostFwds.size())
		abort();
	// What the helper derives from an accepted config must not fail either.
	egressStrictRules(cfg);
	return 0;
}
