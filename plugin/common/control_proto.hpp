// SPDX-License-Identifier: BSD-2-Clause
// control_proto.hpp - the control socket's JSON protocol: request parsing, argument checks, replies.
#pragma once

#include <json-glib/json-glib.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "quote.hpp"

namespace slirpnet {

// RAII for json-glib's handles.
struct GObjectUnref {
	void operator()(gpointer o) const { g_object_unref(o); }
};
template <typename T>
using GObjectPtr = std::unique_ptr<T, GObjectUnref>;
struct JsonNodeUnref {
	void operator()(JsonNode *n) const { json_node_unref(n); }
};
using JsonNodePtr = std::unique_ptr<JsonNode, JsonNodeUnref>;
struct JsonObjectUnref {
	void operator()(JsonObject *o) const { json_object_unref(o); }
};
using JsonObjectPtr = std::unique_ptr<JsonObject, JsonObjectUnref>;
struct JsonArrayUnref {
	void operator()(JsonArray *a) const { json_array_unref(a); }
};
using JsonArrayPtr = std::unique_ptr<JsonArray, JsonArrayUnref>;

/*
 * The protocol, QMP-like: one request per line, one reply line per request.
 *   -> {"execute": "hostfwd-add", "arguments": {"rule": "tcp:127.0.0.1:2222-:22"}, "id": 7}
 *   <- {"return": {"id": 3, ...}, "id": 7}
 *   <- {"error": {"class": "GenericError", "desc": "..."}, "id": 7}
 * "arguments" and "id" are optional; "id" (any JSON value) is echoed back. Blank lines
 * are ignored. A line must be strict RFC 8259 JSON in UTF-8 (no comments, single-quoted
 * strings, trailing commas, NaN...: what json-glib would also take is refused first, with
 * a ParseError saying why) nested at most kMaxJsonDepth deep.
 */

// The "class" of an error reply.
namespace errorclass {
constexpr const char *kParse = "ParseError"; // the line is not a JSON document
constexpr const char *kInvalidRequest = "InvalidRequest"; // JSON, but not a request object
constexpr const char *kCommandNotFound = "CommandNotFound";
constexpr const char *kInvalidArgument = "InvalidArgument"; // missing, unknown, mistyped, bad value
constexpr const char *kGeneric = "GenericError"; // the command itself failed
} // namespace errorclass

struct ControlError {
	std::string cls;
	std::string desc;
};

// Nesting deeper than this is refused (by an iterative check of the whole line) before
// json-glib's recursive parser sees it.
constexpr int kMaxJsonDepth = 32;

struct Request {
	std::string command;
	JsonObjectPtr arguments; // an empty object when absent
	JsonNodePtr id; // null when absent
};

// One request line (without its '\n'). On failure err is set and req.id is kept if found.
bool parseRequest(std::string_view line, Request &req, ControlError &err);

// The JSON types an argument can have; no command takes a boolean yet.
enum class ArgType { String, Integer };

// "string" or "integer": the "type" of query-commands' reply and the CLI's docs.
const char *argTypeName(ArgType t);

struct ArgSpec {
	const char *name;
	ArgType type;
	bool required;
	const char *help;
	int64_t min = 0; // Integer only: accepted range
	int64_t max = 0;
};

// Every member of args must be in specs, of its type (and range); required ones present.
bool checkArguments(JsonObject *args, std::span<const ArgSpec> specs, ControlError &err);

// Typed access after checkArguments (nullopt when absent).
std::optional<std::string> stringArg(JsonObject *args, const char *name);
std::optional<int64_t> intArg(JsonObject *args, const char *name);

// Reply lines, each ending in '\n'. value/id may be null.
std::string encodeReturn(JsonNode *value, JsonNode *id);
std::string encodeError(const ControlError &e, JsonNode *id);

// Compact JSON text of node (one line).
std::string toJson(JsonNode *node);

// Node constructors for building replies.
JsonNode *objectNode(JsonObject *o); // takes a reference
JsonNode *arrayNode(JsonArray *a); // takes a reference

} // namespace slirpnet
