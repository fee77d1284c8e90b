// SPDX-License-Identifier: BSD-2-Clause
// control/conn_info.cpp - libslirp's connection table text (slirp_connection_info) as structured rows.
#include "control/conn_info.hpp"

#include <cctype>
#include <charconv>

namespace slirpnet {

namespace {

std::string_view trim(std::string_view s)
{
	while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front())))
		s.remove_prefix(1);
	while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())))
		s.remove_suffix(1);
	return s;
}

std::vector<std::string_view> fields(std::string_view s)
{
	std::vector<std::string_view> out;
	size_t i = 0;
	while (i < s.size()) {
		while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i])))
			i++;
		size_t start = i;
		while (i < s.size() && !std::isspace(static_cast<unsigned char>(s[i])))
			i++;
		if (i > start)
			out.push_back(s.substr(start, i - start));
	}
	return out;
}

template <typename T>
bool number(std::string_view s, T &out)
{
	if (s.empty())
		return false;
	auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out, 10);
	return ec == std::errc() && p == s.data() + s.size();
}

// "-" (ICMP has no ports) or 0-65535.
bool port(std::string_view s, std::optional<unsigned> &out)
{
	if (s == "-") {
		out.reset();
		return true;
	}
	unsigned v;
	if (!number(s, v) || v > 65535)
		return false;
	out = v;
	return true;
}

bool address(std::string_view s)
{
	if (s == "*")
		return true;
	for (char ch : s)
		if (!std::isxdigit(static_cast<unsigned char>(ch)) && ch != '.' && ch != ':')
			return false;
	return !s.empty();
}

} // namespace

bool parseConnectionLine(std::string_view line, ConnInfo &out)
{
	line = trim(line);
	size_t open = line.find('[');
	size_t close = line.find(']');
	if (open == std::string_view::npos || close == std::string_view::npos || close < open)
		return false;
	std::string_view proto = trim(line.substr(0, open));
	std::string_view state = trim(line.substr(open + 1, close - open - 1));
	ConnInfo c;
	for (char ch : proto)
		c.protocol += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
	if (c.protocol != "tcp" && c.protocol != "udp" && c.protocol != "icmp")
		return false; // also the header, "Protocol[State]"
	// UDP and ICMP entries show their remaining lifetime instead of a state.
	if (state.ends_with(" sec")) {
		int secs;
		if (!number(trim(state.substr(0, state.size() - 4)), secs))
			return false;
		c.expiresSec = secs;
	} else {
		if (state.empty())
			return false;
		c.state = std::string(state);
	}

	auto f = fields(line.substr(close + 1));
	if (f.size() != 7)
		return false;
	if (!number(f[0], c.fd) || !address(f[1]) || !port(f[2], c.srcPort) || !address(f[3]) ||
	    !port(f[4], c.dstPort) || !number(f[5], c.recvQ) || !number(f[6], c.sendQ))
		return false;
	c.srcAddr = std::string(f[1]);
	c.dstAddr = std::string(f[3]);
	out = std::move(c);
	return true;
}

std::vector<ConnInfo> parseConnectionInfo(std::string_view text, size_t *skipped)
{
	std::vector<ConnInfo> rows;
	size_t bad = 0;
	while (!text.empty()) {
		size_t nl = text.find('\n');
		std::string_view line = text.substr(0, nl);
		text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
		ConnInfo c;
		if (parseConnectionLine(line, c))
			rows.push_back(std::move(c));
		else if (!trim(line).empty() && !trim(line).starts_with("Protocol[State]"))
			bad++;
	}
	if (skipped)
		*skipped = bad;
	return rows;
}

} // namespace slirpnet
