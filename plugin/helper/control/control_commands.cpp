// SPDX-License-Identifier: BSD-2-Clause
// control/control_commands.cpp - the control socket's commands (hostfwd, info-usernet, stats, capture...).
#include "control/control_commands.hpp"

#include <fcntl.h>
#include <pcap/pcap.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <climits>
#include <functional>
#include <span>

#include "control/capture.hpp"
#include "control/conn_info.hpp"
#include "control/control_server.hpp"
#include "control_proto.hpp"
#include "log.hpp"
#include "network.hpp"
#include "sandbox/sandbox.hpp"

#ifndef SLIRPNET_VERSION
#define SLIRPNET_VERSION "0"
#endif

namespace slirpnet {

namespace {

/*
 * A command runs in two steps, each false + error text on failure, and the step that
 * failed decides the reply's error class (in handleControlRequest, nowhere else):
 *  - prepare reads the arguments (checkArguments has checked their types and ranges)
 *    and makes the action; refusing them is an InvalidArgument;
 *  - the action does the work and fills result (a new node); failing is a GenericError.
 */
using Action = std::function<bool(JsonNodePtr &result, std::string &error)>;
using Prepare = bool (*)(ControlContext &c, JsonObject *args, Action &action, std::string &error);

struct Command {
	const char *name;
	const char *help;
	std::span<const ArgSpec> args;
	Prepare prepare;
};

/*
 * An action whose work ends later, on the loop (capture-start compiling its filter):
 * deferAction() returns the function that gives the reply then - a result, or an error
 * with its class - and the action returns true with no result. It returns an empty
 * function when the reply cannot wait (the request did not come from a ControlServer):
 * the action then works at once. Once it returned a Finish, the Finish must be called
 * (exactly once): the client's next requests wait for it.
 */
using Finish = std::function<void(JsonNodePtr result, const ControlError *error)>;

struct Running {
	JsonNode *id = nullptr; // the request's
	bool deferred = false;
};
Running *gRunning = nullptr; // the request whose action runs now (handleControlRequest)

Finish deferAction()
{
	if (!gRunning)
		return {};
	ControlServer::Responder respond = ControlServer::deferReply();
	if (!respond)
		return {};
	gRunning->deferred = true;
	std::shared_ptr<JsonNode> id(gRunning->id ? json_node_copy(gRunning->id) : nullptr, [](JsonNode *n) {
		if (n)
			json_node_unref(n);
	});
	return [respond, id](JsonNodePtr result, const ControlError *error) {
		respond(error ? encodeError(*error, id.get()) : encodeReturn(result.get(), id.get()));
	};
}

// For a command whose arguments need no more than checkArguments: it acts at once.
using Act = bool (*)(ControlContext &c, JsonNodePtr &result, std::string &error);
template <Act act>
bool atOnce(ControlContext &c, JsonObject *, Action &action, std::string &)
{
	action = [&c](JsonNodePtr &result, std::string &error) { return act(c, result, error); };
	return true;
}

// Small builder so that replies read as what they contain.
class Obj
{
public:
	Obj() : o_(json_object_new()) {}
	Obj &str(const char *k, const std::string &v)
	{
		json_object_set_string_member(o_.get(), k, v.c_str());
		return *this;
	}
	Obj &num(const char *k, int64_t v)
	{
		json_object_set_int_member(o_.get(), k, v);
		return *this;
	}
	Obj &flag(const char *k, bool v)
	{
		json_object_set_boolean_member(o_.get(), k, v);
		return *this;
	}
	Obj &null(const char *k)
	{
		json_object_set_null_member(o_.get(), k);
		return *this;
	}
	Obj &node(const char *k, JsonNodePtr n)
	{
		json_object_set_member(o_.get(), k, n.release());
		return *this;
	}
	JsonNodePtr done() { return JsonNodePtr(objectNode(o_.get())); }

private:
	JsonObjectPtr o_;
};

struct Endpoint {
	std::string addr;
	unsigned port;
	bool v6;
};

Endpoint endpoint(const sockaddr_storage &ss)
{
	if (ss.ss_family == AF_INET6) {
		auto *a = reinterpret_cast<const sockaddr_in6 *>(&ss);
		return { formatAddr(a->sin6_addr), ntohs(a->sin6_port), true };
	}
	auto *a = reinterpret_cast<const sockaddr_in *>(&ss);
	return { formatAddr(a->sin_addr), ntohs(a->sin_port), false };
}

JsonNodePtr fwdNode(const HostFwdEntry &e)
{
	Endpoint h = endpoint(e.fwd.host), g = endpoint(e.fwd.guest);
	return Obj()
		.num("id", e.id)
		.str("rule", formatHostFwd(e.fwd))
		.str("proto", e.fwd.udp ? "udp" : "tcp")
		.str("host_addr", h.addr)
		.str("host_family", h.v6 ? "ipv6" : "ipv4")
		.num("host_port", h.port)
		.str("guest_addr", g.addr)
		.num("guest_port", g.port)
		.str("origin", e.fromConfig ? "config" : "runtime")
		.done();
}

// "[addr]" for IPv6 (a ':' in it), as the hostfwd syntax wants.
std::string ruleAddr(const std::string &a)
{
	return a.find(':') != std::string::npos && a.front() != '[' ? "[" + a + "]" : a;
}

// ---- hostfwd-add

const ArgSpec kHostFwdAddArgs[] = {
	{ "rule", ArgType::String, false, "[tcp|udp]:[HADDR]:HPORT-[GADDR]:GPORT (QEMU's hostfwd_add)" },
	{ "proto", ArgType::String, false, "tcp (default) or udp" },
	{ "host_addr", ArgType::String, false, "host address to bind (default: any)" },
	{ "host_port", ArgType::Integer, false, "host port", 0, 65535 },
	{ "guest_addr", ArgType::String, false, "guest address (default: the DHCP start address)" },
	{ "guest_port", ArgType::Integer, false, "guest port", 1, 65535 },
};

bool hostfwdAdd(ControlContext &c, JsonObject *args, Action &action, std::string &error)
{
	auto rule = stringArg(args, "rule");
	bool structured = false;
	for (const char *k : { "proto", "host_addr", "host_port", "guest_addr", "guest_port" })
		structured |= json_object_has_member(args, k) != FALSE;
	std::string text;
	if (rule && structured) {
		error = "give either 'rule' or the fields proto, host_addr, host_port, guest_addr, guest_port";
		return false;
	}
	if (rule) {
		text = *rule;
	} else {
		auto hp = intArg(args, "host_port"), gp = intArg(args, "guest_port");
		if (!hp || !gp) {
			error = std::string("missing argument '") + (hp ? "guest_port" : "host_port") +
				"' (or give 'rule')";
			return false;
		}
		text = stringArg(args, "proto").value_or("tcp") + ":" +
		       ruleAddr(stringArg(args, "host_addr").value_or("")) + ":" + std::to_string(*hp) + "-" +
		       ruleAddr(stringArg(args, "guest_addr").value_or("")) + ":" + std::to_string(*gp);
	}
	HostFwd fwd;
	if (!parseHostFwd(text, fwd, error))
		return false;
	action = [&c, fwd](JsonNodePtr &result, std::string &error) {
		unsigned id;
		if (!c.net.hostFwds().add(fwd, false, id, error))
			return false;
		const HostFwdEntry &added = c.net.hostFwds().entries().back();
		result = fwdNode(added);
		slirpnet_message_ratelimited("control: hostfwd %u added: %s", id, formatHostFwd(added.fwd).c_str());
		return true;
	};
	return true;
}

// ---- hostfwd-remove

const ArgSpec kHostFwdRemoveArgs[] = {
	{ "rule", ArgType::String, false, "[tcp|udp]:[HADDR]:HPORT (QEMU's hostfwd_remove)" },
	{ "id", ArgType::Integer, false, "the id hostfwd-add or hostfwd-list gave", 1, UINT_MAX },
	{ "proto", ArgType::String, false, "tcp (default) or udp" },
	{ "host_addr", ArgType::String, false, "host address (default: any)" },
	{ "host_port", ArgType::Integer, false, "host port", 0, 65535 },
};

bool hostfwdRemove(ControlContext &c, JsonObject *args, Action &action, std::string &error)
{
	auto rule = stringArg(args, "rule");
	auto id = intArg(args, "id");
	auto hp = intArg(args, "host_port");
	int forms = (rule ? 1 : 0) + (id ? 1 : 0) + (hp ? 1 : 0);
	if (forms != 1 ||
	    (!hp && (json_object_has_member(args, "proto") || json_object_has_member(args, "host_addr")))) {
		error = "give exactly one of 'rule', 'id', or 'host_port' (with proto, host_addr)";
		return false;
	}
	HostFwd key; // when not by id
	if (!id) {
		std::string text = rule ? *rule
					: stringArg(args, "proto").value_or("tcp") + ":" +
						   ruleAddr(stringArg(args, "host_addr").value_or("")) + ":" +
						   std::to_string(*hp);
		if (!parseHostFwdKey(text, key, error))
			return false;
	}
	action = [&c, id, key](JsonNodePtr &result, std::string &error) {
		HostFwdTable &table = c.net.hostFwds();
		HostFwdEntry removed;
		if (!(id ? table.remove(static_cast<unsigned>(*id), removed, error)
			 : table.remove(key, removed, error)))
			return false;
		result = fwdNode(removed);
		slirpnet_message_ratelimited("control: hostfwd %u removed: %s", removed.id,
					     formatHostFwd(removed.fwd).c_str());
		return true;
	};
	return true;
}

// ---- hostfwd-list

bool hostfwdList(ControlContext &c, JsonNodePtr &result, std::string &)
{
	JsonArrayPtr a(json_array_new());
	for (const auto &e : c.net.hostFwds().entries())
		json_array_add_element(a.get(), fwdNode(e).release());
	result.reset(arrayNode(a.get()));
	return true;
}

// ---- egress-add / egress-remove / egress-list

JsonNodePtr egressNode(const EgressEntry &e, size_t position)
{
	std::string text = formatEgressRule(e.rule);
	return Obj()
		.num("id", e.id)
		.num("position", static_cast<int64_t>(position))
		.str("rule", text)
		.str("verdict", e.rule.verdict == EgressVerdict::Allow ? "allow" : "deny")
		.str("origin", e.origin)
		.done();
}

const ArgSpec kEgressAddArgs[] = {
	{ "deny", ArgType::String, false, "[tcp/|udp/|icmp/]CIDR[:PORTS]: refuse it (as the deny= option)" },
	{ "allow", ArgType::String, false, "[tcp/|udp/|icmp/]CIDR[:PORTS]: let it through (as the allow= option)" },
	{ "rule", ArgType::String, false, "the rule as one text, allow=... or deny=..." },
	{ "position", ArgType::Integer, false,
	  "where in the list, 0 = first (default: last, before the default verdict)", 0, INT_MAX },
};

bool egressAdd(ControlContext &c, JsonObject *args, Action &action, std::string &error)
{
	auto deny = stringArg(args, "deny"), allow = stringArg(args, "allow"), rule = stringArg(args, "rule");
	if ((deny ? 1 : 0) + (allow ? 1 : 0) + (rule ? 1 : 0) != 1) {
		error = "give exactly one of 'deny', 'allow' or 'rule'";
		return false;
	}
	std::string text = rule ? *rule : deny ? "deny=" + *deny : "allow=" + *allow;
	EgressRule r;
	if (!parseEgressRuleText(text, r, error))
		return false;
	std::optional<size_t> position;
	if (auto p = intArg(args, "position"))
		position = static_cast<size_t>(*p);
	action = [&c, r, position](JsonNodePtr &result, std::string &) {
		EgressPolicy &policy = c.net.egress();
		unsigned id = policy.add(r, position);
		const auto &entries = policy.entries();
		for (size_t i = 0; i < entries.size(); i++)
			if (entries[i].id == id)
				result = egressNode(entries[i], i);
		slirpnet_message_ratelimited("control: egress rule %u added: %s", id, formatEgressRule(r).c_str());
		return true;
	};
	return true;
}

const ArgSpec kEgressRemoveArgs[] = {
	{ "id", ArgType::Integer, true, "the id egress-add or egress-list gave", 1, UINT_MAX },
};

bool egressRemove(ControlContext &c, JsonObject *args, Action &action, std::string &)
{
	auto id = static_cast<unsigned>(*intArg(args, "id"));
	action = [&c, id](JsonNodePtr &result, std::string &error) {
		EgressPolicy &policy = c.net.egress();
		const auto &entries = policy.entries();
		auto it = std::find_if(entries.begin(), entries.end(),
				       [id](const EgressEntry &e) { return e.id == id; });
		if (it == entries.end())
			return policy.remove(id, error); // names the id
		JsonNodePtr node = egressNode(*it, static_cast<size_t>(it - entries.begin()));
		std::string text = formatEgressRule(it->rule);
		if (!policy.remove(id, error))
			return false;
		result = std::move(node);
		slirpnet_message_ratelimited("control: egress rule %u removed: %s", id, text.c_str());
		return true;
	};
	return true;
}

bool egressList(ControlContext &c, JsonNodePtr &result, std::string &)
{
	const EgressPolicy &policy = c.net.egress();
	JsonArrayPtr a(json_array_new());
	for (size_t i = 0; i < policy.entries().size(); i++)
		json_array_add_element(a.get(), egressNode(policy.entries()[i], i).release());
	result = Obj().node("rules", JsonNodePtr(arrayNode(a.get())))
			 .str("default", policy.defaultDeny() ? "deny" : "allow")
			 .str("policy", c.net.config().policyStrict ? "strict" : "open")
			 .done();
	return true;
}

// ---- info-usernet

std::string connectionText(Network &net)
{
	char *raw = slirp_connection_info(net.slirp());
	std::string text = raw ? raw : "";
	g_free(raw);
	return text;
}

JsonNodePtr connNode(const ConnInfo &c)
{
	Obj o;
	o.str("protocol", c.protocol);
	if (c.state.empty())
		o.null("state");
	else
		o.str("state", c.state);
	if (c.expiresSec)
		o.num("expires_sec", *c.expiresSec);
	else
		o.null("expires_sec");
	o.num("fd", c.fd);
	o.str("src_addr", c.srcAddr);
	if (c.srcPort)
		o.num("src_port", *c.srcPort);
	else
		o.null("src_port");
	o.str("dst_addr", c.dstAddr);
	if (c.dstPort)
		o.num("dst_port", *c.dstPort);
	else
		o.null("dst_port");
	o.num("recv_q", static_cast<int64_t>(c.recvQ));
	o.num("send_q", static_cast<int64_t>(c.sendQ));
	return o.done();
}

bool infoUsernet(ControlContext &c, JsonNodePtr &result, std::string &)
{
	std::string text = connectionText(c.net);
	size_t skipped = 0;
	auto rows = parseConnectionInfo(text, &skipped);
	if (skipped)
		slirpnet_warning_ratelimited("control: %zu line(s) of libslirp's connection info did not parse",
					     skipped);
	JsonArrayPtr a(json_array_new());
	for (const auto &c : rows)
		json_array_add_element(a.get(), connNode(c).release());
	result = Obj().node("connections", JsonNodePtr(arrayNode(a.get()))).str("text", text).done();
	return true;
}

// ---- stats

// A capture as stats, capture-start and capture-stop describe it; stats adds "failed".
Obj captureObj(const Capture &c)
{
	Obj o;
	o.str("file", c.settings().path)
		.str("filter", c.settings().filter)
		.num("snaplen", c.settings().snaplen)
		.num("frames", static_cast<int64_t>(c.frames()))
		.num("bytes", static_cast<int64_t>(c.bytes()))
		.num("filtered", static_cast<int64_t>(c.filtered()));
	return o;
}

bool stats(ControlContext &ctx, JsonNodePtr &result, std::string &)
{
	Network &net = ctx.net;
	const Stats &s = net.stats();
	auto rows = parseConnectionInfo(connectionText(net));
	int64_t tcp = 0, udp = 0, icmp = 0, listeners = 0;
	for (const auto &c : rows) {
		if (c.isHostForward())
			listeners++;
		else if (c.protocol == "tcp")
			tcp++;
		else if (c.protocol == "udp")
			udp++;
		else
			icmp++;
	}
	JsonNodePtr capture;
	if (const Capture *c = net.capture())
		capture = captureObj(*c)
				  .flag("failed", c->failed())
				  .str("stopped", c->stopped()) // "", "size limit" (pcap-max=) or "write error"
				  .num("unrecorded", static_cast<int64_t>(c->unrecorded()))
				  .num("max_bytes", static_cast<int64_t>(c->settings().maxBytes))
				  .done();
	else
		capture.reset(json_node_new(JSON_NODE_NULL));
	Obj o;
	for (const auto &c : kStatsCounters)
		o.num(c.name, static_cast<int64_t>(s.*c.member));
	result = o.num("connections", tcp + udp + icmp)
			 .node("connections_by_protocol",
			       Obj().num("tcp", tcp).num("udp", udp).num("icmp", icmp).done())
			 .num("hostfwd_listeners", listeners)
			 .num("hostfwd_rules", static_cast<int64_t>(net.hostFwds().entries().size()))
			 // gauge: the sockets max-flows= bounds (lingering closed connections included)
			 .num("flows", static_cast<int64_t>(net.flowCount()))
			 .num("max_flows", static_cast<int64_t>(net.maxFlows()))
			 .node("capture", std::move(capture))
			 .num("control_clients", static_cast<int64_t>(ctx.controlClients))
			 .done();
	return true;
}

// ---- capture-start / capture-stop

const ArgSpec kCaptureStartArgs[] = {
	{ "file", ArgType::String, true, "pcap file to create (relative to the helper's directory)" },
	{ "filter", ArgType::String, false, "BPF expression (default: the pcap-filter option; \"\" for none)" },
	{ "snaplen", ArgType::Integer, false, "bytes kept per frame (default: the snaplen option)", kSnaplenMin,
	  kSnaplenMax },
};

bool captureStart(ControlContext &c, JsonObject *args, Action &action, std::string &error)
{
	const Config &cfg = c.net.config();
	CaptureSettings s;
	s.path = *stringArg(args, "file");
	s.filter = stringArg(args, "filter").value_or(cfg.pcapFilter);
	s.snaplen = static_cast<unsigned>(intArg(args, "snaplen").value_or(cfg.snaplen));
	if (s.path.empty()) {
		error = "argument 'file' is empty";
		return false;
	}
	// The pcap-filter option's checks (the same function), before libpcap sees it.
	if (!checkPcapFilterText(s.filter, error)) {
		error = "argument 'filter': " + error;
		return false;
	}
	// Said here, with the places allowed, rather than as Landlock's bare EACCES at the open.
	if (!sandboxAllowsCreate(s.path, error))
		return false;
	action = [&c, s](JsonNodePtr &result, std::string &error) {
		if (c.captureCompile) {
			error = "pcap: a capture is starting (its filter " + q(c.captureCompile->filter()) +
				" is being compiled)";
			return false;
		}
		if (const Capture *running = c.net.capture()) {
			error = "pcap: a capture to " + q(running->settings().path) + " is already running";
			return false;
		}
		// libpcap's compiler can take seconds on a long expression: never on the loop,
		// which moves the frames, when the reply can wait.
		Finish finish = s.filter.empty() ? Finish{} : deferAction();
		if (!finish) {
			if (!s.filter.empty() && !Capture::checkFilter(s.filter, s.snaplen, error))
				return false; // (reported as a GenericError here: no control server)
			if (!c.net.startCapture(s, error))
				return false;
			result = captureObj(*c.net.capture()).done();
			return true;
		}
		auto done = [&c, s, finish](BpfProgram program, const std::string &compileError) mutable {
			c.captureCompile.reset(); // over
			ControlError err;
			if (!program) {
				err = { errorclass::kInvalidArgument, compileError };
				finish(nullptr, &err);
				return;
			}
			s.program = std::move(program);
			if (!c.net.startCapture(s, err.desc)) {
				err.cls = errorclass::kGeneric;
				finish(nullptr, &err);
				return;
			}
			finish(captureObj(*c.net.capture()).done(), nullptr);
		};
		std::string startError;
		c.captureCompile = FilterCompile::start(s.filter, s.snaplen, nullptr, std::move(done), startError);
		if (!c.captureCompile) {
			ControlError err{ errorclass::kGeneric, startError };
			finish(nullptr, &err);
		}
		return true; // the reply comes from finish
	};
	return true;
}

bool captureStop(ControlContext &c, JsonNodePtr &result, std::string &error)
{
	if (!c.net.capture()) {
		error = "no capture is running";
		return false;
	}
	// Counted before closing: the final flush does not change them.
	JsonNodePtr summary = captureObj(*c.net.capture()).done();
	if (!c.net.stopCapture(error))
		return false;
	result = std::move(summary);
	return true;
}

// ---- version

bool version(ControlContext &, JsonNodePtr &result, std::string &)
{
	result = Obj().str("version", SLIRPNET_VERSION)
			 .str("libslirp", slirp_version_string())
			 .str("libpcap", pcap_lib_version())
			 .str("json-glib", JSON_VERSION_S)
			 .node("sandbox", sandboxNode(sandboxReport()))
			 .done();
	return true;
}

#ifdef SLIRPNET_TEST_HOOKS
// ---- debug-forbidden (meson -Dtest_hooks=true only): attempt what the sandbox forbids,
// so that the tests see it refused by the kernel rather than trust the report.

const ArgSpec kDebugForbiddenArgs[] = {
	{ "what", ArgType::String, true, "execve (seccomp kills the helper), open-shadow, write-outside" },
	{ "path", ArgType::String, false, "write-outside: the file to create (default /var/tmp/...)" },
};

bool debugForbidden(ControlContext &, JsonObject *args, Action &action, std::string &error)
{
	std::string what = *stringArg(args, "what");
	std::string path = stringArg(args, "path").value_or("/var/tmp/slirpnet-debug-forbidden");
	if (what != "execve" && what != "open-shadow" && what != "write-outside") {
		error = "unknown 'what' " + q(what) + " (execve, open-shadow, write-outside)";
		return false;
	}
	action = [what, path](JsonNodePtr &result, std::string &) {
		g_warning("debug-forbidden: attempting %s", what.c_str());
		int fd = -1;
		if (what == "execve") {
			const char *argv[] = { "/bin/true", nullptr };
			execve(argv[0], const_cast<char **>(argv), environ);
		} else if (what == "open-shadow") {
			fd = open("/etc/shadow", O_RDONLY | O_CLOEXEC);
		} else {
			fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		}
		int err = errno;
		if (fd >= 0) {
			close(fd);
			if (what == "write-outside")
				unlink(path.c_str());
		}
		result = Obj().str("what", what)
				 .flag("refused", fd < 0)
				 .num("errno", fd < 0 ? err : 0)
				 .str("error", fd < 0 ? strerror(err) : "")
				 .done();
		return true;
	};
	return true;
}
#endif

bool queryCommands(ControlContext &, JsonNodePtr &result, std::string &);

const std::array kCommands = {
	Command{ "hostfwd-add", "forward a host port to the guest; returns the rule with its id", kHostFwdAddArgs,
		 hostfwdAdd },
	Command{ "hostfwd-remove", "remove a forwarding rule (by rule text, id or fields); returns it",
		 kHostFwdRemoveArgs, hostfwdRemove },
	Command{ "hostfwd-list",
		 "the forwarding rules in effect, from the config and added since",
		 {},
		 atOnce<hostfwdList> },
	Command{ "egress-add", "add an egress rule (first match wins); returns it with its id and position",
		 kEgressAddArgs, egressAdd },
	Command{ "egress-remove", "remove an egress rule by id; returns it", kEgressRemoveArgs, egressRemove },
	Command{ "egress-list",
		 "the egress rules in order (policy=strict's, the options', added since) and the default verdict",
		 {},
		 atOnce<egressList> },
	Command{ "info-usernet",
		 "libslirp's connection table: rows, and the text QEMU's 'info usernet' prints",
		 {},
		 atOnce<infoUsernet> },
	Command{ "stats", "frames and bytes each way, drops by reason, connections, capture", {}, atOnce<stats> },
	Command{ "capture-start", "start recording frames to a pcap file", kCaptureStartArgs, captureStart },
	Command{ "capture-stop", "stop the running capture; returns its counts", {}, atOnce<captureStop> },
	Command{ "version", "versions of slirpnet and its libraries", {}, atOnce<version> },
	Command{ "query-commands", "this list", {}, atOnce<queryCommands> },
#ifdef SLIRPNET_TEST_HOOKS
	Command{ "debug-forbidden", "test builds only: attempt something the sandbox forbids", kDebugForbiddenArgs,
		 debugForbidden },
#endif
};

bool queryCommands(ControlContext &, JsonNodePtr &result, std::string &)
{
	JsonArrayPtr cmds(json_array_new());
	for (const auto &c : kCommands) {
		JsonArrayPtr args(json_array_new());
		for (const auto &a : c.args)
			json_array_add_element(args.get(), Obj().str("name", a.name)
								   .str("type", argTypeName(a.type))
								   .flag("required", a.required)
								   .str("help", a.help)
								   .done()
								   .release());
		json_array_add_element(cmds.get(), Obj().str("name", c.name)
							   .str("help", c.help)
							   .node("arguments", JsonNodePtr(arrayNode(args.get())))
							   .done()
							   .release());
	}
	result.reset(arrayNode(cmds.get()));
	return true;
}

} // namespace

JsonNodePtr sandboxNode(const SandboxReport &r)
{
	Obj o;
	o.flag("enabled", r.enabled)
		.flag("fds_closed", r.fdsClosed)
		.flag("no_new_privs", r.noNewPrivs)
		.flag("dumpable", !r.notDumpable)
		.flag("environment_scrubbed", r.environmentScrubbed);
	if (r.maxFds)
		o.num("max_fds", static_cast<int64_t>(r.maxFds));
	else
		o.null("max_fds");
	o.str("user", r.user)
		.num("uid", r.uid)
		.num("gid", r.gid)
		.flag("dropped_root", r.droppedRoot)
		.flag("no_capabilities", r.noCapabilities);
	if (r.landlockAbi)
		o.num("landlock", r.landlockAbi);
	else
		o.flag("landlock", false).str("landlock_note", r.landlockNote);
	if (r.seccomp)
		o.str("seccomp", r.seccompLog ? "log" : "kill");
	else
		o.flag("seccomp", false);
	if (r.tftpDir.empty())
		o.null("tftp_dir");
	else
		o.str("tftp_dir", r.tftpDir);
	JsonArrayPtr dirs(json_array_new());
	for (const auto &d : r.createDirs)
		json_array_add_string_element(dirs.get(), d.c_str());
	return o.node("create_dirs", JsonNodePtr(arrayNode(dirs.get()))).done();
}

std::string capabilitiesJson(std::span<const char *const> features, const SandboxReport &sandbox)
{
	JsonArrayPtr a(json_array_new());
	for (const char *f : features)
		json_array_add_string_element(a.get(), f);
	return toJson(Obj().node("features", JsonNodePtr(arrayNode(a.get())))
			      .node("sandbox", sandboxNode(sandbox))
			      .done()
			      .get());
}

std::string handleControlRequest(ControlContext &ctx, std::string_view line)
{
	Request req;
	ControlError err;
	if (!parseRequest(line, req, err)) {
		g_debug("control: bad request: %s", err.desc.c_str());
		return encodeError(err, req.id.get());
	}
	auto cmd = std::find_if(kCommands.begin(), kCommands.end(),
				[&req](const Command &c) { return req.command == c.name; });
	if (cmd == kCommands.end())
		return encodeError({ errorclass::kCommandNotFound, "unknown command " + q(req.command) }, req.id.get());
	// The one place where a failure gets its class: from the step that failed.
	JsonObject *args = req.arguments.get();
	if (checkArguments(args, cmd->args, err)) { // else err is an InvalidArgument already
		Action action;
		JsonNodePtr result;
		std::string error;
		Running running{ req.id.get() };
		if (!cmd->prepare(ctx, args, action, error)) {
			err = { errorclass::kInvalidArgument, error };
		} else {
			gRunning = &running;
			bool ok = action(result, error);
			gRunning = nullptr;
			if (running.deferred)
				return ""; // answered later, by the Finish the action holds
			if (!ok)
				err = { errorclass::kGeneric, error };
			else
				return encodeReturn(result.get(), req.id.get());
		}
	}
	g_debug("control: %s: %s", cmd->name, err.desc.c_str());
	return encodeError(err, req.id.get());
}

} // namespace slirpnet
