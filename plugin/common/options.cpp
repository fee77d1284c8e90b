// SPDX-License-Identifier: BSD-2-Clause
// options.cpp - the one option table: QEMU -netdev user keys (plus bhyve's forms), parsing and help.
#include "options.hpp"
#include "quote.hpp"

#include <arpa/inet.h>
#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cstring>
#include <set>

namespace slirpnet {

namespace {

// Set error to why and return false: one line for each failure below.
bool failWith(std::string &error, std::string why)
{
	error = std::move(why);
	return false;
}

bool parseUnsigned(std::string_view s, unsigned long &out)
{
	if (s.empty())
		return false;
	auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out, 10);
	return ec == std::errc() && p == s.data() + s.size();
}

bool parseV4(std::string_view s, in_addr &out)
{
	std::string tmp(s);
	return inet_pton(AF_INET, tmp.c_str(), &out) == 1;
}

bool parseV6(std::string_view s, in6_addr &out)
{
	std::string tmp(s);
	return inet_pton(AF_INET6, tmp.c_str(), &out) == 1;
}

// Everything the handlers fill in, plus what was given explicitly (for QEMU's defaults).
struct ParseState {
	Config &cfg;
	bool haveHost = false, haveDhcpStart = false, haveDns = false;
	bool haveIpv4 = false, haveIpv6 = false;
	bool haveIpv6Host = false, haveIpv6Dns = false, haveMru = false;
	bool haveLoopback = false;
};

// Each handler gets the value; false with error set to the reason (naming the value).
using Handler = bool (*)(ParseState &st, std::string_view value, std::string &error);

bool handleNet(ParseState &st, std::string_view v, std::string &error)
{
	Config &c = st.cfg;
	std::string_view addr = v, maskText;
	if (auto slash = v.find('/'); slash != std::string_view::npos) {
		addr = v.substr(0, slash);
		maskText = v.substr(slash + 1);
	}
	if (!parseV4(addr, c.net))
		return failWith(error, "bad address " + q(v));
	uint32_t a = ntohl(c.net.s_addr);
	uint32_t m;
	unsigned long bits;
	if (maskText.empty() && addr.size() == v.size()) {
		// No mask: QEMU's classful default.
		if (!(a & 0x80000000u))
			m = 0xff000000u; // class A
		else if ((a & 0xfff00000u) == 0xac100000u)
			m = 0xfff00000u; // 172.16.0.0/12
		else if ((a & 0xc0000000u) == 0x80000000u)
			m = 0xffff0000u; // class B
		else if ((a & 0xffff0000u) == 0xc0a80000u)
			m = 0xffff0000u; // 192.168.0.0/16
		else if ((a & 0xffff0000u) == 0xc6120000u)
			m = 0xfffe0000u; // 198.18.0.0/15
		else if ((a & 0xe0000000u) == 0xc0000000u)
			m = 0xffffff00u; // class C
		else
			m = 0xfffffff0u;
	} else if (parseUnsigned(maskText, bits)) {
		if (bits < 4 || bits > 30)
			return failWith(error, "bad prefix length " + q(maskText) + " in " + q(v) + " (expected 4-30)");
		m = 0xffffffffu << (32 - bits);
	} else {
		in_addr mk;
		if (!parseV4(maskText, mk))
			return failWith(error, "bad netmask " + q(maskText) + " in " + q(v));
		m = ntohl(mk.s_addr);
		if (m == 0 || (~m & (~m + 1)) != 0)
			return failWith(error, "netmask " + q(maskText) + " in " + q(v) + " is not contiguous");
	}
	// As QEMU does, host bits are dropped: libvirt passes the guest's <ip address=...>
	// (e.g. 10.0.2.15/24) as --net, and QEMU users write it that way too.
	c.net.s_addr = htonl(a & m);
	c.mask.s_addr = htonl(m);
	return true;
}

template <bool Config::*Field, bool ParseState::*Given = nullptr>
bool handleBool(ParseState &st, std::string_view v, std::string &error)
{
	bool b;
	if (v.empty())
		b = true; // bare keyword, as bhyve
	else if (!parseBool(v, b))
		return failWith(error, "bad boolean " + q(v) + " (expected on|off)");
	st.cfg.*Field = b;
	if constexpr (Given != nullptr)
		st.*Given = true;
	return true;
}

bool handleRestrict(ParseState &st, std::string_view v, std::string &error)
{
	return handleBool<&Config::restricted>(st, v, error);
}

bool handleOpen(ParseState &st, std::string_view v, std::string &error)
{
	bool b = true;
	if (!v.empty() && !parseBool(v, b))
		return failWith(error, "bad boolean " + q(v) + " (expected on|off)");
	st.cfg.restricted = !b;
	return true;
}

template <in_addr Config::*Field, bool ParseState::*Given>
bool handleV4(ParseState &st, std::string_view v, std::string &error)
{
	if (!parseV4(v, st.cfg.*Field))
		return failWith(error, "bad IPv4 address " + q(v));
	st.*Given = true;
	return true;
}

template <in6_addr Config::*Field, bool ParseState::*Given>
bool handleV6(ParseState &st, std::string_view v, std::string &error)
{
	if (!parseV6(v, st.cfg.*Field))
		return failWith(error, "bad IPv6 address " + q(v));
	st.*Given = true;
	return true;
}

bool handleHostFwd(ParseState &st, std::string_view v, std::string &error)
{
	// bhyve joins several rules with ';' (its option syntax cannot repeat a key).
	size_t start = 0;
	for (;;) {
		size_t end = v.find(';', start);
		std::string_view one = v.substr(start, end == std::string_view::npos ? v.npos : end - start);
		HostFwd fwd;
		if (!parseHostFwd(one, fwd, error))
			return false;
		st.cfg.hostFwds.push_back(std::move(fwd));
		if (end == std::string_view::npos)
			break;
		start = end + 1;
	}
	return true;
}

bool validDomainName(std::string_view s)
{
	if (s.empty() || s.size() > 253)
		return false;
	size_t label = 0;
	for (char ch : s) {
		if (ch == '.') {
			if (label == 0)
				return false;
			label = 0;
			continue;
		}
		if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '-' && ch != '_')
			return false;
		if (++label > 63)
			return false;
	}
	return true;
}

template <std::string Config::*Field, size_t MaxLen>
bool handleString(ParseState &st, std::string_view v, std::string &error)
{
	if (v.empty())
		return failWith(error, "empty value");
	if (v.size() > MaxLen)
		return failWith(error, "value " + q(v.substr(0, 32)) + "... is too long (" + std::to_string(v.size()) +
					       " > " + std::to_string(MaxLen) + " bytes)");
	st.cfg.*Field = std::string(v);
	return true;
}

bool handleDomain(ParseState &st, std::string_view v, std::string &error)
{
	if (!validDomainName(v))
		return failWith(error, "bad domain name " + q(v));
	st.cfg.domainName = std::string(v);
	return true;
}

bool handleDnsSearch(ParseState &st, std::string_view v, std::string &error)
{
	if (!validDomainName(v))
		return failWith(error, "bad domain name " + q(v));
	st.cfg.dnsSearch.emplace_back(v);
	return true;
}

bool handleTftp(ParseState &st, std::string_view v, std::string &error)
{
	struct stat sb;
	std::string path(v);
	if (path.empty() || stat(path.c_str(), &sb) != 0 || !S_ISDIR(sb.st_mode))
		return failWith(error, "no such directory " + q(v));
	st.cfg.tftpPath = path;
	return true;
}

bool handleIpv6Net(ParseState &st, std::string_view v, std::string &error)
{
	std::string_view addr = v;
	unsigned long len = 64;
	if (auto slash = v.find('/'); slash != std::string_view::npos) {
		addr = v.substr(0, slash);
		if (!parseUnsigned(v.substr(slash + 1), len) || len > 126)
			return failWith(error, "bad prefix length " + q(v.substr(slash + 1)) + " in " + q(v) +
						       " (expected 0-126)");
	}
	if (!parseV6(addr, st.cfg.ipv6Prefix))
		return failWith(error, "bad IPv6 address " + q(addr) + " in " + q(v));
	st.cfg.ipv6PrefixLen = static_cast<uint8_t>(len);
	return true;
}

template <unsigned Config::*Field, bool ParseState::*Given = nullptr>
bool handleMtu(ParseState &st, std::string_view v, std::string &error)
{
	unsigned long n;
	if (!parseUnsigned(v, n) || n < kMtuMin || n > kMtuMax)
		return failWith(error, "bad value " + q(v) + " (expected " + std::to_string(kMtuMin) + "-" +
					       std::to_string(kMtuMax) + ")");
	st.cfg.*Field = static_cast<unsigned>(n);
	if constexpr (Given != nullptr)
		st.*Given = true;
	return true;
}

// The directory a file path would be created in must exist (checked early, as tftp).
bool checkParentDir(std::string_view v, std::string &error)
{
	std::string path(v);
	struct stat sb;
	if (stat(path.c_str(), &sb) == 0 && S_ISDIR(sb.st_mode))
		return failWith(error, q(v) + " is a directory");
	size_t slash = path.rfind('/');
	std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
	if (stat(dir.c_str(), &sb) != 0 || !S_ISDIR(sb.st_mode))
		return failWith(error, "no such directory " + q(dir) + " for " + q(v));
	return true;
}

bool handlePcapFile(ParseState &st, std::string_view v, std::string &error)
{
	// libpcap reads "-" as stdout, which is the emulator's in the plugin's case.
	if (v == "-")
		return failWith(error, "writing to stdout " + q(v) + " is not supported; give a file name");
	if (!checkParentDir(v, error))
		return false;
	st.cfg.pcapFile = std::string(v);
	return true;
}

// Only the shape is checked here (the plugin does not link libpcap); Network::create
// compiles the expression and reports libpcap's own error before anything runs.
bool handlePcapFilter(ParseState &st, std::string_view v, std::string &error)
{
	if (!checkPcapFilterText(v, error))
		return false;
	st.cfg.pcapFilter = std::string(v);
	return true;
}

bool handleSnaplen(ParseState &st, std::string_view v, std::string &error)
{
	unsigned long n;
	if (!parseUnsigned(v, n) || n < kSnaplenMin || n > kSnaplenMax)
		return failWith(error, "bad value " + q(v) + " (expected " + std::to_string(kSnaplenMin) + "-" +
					       std::to_string(kSnaplenMax) + ")");
	st.cfg.snaplen = static_cast<unsigned>(n);
	return true;
}

bool handleSndbuf(ParseState &st, std::string_view v, std::string &error)
{
	unsigned long n;
	if (!parseUnsigned(v, n) || n < 4096 || n > (256ul << 20))
		return failWith(error, "bad value " + q(v) + " (expected 4096-268435456 bytes)");
	st.cfg.sndbuf = static_cast<unsigned>(n);
	return true;
}

bool handleBusyPoll(ParseState &st, std::string_view v, std::string &error)
{
	unsigned long n;
	if (!parseUnsigned(v, n) || n > kBusyPollMaxUs)
		return failWith(error, "bad value " + q(v) + " (expected 0-" + std::to_string(kBusyPollMaxUs) +
					       " microseconds)");
	st.cfg.busyPollUs = static_cast<unsigned>(n);
	return true;
}

bool handleControl(ParseState &st, std::string_view v, std::string &error)
{
	// sockaddr_un's sun_path (108 bytes on Linux) with its terminating NUL.
	constexpr size_t kMaxSocketPath = 107;
	if (v.size() > kMaxSocketPath)
		return failWith(error, "socket path " + q(v) + " is too long (" + std::to_string(v.size()) + " > " +
					       std::to_string(kMaxSocketPath) + " bytes)");
	if (!checkParentDir(v, error))
		return false;
	st.cfg.controlPath = std::string(v);
	return true;
}

bool handleSandbox(ParseState &st, std::string_view v, std::string &error)
{
	return handleBool<&Config::sandbox>(st, v, error);
}

// A POSIX portable user name ([A-Za-z0-9._-], not starting with '-'); whether it exists is
// the helper's business (it looks it up as it starts), not the plugin's.
bool handleUser(ParseState &st, std::string_view v, std::string &error)
{
	constexpr size_t kMaxUserName = 32;
	if (v.size() > kMaxUserName)
		return failWith(error, "user name " + q(v) + " is too long (" + std::to_string(v.size()) + " > " +
					       std::to_string(kMaxUserName) + " bytes)");
	for (char ch : v)
		if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '.' && ch != '_' && ch != '-')
			return failWith(error, "bad user name " + q(v));
	if (v.front() == '-')
		return failWith(error, "bad user name " + q(v));
	st.cfg.user = std::string(v);
	return true;
}

// dns= is QEMU's address of the virtual DNS server; on|off (slirpnet's) turns libslirp's
// DNS forwarder on or off. Only the exact words: "0" or "no" are more likely typos.
bool handleDns(ParseState &st, std::string_view v, std::string &error)
{
	if (v == "on" || v == "off") {
		st.cfg.virtualDns = v == "on";
		return true;
	}
	if (!parseV4(v, st.cfg.dns))
		return failWith(error, "bad IPv4 address " + q(v) + " (or on|off)");
	st.haveDns = true;
	return true;
}

bool handleLoopback(ParseState &st, std::string_view v, std::string &error)
{
	st.haveLoopback = true;
	return handleBool<&Config::hostLoopback>(st, v, error);
}

bool handleOutboundAddr(ParseState &st, std::string_view v, std::string &error)
{
	in_addr a;
	if (!parseV4(v, a))
		return failWith(error, "bad IPv4 address " + q(v));
	st.cfg.outboundAddr = a;
	return true;
}

bool handleOutboundAddr6(ParseState &st, std::string_view v, std::string &error)
{
	in6_addr a;
	if (!parseV6(v, a))
		return failWith(error, "bad IPv6 address " + q(v));
	st.cfg.outboundAddr6 = a;
	return true;
}

template <EgressVerdict Verdict>
bool handleEgressRule(ParseState &st, std::string_view v, std::string &error)
{
	EgressRule r;
	if (!parseEgressRule(v, Verdict, r, error))
		return false;
	st.cfg.egressRules.push_back(r);
	return true;
}

bool handleEgressDefault(ParseState &st, std::string_view v, std::string &error)
{
	if (v != "allow" && v != "deny")
		return failWith(error, "bad verdict " + q(v) + " (expected allow|deny)");
	st.cfg.egressDefaultDeny = v == "deny";
	return true;
}

bool handlePolicy(ParseState &st, std::string_view v, std::string &error)
{
	if (v != "open" && v != "strict")
		return failWith(error, "bad policy " + q(v) + " (expected open|strict)");
	st.cfg.policyStrict = v == "strict";
	return true;
}

// A group name (POSIX portable characters) or a numeric gid; the helper looks it up as it
// binds its sockets, so the plugin need not know the host's groups.
bool handleSocketGroup(ParseState &st, std::string_view v, std::string &error)
{
	constexpr size_t kMaxGroupName = 32;
	if (v.empty() || v.size() > kMaxGroupName || v[0] == '-')
		return failWith(error, "bad group " + q(v) + " (a group name or number)");
	for (char ch : v)
		if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '.' && ch != '_' && ch != '-')
			return failWith(error, "bad group " + q(v) + " (a group name or number)");
	st.cfg.socketGroup = std::string(v);
	return true;
}

bool handlePeerUid(ParseState &st, std::string_view v, std::string &error)
{
	unsigned long n;
	// (uid_t)-1 is "no uid" to the kernel, never a peer's.
	if (!parseUnsigned(v, n) || n >= 0xffffffffu)
		return failWith(error, "bad uid " + q(v) + " (a number, 0-4294967294)");
	st.cfg.peerUids.push_back(static_cast<uid_t>(n));
	return true;
}

bool handleDgramPeer(ParseState &st, std::string_view v, std::string &error)
{
	constexpr size_t kMaxSocketPath = 107; // sun_path with its NUL
	if (v.empty() || v.size() > kMaxSocketPath)
		return failWith(error, "socket path " + q(v) + " is empty or too long (at most " +
					       std::to_string(kMaxSocketPath) + " bytes)");
	st.cfg.dgramPeer = std::string(v);
	return true;
}

bool handlePcapMax(ParseState &st, std::string_view v, std::string &error)
{
	// At least a file header and one small record; 0 is "no limit".
	constexpr unsigned long kMin = 4096;
	unsigned long n;
	if (!parseUnsigned(v, n) || (n != 0 && n < kMin))
		return failWith(error, "bad size " + q(v) + " (0 or at least " + std::to_string(kMin) + " bytes)");
	st.cfg.pcapMax = n;
	return true;
}

bool handleMaxFlows(ParseState &st, std::string_view v, std::string &error)
{
	unsigned long n;
	if (!parseUnsigned(v, n) || n < 1 || n > Config::kMaxMaxFlows)
		return failWith(error,
				"bad number of flows " + q(v) + " (1-" + std::to_string(Config::kMaxMaxFlows) + ")");
	st.cfg.maxFlows = static_cast<unsigned>(n);
	return true;
}

bool handleFragMem(ParseState &st, std::string_view v, std::string &error)
{
	unsigned long n;
	if (!parseUnsigned(v, n) || (n != 0 && (n < Config::kFragMemMin || n > Config::kFragMemMax)))
		return failWith(error, "bad size " + q(v) + " (0, or " + std::to_string(Config::kFragMemMin) + "-" +
					       std::to_string(Config::kFragMemMax) + " bytes)");
	st.cfg.fragMem = n;
	return true;
}

bool handleFragTimeout(ParseState &st, std::string_view v, std::string &error)
{
	unsigned long n;
	if (!parseUnsigned(v, n) || n < 1 || n > Config::kFragTimeoutMax)
		return failWith(error,
				"bad timeout " + q(v) + " (1-" + std::to_string(Config::kFragTimeoutMax) + " seconds)");
	st.cfg.fragTimeoutSec = static_cast<unsigned>(n);
	return true;
}

struct Row {
	OptionSpec spec;
	Handler handler;
};

// The table. Order is the order of --help.
const std::array kRows = {
	Row{
		.spec = {
			.key = "net",
			.metavar = "ADDR[/MASK]",
			.defaultText = "10.0.2.0/24",
			.help = "guest network (mask: prefix length or dotted; classful if omitted)",
			.repeatable = false,
			.isBool = false,
			.goodExample = "10.9.0.0/24",
			.badExample = "10.0.2.0/40",
		},
		.handler = handleNet,
	},
	Row{
		.spec = {
			.key = "host",
			.metavar = "ADDR",
			.defaultText = "x.x.x.2",
			.help = "address of the gateway, which reaches the host's loopback",
			.repeatable = false,
			.isBool = false,
			.goodExample = "10.0.2.2",
			.badExample = "10.0.2",
		},
		.handler = handleV4<&Config::host, &ParseState::haveHost>,
	},
	Row{
		.spec = {
			.key = "dhcpstart",
			.metavar = "ADDR",
			.defaultText = "x.x.x.15",
			.help = "first of the 16 addresses the DHCP server hands out",
			.repeatable = false,
			.isBool = false,
			.goodExample = "10.0.2.20",
			.badExample = "10.0.2.300",
		},
		.handler = handleV4<&Config::dhcpStart, &ParseState::haveDhcpStart>,
	},
	Row{
		.spec = {
			.key = "dns",
			.metavar = "ADDR|on|off",
			.defaultText = "x.x.x.3, on",
			.help = "address of the virtual DNS server, or off to turn it off (libslirp's disable_dns)",
			.repeatable = false,
			.isBool = false,
			.goodExample = "10.0.2.3",
			.badExample = "dns.example",
		},
		.handler = handleDns,
	},
	Row{
		.spec = {
			.key = "restrict",
			.metavar = "on|off",
			.defaultText = "off",
			.help = "isolate the guest: no connections out, only hostfwd in",
			.repeatable = false,
			.isBool = true,
			.goodExample = "on",
			.badExample = "maybe",
		},
		.handler = handleRestrict,
	},
	Row{
		.spec = {
			.key = "open",
			.metavar = "",
			.defaultText = "(already the default)",
			.help = "bhyve's keyword for restrict=off: outbound connections allowed",
			.repeatable = false,
			.isBool = true,
			.goodExample = "",
			.badExample = "sometimes",
		},
		.handler = handleOpen,
	},
	Row{
		.spec = {
			.key = "hostfwd",
			.metavar = "[tcp|udp]:[HADDR]:HPORT-[GADDR]:GPORT",
			.defaultText = "none",
			.help = "forward a host port to the guest; repeatable, or several rules joined by ';'",
			.repeatable = true,
			.isBool = false,
			.goodExample = "tcp:127.0.0.1:2222-:22",
			.badExample = "tcp::70000-:22",
		},
		.handler = handleHostFwd,
	},
	Row{
		.spec = {
			.key = "hostname",
			.metavar = "NAME",
			.defaultText = "none",
			.help = "hostname the DHCP server gives the guest",
			.repeatable = false,
			.isBool = false,
			.goodExample = "guest1",
			.badExample = nullptr,
		},
		.handler = handleString<&Config::hostname, 255>,
	},
	Row{
		.spec = {
			.key = "domainname",
			.metavar = "DOMAIN",
			.defaultText = "none",
			.help = "domain name the DHCP server gives the guest",
			.repeatable = false,
			.isBool = false,
			.goodExample = "example.test",
			.badExample = "bad domain!",
		},
		.handler = handleDomain,
	},
	Row{
		.spec = {
			.key = "dnssearch",
			.metavar = "DOMAIN",
			.defaultText = "none",
			.help = "DNS search domain sent by DHCP (option 119); repeatable",
			.repeatable = true,
			.isBool = false,
			.goodExample = "corp.example",
			.badExample = "bad..name",
		},
		.handler = handleDnsSearch,
	},
	Row{
		.spec = {
			.key = "tftp",
			.metavar = "DIR",
			.defaultText = "none",
			.help = "serve this directory over TFTP",
			.repeatable = false,
			.isBool = false,
			.goodExample = "/",
			.badExample = "/nonexistent/dir",
		},
		.handler = handleTftp,
	},
	Row{
		.spec = {
			.key = "tftp-server-name",
			.metavar = "NAME",
			.defaultText = "none",
			.help = "TFTP server name sent in DHCP (option 66)",
			.repeatable = false,
			.isBool = false,
			.goodExample = "10.0.2.2",
			.badExample = nullptr,
		},
		.handler = handleString<&Config::tftpServerName, 255>,
	},
	Row{
		.spec = {
			.key = "bootfile",
			.metavar = "FILE",
			.defaultText = "none",
			.help = "BOOTP boot file name",
			.repeatable = false,
			.isBool = false,
			.goodExample = "pxelinux.0",
			.badExample = nullptr,
		},
		.handler = handleString<&Config::bootFile, 127>,
	},
	Row{
		.spec = {
			.key = "ipv4",
			.metavar = "on|off",
			.defaultText = "on",
			.help = "enable IPv4 (only ipv6=on given turns IPv4 off, as QEMU)",
			.repeatable = false,
			.isBool = true,
			.goodExample = "on",
			.badExample = "2",
		},
		.handler = handleBool<&Config::ipv4, &ParseState::haveIpv4>,
	},
	Row{
		.spec = {
			.key = "ipv6",
			.metavar = "on|off",
			.defaultText = "on",
			.help = "enable IPv6 (only ipv4=on given turns IPv6 off, as QEMU)",
			.repeatable = false,
			.isBool = true,
			.goodExample = "off",
			.badExample = "v6",
		},
		.handler = handleBool<&Config::ipv6, &ParseState::haveIpv6>,
	},
	Row{
		.spec = {
			.key = "ipv6-net",
			.metavar = "ADDR[/LEN]",
			.defaultText = "fec0::/64",
			.help = "guest IPv6 prefix",
			.repeatable = false,
			.isBool = false,
			.goodExample = "fd00:1::/64",
			.badExample = "fd00::/127",
		},
		.handler = handleIpv6Net,
	},
	Row{
		.spec = {
			.key = "ipv6-host",
			.metavar = "ADDR",
			.defaultText = "PREFIX::2",
			.help = "IPv6 address of the gateway",
			.repeatable = false,
			.isBool = false,
			.goodExample = "fec0::2",
			.badExample = "fec0::zz",
		},
		.handler = handleV6<&Config::ipv6Host, &ParseState::haveIpv6Host>,
	},
	Row{
		.spec = {
			.key = "ipv6-dns",
			.metavar = "ADDR",
			.defaultText = "PREFIX::3",
			.help = "IPv6 address of the virtual DNS server",
			.repeatable = false,
			.isBool = false,
			.goodExample = "fec0::3",
			.badExample = "10.0.2.3",
		},
		.handler = handleV6<&Config::ipv6Dns, &ParseState::haveIpv6Dns>,
	},
	Row{
		.spec = {
			.key = "mtu",
			.metavar = "N",
			.defaultText = "1500",
			.help = "MTU of the guest link (68-65520); frames up to MTU+14 bytes",
			.repeatable = false,
			.isBool = false,
			.goodExample = "9000",
			.badExample = "70000",
		},
		.handler = handleMtu<&Config::mtu>,
	},
	Row{
		.spec = {
			.key = "mru",
			.metavar = "N",
			.defaultText = "= mtu",
			.help = "largest IP packet accepted from the guest (68-65520)",
			.repeatable = false,
			.isBool = false,
			.goodExample = "9000",
			.badExample = "12",
		},
		.handler = handleMtu<&Config::mru, &ParseState::haveMru>,
	},
	Row{
		.spec = {
			.key = "loopback",
			.metavar = "on|off",
			.defaultText = "on",
			.help = "the gateway's addresses reach the host's 127.0.0.1 and ::1 (libslirp's "
			        "disable_host_loopback when off)",
			.repeatable = false,
			.isBool = true,
			.goodExample = "off",
			.badExample = "local",
		},
		.handler = handleLoopback,
	},
	Row{
		.spec = {
			.key = "outbound-addr",
			.metavar = "ADDR",
			.defaultText = "none",
			.help = "bind the guest's outgoing IPv4 connections to this host address",
			.repeatable = false,
			.isBool = false,
			.goodExample = "127.0.0.1",
			.badExample = "127.0.0",
		},
		.handler = handleOutboundAddr,
	},
	Row{
		.spec = {
			.key = "outbound-addr6",
			.metavar = "ADDR6",
			.defaultText = "none",
			.help = "bind the guest's outgoing IPv6 connections to this host address",
			.repeatable = false,
			.isBool = false,
			.goodExample = "::1",
			.badExample = "::g",
		},
		.handler = handleOutboundAddr6,
	},
	Row{
		.spec = {
			.key = "allow",
			.metavar = "[tcp/|udp/|icmp/]CIDR[:PORTS]",
			.defaultText = "none",
			.help = "egress rule: let the guest's new connections, datagrams and pings to CIDR through "
			        "(IPv6 in brackets before :PORTS; PORTS is N or N-M); repeatable, first match wins",
			.repeatable = true,
			.isBool = false,
			.goodExample = "tcp/192.0.2.0/24:443",
			.badExample = "192.0.2.0/33",
		},
		.handler = handleEgressRule<EgressVerdict::Allow>,
	},
	Row{
		.spec = {
			.key = "deny",
			.metavar = "[tcp/|udp/|icmp/]CIDR[:PORTS]",
			.defaultText = "none",
			.help = "egress rule: refuse them (TCP gets a RST, UDP and ICMP an ICMP administratively "
			        "prohibited); repeatable, first match wins",
			.repeatable = true,
			.isBool = false,
			.goodExample = "[2001:db8::/32]:1-1023",
			.badExample = "198.51.100.0/24:90-80",
		},
		.handler = handleEgressRule<EgressVerdict::Deny>,
	},
	Row{
		.spec = {
			.key = "egress-default",
			.metavar = "allow|deny",
			.defaultText = "allow",
			.help = "verdict for the guest's traffic no allow=/deny= rule matches",
			.repeatable = false,
			.isBool = false,
			.goodExample = "deny",
			.badExample = "drop",
		},
		.handler = handleEgressDefault,
	},
	Row{
		.spec = {
			.key = "policy",
			.metavar = "open|strict",
			.defaultText = "open",
			.help = "strict: loopback=off and deny the host through the gateway, 127.0.0.0/8, ::1, "
			        "169.254.0.0/16 (cloud metadata) and fe80::/10, before any allow= rule",
			.repeatable = false,
			.isBool = false,
			.goodExample = "strict",
			.badExample = "paranoid",
		},
		.handler = handlePolicy,
	},
	Row{
		.spec = {
			.key = "pcap",
			.metavar = "FILE",
			.defaultText = "none",
			.help = "record every frame in both directions to FILE (classic pcap, mode 0600)",
			.repeatable = false,
			.isBool = false,
			.goodExample = "/tmp/slirpnet-test.pcap",
			.badExample = "/nonexistent/dir/x.pcap",
		},
		.handler = handlePcapFile,
	},
	Row{
		.spec = {
			.key = "pcap-filter",
			.metavar = "EXPR",
			.defaultText = "none",
			.help = "record only frames matching this BPF expression (libpcap syntax)",
			.repeatable = false,
			.isBool = false,
			.goodExample = "icmp or arp",
			.badExample = "(icmp",
		},
		.handler = handlePcapFilter,
	},
	Row{
		.spec = {
			.key = "snaplen",
			.metavar = "N",
			.defaultText = "65535",
			.help = "bytes kept of each recorded frame (14-262144)",
			.repeatable = false,
			.isBool = false,
			.goodExample = "128",
			.badExample = "10",
		},
		.handler = handleSnaplen,
	},
	Row{
		.spec = {
			.key = "sndbuf",
			.metavar = "BYTES",
			.defaultText = "4194304",
			.help = "send buffer of the sockets to the emulator and to the helper: bursts it absorbs "
			        "before pacing (SO_SNDBUFFORCE as root, else capped by net.core.wmem_max)",
			.repeatable = false,
			.isBool = false,
			.goodExample = "212992",
			.badExample = "1k",
		},
		.handler = handleSndbuf,
	},
	Row{
		.spec = {
			.key = "busy-poll",
			.metavar = "USEC",
			.defaultText = "50",
			.help = "after work, poll for up to this long before sleeping, so that replies arriving "
			        "meanwhile skip a wake-up: lower latency for a little CPU, as QEMU's iothread "
			        "poll-max-ns; only while polling catches work, and always yielding to other processes; "
			        "0 = sleep at once",
			.repeatable = false,
			.isBool = false,
			.goodExample = "0",
			.badExample = "20000",
		},
		.handler = handleBusyPoll,
	},
	Row{
		.spec = {
			.key = "control",
			.metavar = "PATH",
			.defaultText = "none",
			.help = "serve the JSON control interface on this UNIX socket (see slirpnet-ctl)",
			.repeatable = false,
			.isBool = false,
			.goodExample = "/tmp/slirpnet-test.sock",
			.badExample = "/nonexistent/dir/ctl.sock",
		},
		.handler = handleControl,
	},
	Row{
		.spec = {
			.key = "socket-group",
			.metavar = "GROUP",
			.defaultText = "none: mode 0600",
			.help = "the --socket, --vhost-user, --dgram and control= socket files are mode 0660 and owned by GROUP "
			        "(a name or gid) instead of 0600",
			.repeatable = false,
			.isBool = false,
			.goodExample = "0",
			.badExample = "-x",
		},
		.handler = handleSocketGroup,
	},
	Row{
		.spec = {
			.key = "peer-uid",
			.metavar = "UID",
			.defaultText = "the helper's uid and root",
			.help = "also serve a --socket, --vhost-user or --dgram peer running as UID (SO_PEERCRED, SCM_CREDENTIALS); "
			        "repeatable",
			.repeatable = true,
			.isBool = false,
			.goodExample = "65534",
			.badExample = "nobody",
		},
		.handler = handlePeerUid,
	},
	Row{
		.spec = {
			.key = "socket-keep-state",
			.metavar = "on|off",
			.defaultText = "off",
			.help = "a new --socket client inherits the previous client's TCP connections; off: they "
			        "are reset (the host peers see a RST) when it connects",
			.repeatable = false,
			.isBool = true,
			.goodExample = "on",
			.badExample = "maybe",
		},
		.handler = handleBool<&Config::socketKeepState>,
	},
	Row{
		.spec = {
			.key = "dgram-peer",
			.metavar = "PATH",
			.defaultText = "the first sender",
			.help = "with --dgram: take frames only from this address (QEMU's local.path); without it the "
			        "first sender's address is the only one accepted",
			.repeatable = false,
			.isBool = false,
			.goodExample = "/tmp/qemu.sock",
			.badExample = "/tmp/a-path-longer-than-sun-path-allows/xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
				      "xxxxxxxxxxxxxxxxxxxxxxxx.sock",
		},
		.handler = handleDgramPeer,
	},
	Row{
		.spec = {
			.key = "pcap-max",
			.metavar = "BYTES",
			.defaultText = "0: no limit",
			.help = "stop a capture (pcap= or capture-start) before its file grows beyond BYTES",
			.repeatable = false,
			.isBool = false,
			.goodExample = "1048576",
			.badExample = "100",
		},
		.handler = handlePcapMax,
	},
	Row{
		.spec = {
			.key = "max-flows",
			.metavar = "N",
			.defaultText = "4096",
			.help = "most sockets libslirp holds for the guest at once (TCP connections, lingering closed "
				"ones included, UDP flows, pings; hostfwd listeners excluded, the connections they "
				"accept included); past it a new TCP connection gets a RST, a new UDP flow an ICMP "
				"unreachable, and hostfwd listeners accept nothing; RLIMIT_NOFILE follows it",
			.repeatable = false,
			.isBool = false,
			.goodExample = "16384",
			.badExample = "0",
		},
		.handler = handleMaxFlows,
	},
	Row{
		.spec = {
			.key = "frag-mem",
			.metavar = "BYTES",
			.defaultText = "4194304",
			.help = "IPv4/IPv6 fragments from the guest are reassembled by the helper (libslirp gets whole "
				"datagrams only) in at most BYTES of memory and BYTES/16384 datagrams at once; when full, "
				"the oldest datagram is dropped; 0: every fragment is dropped",
			.repeatable = false,
			.isBool = false,
			.goodExample = "1048576",
			.badExample = "4096",
		},
		.handler = handleFragMem,
	},
	Row{
		.spec = {
			.key = "frag-timeout",
			.metavar = "SECONDS",
			.defaultText = "30",
			.help = "a datagram whose fragments are not all in this long after the first arrived is dropped "
				"(1-600)",
			.repeatable = false,
			.isBool = false,
			.goodExample = "10",
			.badExample = "0",
		},
		.handler = handleFragTimeout,
	},
	Row{
		.spec = {
			.key = "sandbox",
			.metavar = "on|off",
			.defaultText = "on",
			.help = "contain the helper (closed fds, no new privileges, user=, Landlock, seccomp); off is "
				"for debugging only",
			.repeatable = false,
			.isBool = true,
			.goodExample = "off",
			.badExample = "partly",
		},
		.handler = handleSandbox,
	},
	Row{
		.spec = {
			.key = "user",
			.metavar = "NAME",
			.defaultText = "slirpnet if that user exists, else nobody",
			.help = "started as root, the helper becomes this user (no groups, no capabilities) once its "
				"sockets are bound",
			.repeatable = false,
			.isBool = false,
			.goodExample = "nobody",
			.badExample = "no body",
		},
		.handler = handleUser,
	},
	Row{
		.spec = {
			.key = "seccomp",
			.metavar = "on|off",
			.defaultText = "on",
			.help = "with the sandbox: the helper may make only the system calls it needs once it serves (a "
				"seccomp allowlist; others kill it); off is for debugging only",
			.repeatable = false,
			.isBool = true,
			.goodExample = "off",
			.badExample = "strict",
		},
		.handler = handleBool<&Config::seccomp>,
	},
	Row{
		.spec = {
			.key = "seccomp-log",
			.metavar = "on|off",
			.defaultText = "off",
			.help = "system calls outside the seccomp allowlist are allowed and logged by the kernel (audit, "
				"dmesg) instead of killing the helper: for finding what a new libslirp or GLib needs",
			.repeatable = false,
			.isBool = true,
			.goodExample = "on",
			.badExample = "loud",
		},
		.handler = handleBool<&Config::seccompLog>,
	},
};

const std::array<OptionSpec, kRows.size()> kSpecs = [] {
	std::array<OptionSpec, kRows.size()> a{};
	for (size_t i = 0; i < kRows.size(); i++)
		a[i] = kRows[i].spec;
	return a;
}();

const Row *findRow(std::string_view key)
{
	for (const auto &r : kRows)
		if (key == r.spec.key)
			return &r;
	return nullptr;
}

std::string knownKeys()
{
	std::string s;
	for (const auto &r : kRows)
		s += (s.empty() ? "" : ", ") + std::string(r.spec.key);
	return s;
}

bool inNet(in_addr a, const Config &c)
{
	return (a.s_addr & c.mask.s_addr) == c.net.s_addr;
}

bool hostPart(in_addr a, const Config &c)
{
	uint32_t h = ntohl(a.s_addr) & ~ntohl(c.mask.s_addr);
	return h != 0 && h != ~ntohl(c.mask.s_addr); // neither network nor broadcast
}

in_addr netPlus(const Config &c, uint32_t n)
{
	return in_addr{ htonl(ntohl(c.net.s_addr) | n) };
}

bool in6Net(const in6_addr &a, const in6_addr &prefix, unsigned len)
{
	for (unsigned i = 0; i < len; i++) {
		unsigned byte = i / 8, bit = 7 - i % 8;
		if (((a.s6_addr[byte] >> bit) & 1) != ((prefix.s6_addr[byte] >> bit) & 1))
			return false;
	}
	return true;
}

in6_addr v6Plus(const in6_addr &prefix, uint8_t last)
{
	in6_addr a = prefix;
	a.s6_addr[15] |= last;
	return a;
}

// QEMU's derived defaults and cross-checks, after every option has been read.
bool finish(ParseState &st, std::string &error)
{
	Config &c = st.cfg;
	// QEMU: giving only ipv6=on turns IPv4 off, and vice versa.
	if (st.haveIpv6 && c.ipv6 && !st.haveIpv4)
		c.ipv4 = false;
	if (st.haveIpv4 && c.ipv4 && !st.haveIpv6)
		c.ipv6 = false;
	if (!c.ipv4 && !c.ipv6)
		return failWith(error, "ipv4: IPv4 and IPv6 are both off");

	std::string net = formatAddr(c.net) + "/" + formatAddr(c.mask);
	auto checkIn = [&](const char *key, in_addr a) {
		if (!inNet(a, c) || !hostPart(a, c))
			return failWith(error, std::string(key) + ": " + q(formatAddr(a)) +
						       " is not a host address in " + net);
		return true;
	};
	if (!st.haveHost)
		c.host = netPlus(c, 2);
	if (!st.haveDhcpStart)
		c.dhcpStart = netPlus(c, 15);
	if (!st.haveDns)
		c.dns = netPlus(c, 3);
	for (auto [key, a] : { std::pair{ "host", c.host }, { "dhcpstart", c.dhcpStart }, { "dns", c.dns } })
		if (!checkIn(key, a))
			return false;
	if (c.dns.s_addr == c.host.s_addr)
		return failWith(error, "dns: " + q(formatAddr(c.dns)) + " must differ from host");

	if (!st.haveIpv6Host)
		c.ipv6Host = v6Plus(c.ipv6Prefix, 2);
	if (!st.haveIpv6Dns)
		c.ipv6Dns = v6Plus(c.ipv6Prefix, 3);
	std::string net6 = formatAddr(c.ipv6Prefix) + "/" + std::to_string(c.ipv6PrefixLen);
	if (!in6Net(c.ipv6Host, c.ipv6Prefix, c.ipv6PrefixLen))
		return failWith(error, "ipv6-host: " + q(formatAddr(c.ipv6Host)) + " is not in " + net6);
	if (!in6Net(c.ipv6Dns, c.ipv6Prefix, c.ipv6PrefixLen))
		return failWith(error, "ipv6-dns: " + q(formatAddr(c.ipv6Dns)) + " is not in " + net6);

	if (!st.haveMru)
		c.mru = c.mtu;
	if (c.ipv6 && c.mtu < 1280)
		return failWith(error,
				"mtu: '" + std::to_string(c.mtu) + "' is below IPv6's minimum of 1280 (set ipv6=off)");

	for (auto &f : c.hostFwds)
		if (!resolveHostFwd(f, c, error))
			return false;

	if (c.policyStrict) {
		if (st.haveLoopback && c.hostLoopback)
			return failWith(error, "loopback: 'on' contradicts policy=strict, which turns it off");
		c.hostLoopback = false;
	}
	return true;
}

} // namespace

std::vector<EgressRule> egressStrictRules(const Config &c)
{
	std::string net = formatAddr(c.net) + "/" + std::to_string(__builtin_popcount(c.mask.s_addr));
	in6_addr prefix = c.ipv6Prefix; // ipv6-net= may carry host bits; a rule may not
	for (unsigned i = c.ipv6PrefixLen; i < 128; i++)
		prefix.s6_addr[i / 8] &= static_cast<uint8_t>(~(0x80u >> (i % 8)));
	std::string net6 = formatAddr(prefix) + "/" + std::to_string(c.ipv6PrefixLen);
	std::string host = formatAddr(c.host), dns = formatAddr(c.dns);
	std::string host6 = formatAddr(c.ipv6Host), dns6 = formatAddr(c.ipv6Dns);
	// libslirp maps every address of the guest network but the DNS one to the host's
	// loopback, and itself serves DHCP and TFTP on the gateway: those stay open.
	const std::string texts[] = {
		"allow=" + dns + ":53",
		"allow=[" + dns6 + "]:53",
		"allow=udp/" + host + ":67",
		"allow=udp/" + host + ":69",
		"allow=udp/[" + host6 + "]:69",
		"deny=tcp/" + net,
		"deny=udp/" + net,
		"deny=tcp/" + net6,
		"deny=udp/" + net6,
		"deny=127.0.0.0/8",
		"deny=::1",
		"deny=169.254.0.0/16",
		"deny=fe80::/10",
	};
	std::vector<EgressRule> rules;
	for (const auto &t : texts) {
		EgressRule r;
		std::string error;
		if (parseEgressRuleText(t, r, error)) // always: built from a validated config
			rules.push_back(r);
	}
	return rules;
}

std::span<const OptionSpec> optionTable()
{
	return kSpecs;
}

bool checkPcapFilterText(std::string_view v, std::string &error)
{
	if (v.size() > kMaxPcapFilter)
		return failWith(error, "expression " + q(v.substr(0, 32)) + "... is too long (" +
					       std::to_string(v.size()) + " > " + std::to_string(kMaxPcapFilter) +
					       " bytes)");
	int depth = 0;
	for (char ch : v) {
		if (static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f)
			return failWith(error, "control character in expression " + q(v));
		depth += ch == '(' ? 1 : ch == ')' ? -1 : 0;
		if (depth < 0)
			break;
	}
	if (depth != 0)
		return failWith(error, "unbalanced parentheses in expression " + q(v));
	return true;
}

bool parseBool(std::string_view text, bool &out)
{
	std::string t(text);
	std::transform(t.begin(), t.end(), t.begin(), [](unsigned char ch) { return std::tolower(ch); });
	static const std::set<std::string> yes = { "on", "yes", "y", "true", "1" };
	static const std::set<std::string> no = { "off", "no", "n", "false", "0" };
	if (yes.count(t)) {
		out = true;
		return true;
	}
	if (no.count(t)) {
		out = false;
		return true;
	}
	return false;
}

std::string formatAddr(const in_addr &a)
{
	char buf[INET_ADDRSTRLEN];
	return inet_ntop(AF_INET, &a, buf, sizeof(buf)) ? buf : "?";
}

std::string formatAddr(const in6_addr &a)
{
	char buf[INET6_ADDRSTRLEN];
	return inet_ntop(AF_INET6, &a, buf, sizeof(buf)) ? buf : "?";
}

// Read "[v6addr]" or "v4addr" up to the next ':' of s (from pos); advances pos past ':'.
static bool takeAddr(std::string_view s, size_t &pos, std::string_view &addr, bool &bracketed)
{
	bracketed = false;
	if (pos < s.size() && s[pos] == '[') {
		size_t close = s.find(']', pos);
		if (close == std::string_view::npos || close + 1 >= s.size() || s[close + 1] != ':')
			return false;
		addr = s.substr(pos + 1, close - pos - 1);
		bracketed = true;
		pos = close + 2;
		return true;
	}
	size_t colon = s.find(':', pos);
	if (colon == std::string_view::npos)
		return false;
	addr = s.substr(pos, colon - pos);
	pos = colon + 1;
	return true;
}

static bool setAddr(std::string_view text, bool bracketed, uint16_t port, sockaddr_storage &ss)
{
	if (bracketed) {
		auto *a6 = reinterpret_cast<sockaddr_in6 *>(&ss);
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons(port);
		return text.empty() ? (a6->sin6_addr = in6addr_any, true) : parseV6(text, a6->sin6_addr);
	}
	auto *a4 = reinterpret_cast<sockaddr_in *>(&ss);
	a4->sin_family = AF_INET;
	a4->sin_port = htons(port);
	if (text.empty()) {
		a4->sin_addr.s_addr = htonl(INADDR_ANY);
		return true;
	}
	return parseV4(text, a4->sin_addr);
}

bool parseHostFwd(std::string_view rule, HostFwd &out, std::string &error)
{
	auto fail = [&](const std::string &why) {
		error = "hostfwd: " + why + " in " + q(rule);
		return false;
	};
	out = HostFwd{};
	out.rule = std::string(rule);
	size_t colon = rule.find(':');
	if (colon == std::string_view::npos)
		return fail("missing ':' separators");
	std::string_view proto = rule.substr(0, colon);
	if (proto == "udp")
		out.udp = true;
	else if (proto != "tcp" && !proto.empty())
		return fail("bad protocol " + q(proto) + " (expected tcp or udp)");

	size_t pos = colon + 1;
	std::string_view hostAddr, guestAddr;
	bool hostV6, guestV6;
	if (!takeAddr(rule, pos, hostAddr, hostV6))
		return fail("missing ':' after the host address");
	size_t dash = rule.find('-', pos);
	if (dash == std::string_view::npos)
		return fail("missing '-' between host and guest");
	std::string_view hostPort = rule.substr(pos, dash - pos);
	unsigned long hp, gp;
	if (!parseUnsigned(hostPort, hp) || hp > 65535)
		return fail("bad port " + q(hostPort));
	pos = dash + 1;
	if (!takeAddr(rule, pos, guestAddr, guestV6))
		return fail("missing ':' before the guest port");
	std::string_view guestPort = rule.substr(pos);
	if (!parseUnsigned(guestPort, gp) || gp < 1 || gp > 65535)
		return fail("bad port " + q(guestPort));

	if (!setAddr(hostAddr, hostV6, static_cast<uint16_t>(hp), out.host))
		return fail("bad host address " + q(hostAddr));
	if (guestAddr.empty() && !guestV6) {
		// Resolved to the DHCP start address once the whole config is known.
		out.guest.ss_family = AF_UNSPEC;
		reinterpret_cast<sockaddr_in *>(&out.guest)->sin_port = htons(static_cast<uint16_t>(gp));
	} else if (!setAddr(guestAddr, guestV6, static_cast<uint16_t>(gp), out.guest)) {
		return fail("bad guest address " + q(guestAddr));
	}
	return true;
}

bool parseHostFwdKey(std::string_view key, HostFwd &out, std::string &error)
{
	auto fail = [&](const std::string &why) {
		error = "hostfwd: " + why + " in " + q(key);
		return false;
	};
	out = HostFwd{};
	out.rule = std::string(key);
	size_t colon = key.find(':');
	if (colon == std::string_view::npos)
		return fail("missing ':' separators");
	std::string_view proto = key.substr(0, colon);
	if (proto == "udp")
		out.udp = true;
	else if (proto != "tcp" && !proto.empty())
		return fail("bad protocol " + q(proto) + " (expected tcp or udp)");
	size_t pos = colon + 1;
	std::string_view hostAddr;
	bool hostV6;
	if (!takeAddr(key, pos, hostAddr, hostV6))
		return fail("missing ':' after the host address");
	std::string_view hostPort = key.substr(pos);
	unsigned long hp;
	if (!parseUnsigned(hostPort, hp) || hp > 65535)
		return fail("bad port " + q(hostPort));
	if (!setAddr(hostAddr, hostV6, static_cast<uint16_t>(hp), out.host))
		return fail("bad host address " + q(hostAddr));
	return true;
}

bool resolveHostFwd(HostFwd &f, const Config &c, std::string &error)
{
	if (f.guest.ss_family == AF_UNSPEC) {
		auto *g = reinterpret_cast<sockaddr_in *>(&f.guest);
		g->sin_family = AF_INET;
		g->sin_addr = c.dhcpStart; // sin_port was set by parseHostFwd
	}
	if (f.guest.ss_family == AF_INET && !c.ipv4) {
		error = "hostfwd: IPv4 guest address in " + q(f.rule) + " but ipv4 is off";
		return false;
	}
	return true;
}

static std::string formatSockaddr(const sockaddr_storage &ss)
{
	if (ss.ss_family == AF_INET6) {
		auto *a = reinterpret_cast<const sockaddr_in6 *>(&ss);
		return "[" + formatAddr(a->sin6_addr) + "]:" + std::to_string(ntohs(a->sin6_port));
	}
	auto *a = reinterpret_cast<const sockaddr_in *>(&ss);
	return formatAddr(a->sin_addr) + ":" + std::to_string(ntohs(a->sin_port));
}

std::string formatHostFwd(const HostFwd &f)
{
	return std::string(f.udp ? "udp:" : "tcp:") + formatSockaddr(f.host) + "-" + formatSockaddr(f.guest);
}

bool splitOptions(std::string_view text, OptionList &out, std::string &error)
{
	if (text.empty())
		return true;
	std::string item;
	for (size_t i = 0;; i++) {
		if (i < text.size() && text[i] == ',' && i + 1 < text.size() && text[i + 1] == ',') {
			item += ','; // QEMU's escape: ",," is a comma inside a value
			i++;
			continue;
		}
		if (i < text.size() && text[i] != ',') {
			item += text[i];
			continue;
		}
		if (item.empty()) {
			error = "empty option in " + q(text);
			return false;
		}
		size_t eq = item.find('=');
		if (eq == std::string::npos)
			out.emplace_back(item, "");
		else
			out.emplace_back(item.substr(0, eq), item.substr(eq + 1));
		item.clear();
		if (i >= text.size())
			return true;
	}
}

bool parseConfig(const OptionList &opts, Config &cfg, std::string &error)
{
	ParseState st{ cfg };
	std::set<std::string> seen;
	for (const auto &[key, value] : opts) {
		const Row *r = findRow(key);
		if (!r) {
			error = key + ": unknown option" + (value.empty() ? "" : " (value " + q(value) + ")") +
				"; known options: " + knownKeys();
			return false;
		}
		if (!r->spec.repeatable && !seen.insert(key).second) {
			error = key + ": given more than once (last value " + q(value) + ")";
			return false;
		}
		if (value.empty() && !r->spec.isBool && key != "open") {
			error = key + ": missing value (expected " + r->spec.metavar + ")";
			return false;
		}
		if (std::string why; !r->handler(st, value, why)) {
			// hostfwd's reasons already name the key.
			error = why.starts_with(key + ": ") ? why : key + ": " + why;
			return false;
		}
	}
	return finish(st, error);
}

std::string optionsHelp()
{
	std::string s;
	for (const auto &r : kRows) {
		std::string lhs = "  " + std::string(r.spec.key);
		if (*r.spec.metavar)
			lhs += "=" + std::string(r.spec.metavar);
		s += lhs + "\n      " + r.spec.help + " (default: " + r.spec.defaultText + ")\n";
	}
	return s;
}

} // namespace slirpnet
