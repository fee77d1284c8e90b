// SPDX-License-Identifier: BSD-2-Clause
// conn_info_test.cpp - the parser of libslirp's connection table (info-usernet rows).
#include <gtest/gtest.h>

#include "control/conn_info.hpp"

using namespace slirpnet;

// Verbatim shape of slirp_connection_info(): "%-19s %3d %15s %5d %15s %5d %5d %5d".
static const char kTable[] = "  Protocol[State]    FD  Source Address  Port   Dest. Address  Port RecvQ SendQ\n"
			     "  TCP[HOST_FORWARD]   13       127.0.0.1  2222       10.0.2.15    22     0     0\n"
			     "  TCP[ESTABLISHED]    14       10.0.2.15 40120        10.0.2.2  8080    12   345\n"
			     "  TCP[SYN_SENT]       -1       10.0.2.15 40121        10.0.2.2  8081     0     0\n"
			     "  UDP[HOST_FORWARD]   15               *  5353       10.0.2.15    53     0     0\n"
			     "  UDP[236 sec]        16       10.0.2.15 35061        10.0.2.2  5353     0     0\n"
			     "  ICMP[0 sec]         17       10.0.2.15  -            10.0.2.2  -        0     0\n";

TEST(ConnInfo, ParsesEveryRowKind)
{
	size_t skipped = 99;
	auto rows = parseConnectionInfo(kTable, &skipped);
	EXPECT_EQ(skipped, 0u);
	ASSERT_EQ(rows.size(), 6u);

	EXPECT_EQ(rows[0].protocol, "tcp");
	EXPECT_EQ(rows[0].state, "HOST_FORWARD");
	EXPECT_TRUE(rows[0].isHostForward());
	EXPECT_EQ(rows[0].fd, 13);
	EXPECT_EQ(rows[0].srcAddr, "127.0.0.1");
	EXPECT_EQ(rows[0].srcPort, 2222u);
	EXPECT_EQ(rows[0].dstAddr, "10.0.2.15");
	EXPECT_EQ(rows[0].dstPort, 22u);
	EXPECT_FALSE(rows[0].expiresSec);

	EXPECT_EQ(rows[1].state, "ESTABLISHED");
	EXPECT_FALSE(rows[1].isHostForward());
	EXPECT_EQ(rows[1].recvQ, 12u);
	EXPECT_EQ(rows[1].sendQ, 345u);

	EXPECT_EQ(rows[2].fd, -1); // no host socket yet
	EXPECT_EQ(rows[3].protocol, "udp");
	EXPECT_EQ(rows[3].srcAddr, "*");

	EXPECT_EQ(rows[4].protocol, "udp");
	EXPECT_TRUE(rows[4].state.empty());
	ASSERT_TRUE(rows[4].expiresSec);
	EXPECT_EQ(*rows[4].expiresSec, 236);

	EXPECT_EQ(rows[5].protocol, "icmp");
	EXPECT_FALSE(rows[5].srcPort);
	EXPECT_FALSE(rows[5].dstPort);
	EXPECT_EQ(rows[5].dstAddr, "10.0.2.2");
	EXPECT_EQ(*rows[5].expiresSec, 0);
}

TEST(ConnInfo, HeaderOnlyAndEmpty)
{
	size_t skipped = 99;
	const char *header = "  Protocol[State]    FD  Source Address  Port   Dest. Address  Port RecvQ SendQ\n";
	EXPECT_TRUE(parseConnectionInfo(header, &skipped).empty());
	EXPECT_EQ(skipped, 0u);
	EXPECT_TRUE(parseConnectionInfo("", &skipped).empty());
	EXPECT_EQ(skipped, 0u);
}

TEST(ConnInfo, NegativeExpiryAndNoTrailingNewline)
{
	auto rows = parseConnectionInfo(
		"  UDP[-3 sec]        16       10.0.2.15 35061        10.0.2.2  5353     0     0");
	ASSERT_EQ(rows.size(), 1u);
	EXPECT_EQ(*rows[0].expiresSec, -3);
}

TEST(ConnInfo, MalformedLinesAreSkippedAndCounted)
{
	const char *bad[] = {
		"  TCP[ESTABLISHED]    14       10.0.2.15 40120        10.0.2.2  8080    12", // short
		"  TCP[ESTABLISHED]    14       10.0.2.15 70000        10.0.2.2  8080     0     0", // port
		"  SCTP[ESTABLISHED]   14       10.0.2.15 40120        10.0.2.2  8080     0     0", // proto
		"  TCP[]               14       10.0.2.15 40120        10.0.2.2  8080     0     0", // state
		"  UDP[x sec]          14       10.0.2.15 40120        10.0.2.2  8080     0     0", // expiry
		"  TCP[ESTABLISHED]    xx       10.0.2.15 40120        10.0.2.2  8080     0     0", // fd
		"  TCP[ESTABLISHED]    14       host!name 40120        10.0.2.2  8080     0     0", // address
		"  TCP ESTABLISHED     14       10.0.2.15 40120        10.0.2.2  8080     0     0", // brackets
		"garbage",
	};
	for (const char *line : bad) {
		ConnInfo c;
		EXPECT_FALSE(parseConnectionLine(line, c)) << line;
		size_t skipped = 0;
		EXPECT_TRUE(parseConnectionInfo(std::string(line) + "\n", &skipped).empty()) << line;
		EXPECT_EQ(skipped, 1u) << line;
	}
	// Good rows around a bad one still come through.
	std::string mixed = std::string(kTable) + "junk line\n";
	size_t skipped = 0;
	EXPECT_EQ(parseConnectionInfo(mixed, &skipped).size(), 6u);
	EXPECT_EQ(skipped, 1u);
}
