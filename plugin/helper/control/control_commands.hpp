// control/control_commands.hpp - the control socket's commands (hostfwd, info-usernet, stats, capture, version) on a Network.
#pragma once

#include <string>
#include <string_view>

namespace slirpnet {

class Network;

/*
 * One request line -> one reply line (ending in '\n'), or "" for a blank line. Every
 * failure - malformed JSON, unknown command, bad argument, failed operation - is an
 * error reply (control_proto.hpp); nothing here ends the connection or the helper.
 */
std::string handleControlRequest(Network &net, std::string_view line);

} // namespace slirpnet
