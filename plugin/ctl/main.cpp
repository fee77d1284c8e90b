// main.cpp - slirpnet-ctl: sends one command to a helper's control socket and prints the reply.
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "control_proto.hpp"
#include "unique_fd.hpp"

#ifndef SLIRPNET_VERSION
#define SLIRPNET_VERSION "0"
#endif

using namespace slirpnet;

namespace {

const char kUsage[] =
	"Usage: slirpnet-ctl [-s PATH] [--json] [--timeout SEC] COMMAND [ARG...]\n"
	"\n"
	"Sends COMMAND to the control socket of a slirpnet helper (control=PATH) and prints\n"
	"the reply; --json prints the reply as JSON instead.\n"
	"\n"
	"Commands:\n"
	"  hostfwd-add RULE            RULE: [tcp|udp]:[HADDR]:HPORT-[GADDR]:GPORT\n"
	"  hostfwd-add proto=P host_addr=A host_port=N [guest_addr=A] guest_port=N\n"
	"  hostfwd-remove RULE         RULE: [tcp|udp]:[HADDR]:HPORT (as QEMU's hostfwd_remove)\n"
	"  hostfwd-remove id=N\n"
	"  hostfwd-list\n"
	"  info-usernet                the connection table (QEMU's 'info usernet')\n"
	"  stats                       frames, bytes, drops, connections\n"
	"  capture-start FILE [filter=EXPR] [snaplen=N]\n"
	"  capture-stop\n"
	"  version\n"
	"  query-commands              every command and its arguments, from the helper\n"
	"\n"
	"ARG is KEY=VALUE (a number for id, host_port, guest_port and snaplen, else a string),\n"
	"KEY:=JSON for any JSON value, or one bare word: the rule (hostfwd-*) or the file\n"
	"(capture-start). PATH defaults to $SLIRPNET_CONTROL.\n"
	"\n"
	"Exit status: 0 done, 1 the helper answered with an error, 2 usage or connection error.\n";

const std::set<std::string> kIntegerKeys = { "id", "host_port", "guest_port", "snaplen" };

int usage(const char *why)
{
	fprintf(stderr, "slirpnet-ctl: %s\n\n%s", why, kUsage);
	return 2;
}

// The bare word's key for each command that takes one.
const char *bareKey(const std::string &command)
{
	if (command == "hostfwd-add" || command == "hostfwd-remove")
		return "rule";
	if (command == "capture-start")
		return "file";
	return nullptr;
}

bool parseArg(const std::string &command, const std::string &arg, JsonObject *args, std::string &error)
{
	size_t eq = arg.find('=');
	if (eq == std::string::npos || eq == 0) {
		const char *key = bareKey(command);
		if (!key || json_object_has_member(args, key)) {
			error = "unexpected argument '" + arg + "' (expected KEY=VALUE)";
			return false;
		}
		json_object_set_string_member(args, key, arg.c_str());
		return true;
	}
	if (arg[eq - 1] == ':') {
		// KEY:=JSON
		std::string key = arg.substr(0, eq - 1);
		GObjectPtr<JsonParser> p(json_parser_new_immutable());
		GError *err = nullptr;
		std::string text = arg.substr(eq + 1);
		if (!json_parser_load_from_data(p.get(), text.c_str(), static_cast<gssize>(text.size()), &err)) {
			error = "argument '" + key + "': bad JSON: " + err->message;
			g_error_free(err);
			return false;
		}
		json_object_set_member(args, key.c_str(), json_node_copy(json_parser_get_root(p.get())));
		return true;
	}
	std::string key = arg.substr(0, eq), value = arg.substr(eq + 1);
	if (kIntegerKeys.count(key)) {
		int64_t n;
		auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
		if (ec != std::errc() || end != value.data() + value.size()) {
			error = "argument '" + key + "' must be a number, not '" + value + "'";
			return false;
		}
		json_object_set_int_member(args, key.c_str(), n);
	} else {
		json_object_set_string_member(args, key.c_str(), value.c_str());
	}
	return true;
}

// Send line, read one reply line (bounded by timeoutMs overall).
bool exchange(const std::string &path, const std::string &line, int timeoutMs, std::string &reply,
	      std::string &error)
{
	sockaddr_un sa{};
	sa.sun_family = AF_UNIX;
	if (path.size() >= sizeof(sa.sun_path)) {
		error = "socket path '" + path + "' is too long";
		return false;
	}
	memcpy(sa.sun_path, path.c_str(), path.size() + 1);
	UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
	if (!fd || connect(fd.get(), reinterpret_cast<sockaddr *>(&sa), sizeof(sa)) < 0) {
		error = "cannot connect to '" + path + "': " + strerror(errno);
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
	} else if (command == "info-usernet" && o) {
		fputs(str(o, "text").c_str(), stdout);
	} else if (command == "stats" && o) {
		JsonObject *d = json_object_get_object_member(o, "drops");
		JsonObject *bp = json_object_get_object_member(o, "connections_by_protocol");
		printf("rx: %" G_GINT64_FORMAT " frames, %" G_GINT64_FORMAT " bytes\n", num(o, "rx_frames"), num(o, "rx_bytes"));
		printf("tx: %" G_GINT64_FORMAT " frames, %" G_GINT64_FORMAT " bytes\n", num(o, "tx_frames"), num(o, "tx_bytes"));
		if (d)
			printf("drops: oversize %" G_GINT64_FORMAT ", runt %" G_GINT64_FORMAT ", fragment %" G_GINT64_FORMAT
			       ", tx_full %" G_GINT64_FORMAT ", tx_error %" G_GINT64_FORMAT "; pauses %" G_GINT64_FORMAT "\n",
			       num(d, "oversize"), num(d, "runt"), num(d, "fragment"), num(d, "tx_full"),
			       num(d, "tx_error"), num(o, "pauses"));
		if (bp)
			printf("connections: %" G_GINT64_FORMAT " (tcp %" G_GINT64_FORMAT ", udp %" G_GINT64_FORMAT
			       ", icmp %" G_GINT64_FORMAT ")\n",
			       num(o, "connections"), num(bp, "tcp"), num(bp, "udp"), num(bp, "icmp"));
		printf("hostfwd: %" G_GINT64_FORMAT " rules, %" G_GINT64_FORMAT " listeners\n", num(o, "hostfwd_rules"),
		       num(o, "hostfwd_listeners"));
		JsonNode *c = json_object_get_member(o, "capture");
		if (c && JSON_NODE_HOLDS_OBJECT(c)) {
			JsonObject *co = json_node_get_object(c);
			printf("capture: %s (%" G_GINT64_FORMAT " frames, %" G_GINT64_FORMAT " filtered out)\n",
			       str(co, "file").c_str(), num(co, "frames"), num(co, "filtered"));
		} else {
			printf("capture: none\n");
		}
		printf("control clients: %" G_GINT64_FORMAT "\n", num(o, "control_clients"));
	} else if (command == "capture-start" && o) {
		std::string f = str(o, "filter");
		printf("capturing to %s (snaplen %" G_GINT64_FORMAT "%s%s)\n", str(o, "file").c_str(), num(o, "snaplen"),
		       f.empty() ? "" : ", filter ", f.c_str());
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
	int i = 1;
	for (; i < argc && argv[i][0] == '-'; i++) {
		std::string a = argv[i];
		if ((a == "-s" || a == "--socket") && i + 1 < argc) {
			path = argv[++i];
		} else if (a.starts_with("--socket=")) {
			path = a.substr(9);
		} else if (a == "--json" || a == "-j") {
			json = true;
		} else if (a == "--timeout" && i + 1 < argc) {
			timeoutMs = static_cast<int>(strtod(argv[++i], nullptr) * 1000);
		} else if (a == "-h" || a == "--help") {
			fputs(kUsage, stdout);
			return 0;
		} else if (a == "--version") {
			printf("slirpnet-ctl %s\n", SLIRPNET_VERSION);
			return 0;
		} else {
			return usage(("unknown option '" + a + "'").c_str());
		}
	}
	if (i >= argc)
		return usage("no command given");
	if (path.empty())
		return usage("no control socket: use -s PATH (or set SLIRPNET_CONTROL)");
	if (timeoutMs <= 0)
		return usage("--timeout must be positive");
	std::string command = argv[i++];

	JsonObjectPtr args(json_object_new());
	for (; i < argc; i++) {
		std::string error;
		if (!parseArg(command, argv[i], args.get(), error))
			return usage(error.c_str());
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
