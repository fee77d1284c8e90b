// SPDX-License-Identifier: BSD-2-Clause
// control/control_commands.hpp - the control socket's commands (hostfwd, info-usernet, stats, capture...).
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <string_view>

#include "control/capture.hpp"
#include "control_proto.hpp"

namespace slirpnet {

class Network;
struct SandboxReport;

// What the commands act on: the network, and how many control clients are connected.
struct ControlContext {
	Network &net;
	size_t controlClients = 0; // set by the control server before each request
	// capture-start's filter being compiled off the loop (one at a time); dropping it
	// gives the compile up.
	std::unique_ptr<FilterCompile> captureCompile{};
};

/*
 * One request line -> one reply line (ending in '\n'), or "" for a blank line. Every
 * failure - malformed JSON, unknown command, bad argument, failed operation - is an
 * error reply (control_proto.hpp); nothing here ends the connection or the helper.
 * Called from a ControlServer's handler, a command whose work must not run on the loop
 * (capture-start with a filter: compiling it) returns "" and replies later through
 * ControlServer::deferReply(); called from anywhere else, it does the work at once.
 */
std::string handleControlRequest(ControlContext &ctx, std::string_view line);

// The sandbox as the version reply shows it (what is in force) and --print-capabilities
// (what would be): {"no_new_privs": true, "landlock": 7 or false, "seccomp": "kill", ...}.
JsonNodePtr sandboxNode(const SandboxReport &report);

// --print-capabilities for libvirt: {"features": [...], "sandbox": {...}}.
std::string capabilitiesJson(std::span<const char *const> features, const SandboxReport &sandbox);

} // namespace slirpnet
