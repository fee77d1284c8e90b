// SPDX-License-Identifier: BSD-2-Clause
// fuzz/fuzz_control.cpp - control-socket lines through parseRequest, the argument checks and the commands, on a real Network (own netns).
#include <glib.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

#include "control/control_commands.hpp"
#include "control_proto.hpp"
#include "fuzz_common.hpp"
#include "network.hpp"
#include "options.hpp"

using namespace slirpnet;

static Config g_cfg;

extern "C" int LLVMFuzzerInitialize(int *, char ***)
{
	// hostfwd-add binds what the line asks for: only in a namespace of our own.
	fuzz::requireLoopbackOnlyNetns("fuzz_control");
	fuzz::quietLog();
	std::string error;
	if (!parseConfig({ { "restrict", "on" } }, g_cfg, error))
		abort();
	return 0;
}

/*
 * The input is lines, each a request as a control client sends it, against one Network
 * per input. Every line gets one reply line (or none for a blank one). capture-start is
 * not run: it creates files (its path checks have tests of their own); its arguments are
 * still parsed and checked.
 */
extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	GMainContext *ctx = g_main_context_new();
	std::string error;
	auto net = Network::create(g_cfg, ctx, error);
	if (!net)
		abort();
	ControlContext cc{ *net, 1 };
	std::string_view text(reinterpret_cast<const char *>(data), size);
	while (!text.empty()) {
		size_t nl = text.find('\n');
		std::string_view line = text.substr(0, nl);
		text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);

		Request req;
		ControlError err;
		if (parseRequest(line, req, err) && req.command.starts_with("capture-start"))
			continue;
		std::string reply = handleControlRequest(cc, line);
		if (reply.empty())
			continue;
		// One line, ending in '\n', that is JSON.
		if (reply.back() != '\n' || reply.find('\n') != reply.size() - 1)
			abort();
		JsonParser *p = json_parser_new();
		if (!json_parser_load_from_data(p, reply.data(), static_cast<gssize>(reply.size()), nullptr))
			abort();
		g_object_unref(p);
	}
	net.reset();
	g_main_context_unref(ctx);
	return 0;
}
