// SPDX-License-Identifier: BSD-2-Clause
// control_proto.cpp - the control socket's JSON protocol: request parsing, argument checks, replies.
#include "control_proto.hpp"

#include <algorithm>
#include <cstring>

namespace slirpnet {

namespace {

// What a JSON node is, for error messages.
const char *nodeKind(JsonNode *n)
{
	switch (json_node_get_node_type(n)) {
	case JSON_NODE_OBJECT:
		return "an object";
	case JSON_NODE_ARRAY:
		return "an array";
	case JSON_NODE_NULL:
		return "null";
	case JSON_NODE_VALUE:
		break;
	}
	GType t = json_node_get_value_type(n);
	if (t == G_TYPE_STRING)
		return "a string";
	if (t == G_TYPE_BOOLEAN)
		return "a boolean";
	if (t == G_TYPE_DOUBLE)
		return "a fractional number";
	return "an integer";
}

bool isType(JsonNode *n, ArgType t)
{
	if (!JSON_NODE_HOLDS_VALUE(n))
		return false;
	GType v = json_node_get_value_type(n);
	switch (t) {
	case ArgType::String:
		return v == G_TYPE_STRING;
	case ArgType::Integer:
		return v == G_TYPE_INT64;
	}
	return false;
}

// Deepest nesting of [ and { outside strings: bounded before parsing.
int jsonDepth(std::string_view s)
{
	int depth = 0, deepest = 0;
	bool inString = false, escaped = false;
	for (char ch : s) {
		if (inString) {
			if (escaped)
				escaped = false;
			else if (ch == '\\')
				escaped = true;
			else if (ch == '"')
				inString = false;
			continue;
		}
		if (ch == '"')
			inString = true;
		else if (ch == '[' || ch == '{')
			deepest = std::max(deepest, ++depth);
		else if (ch == ']' || ch == '}')
			depth--;
	}
	return deepest;
}

// "a string", "an integer": the type as an error message names it.
std::string withArticle(std::string_view noun)
{
	bool vowel = !noun.empty() && std::string_view("aeiou").find(noun.front()) != std::string_view::npos;
	return (vowel ? "an " : "a ") + std::string(noun);
}

std::string lineText(JsonNode *n)
{
	return toJson(n);
}

} // namespace

const char *argTypeName(ArgType t)
{
	switch (t) {
	case ArgType::String:
		return "string";
	case ArgType::Integer:
		return "integer";
	}
	return "?";
}

bool parseRequest(std::string_view line, Request &req, ControlError &err)
{
	req = Request{};
	if (line.find('\0') != std::string_view::npos) {
		err = { errorclass::kParse, "request contains a NUL byte" };
		return false;
	}
	if (jsonDepth(line) > kMaxJsonDepth) {
		err = { errorclass::kParse, "request nested deeper than " + std::to_string(kMaxJsonDepth) + " levels" };
		return false;
	}
	GObjectPtr<JsonParser> parser(json_parser_new_immutable());
	GError *gerr = nullptr;
	if (!json_parser_load_from_data(parser.get(), line.data(), static_cast<gssize>(line.size()), &gerr)) {
		err = { errorclass::kParse, std::string("JSON parse error: ") + gerr->message };
		g_error_free(gerr);
		return false;
	}
	JsonNode *root = json_parser_get_root(parser.get());
	if (!root || !JSON_NODE_HOLDS_OBJECT(root)) {
		err = { errorclass::kInvalidRequest,
			std::string("a request must be a JSON object, not ") + (root ? nodeKind(root) : "nothing") };
		return false;
	}
	JsonObject *o = json_node_get_object(root);
	if (JsonNode *id = json_object_get_member(o, "id"))
		req.id.reset(json_node_copy(id));

	JsonObjectIter it;
	const char *name;
	JsonNode *member;
	json_object_iter_init(&it, o);
	while (json_object_iter_next(&it, &name, &member)) {
		if (strcmp(name, "execute") && strcmp(name, "arguments") && strcmp(name, "id")) {
			err = { errorclass::kInvalidRequest,
				"unexpected member " + q(name) + " (expected execute, arguments, id)" };
			return false;
		}
	}
	JsonNode *exec = json_object_get_member(o, "execute");
	if (!exec) {
		err = { errorclass::kInvalidRequest, "missing member 'execute'" };
		return false;
	}
	if (!JSON_NODE_HOLDS_VALUE(exec) || json_node_get_value_type(exec) != G_TYPE_STRING) {
		err = { errorclass::kInvalidRequest, std::string("'execute' must be a string, not ") + nodeKind(exec) };
		return false;
	}
	req.command = json_node_get_string(exec);
	JsonNode *args = json_object_get_member(o, "arguments");
	if (args && !JSON_NODE_HOLDS_OBJECT(args)) {
		err = { errorclass::kInvalidRequest,
			std::string("'arguments' must be an object, not ") + nodeKind(args) };
		return false;
	}
	req.arguments.reset(args ? json_object_ref(json_node_get_object(args)) : json_object_new());
	return true;
}

bool checkArguments(JsonObject *args, std::span<const ArgSpec> specs, ControlError &err)
{
	JsonObjectIter it;
	const char *name;
	JsonNode *member;
	json_object_iter_init(&it, args);
	while (json_object_iter_next(&it, &name, &member)) {
		auto spec = std::find_if(specs.begin(), specs.end(),
					 [name](const ArgSpec &s) { return strcmp(s.name, name) == 0; });
		if (spec == specs.end()) {
			std::string known;
			for (const auto &s : specs)
				known += (known.empty() ? "" : ", ") + std::string(s.name);
			err = { errorclass::kInvalidArgument,
				"unexpected argument " + q(name) +
					(known.empty() ? " (this command takes none)" : " (expected " + known + ")") };
			return false;
		}
		if (!isType(member, spec->type)) {
			err = { errorclass::kInvalidArgument,
				"argument " + q(name) + " must be " + withArticle(argTypeName(spec->type)) + ", not " +
					nodeKind(member) + " (" + lineText(member) + ")" };
			return false;
		}
		if (spec->type == ArgType::Integer) {
			int64_t v = json_node_get_int(member);
			if (v < spec->min || v > spec->max) {
				err = { errorclass::kInvalidArgument,
					"argument " + q(name) + " is " + std::to_string(v) + ", expected " +
						std::to_string(spec->min) + "-" + std::to_string(spec->max) };
				return false;
			}
		}
	}
	for (const auto &s : specs) {
		if (s.required && !json_object_has_member(args, s.name)) {
			err = { errorclass::kInvalidArgument, "missing argument " + q(s.name) };
			return false;
		}
	}
	return true;
}

std::optional<std::string> stringArg(JsonObject *args, const char *name)
{
	JsonNode *n = json_object_get_member(args, name);
	if (!n || !isType(n, ArgType::String))
		return std::nullopt;
	return std::string(json_node_get_string(n));
}

std::optional<int64_t> intArg(JsonObject *args, const char *name)
{
	JsonNode *n = json_object_get_member(args, name);
	if (!n || !isType(n, ArgType::Integer))
		return std::nullopt;
	return json_node_get_int(n);
}

std::string toJson(JsonNode *node)
{
	char *text = json_to_string(node, FALSE);
	std::string s = text ? text : "null";
	g_free(text);
	return s;
}

JsonNode *objectNode(JsonObject *o)
{
	JsonNode *n = json_node_new(JSON_NODE_OBJECT);
	json_node_set_object(n, o);
	return n;
}

JsonNode *arrayNode(JsonArray *a)
{
	JsonNode *n = json_node_new(JSON_NODE_ARRAY);
	json_node_set_array(n, a);
	return n;
}

static std::string reply(const char *member, JsonNode *value, JsonNode *id)
{
	JsonObjectPtr o(json_object_new());
	json_object_set_member(o.get(), member, value);
	if (id)
		json_object_set_member(o.get(), "id", json_node_copy(id));
	JsonNodePtr root(objectNode(o.get()));
	return toJson(root.get()) + "\n";
}

std::string encodeReturn(JsonNode *value, JsonNode *id)
{
	if (value)
		return reply("return", json_node_copy(value), id);
	JsonObjectPtr empty(json_object_new());
	return reply("return", objectNode(empty.get()), id);
}

std::string encodeError(const ControlError &e, JsonNode *id)
{
	JsonObjectPtr err(json_object_new());
	json_object_set_string_member(err.get(), "class", e.cls.c_str());
	json_object_set_string_member(err.get(), "desc", e.desc.c_str());
	return reply("error", objectNode(err.get()), id);
}

} // namespace slirpnet
