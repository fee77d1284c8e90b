// SPDX-License-Identifier: BSD-2-Clause
// control_proto_test.cpp - the control protocol: request validation, argument checks, reply encoding.
#include <gtest/gtest.h>

#include "control_proto.hpp"

using namespace slirpnet;

namespace {

ControlError mustFail(const std::string &line)
{
	Request req;
	ControlError err;
	EXPECT_FALSE(parseRequest(line, req, err)) << line;
	return err;
}

Request mustParse(const std::string &line)
{
	Request req;
	ControlError err;
	EXPECT_TRUE(parseRequest(line, req, err)) << line << ": " << err.desc;
	return req;
}

const ArgSpec kSpecs[] = {
	{ "rule", ArgType::String, false, "" },
	{ "id", ArgType::Integer, false, "", 1, 100 },
	{ "file", ArgType::String, true, "" },
};

ControlError argsFail(const std::string &argsJson)
{
	Request req = mustParse("{\"execute\":\"x\",\"arguments\":" + argsJson + "}");
	ControlError err;
	EXPECT_FALSE(checkArguments(req.arguments.get(), kSpecs, err)) << argsJson;
	EXPECT_EQ(err.cls, errorclass::kInvalidArgument) << argsJson;
	return err;
}

} // namespace

TEST(ControlRequest, ValidForms)
{
	Request r = mustParse(R"({"execute": "stats"})");
	EXPECT_EQ(r.command, "stats");
	ASSERT_TRUE(r.arguments);
	EXPECT_EQ(json_object_get_size(r.arguments.get()), 0u);
	EXPECT_FALSE(r.id);

	r = mustParse(R"({"execute":"hostfwd-add","arguments":{"rule":"tcp::1-:2"},"id":{"seq":[1,2]}})");
	EXPECT_EQ(r.command, "hostfwd-add");
	EXPECT_STREQ(json_object_get_string_member(r.arguments.get(), "rule"), "tcp::1-:2");
	ASSERT_TRUE(r.id);
	EXPECT_EQ(toJson(r.id.get()), R"({"seq":[1,2]})");
}

TEST(ControlRequest, MalformedIsParseError)
{
	for (const char *line : { "{", "not json", "{\"execute\": }", "\xff\xfe", "{\"execute\":\"x\"} trailing" })
		EXPECT_EQ(mustFail(line).cls, errorclass::kParse) << line;
	EXPECT_EQ(mustFail(std::string("{\"execute\":\"x\"\0}", 17)).cls, errorclass::kParse);
	// Deep nesting is refused before the (recursive) parser sees it.
	std::string deep = "{\"execute\":\"x\",\"id\":" + std::string(10000, '[') + std::string(10000, ']') + "}";
	ControlError e = mustFail(deep);
	EXPECT_EQ(e.cls, errorclass::kParse);
	EXPECT_NE(e.desc.find("nested"), std::string::npos) << e.desc;
	// Brackets inside strings do not count.
	mustParse("{\"execute\":\"x\",\"id\":\"" + std::string(100, '[') + "\"}");
}

// json-glib 1.6 reads more than JSON (comments, single quotes...), and recursively: only
// strict RFC 8259 JSON may reach it, whatever hides inside the extras.
TEST(ControlRequest, OnlyStrictJsonReachesTheParser)
{
	struct Case {
		std::string line;
		const char *why; // a word of the error
	};
	const std::string deep(100, '[');
	const Case cases[] = {
		{ R"({"execute":"stats"} /* c */)", "comments" },
		{ R"(/* c */ {"execute":"stats"})", "comments" },
		{ R"({"execute":/* c */"stats"})", "comments" },
		{ R"({"execute":"stats"} // c)", "comments" },
		{ R"({"execute":"stats", # c
})",
		  "comments" },
		{ R"({'execute':'stats'})", "double quotes" },
		{ R"({"execute":'stats'})", "double quotes" },
		{ R"({"execute":"stats",})", "object key" },
		{ R"({"execute":"stats","id":[1,2,]})", "value" },
		{ R"({"execute":"stats","id":[,]})", "value" },
		{ R"({"execute":"stats","id":NaN})", "NaN" },
		{ R"({"execute":"stats","id":Infinity})", "NaN" },
		{ R"({"execute":"stats","id":-Infinity})", "number" },
		{ R"({"execute":"stats","id":01})", "expected ','" },
		{ R"({"execute":"stats","id":1.})", "number" },
		{ R"({"execute":"stats","id":.5})", "value" },
		{ R"({"execute":"stats","id":1e})", "number" },
		{ R"({"execute":"stats","id":+1})", "value" },
		{ R"({"execute":"stats","id":0x10})", "expected ','" },
		{ R"({"execute":"stats","id":True})", "value" },
		{ R"({"execute":"stats","id":nul})", "value" },
		{ "{\"execute\":\"st\tats\"}", "control character" },
		{ "{\"execute\":\"st\x01"
		  "ats\"}",
		  "control character" },
		{ R"({"execute":"st\xats"})", "bad escape" },
		{ R"({"execute":"st\'ats"})", "bad escape" },
		{ R"({"execute":"\u12"})", "hex digits" },
		{ R"({"execute":"\ud800"})", "surrogate" },
		{ R"({"execute":"\udc00"})", "surrogate" },
		{ R"({"execute":"stats)", "unterminated" },
		{ R"({"execute" "stats"})", "':'" },
		{ R"({execute:"stats"})", "object key" },
		{ "{\"execute\":\"stats\"}\x0b", "after the JSON value" },
		{ "\xef\xbb\xbf{\"execute\":\"stats\"}", "value" }, // a BOM
		{ "{\"execute\":\"\xc3\x28\"}", "UTF-8" },
		{ "", "empty" },
		// Nesting that a guard reading standard JSON only would not count...
		{ "{\"execute\":\"x\",\"id\":/*\"*/" + deep + "}", "comments" },
		{ "{\"execute\":\"x\",\"id\":'\\'" + deep + "'}", "double quotes" },
		// ... and plain deep nesting, bounded by an iterative check.
		{ std::string(100000, '['), "nested deeper" },
		{ "{\"execute\":\"x\",\"id\":" + std::string(33, '[') + std::string(33, ']') + "}", "nested deeper" },
		{ [] {
			 std::string s;
			 for (int i = 0; i < 20000; i++)
				 s += "{\"a\":";
			 return s;
		 }(),
		  "nested deeper" },
	};
	for (const auto &c : cases) {
		ControlError e = mustFail(c.line);
		EXPECT_EQ(e.cls, errorclass::kParse) << c.line;
		EXPECT_NE(e.desc.find(c.why), std::string::npos) << c.line.substr(0, 80) << " -> " << e.desc;
	}
}

TEST(ControlRequest, StrictJsonStillTakesAllOfJson)
{
	// Every construct of RFC 8259, at the depth limit.
	mustParse(R"( {"execute" : "stats" , "id" : [ -0, 1.5e+3, 2E-2, 0.25, 10, true, false, null, "", )"
		  R"("\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00 é 😀", {}, [], {"a": {"b": []}} ]} )"
		  "\r\n\t ");
	mustParse("{\"execute\":\"x\",\"id\":" + std::string(kMaxJsonDepth - 1, '[') +
		  std::string(kMaxJsonDepth - 1, ']') + "}");
	// Brackets inside strings do not count, escaped quotes included.
	mustParse("{\"execute\":\"x\",\"id\":\"\\\"" + std::string(100, '[') + "\"}");
}

TEST(ControlRequest, WrongShapeIsInvalidRequest)
{
	EXPECT_EQ(mustFail("[1,2]").cls, errorclass::kInvalidRequest);
	EXPECT_EQ(mustFail("42").cls, errorclass::kInvalidRequest);
	EXPECT_EQ(mustFail("{}").cls, errorclass::kInvalidRequest);
	EXPECT_NE(mustFail(R"({"execute": 5})").desc.find("'execute' must be a string"), std::string::npos);
	EXPECT_NE(mustFail(R"({"execute": "x", "arguments": [1]})").desc.find("'arguments' must be an object"),
		  std::string::npos);
	EXPECT_NE(mustFail(R"({"execute": "x", "argument": {}})").desc.find("unexpected member 'argument'"),
		  std::string::npos);
}

TEST(ControlRequest, IdIsKeptWhenTheRestIsBad)
{
	Request req;
	ControlError err;
	EXPECT_FALSE(parseRequest(R"({"id": 9, "execute": 1})", req, err));
	ASSERT_TRUE(req.id);
	EXPECT_EQ(encodeError(err, req.id.get()).find("\"id\":9") != std::string::npos, true);
}

TEST(ControlArguments, TypesRangesRequiredUnknown)
{
	Request req = mustParse(R"({"execute":"x","arguments":{"file":"a.pcap","id":5}})");
	ControlError err;
	EXPECT_TRUE(checkArguments(req.arguments.get(), kSpecs, err)) << err.desc;
	EXPECT_EQ(stringArg(req.arguments.get(), "file"), "a.pcap");
	EXPECT_EQ(intArg(req.arguments.get(), "id"), 5);
	EXPECT_FALSE(stringArg(req.arguments.get(), "rule"));

	EXPECT_NE(argsFail(R"({})").desc.find("missing argument 'file'"), std::string::npos);
	EXPECT_NE(argsFail(R"({"file":"f","colour":1})").desc.find("unexpected argument 'colour'"), std::string::npos);
	EXPECT_NE(argsFail(R"({"file":1})").desc.find("'file' must be a string, not an integer"), std::string::npos);
	EXPECT_NE(argsFail(R"({"file":"f","id":"5"})").desc.find("'id' must be an integer, not a string"),
		  std::string::npos);
	EXPECT_NE(argsFail(R"({"file":"f","id":1.5})").desc.find("fractional"), std::string::npos);
	EXPECT_NE(argsFail(R"({"file":"f","id":0})").desc.find("expected 1-100"), std::string::npos);
	EXPECT_NE(argsFail(R"({"file":"f","id":101})").desc.find("101"), std::string::npos);
	EXPECT_NE(argsFail(R"({"file":null})").desc.find("not null"), std::string::npos);
	EXPECT_NE(argsFail(R"({"file":true})").desc.find("'file' must be a string, not a boolean"), std::string::npos);
}

TEST(ControlArguments, CommandWithoutArguments)
{
	Request req = mustParse(R"({"execute":"stats","arguments":{"x":1}})");
	ControlError err;
	EXPECT_FALSE(checkArguments(req.arguments.get(), {}, err));
	EXPECT_NE(err.desc.find("takes none"), std::string::npos) << err.desc;
}

TEST(ControlArguments, TypeNamesAndQuoting)
{
	// query-commands and slirpnet-ctl's docs name the types with these words.
	EXPECT_STREQ(argTypeName(ArgType::String), "string");
	EXPECT_STREQ(argTypeName(ArgType::Integer), "integer");
	EXPECT_EQ(q("a b"), "'a b'");
	EXPECT_EQ(q(""), "''");
}

TEST(ControlReply, OneLineEachWithId)
{
	JsonNodePtr id(json_node_new(JSON_NODE_VALUE));
	json_node_set_int(id.get(), 7);
	std::string e = encodeError({ "GenericError", "bad \"thing\"\nsecond line" }, id.get());
	EXPECT_EQ(e,
		  "{\"error\":{\"class\":\"GenericError\",\"desc\":\"bad \\\"thing\\\"\\nsecond line\"},\"id\":7}\n");
	EXPECT_EQ(encodeReturn(nullptr, nullptr), "{\"return\":{}}\n");
	JsonObjectPtr o(json_object_new());
	json_object_set_int_member(o.get(), "n", 1);
	JsonNodePtr n(objectNode(o.get()));
	EXPECT_EQ(encodeReturn(n.get(), id.get()), "{\"return\":{\"n\":1},\"id\":7}\n");
}
