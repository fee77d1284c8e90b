// SPDX-License-Identifier: BSD-2-Clause
// control/conn_info.hpp - libslirp's connection table text (slirp_connection_info) as structured rows.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace slirpnet {

/*
 * One line of the table QEMU's "info usernet" prints, e.g.
 *   "  TCP[ESTABLISHED]    14       10.0.2.15 40120        10.0.2.2  8080     0     0"
 *   "  UDP[236 sec]        -1       10.0.2.15 35061        10.0.2.2  5353     0     0"
 *   "  ICMP[0 sec]         15       10.0.2.15  -            10.0.2.2  -        0     0"
 * For a hostfwd listener (HOST_FORWARD) and the connections it accepted, src is the
 * host's socket and dst the guest; for the guest's own connections src is the guest.
 * libslirp lists IPv4 sockets only.
 */
struct ConnInfo {
	std::string protocol; // "tcp", "udp" or "icmp" (lower case)
	std::string state; // TCP state, "HOST_FORWARD", or empty for a timed UDP/ICMP entry
	std::optional<int> expiresSec; // UDP/ICMP: seconds before libslirp drops the entry
	int fd = -1; // the host socket, -1 when there is none
	std::string srcAddr; // "*" when unbound
	std::optional<unsigned> srcPort; // none for ICMP
	std::string dstAddr;
	std::optional<unsigned> dstPort;
	uint64_t recvQ = 0; // bytes queued from the host side for the guest
	uint64_t sendQ = 0; // bytes queued from the guest for the host side

	bool isHostForward() const { return state == "HOST_FORWARD"; }
};

// Parse the whole text; the header and lines that do not parse are skipped (counted).
std::vector<ConnInfo> parseConnectionInfo(std::string_view text, size_t *skipped = nullptr);

// Parse one row; false for the header, blank lines and anything malformed.
bool parseConnectionLine(std::string_view line, ConnInfo &out);

} // namespace slirpnet
