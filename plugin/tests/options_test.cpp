// SPDX-License-Identifier: BSD-2-Clause
// options_test.cpp - the option table: every key with a good and a bad value, QEMU defaults, hostfwd forms.
#include <gtest/gtest.h>

#include <set>

#include "options.hpp"

using namespace slirpnet;

namespace {

bool parse(const std::string &text, Config &cfg, std::string &err)
{
	OptionList opts;
	return splitOptions(text, opts, err) && parseConfig(opts, cfg, err);
}

Config mustParse(const std::string &text)
{
	Config cfg;
	std::string err;
	EXPECT_TRUE(parse(text, cfg, err)) << text << ": " << err;
	return cfg;
}

std::string mustFail(const std::string &text)
{
	Config cfg;
	std::string err;
	EXPECT_FALSE(parse(text, cfg, err)) << text << " was accepted";
	return err;
}

std::string a4(in_addr a)
{
	return formatAddr(a);
}
std::string a6(const in6_addr &a)
{
	return formatAddr(a);
}

} // namespace

// One source of truth: every row of the table is exercised with its own examples.
TEST(OptionTable, EveryKeyAcceptsItsGoodExample)
{
	for (const auto &o : optionTable()) {
		std::string text = *o.goodExample ? std::string(o.key) + "=" + o.goodExample : o.key;
		Config cfg;
		std::string err;
		EXPECT_TRUE(parse(text, cfg, err)) << text << ": " << err;
	}
}

TEST(OptionTable, EveryKeyRejectsItsBadExampleNamingKeyAndValue)
{
	for (const auto &o : optionTable()) {
		if (!o.badExample)
			continue;
		std::string err = mustFail(std::string(o.key) + "=" + o.badExample);
		EXPECT_NE(err.find(o.key), std::string::npos) << err;
		// The value (or the offending part of it) is quoted in the message.
		EXPECT_NE(err.find('\''), std::string::npos) << err;
		std::string v = o.badExample;
		bool named = err.find(v) != std::string::npos;
		for (size_t p = 0; !named && p < v.size(); p++)
			named = err.find("'" + v.substr(p)) != std::string::npos;
		EXPECT_TRUE(named) << o.key << ": " << err;
	}
}

TEST(OptionTable, KeysAreUniqueAndHelpListsEveryKeyWithDefault)
{
	std::set<std::string> keys;
	std::string help = optionsHelp();
	for (const auto &o : optionTable()) {
		EXPECT_TRUE(keys.insert(o.key).second) << o.key;
		EXPECT_NE(help.find("  " + std::string(o.key)), std::string::npos) << o.key;
		EXPECT_NE(help.find(std::string("(default: ") + o.defaultText + ")"), std::string::npos) << o.key;
	}
}

TEST(Options, DefaultsAreQemus)
{
	Config c = mustParse("");
	EXPECT_EQ(a4(c.net), "10.0.2.0");
	EXPECT_EQ(a4(c.mask), "255.255.255.0");
	EXPECT_EQ(a4(c.host), "10.0.2.2");
	EXPECT_EQ(a4(c.dhcpStart), "10.0.2.15");
	EXPECT_EQ(a4(c.dns), "10.0.2.3");
	EXPECT_FALSE(c.restricted);
	EXPECT_TRUE(c.ipv4);
	EXPECT_TRUE(c.ipv6);
	EXPECT_EQ(a6(c.ipv6Prefix), "fec0::");
	EXPECT_EQ(c.ipv6PrefixLen, 64);
	EXPECT_EQ(a6(c.ipv6Host), "fec0::2");
	EXPECT_EQ(a6(c.ipv6Dns), "fec0::3");
	EXPECT_EQ(c.mtu, 1500u);
	EXPECT_EQ(c.mru, 1500u);
	EXPECT_EQ(c.maxFrame(), 1514u);
}

TEST(Options, NetDerivesHostDhcpAndDns)
{
	Config c = mustParse("net=192.168.76.0/24");
	EXPECT_EQ(a4(c.host), "192.168.76.2");
	EXPECT_EQ(a4(c.dhcpStart), "192.168.76.15");
	EXPECT_EQ(a4(c.dns), "192.168.76.3");
	c = mustParse("net=10.9.0.0/255.255.0.0,dhcpstart=10.9.0.50,host=10.9.1.1");
	EXPECT_EQ(a4(c.mask), "255.255.0.0");
	EXPECT_EQ(a4(c.dhcpStart), "10.9.0.50");
	EXPECT_EQ(a4(c.host), "10.9.1.1");
}

TEST(Options, NetDropsHostBitsAsQemu)
{
	Config c = mustParse("net=10.0.2.15/24");
	EXPECT_EQ(a4(c.net), "10.0.2.0");
	EXPECT_EQ(a4(c.host), "10.0.2.2");
}

TEST(Options, NetWithoutMaskIsClassful)
{
	EXPECT_EQ(a4(mustParse("net=10.0.0.0").mask), "255.0.0.0");
	EXPECT_EQ(a4(mustParse("net=172.16.0.0").mask), "255.240.0.0");
	EXPECT_EQ(a4(mustParse("net=192.168.0.0").mask), "255.255.0.0");
	EXPECT_EQ(a4(mustParse("net=198.18.0.0").mask), "255.254.0.0");
	EXPECT_EQ(a4(mustParse("net=192.0.2.0").mask), "255.255.255.0");
}

TEST(Options, AddressesMustBeInsideTheNetwork)
{
	EXPECT_NE(mustFail("host=10.0.3.2").find("host: '10.0.3.2'"), std::string::npos);
	EXPECT_NE(mustFail("dhcpstart=10.0.2.255").find("dhcpstart"), std::string::npos);
	EXPECT_NE(mustFail("dns=10.0.2.2").find("must differ from host"), std::string::npos);
	EXPECT_NE(mustFail("net=10.0.2.0/33").find("net: bad prefix length '33'"), std::string::npos);
	EXPECT_NE(mustFail("net=10.0.2.0/255.0.255.0").find("not contiguous"), std::string::npos);
	EXPECT_NE(mustFail("ipv6-host=fd00::2").find("ipv6-host: 'fd00::2' is not in fec0::/64"), std::string::npos);
}

TEST(Options, HostFwdQemuSyntax)
{
	Config c = mustParse("hostfwd=tcp:127.0.0.1:2222-:22,hostfwd=udp::5353-10.0.2.16:53,hostfwd=::8080-:80");
	ASSERT_EQ(c.hostFwds.size(), 3u);
	auto host0 = reinterpret_cast<const sockaddr_in *>(&c.hostFwds[0].host);
	auto guest0 = reinterpret_cast<const sockaddr_in *>(&c.hostFwds[0].guest);
	EXPECT_FALSE(c.hostFwds[0].udp);
	EXPECT_EQ(a4(host0->sin_addr), "127.0.0.1");
	EXPECT_EQ(ntohs(host0->sin_port), 2222);
	EXPECT_EQ(a4(guest0->sin_addr), "10.0.2.15"); // empty guest address: the DHCP start
	EXPECT_EQ(ntohs(guest0->sin_port), 22);
	EXPECT_TRUE(c.hostFwds[1].udp);
	auto host1 = reinterpret_cast<const sockaddr_in *>(&c.hostFwds[1].host);
	EXPECT_EQ(host1->sin_addr.s_addr, htonl(INADDR_ANY));
	EXPECT_EQ(a4(reinterpret_cast<const sockaddr_in *>(&c.hostFwds[1].guest)->sin_addr), "10.0.2.16");
	EXPECT_FALSE(c.hostFwds[2].udp); // empty protocol means tcp
}

TEST(Options, HostFwdGuestDefaultFollowsDhcpStart)
{
	Config c = mustParse("hostfwd=tcp::2222-:22,net=10.5.0.0/24,dhcpstart=10.5.0.40");
	EXPECT_EQ(a4(reinterpret_cast<const sockaddr_in *>(&c.hostFwds[0].guest)->sin_addr), "10.5.0.40");
}

TEST(Options, HostFwdBhyveSyntaxAndOpen)
{
	Config c = mustParse("hostfwd=tcp:127.0.0.1:2222-:22;udp:127.0.0.1:5353-:53,open");
	ASSERT_EQ(c.hostFwds.size(), 2u);
	EXPECT_TRUE(c.hostFwds[1].udp);
	EXPECT_FALSE(c.restricted);
	EXPECT_TRUE(mustParse("restrict=on").restricted);
	EXPECT_TRUE(mustParse("restrict=yes").restricted);
	EXPECT_TRUE(mustParse("restrict").restricted);
	EXPECT_FALSE(mustParse("restrict=on,open").restricted);
}

TEST(Options, HostFwdIpv6Brackets)
{
	Config c = mustParse("hostfwd=tcp:[::1]:2222-:22");
	EXPECT_EQ(c.hostFwds[0].host.ss_family, AF_INET6);
	EXPECT_EQ(c.hostFwds[0].guest.ss_family, AF_INET);
}

TEST(Options, HostFwdErrorsNameTheRule)
{
	EXPECT_EQ(mustFail("hostfwd=tcp::70000-:22"), "hostfwd: bad port '70000' in 'tcp::70000-:22'");
	EXPECT_EQ(mustFail("hostfwd=tcp::2222-:0"), "hostfwd: bad port '0' in 'tcp::2222-:0'");
	EXPECT_EQ(mustFail("hostfwd=sctp::1-:2"), "hostfwd: bad protocol 'sctp' (expected tcp or udp) in 'sctp::1-:2'");
	EXPECT_EQ(mustFail("hostfwd=foo"), "hostfwd: missing ':' separators in 'foo'");
	EXPECT_EQ(mustFail("hostfwd=tcp::22:22"), "hostfwd: missing '-' between host and guest in 'tcp::22:22'");
	EXPECT_EQ(mustFail("hostfwd=tcp:1.2.3:22-:22"), "hostfwd: bad host address '1.2.3' in 'tcp:1.2.3:22-:22'");
	EXPECT_EQ(mustFail("hostfwd=tcp::22-x:22"), "hostfwd: bad guest address 'x' in 'tcp::22-x:22'");
	// bhyve's form: the bad rule is named, not the whole value.
	EXPECT_EQ(mustFail("hostfwd=tcp::1-:2;tcp::x-:3"), "hostfwd: bad port 'x' in 'tcp::x-:3'");
}

TEST(Options, Ipv4Ipv6QemuQuirk)
{
	Config c = mustParse("ipv6=on");
	EXPECT_FALSE(c.ipv4);
	EXPECT_TRUE(c.ipv6);
	c = mustParse("ipv4=on");
	EXPECT_TRUE(c.ipv4);
	EXPECT_FALSE(c.ipv6);
	c = mustParse("ipv4=on,ipv6=on");
	EXPECT_TRUE(c.ipv4 && c.ipv6);
	c = mustParse("ipv6=off");
	EXPECT_TRUE(c.ipv4);
	EXPECT_FALSE(c.ipv6);
	EXPECT_NE(mustFail("ipv4=off,ipv6=off").find("both off"), std::string::npos);
}

TEST(Options, MtuAndMru)
{
	Config c = mustParse("mtu=9000");
	EXPECT_EQ(c.mtu, 9000u);
	EXPECT_EQ(c.mru, 9000u); // mru follows mtu unless given
	EXPECT_EQ(c.maxFrame(), 9014u);
	c = mustParse("mtu=65520,mru=1500");
	EXPECT_EQ(c.maxFrame(), 65534u);
	EXPECT_TRUE(mustParse("mtu=68,ipv6=off").mtu == 68);
	EXPECT_EQ(mustFail("mtu=67"), "mtu: bad value '67' (expected 68-65520)");
	EXPECT_EQ(mustFail("mtu=65521"), "mtu: bad value '65521' (expected 68-65520)");
	EXPECT_EQ(mustFail("mtu=abc"), "mtu: bad value 'abc' (expected 68-65520)");
	EXPECT_NE(mustFail("mtu=1000").find("1280"), std::string::npos); // IPv6 needs 1280
}

TEST(Options, StringsAndDomains)
{
	Config c = mustParse("hostname=vm1,domainname=example.test,dnssearch=a.test,dnssearch=b.test,"
			     "tftp=/,tftp-server-name=boot,bootfile=pxelinux.0");
	EXPECT_EQ(c.hostname, "vm1");
	EXPECT_EQ(c.domainName, "example.test");
	EXPECT_EQ(c.dnsSearch, (std::vector<std::string>{ "a.test", "b.test" }));
	EXPECT_EQ(c.tftpPath, "/");
	EXPECT_EQ(c.bootFile, "pxelinux.0");
	EXPECT_NE(mustFail("hostname=" + std::string(256, 'a')).find("too long"), std::string::npos);
	EXPECT_NE(mustFail("hostname").find("hostname: missing value"), std::string::npos);
}

TEST(Options, UnknownDuplicateAndEmpty)
{
	std::string e = mustFail("colour=blue");
	EXPECT_NE(e.find("colour: unknown option (value 'blue')"), std::string::npos) << e;
	EXPECT_NE(e.find("hostfwd"), std::string::npos) << e; // lists the known keys
	EXPECT_EQ(mustFail("mtu=1500,mtu=9000"), "mtu: given more than once (last value '9000')");
	EXPECT_EQ(mustFail("mtu=1500,"), "empty option in 'mtu=1500,'");
	EXPECT_EQ(mustFail(",open"), "empty option in ',open'");
}

TEST(Options, DoubleCommaEscapesAComma)
{
	OptionList opts;
	std::string err;
	ASSERT_TRUE(splitOptions("hostname=a,,b,mtu=9000,open", opts, err)) << err;
	EXPECT_EQ(opts, (OptionList{ { "hostname", "a,b" }, { "mtu", "9000" }, { "open", "" } }));
	opts.clear();
	ASSERT_TRUE(splitOptions("bootfile=x,,,open", opts, err)) << err;
	EXPECT_EQ(opts, (OptionList{ { "bootfile", "x," }, { "open", "" } }));
}

TEST(Options, Booleans)
{
	bool b;
	for (const char *t : { "on", "yes", "y", "true", "1", "ON", "True" }) {
		EXPECT_TRUE(parseBool(t, b) && b) << t;
	}
	for (const char *t : { "off", "no", "n", "false", "0", "OFF" }) {
		EXPECT_TRUE(parseBool(t, b) && !b) << t;
	}
	EXPECT_FALSE(parseBool("2", b));
	EXPECT_FALSE(parseBool("", b));
}

// Observability keys (capture, control socket) and the hostfwd helpers of the control socket.
TEST(Options, CaptureAndControlKeys)
{
	Config c = mustParse("");
	EXPECT_TRUE(c.pcapFile.empty());
	EXPECT_TRUE(c.pcapFilter.empty());
	EXPECT_EQ(c.snaplen, 65535u);
	EXPECT_TRUE(c.controlPath.empty());
	c = mustParse("pcap=/tmp/x.pcap,pcap-filter=(icmp or arp) and not port 22,snaplen=14,control=/tmp/c.sock");
	EXPECT_EQ(c.pcapFile, "/tmp/x.pcap");
	EXPECT_EQ(c.pcapFilter, "(icmp or arp) and not port 22");
	EXPECT_EQ(c.snaplen, 14u);
	EXPECT_EQ(c.controlPath, "/tmp/c.sock");
	EXPECT_EQ(mustParse("pcap=relative.pcap").pcapFile, "relative.pcap"); // the cwd exists
	EXPECT_EQ(mustParse("snaplen=262144").snaplen, 262144u);

	EXPECT_EQ(mustFail("snaplen=262145"), "snaplen: bad value '262145' (expected 14-262144)");
	EXPECT_EQ(mustFail("pcap=/nonexistent/dir/x.pcap"),
		  "pcap: no such directory '/nonexistent/dir' for '/nonexistent/dir/x.pcap'");
	EXPECT_EQ(mustFail("pcap=/tmp"), "pcap: '/tmp' is a directory");
	EXPECT_NE(mustFail("pcap=-").find("stdout"), std::string::npos);
	EXPECT_EQ(mustFail("pcap-filter=icmp)"), "pcap-filter: unbalanced parentheses in expression 'icmp)'");
	EXPECT_EQ(mustFail("pcap-filter=(icmp"), "pcap-filter: unbalanced parentheses in expression '(icmp'");
	EXPECT_NE(mustFail("pcap-filter=icmp\tor arp").find("control character"), std::string::npos);
	EXPECT_NE(mustFail("pcap-filter=" + std::string(5000, 'a')).find("too long"), std::string::npos);
	EXPECT_NE(mustFail("control=/tmp/" + std::string(120, 's')).find("too long"), std::string::npos);
	EXPECT_NE(mustFail("pcap").find("pcap: missing value"), std::string::npos);
}

TEST(HostFwdControl, KeyParsingAsQemusHostfwdRemove)
{
	HostFwd k;
	std::string err;
	ASSERT_TRUE(parseHostFwdKey("tcp:127.0.0.1:2222", k, err)) << err;
	EXPECT_FALSE(k.udp);
	auto h = reinterpret_cast<const sockaddr_in *>(&k.host);
	EXPECT_EQ(formatAddr(h->sin_addr), "127.0.0.1");
	EXPECT_EQ(ntohs(h->sin_port), 2222);
	ASSERT_TRUE(parseHostFwdKey("udp::53", k, err)) << err;
	EXPECT_TRUE(k.udp);
	EXPECT_EQ(reinterpret_cast<const sockaddr_in *>(&k.host)->sin_addr.s_addr, htonl(INADDR_ANY));
	ASSERT_TRUE(parseHostFwdKey(":[::1]:8080", k, err)) << err;
	EXPECT_EQ(k.host.ss_family, AF_INET6);

	EXPECT_FALSE(parseHostFwdKey("tcp:127.0.0.1:70000", k, err));
	EXPECT_EQ(err, "hostfwd: bad port '70000' in 'tcp:127.0.0.1:70000'");
	EXPECT_FALSE(parseHostFwdKey("sctp::1", k, err));
	EXPECT_FALSE(parseHostFwdKey("2222", k, err));
	EXPECT_FALSE(parseHostFwdKey("tcp:300.1.1.1:1", k, err));
	EXPECT_FALSE(parseHostFwdKey("tcp:127.0.0.1:1-:2", k, err)); // a whole rule is not a key
}

TEST(HostFwdControl, ResolveAndFormat)
{
	Config cfg = mustParse("net=10.5.0.0/24,dhcpstart=10.5.0.40");
	HostFwd f;
	std::string err;
	ASSERT_TRUE(parseHostFwd("tcp:127.0.0.1:2222-:22", f, err)) << err;
	ASSERT_TRUE(resolveHostFwd(f, cfg, err)) << err;
	EXPECT_EQ(formatHostFwd(f), "tcp:127.0.0.1:2222-10.5.0.40:22");
	ASSERT_TRUE(parseHostFwd("udp:[::1]:5353-10.5.0.41:53", f, err)) << err;
	ASSERT_TRUE(resolveHostFwd(f, cfg, err)) << err;
	EXPECT_EQ(formatHostFwd(f), "udp:[::1]:5353-10.5.0.41:53");
	Config v6only = mustParse("ipv6=on");
	ASSERT_TRUE(parseHostFwd("tcp::1-:2", f, err));
	EXPECT_FALSE(resolveHostFwd(f, v6only, err));
	EXPECT_NE(err.find("ipv4 is off"), std::string::npos) << err;
}
