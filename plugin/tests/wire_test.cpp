// SPDX-License-Identifier: BSD-2-Clause
// wire_test.cpp - config and status messages: round trips, and malformed bytes rejected.
#include <glib.h>
#include <gtest/gtest.h>

#include "wire.hpp"

using namespace slirpnet;

TEST(Wire, ConfigRoundTrip)
{
	OptionList in = { { "open", "" }, { "hostfwd", "tcp:127.0.0.1:2222-:22" }, { "mtu", "9000" } };
	std::vector<uint8_t> m = encodeConfig(in);
	OptionList out;
	std::string err;
	ASSERT_TRUE(decodeConfig(m.data(), m.size(), out, err)) << err;
	EXPECT_EQ(out, in);
}

TEST(Wire, ConfigRejectsGarbageAndOtherVersions)
{
	OptionList out;
	std::string err;
	const uint8_t junk[] = { 1, 2, 3, 4, 5, 6, 7 };
	EXPECT_FALSE(decodeConfig(junk, sizeof(junk), out, err));
	EXPECT_NE(err.find("malformed config"), std::string::npos) << err;

	GVariant *v = g_variant_ref_sink(g_variant_new_parsed("(@u 3, @a(ss) [])"));
	auto *p = static_cast<const uint8_t *>(g_variant_get_data(v));
	EXPECT_FALSE(decodeConfig(p, g_variant_get_size(v), out, err));
	EXPECT_NE(err.find("version 3"), std::string::npos) << err;
	g_variant_unref(v);
}

TEST(Wire, ConfigCarriesItsVersion)
{
	for (uint32_t version : { kWireVersionPlain, kWireVersionVnetHdr }) {
		auto m = encodeConfig({ { "mtu", "1500" } }, version);
		OptionList out;
		std::string err;
		uint32_t got = 0;
		ASSERT_TRUE(decodeConfig(m.data(), m.size(), out, err, &got)) << err;
		EXPECT_EQ(got, version);
	}
}

TEST(Wire, StatusRoundTrip)
{
	bool ok = true;
	std::string msg;
	auto m = encodeStatus(false, "mtu: bad value '1'");
	ASSERT_TRUE(decodeStatus(m.data(), m.size(), ok, msg));
	EXPECT_FALSE(ok);
	EXPECT_EQ(msg, "mtu: bad value '1'");
	m = encodeStatus(true, "");
	ASSERT_TRUE(decodeStatus(m.data(), m.size(), ok, msg));
	EXPECT_TRUE(ok);
	const uint8_t junk[] = { 0xff };
	EXPECT_FALSE(decodeStatus(junk, 0, ok, msg) && ok);
}
