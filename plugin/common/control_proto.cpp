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

/*
 * Strict RFC 8259 JSON, checked before json-glib sees the line. json-glib 1.6 (GScanner
 * underneath) also takes comments, single-quoted strings and more, and parses nesting
 * recursively: anything it would read differently from the standard could hide nesting
 * from a simpler guard. So this is the whole grammar, iteratively: an explicit stack of
 * at most kMaxJsonDepth containers, one pass, no recursion, no allocation. Also valid
 * UTF-8 (RFC 8259 section 8.1) and no lone UTF-16 surrogate in a \u escape.
 */
class StrictJson
{
public:
	explicit StrictJson(std::string_view s) : s_(s) {}

	bool check(std::string &why)
	{
		if (!g_utf8_validate(s_.data(), static_cast<gssize>(s_.size()), nullptr))
			return fail(why, "not valid UTF-8");
		enum class Want { Value, FirstValueOrEnd, Key, FirstKeyOrEnd, AfterValue } want = Want::Value;
		for (;;) {
			skipSpace();
			if (want == Want::AfterValue) {
				if (depth_ == 0) {
					if (pos_ != s_.size())
						return unexpected(why, "after the JSON value");
					return true;
				}
				char close = inObject_[depth_ - 1] ? '}' : ']';
				if (at(',')) {
					pos_++;
					want = inObject_[depth_ - 1] ? Want::Key : Want::Value;
				} else if (at(close)) {
					pos_++;
					depth_--;
				} else {
					return unexpected(why, inObject_[depth_ - 1]
								       ? "in an object (expected ',' or '}')"
								       : "in an array (expected ',' or ']')");
				}
				continue;
			}
			if (want == Want::FirstKeyOrEnd || want == Want::FirstValueOrEnd) {
				if (at(want == Want::FirstKeyOrEnd ? '}' : ']')) {
					pos_++;
					depth_--;
					want = Want::AfterValue;
					continue;
				}
				want = want == Want::FirstKeyOrEnd ? Want::Key : Want::Value;
			}
			if (want == Want::Key) {
				if (!at('"'))
					return unexpected(why, "where an object key (a double-quoted string) belongs");
				if (!string(why))
					return false;
				skipSpace();
				if (!at(':'))
					return unexpected(why, "after an object key (expected ':')");
				pos_++;
				want = Want::Value;
				continue;
			}
			// want == Want::Value
			if (pos_ == s_.size())
				return fail(why, depth_ || pos_ ? "unexpected end of the line" : "empty request");
			char c = s_[pos_];
			if (c == '{' || c == '[') {
				if (depth_ == kMaxJsonDepth)
					return fail(why, "request nested deeper than " + std::to_string(kMaxJsonDepth) +
								 " levels");
				inObject_[depth_++] = c == '{';
				pos_++;
				want = c == '{' ? Want::FirstKeyOrEnd : Want::FirstValueOrEnd;
				continue;
			}
			if (c == '"') {
				if (!string(why))
					return false;
			} else if (c == '-' || (c >= '0' && c <= '9')) {
				if (!number(why))
					return false;
			} else if (!literal("true") && !literal("false") && !literal("null")) {
				return unexpected(why, "where a value belongs");
			}
			want = Want::AfterValue;
		}
	}

private:
	bool at(char c) const { return pos_ < s_.size() && s_[pos_] == c; }
	bool digit() const { return pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9'; }
	void skipSpace()
	{
		while (pos_ < s_.size() &&
		       (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r'))
			pos_++;
	}
	bool literal(std::string_view word)
	{
		if (s_.substr(pos_, word.size()) != word)
			return false;
		pos_ += word.size();
		return true;
	}
	static bool fail(std::string &why, std::string text)
	{
		why = std::move(text);
		return false;
	}
	// "unexpected '/' at byte 12 where a value belongs (comments are not JSON)".
	bool unexpected(std::string &why, const char *where) const
	{
		if (pos_ >= s_.size())
			return fail(why, std::string("unexpected end of the line ") + where);
		unsigned char c = static_cast<unsigned char>(s_[pos_]);
		std::string shown = c >= 0x20 && c < 0x7f ? std::string("'") + static_cast<char>(c) + "'"
							  : "byte 0x" + hex2(c);
		std::string hint;
		if (c == '/' || c == '#')
			hint = " (comments are not JSON)";
		else if (c == '\'')
			hint = " (strings take double quotes in JSON)";
		else if (c == 'N' || c == 'I')
			hint = " (NaN and Infinity are not JSON)";
		return fail(why, "unexpected " + shown + " at byte " + std::to_string(pos_) + " " + where + hint);
	}
	static std::string hex2(unsigned char c)
	{
		const char *d = "0123456789abcdef";
		return { d[c >> 4], d[c & 15] };
	}
	bool hex4(unsigned &v)
	{
		v = 0;
		for (int i = 0; i < 4; i++, pos_++) {
			if (pos_ >= s_.size() || !g_ascii_isxdigit(s_[pos_]))
				return false;
			v = v * 16 + static_cast<unsigned>(g_ascii_xdigit_value(s_[pos_]));
		}
		return true;
	}
	// At '"': to just after the closing quote.
	bool string(std::string &why)
	{
		size_t start = pos_++;
		while (pos_ < s_.size()) {
			unsigned char c = static_cast<unsigned char>(s_[pos_]);
			if (c == '"') {
				pos_++;
				return true;
			}
			if (c < 0x20)
				return fail(why, "control character 0x" + hex2(c) + " at byte " + std::to_string(pos_) +
							 " in a string (escape it)");
			if (c != '\\') {
				pos_++;
				continue;
			}
			size_t esc = pos_++;
			if (pos_ >= s_.size())
				break;
			char e = s_[pos_++];
			if (e == 'u') {
				unsigned u;
				if (!hex4(u))
					return fail(why, "bad \\u escape at byte " + std::to_string(esc) +
								 " (expected 4 hex digits)");
				if (u >= 0xdc00 && u <= 0xdfff)
					return fail(why,
						    "lone low surrogate \\u escape at byte " + std::to_string(esc));
				if (u >= 0xd800 && u <= 0xdbff) {
					unsigned low = 0;
					if (!literal("\\u") || !hex4(low) || low < 0xdc00 || low > 0xdfff)
						return fail(why, "high surrogate \\u escape at byte " +
									 std::to_string(esc) +
									 " without its low surrogate");
				}
			} else if (std::string_view("\"\\/bfnrt").find(e) == std::string_view::npos) {
				return fail(why,
					    "bad escape '\\" + std::string(1, e) + "' at byte " + std::to_string(esc));
			}
		}
		return fail(why, "unterminated string starting at byte " + std::to_string(start));
	}
	// At '-' or a digit.
	bool number(std::string &why)
	{
		size_t start = pos_;
		auto bad = [&] { return fail(why, "bad number at byte " + std::to_string(start)); };
		if (at('-'))
			pos_++;
		if (at('0')) {
			pos_++;
		} else if (digit()) {
			while (digit())
				pos_++;
		} else {
			return bad();
		}
		if (at('.')) {
			pos_++;
			if (!digit())
				return bad();
			while (digit())
				pos_++;
		}
		if (at('e') || at('E')) {
			pos_++;
			if (at('+') || at('-'))
				pos_++;
			if (!digit())
				return bad();
			while (digit())
				pos_++;
		}
		return true;
	}

	std::string_view s_;
	size_t pos_ = 0;
	int depth_ = 0;
	bool inObject_[kMaxJsonDepth] = {}; // per open container: object (true) or array
};

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
	// Only strict JSON reaches json-glib (see StrictJson).
	std::string why;
	if (!StrictJson(line).check(why)) {
		err = { errorclass::kParse, "not a JSON request: " + why };
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
