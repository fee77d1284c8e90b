// SPDX-License-Identifier: BSD-2-Clause
// main.cpp - slirpnet-ctl: sends one command to a helper's control socket and prints the reply.
#include <getopt.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "control_proto.hpp"
#include "man_page.hpp"
#include "unique_fd.hpp"

#ifndef SLIRPNET_VERSION
#define SLIRPNET_VERSION "0"
#endif

using namespace slirpnet;

namespace {

// ---- the command line: options and commands, one table each; --help and --man come from them.

enum class Opt { Socket, Json, Timeout, Help, Version, Man };

struct CliOption {
	Opt id;
	const char *longName;
	char shortName; // 0: none
	const char *metavar; // nullptr: takes no value
	const char *help;
};

const CliOption kOptions[] = {
	{ Opt::Socket, "socket", 's', "PATH",
	  "the helper's control socket (its control=PATH option); default: $SLIRPNET_CONTROL" },
	{ Opt::Json, "json", 'j', nullptr, "print the reply as the helper sent it: JSON, errors too (on stdout)" },
	{ Opt::Timeout, "timeout", 0, "SEC", "give up when no reply came within SEC seconds (default: 5)" },
	{ Opt::Help, "help", 'h', nullptr, "print this help and exit" },
	{ Opt::Version, "version", 0, nullptr, "print the version and exit" },
	{ Opt::Man, "man", 0, nullptr, "print the manual page slirpnet-ctl(1) as roff and exit" },
};

// The arguments of each command, as the CLI sends them: an integer's value is sent as a
// JSON number, anything else as a string. The helper checks names, ranges and presence.
const ArgSpec kHostFwdAddArgs[] = {
	{ "rule", ArgType::String, false, "[tcp|udp]:[HADDR]:HPORT-[GADDR]:GPORT, as QEMU's hostfwd_add" },
	{ "proto", ArgType::String, false, "tcp (default) or udp" },
	{ "host_addr", ArgType::String, false, "host address to bind (default: any)" },
	{ "host_port", ArgType::Integer, false, "host port" },
	{ "guest_addr", ArgType::String, false, "guest address (default: the DHCP start address)" },
	{ "guest_port", ArgType::Integer, false, "guest port" },
};

const ArgSpec kHostFwdRemoveArgs[] = {
	{ "rule", ArgType::String, false, "[tcp|udp]:[HADDR]:HPORT, as QEMU's hostfwd_remove" },
	{ "id", ArgType::Integer, false, "the id hostfwd-add or hostfwd-list gave" },
	{ "proto", ArgType::String, false, "tcp (default) or udp" },
	{ "host_addr", ArgType::String, false, "host address (default: any)" },
	{ "host_port", ArgType::Integer, false, "host port" },
};

const ArgSpec kEgressAddArgs[] = {
	{ "deny", ArgType::String, false, "[tcp/|udp/|icmp/]CIDR[:PORTS] to refuse, as the helper's deny= option" },
	{ "allow", ArgType::String, false, "[tcp/|udp/|icmp/]CIDR[:PORTS] to let through, as its allow= option" },
	{ "position", ArgType::Integer, false, "where in the list, 0 = first (default: last, before the default)" },
};

const ArgSpec kEgressRemoveArgs[] = {
	{ "id", ArgType::Integer, true, "the id egress-add or egress-list gave" },
};

const ArgSpec kCaptureStartArgs[] = {
	{ "file", ArgType::String, true, "pcap file to create (relative to the helper's directory)" },
	{ "filter", ArgType::String, false,
	  "BPF expression (default: the helper's pcap-filter option; \"\" for none)" },
	{ "snaplen", ArgType::Integer, false, "bytes kept per frame (default: the helper's snaplen option)" },
};

struct CliCommand {
	const char *name;
	const char *forms; // what follows the name, one form per line; "" for none
	const char *bareKey; // the argument a bare word stands for; nullptr: none
	const char *help;
	std::span<const ArgSpec> args;
};

const CliCommand kCommands[] = {
	{ "hostfwd-add", "RULE\nproto=P host_addr=A host_port=N [guest_addr=A] guest_port=N", "rule",
	  "forward a host port to the guest; prints the rule and its id", kHostFwdAddArgs },
	{ "hostfwd-remove", "RULE\nid=N\n[proto=P] [host_addr=A] host_port=N", "rule",
	  "remove a forwarding rule: by its text (as QEMU's hostfwd_remove), its id or its fields",
	  kHostFwdRemoveArgs },
	{ "hostfwd-list", "", nullptr, "the forwarding rules in effect: from the options and added since", {} },
	{ "egress-add", "deny=RULE [position=N]\nallow=RULE [position=N]", nullptr,
	  "add an egress rule (first match wins; RULE as the helper's allow=/deny= options); prints it and its id",
	  kEgressAddArgs },
	{ "egress-remove", "ID\nid=N", "id", "remove an egress rule by its id", kEgressRemoveArgs },
	{ "egress-list", "", nullptr, "the egress rules in the order they are tried, and the default verdict", {} },
	{ "info-usernet", "", nullptr, "the connection table, as QEMU's 'info usernet' prints it", {} },
	{ "stats", "", nullptr, "frames and bytes each way, drops by reason, connections, capture", {} },
	{ "capture-start", "FILE [filter=EXPR] [snaplen=N]", "file", "start recording frames to a pcap file",
	  kCaptureStartArgs },
	{ "capture-stop", "", nullptr, "stop the running capture; prints its counts", {} },
	{ "version", "", nullptr, "versions of the helper and its libraries", {} },
	{ "query-commands", "", nullptr, "every command the helper knows, with its arguments", {} },
};

const char kSynopsis[] = "slirpnet-ctl [-s PATH] [--json] [--timeout SEC] COMMAND [ARG...]\n"
			 "slirpnet-ctl --help | --version | --man";

const char kDescription[] = "Sends COMMAND to the control socket of a slirpnet helper (its control=PATH option) "
			    "and prints the reply; --json prints the reply as JSON instead.";

const char kExitStatus[] = "0 done, 1 the helper answered with an error, 2 usage or connection error.";

const CliCommand *findCommand(const std::string &name)
{
	for (const auto &c : kCommands)
		if (name == c.name)
			return &c;
	return nullptr;
}

const ArgSpec *findArg(const CliCommand *c, const std::string &key)
{
	if (!c)
		return nullptr;
	for (const auto &a : c->args)
		if (key == a.name)
			return &a;
	return nullptr;
}

// Each line of text (a command's forms).
template <typename F>
void forEachLine(std::string_view text, F f)
{
	while (!text.empty()) {
		size_t nl = text.find('\n');
		f(text.substr(0, nl));
		text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
	}
}

// "a, b and c" (conjunction "and")
std::string listText(const std::vector<std::string> &items, const char *conjunction)
{
	std::string s;
	for (size_t i = 0; i < items.size(); i++)
		s += (i == 0 ? "" : i + 1 == items.size() ? std::string(" ") + conjunction + " " : ", ") + items[i];
	return s;
}

// How ARG is read, from the command table: which keys are numbers, what a bare word is.
std::string argumentsText()
{
	std::vector<std::string> integers, bare;
	for (const auto &c : kCommands) {
		for (const auto &a : c.args)
			if (a.type == ArgType::Integer &&
			    std::find(integers.begin(), integers.end(), a.name) == integers.end())
				integers.push_back(a.name);
		if (c.bareKey)
			bare.push_back(std::string("the ") + c.bareKey + " of " + c.name);
	}
	return "ARG is KEY=VALUE (a number for " + listText(integers, "and") +
	       ", else a string), KEY:=JSON for any JSON value, or one bare word: " + listText(bare, "or") +
	       ". A command the client does not know is sent all the same.";
}

/*
 * text filled to 88 columns after first (what starts the first line: "  --json"); every
 * line of text starts at column indent, the first on a line of its own when first
 * reaches that far.
 */
void fill(std::string &out, const std::string &first, std::string_view text, size_t indent)
{
	constexpr size_t kLine = 88;
	std::string line = first;
	if (!text.empty() && !line.empty() && line.size() + 1 > indent) {
		out += line + "\n";
		line.clear();
	}
	bool bare = true; // no word of text on this line yet
	while (!text.empty()) {
		size_t sp = text.find(' ');
		std::string_view word = text.substr(0, sp);
		text = sp == std::string_view::npos ? std::string_view() : text.substr(sp + 1);
		if (!bare && line.size() + 1 + word.size() > kLine) {
			out += line + "\n";
			line.clear();
			bare = true;
		}
		if (bare)
			line.resize(std::max(line.size(), indent), ' ');
		else
			line += ' ';
		line += word;
		bare = false;
	}
	out += line + "\n";
}

std::string optionFlags(const CliOption &o)
{
	return (o.shortName ? std::string("-") + o.shortName + ", " : "") + "--" + o.longName;
}

std::string usageText()
{
	constexpr size_t kColumn = 28;
	std::string_view synopsis = kSynopsis;
	std::string s = "Usage: " + std::string(synopsis.substr(0, synopsis.find('\n'))) + "\n\n";
	fill(s, "", kDescription, 0);
	s += "\nOptions:\n";
	for (const auto &o : kOptions)
		fill(s, "  " + optionFlags(o) + (o.metavar ? std::string(" ") + o.metavar : ""), o.help, kColumn);
	s += "\nCommands:\n";
	for (const auto &c : kCommands) {
		if (!*c.forms)
			fill(s, std::string("  ") + c.name, c.help, kColumn);
		bool first = true;
		forEachLine(c.forms, [&](std::string_view form) {
			fill(s, std::string("  ") + c.name + " " + std::string(form), first ? c.help : "", kColumn);
			first = false;
		});
	}
	s += "\n";
	fill(s, "", argumentsText() + " PATH defaults to $SLIRPNET_CONTROL.", 0);
	s += "\nExit status: " + std::string(kExitStatus) + "\n";
	return s;
}

// slirpnet-ctl(1), from the same tables as the usage.
std::string manPage()
{
	std::vector<ManSection> sections;
	sections.push_back(
		{ "DESCRIPTION",
		  std::string(kDescription) +
			  "\n\nThe socket speaks a QMP-like JSON protocol, one request per line:\n\n"
			  "\t{\"execute\": \"hostfwd-add\", \"arguments\": {\"rule\": \"tcp::2222-:22\"}}\n\n"
			  "answered by one line {\"return\": ...} or {\"error\": {\"class\": ..., \"desc\": ...}}. "
			  "Any client may speak it; slirpnet-ctl builds the request from its command line "
			  "and prints the reply readably.",
		  {} });
	ManSection options{ "OPTIONS", "", {} };
	for (const auto &o : kOptions)
		options.options.push_back(
			{ optionFlags(o), o.metavar ? o.metavar : "", std::string(o.help) + ".", {} });
	sections.push_back(std::move(options));
	ManSection commands{ "COMMANDS", argumentsText(), {} };
	for (const auto &c : kCommands) {
		ManOption m{ c.name, "", std::string(c.help) + ".\n", {} };
		forEachLine(c.forms, [&](std::string_view form) {
			m.help += "\tslirpnet-ctl " + std::string(c.name) + " " + std::string(form) + "\n";
		});
		for (const auto &a : c.args) {
			std::string help = std::string(a.help) + ".";
			if (c.bareKey && strcmp(c.bareKey, a.name) == 0)
				help += " Also given as a bare word.";
			if (a.required)
				help += " Required.";
			m.items.push_back({ std::string(a.name) + "=", argTypeName(a.type), help, {} });
		}
		commands.options.push_back(std::move(m));
	}
	sections.push_back(std::move(commands));
	sections.push_back(
		{ "ENVIRONMENT", "", { { "SLIRPNET_CONTROL", "", "The control socket when -s is not given.", {} } } });
	sections.push_back({ "EXIT STATUS", kExitStatus, {} });
	sections.push_back({ "EXAMPLES",
			     "Forward host port 2222 to the guest's ssh, list the connections, record ICMP for a "
			     "while:\n\n"
			     "\tslirpnet-ctl -s /tmp/ctl.sock hostfwd-add tcp:127.0.0.1:2222-:22\n"
			     "\tslirpnet-ctl -s /tmp/ctl.sock info-usernet\n"
			     "\tslirpnet-ctl -s /tmp/ctl.sock capture-start /tmp/now.pcap filter=icmp\n"
			     "\tslirpnet-ctl -s /tmp/ctl.sock capture-stop\n\n"
			     "The same request by hand:\n\n"
			     "\techo '{\"execute\": \"stats\"}' | socat - UNIX-CONNECT:/tmp/ctl.sock",
			     {} });
	sections.push_back({ "SEE ALSO", "slirpnet(1); the control socket section of slirpnet's README.md.", {} });
	return renderManPage("slirpnet-ctl", 1, "send a command to a slirpnet helper's control socket", kSynopsis,
			     sections);
}

int usage(const std::string &why)
{
	fprintf(stderr, "slirpnet-ctl: %s\nTry 'slirpnet-ctl --help' for more.\n", why.c_str());
	return 2;
}

bool parseArg(const std::string &command, std::string arg, JsonObject *args, std::string &error)
{
	const CliCommand *cmd = findCommand(command);
	size_t eq = arg.find('=');
	if (eq == std::string::npos || eq == 0) {
		const char *key = cmd ? cmd->bareKey : nullptr;
		if (!key || json_object_has_member(args, key)) {
			error = "unexpected argument " + q(arg) + " (expected KEY=VALUE)";
			return false;
		}
		// The bare word is that argument's value: a number where it is one ("egress-remove 3").
		arg.insert(0, std::string(key) + "=");
		eq = arg.find('=');
	}
	if (arg[eq - 1] == ':') {
		// KEY:=JSON
		std::string key = arg.substr(0, eq - 1);
		GObjectPtr<JsonParser> p(json_parser_new_immutable());
		GError *err = nullptr;
		std::string text = arg.substr(eq + 1);
		if (!json_parser_load_from_data(p.get(), text.c_str(), static_cast<gssize>(text.size()), &err)) {
			error = "argument " + q(key) + ": bad JSON: " + err->message;
			g_error_free(err);
			return false;
		}
		json_object_set_member(args, key.c_str(), json_node_copy(json_parser_get_root(p.get())));
		return true;
	}
	std::string key = arg.substr(0, eq), value = arg.substr(eq + 1);
	const ArgSpec *spec = findArg(cmd, key);
	if (spec && spec->type == ArgType::Integer) {
		int64_t n;
		auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
		if (ec != std::errc() || end != value.data() + value.size()) {
			error = "argument " + q(key) + " must be a number, not " + q(value);
			return false;
		}
		json_object_set_int_member(args, key.c_str(), n);
	} else {
		json_object_set_string_member(args, key.c_str(), value.c_str());
	}
	return true;
}

// Send line, read one reply line (bounded by timeoutMs overall).
bool exchange(const std::string &path, const std::string &line, int timeoutMs, std::string &reply, std::string &error)
{
	sockaddr_un sa{};
	sa.sun_family = AF_UNIX;
	if (path.size() >= sizeof(sa.sun_path)) {
		error = "socket path " + q(path) + " is too long";
		return false;
	}
	memcpy(sa.sun_path, path.c_str(), path.size() + 1);
	UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
	if (!fd || connect(fd.get(), reinterpret_cast<sockaddr *>(&sa), sizeof(sa)) < 0) {
		error = "cannot connect to " + q(path) + ": " + strerror(errno);
		return false;
	}
	size_t off = 0;
	while (off < line.size()) {
		ssize_t n = send(fd.get(), line.data() + off, line.size() - off, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			error = std::string("sending: ") + strerror(errno);
			return false;
		}
		off += static_cast<size_t>(n);
	}
	gint64 deadline = g_get_monotonic_time() + static_cast<gint64>(timeoutMs) * 1000;
	char buf[65536];
	for (;;) {
		size_t nl = reply.find('\n');
		if (nl != std::string::npos) {
			reply.resize(nl);
			return true;
		}
		gint64 left = (deadline - g_get_monotonic_time()) / 1000;
		struct pollfd p = { fd.get(), POLLIN, 0 };
		int r = left > 0 ? poll(&p, 1, static_cast<int>(left)) : 0;
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			error = "no reply within " + std::to_string(timeoutMs / 1000) + " s";
			return false;
		}
		ssize_t n = recv(fd.get(), buf, sizeof(buf), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			error = n == 0 ? "the helper closed the connection without a reply"
				       : std::string("reading: ") + strerror(errno);
			return false;
		}
		reply.append(buf, static_cast<size_t>(n));
	}
}

int64_t num(JsonObject *o, const char *k)
{
	JsonNode *n = json_object_get_member(o, k);
	return n && JSON_NODE_HOLDS_VALUE(n) ? json_node_get_int(n) : 0;
}

std::string str(JsonObject *o, const char *k)
{
	JsonNode *n = json_object_get_member(o, k);
	return n && JSON_NODE_HOLDS_VALUE(n) && json_node_get_value_type(n) == G_TYPE_STRING ? json_node_get_string(n)
											     : "";
}

std::string hostPort(const std::string &addr, int64_t port)
{
	std::string a = addr.find(':') != std::string::npos ? "[" + addr + "]" : addr;
	return a + ":" + std::to_string(port);
}

// Counters of the stats reply grouped by name prefix. Every integer member with the prefix
// is printed, so a counter the helper adds shows up without a change here.
struct CounterGroup {
	const char *prefix;
	const char *label;
	bool countFirst; // "12 frames" rather than "oversize 0"
};

const CounterGroup kCounterGroups[] = {
	{ "from_guest_", "from guest", true },
	{ "to_guest_", "to guest", true },
	{ "drop_", "drops", false },
};

// f(name, value) for every integer member of o, in the reply's order.
template <typename F>
void forEachInteger(JsonObject *o, F f)
{
	JsonObjectIter it;
	const char *name;
	JsonNode *member;
	json_object_iter_init_ordered(&it, o);
	while (json_object_iter_next_ordered(&it, &name, &member))
		if (JSON_NODE_HOLDS_VALUE(member) && json_node_get_value_type(member) == G_TYPE_INT64)
			f(std::string(name), json_node_get_int(member));
}

void printStats(JsonObject *o)
{
	// Printed on lines of their own below; any other integer is printed as "name: N".
	std::set<std::string> shown = { "connections", "hostfwd_rules", "hostfwd_listeners", "control_clients" };
	for (const auto &g : kCounterGroups) {
		std::string line;
		forEachInteger(o, [&](const std::string &name, int64_t value) {
			if (!name.starts_with(g.prefix) || shown.count(name))
				return;
			std::string what = name.substr(strlen(g.prefix)), count = std::to_string(value);
			line += (line.empty() ? "" : ", ") + (g.countFirst ? count + " " + what : what + " " + count);
			shown.insert(name);
		});
		if (!line.empty())
			printf("%s: %s\n", g.label, line.c_str());
	}
	forEachInteger(o, [&](const std::string &name, int64_t value) {
		if (!shown.count(name))
			printf("%s: %" G_GINT64_FORMAT "\n", name.c_str(), value);
	});
	JsonNode *bpn = json_object_get_member(o, "connections_by_protocol");
	if (bpn && JSON_NODE_HOLDS_OBJECT(bpn)) {
		JsonObject *bp = json_node_get_object(bpn);
		printf("connections: %" G_GINT64_FORMAT " (tcp %" G_GINT64_FORMAT ", udp %" G_GINT64_FORMAT
		       ", icmp %" G_GINT64_FORMAT ")\n",
		       num(o, "connections"), num(bp, "tcp"), num(bp, "udp"), num(bp, "icmp"));
	} else {
		printf("connections: %" G_GINT64_FORMAT "\n", num(o, "connections"));
	}
	printf("hostfwd: %" G_GINT64_FORMAT " rules, %" G_GINT64_FORMAT " listeners\n", num(o, "hostfwd_rules"),
	       num(o, "hostfwd_listeners"));
	JsonNode *c = json_object_get_member(o, "capture");
	if (c && JSON_NODE_HOLDS_OBJECT(c)) {
		JsonObject *co = json_node_get_object(c);
		printf("capture: %s (%" G_GINT64_FORMAT " frames, %" G_GINT64_FORMAT " bytes, %" G_GINT64_FORMAT
		       " filtered out%s)\n",
		       str(co, "file").c_str(), num(co, "frames"), num(co, "bytes"), num(co, "filtered"),
		       json_object_get_boolean_member_with_default(co, "failed", FALSE) ? ", FAILED" : "");
	} else {
		printf("capture: none\n");
	}
	printf("control clients: %" G_GINT64_FORMAT "\n", num(o, "control_clients"));
}

// Human output of a successful reply; false when the shape is not the expected one.
bool printHuman(const std::string &command, JsonNode *ret)
{
	JsonObject *o = JSON_NODE_HOLDS_OBJECT(ret) ? json_node_get_object(ret) : nullptr;
	if (command == "hostfwd-add" && o) {
		printf("hostfwd %" G_GINT64_FORMAT " added: %s\n", num(o, "id"), str(o, "rule").c_str());
	} else if (command == "hostfwd-remove" && o) {
		printf("hostfwd %" G_GINT64_FORMAT " removed: %s\n", num(o, "id"), str(o, "rule").c_str());
	} else if (command == "hostfwd-list" && JSON_NODE_HOLDS_ARRAY(ret)) {
		JsonArray *a = json_node_get_array(ret);
		printf("%-4s %-5s %-24s %-24s %s\n", "ID", "PROTO", "HOST", "GUEST", "ORIGIN");
		for (guint i = 0; i < json_array_get_length(a); i++) {
			JsonObject *r = json_array_get_object_element(a, i);
			printf("%-4" G_GINT64_FORMAT " %-5s %-24s %-24s %s\n", num(r, "id"), str(r, "proto").c_str(),
			       hostPort(str(r, "host_addr"), num(r, "host_port")).c_str(),
			       hostPort(str(r, "guest_addr"), num(r, "guest_port")).c_str(), str(r, "origin").c_str());
		}
	} else if ((command == "egress-add" || command == "egress-remove") && o) {
		printf("egress rule %" G_GINT64_FORMAT " %s: %s\n", num(o, "id"),
		       command == "egress-add" ? "added" : "removed", str(o, "rule").c_str());
	} else if (command == "egress-list" && o) {
		JsonArray *a = json_object_get_array_member(o, "rules");
		printf("%-4s %-40s %s\n", "ID", "RULE", "ORIGIN");
		for (guint i = 0; a && i < json_array_get_length(a); i++) {
			JsonObject *r = json_array_get_object_element(a, i);
			printf("%-4" G_GINT64_FORMAT " %-40s %s\n", num(r, "id"), str(r, "rule").c_str(),
			       str(r, "origin").c_str());
		}
		printf("default: %s (policy=%s)\n", str(o, "default").c_str(), str(o, "policy").c_str());
	} else if (command == "info-usernet" && o) {
		fputs(str(o, "text").c_str(), stdout);
	} else if (command == "stats" && o) {
		printStats(o);
	} else if (command == "capture-start" && o) {
		std::string f = str(o, "filter");
		printf("capturing to %s (snaplen %" G_GINT64_FORMAT "%s%s)\n", str(o, "file").c_str(),
		       num(o, "snaplen"), f.empty() ? "" : ", filter ", f.c_str());
	} else if (command == "capture-stop" && o) {
		printf("capture %s stopped: %" G_GINT64_FORMAT " frames, %" G_GINT64_FORMAT " bytes, %" G_GINT64_FORMAT
		       " filtered out\n",
		       str(o, "file").c_str(), num(o, "frames"), num(o, "bytes"), num(o, "filtered"));
	} else if (command == "version" && o) {
		printf("slirpnet %s (libslirp %s, %s, json-glib %s)\n", str(o, "version").c_str(),
		       str(o, "libslirp").c_str(), str(o, "libpcap").c_str(), str(o, "json-glib").c_str());
	} else if (command == "query-commands" && JSON_NODE_HOLDS_ARRAY(ret)) {
		JsonArray *a = json_node_get_array(ret);
		for (guint i = 0; i < json_array_get_length(a); i++) {
			JsonObject *c = json_array_get_object_element(a, i);
			printf("%-16s %s\n", str(c, "name").c_str(), str(c, "help").c_str());
			JsonArray *args = json_object_get_array_member(c, "arguments");
			for (guint j = 0; args && j < json_array_get_length(args); j++) {
				JsonObject *arg = json_array_get_object_element(args, j);
				printf("    %-12s %-8s %s%s\n", str(arg, "name").c_str(), str(arg, "type").c_str(),
				       json_object_get_boolean_member(arg, "required") ? "(required) " : "",
				       str(arg, "help").c_str());
			}
		}
	} else {
		return false;
	}
	return true;
}

} // namespace

int main(int argc, char **argv)
{
	const char *env = getenv("SLIRPNET_CONTROL");
	std::string path = env ? env : "";
	bool json = false;
	int timeoutMs = 5000;

	// getopt_long from the table: '+' stops at the command, so its arguments are never
	// taken for options; ':' reports a missing value apart from an unknown option.
	std::string shortOpts = "+:";
	std::vector<option> longOpts;
	for (const auto &o : kOptions) {
		if (o.shortName)
			shortOpts += std::string(1, o.shortName) + (o.metavar ? ":" : "");
		longOpts.push_back({ o.longName, o.metavar ? required_argument : no_argument, nullptr,
				     0x100 + static_cast<int>(o.id) });
	}
	longOpts.push_back({ nullptr, 0, nullptr, 0 });
	opterr = 0;
	for (int c; (c = getopt_long(argc, argv, shortOpts.c_str(), longOpts.data(), nullptr)) != -1;) {
		if (c == '?' || c == ':') {
			// A short option is named by optopt; a long one (optopt 0 or its val) only by argv.
			bool isShort = optopt > 0 && optopt < 0x100;
			std::string arg = argv[optind - 1];
			std::string given = isShort ? std::string("-") + static_cast<char>(optopt)
						    : arg.substr(0, arg.find('='));
			if (c == ':')
				return usage("option " + q(given) + " needs a value");
			if (!isShort && arg.find('=') != std::string::npos && optopt)
				return usage("option " + q(given) + " takes no value");
			return usage("unknown option " + q(given));
		}
		auto o = std::find_if(std::begin(kOptions), std::end(kOptions), [c](const CliOption &o) {
			return c == o.shortName || c == 0x100 + static_cast<int>(o.id);
		});
		switch (o->id) {
		case Opt::Socket:
			path = optarg;
			break;
		case Opt::Json:
			json = true;
			break;
		case Opt::Timeout: {
			char *end;
			double sec = strtod(optarg, &end);
			if (end == optarg || *end || !(sec > 0 && sec <= 86400))
				return usage("--timeout: " + q(optarg) + " is not a number of seconds (0-86400)");
			timeoutMs = std::max(1, static_cast<int>(sec * 1000));
			break;
		}
		case Opt::Help:
			fputs(usageText().c_str(), stdout);
			return 0;
		case Opt::Version:
			printf("slirpnet-ctl %s\n", SLIRPNET_VERSION);
			return 0;
		case Opt::Man:
			fputs(manPage().c_str(), stdout);
			return fflush(stdout) == 0 && !ferror(stdout) ? 0 : 2;
		}
	}
	int i = optind;
	if (i >= argc)
		return usage("no command given");
	if (path.empty())
		return usage("no control socket: use -s PATH (or set SLIRPNET_CONTROL)");
	std::string command = argv[i++];

	JsonObjectPtr args(json_object_new());
	for (; i < argc; i++) {
		std::string error;
		if (!parseArg(command, argv[i], args.get(), error))
			return usage(error);
	}
	JsonObjectPtr req(json_object_new());
	json_object_set_string_member(req.get(), "execute", command.c_str());
	if (json_object_get_size(args.get()) > 0)
		json_object_set_object_member(req.get(), "arguments", json_object_ref(args.get()));
	JsonNodePtr reqNode(objectNode(req.get()));

	std::string reply, error;
	if (!exchange(path, toJson(reqNode.get()) + "\n", timeoutMs, reply, error)) {
		fprintf(stderr, "slirpnet-ctl: %s\n", error.c_str());
		return 2;
	}
	GObjectPtr<JsonParser> parser(json_parser_new_immutable());
	GError *gerr = nullptr;
	if (!json_parser_load_from_data(parser.get(), reply.data(), static_cast<gssize>(reply.size()), &gerr) ||
	    !JSON_NODE_HOLDS_OBJECT(json_parser_get_root(parser.get()))) {
		fprintf(stderr, "slirpnet-ctl: malformed reply: %s\n", gerr ? gerr->message : reply.c_str());
		if (gerr)
			g_error_free(gerr);
		return 2;
	}
	JsonObject *r = json_node_get_object(json_parser_get_root(parser.get()));
	JsonNode *ret = json_object_get_member(r, "return");
	bool ok = ret != nullptr;
	if (json) {
		char *text = json_to_string(json_parser_get_root(parser.get()), TRUE);
		printf("%s\n", text);
		g_free(text);
		return ok ? 0 : 1;
	}
	if (!ok) {
		JsonNode *e = json_object_get_member(r, "error");
		JsonObject *eo = e && JSON_NODE_HOLDS_OBJECT(e) ? json_node_get_object(e) : nullptr;
		fprintf(stderr, "slirpnet-ctl: %s: %s\n", eo ? str(eo, "class").c_str() : "error",
			eo ? str(eo, "desc").c_str() : reply.c_str());
		return 1;
	}
	if (!printHuman(command, ret)) {
		char *text = json_to_string(ret, TRUE);
		printf("%s\n", text);
		g_free(text);
	}
	return 0;
}
