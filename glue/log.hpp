// SPDX-License-Identifier: BSD-2-Clause
// log.hpp - the helper's g_log writer: one "slirpnet[PID]: LEVEL: text" line per message on stderr.
#pragma once

namespace slirpnet {

// Install the writer for the whole process. verbose enables debug messages (as does
// G_MESSAGES_DEBUG=all or a list naming "slirpnet" or "Slirp").
void logInit(const char *progName, bool verbose);

} // namespace slirpnet
