// SPDX-License-Identifier: BSD-2-Clause
// quote.hpp - how every message of slirpnet quotes a value: 'v'.
#pragma once

#include <string>
#include <string_view>

namespace slirpnet {

// One helper, so that option errors, control replies, capture errors and the CLI quote alike.
inline std::string q(std::string_view v)
{
	return "'" + std::string(v) + "'";
}

} // namespace slirpnet
