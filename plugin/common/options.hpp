// SPDX-License-Identifier: BSD-2-Clause
// options.hpp - the one option table: QEMU -netdev user keys (plus bhyve's forms), parsing and help.
#pragma once

#include <arpa/inet.h>
#include <net/ethernet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "egress_rule.hpp"

namespace slirpnet {

// Options as given: (key, value) pairs in order; a bare keyword has an empty value.
using OptionList = std::vector<std::pair<std::string, std::string>>;

// One host forwarding rule, QEMU syntax [tcp|udp]:[hostaddr]:hostport-[guestaddr]:guestport.
struct HostFwd {
	bool udp = false;
	sockaddr_storage host{}; // AF_INET or AF_INET6 ([addr] in brackets)
	sockaddr_storage guest{}; // family AF_UNSPEC until resolved: the DHCP start address
	std::string rule; // the text it came from, for messages
};

// The parsed, validated configuration; field defaults are QEMU's.
struct Config {
	bool ipv4 = true;
	bool ipv6 = true;
	in_addr net{ htonl(0x0a000200) }; // 10.0.2.0, network byte order like libslirp
	in_addr mask{ htonl(0xffffff00) };
	in_addr host{};
	in_addr dhcpStart{};
	in_addr dns{};
	bool restricted = false;
	std::vector<HostFwd> hostFwds;
	std::string hostname;
	std::string domainName;
	std::vector<std::string> dnsSearch;
	std::string tftpPath;
	std::string tftpServerName;
	std::string bootFile;
	in6_addr ipv6Prefix{ { { 0xfe, 0xc0 } } }; // fec0::
	uint8_t ipv6PrefixLen = 64;
	in6_addr ipv6Host{};
	in6_addr ipv6Dns{};
	unsigned mtu = 1500;
	unsigned mru = 1500;

	// Observability (slirpnet's own keys, not QEMU's).
	std::string pcapFile; // capture every frame to this file from the start
	std::string pcapFilter; // BPF expression; also the default of capture-start
	unsigned snaplen = 65535; // bytes kept of each captured frame
	std::string controlPath; // UNIX socket of the JSON control interface
	unsigned sndbuf = 4u << 20; // send buffer of the link sockets (frames in flight)
	unsigned busyPollUs = 50; // keep polling this long after work before sleeping (busy_poll_loop.hpp)

	// Local sockets (README "Local sockets"): who may use --socket, --dgram and control=.
	std::string socketGroup; // socket-group=: files 0660 owned by this group; empty: 0600, owner only
	std::vector<uid_t> peerUids; // peer-uid=: allowed besides the helper's own uid and root
	// socket-keep-state=: a new --socket client inherits the previous one's connections
	// (by default they are reset when it connects: StreamServer::onAccept).
	bool socketKeepState = false;
	std::string dgramPeer; // dgram-peer=: the one address --dgram takes frames from (QEMU's local.path)
	uint64_t pcapMax = 0; // pcap-max=: a capture stops before its file exceeds this; 0: no limit
	// max-flows=: sockets libslirp may hold for the guest at once (packet/flow_limit.hpp);
	// RLIMIT_NOFILE is derived from it (sandbox.hpp).
	static constexpr unsigned kDefaultMaxFlows = 4096;
	static constexpr unsigned kMaxMaxFlows = 1u << 20;
	unsigned maxFlows = kDefaultMaxFlows;
	// frag-mem=, frag-timeout=: the helper's IP reassembly (packet/ip_reassembly.hpp), bounded
	// as Linux's ipfrag_high_thresh and ipfrag_time.
	static constexpr size_t kFragMemMin = 128 * 1024;
	static constexpr size_t kFragMemMax = 64u << 20;
	static constexpr unsigned kFragTimeoutMax = 600;
	size_t fragMem = 4u << 20;
	unsigned fragTimeoutSec = 30;

	// Egress (README "Egress policy"; the helper's packet/egress_policy.hpp applies it).
	bool hostLoopback = true; // loopback=: the gateway's addresses reach the host's 127.0.0.1/::1
	bool virtualDns = true; // dns=off: libslirp's DNS forwarder is off (its disable_dns)
	std::optional<in_addr> outboundAddr; // bind outgoing IPv4 sockets to this address
	std::optional<in6_addr> outboundAddr6;
	std::vector<EgressRule> egressRules; // allow=/deny= in the order given; first match wins
	bool egressDefaultDeny = false; // the verdict when no rule matches (QEMU: open)
	bool policyStrict = false; // policy=strict: the rules of egressStrictRules() go first

	// The helper's sandbox (helper/sandbox/sandbox.hpp): on unless sandbox=off, which is for debugging.
	bool sandbox = true;
	std::string user; // who a helper started as root becomes; "" = slirpnet if it exists, else nobody

	// The seccomp allowlist (helper/sandbox/seccomp_filter.hpp), part of the sandbox: seccomp=off
	// leaves it out; seccomp-log=on logs what it would refuse instead of killing the helper.
	bool seccomp = true;
	bool seccompLog = false;

	// Not an option: set by -S when libslirpnet speaks the virtio-net header wire
	// (virtio_net.hpp). libslirp then takes frames up to 64 KiB from the guest (its MRU is
	// large) and runs with a large MTU of its own from the start (Network::create), while
	// mtu/mru stay the guest link's.
	bool vnetHdr = false;

	// Largest Ethernet frame accepted from or sent to the guest (no FCS).
	size_t maxFrame() const { return (mtu > mru ? mtu : mru) + ETH_HLEN; }
	// libslirp's if_mru.
	unsigned slirpMru() const { return vnetHdr && mru < kLargeSlirpMtu ? kLargeSlirpMtu : mru; }
	static constexpr unsigned kLargeSlirpMtu = 65520;
};

// One row of the table; the same rows drive parsing, --help, the GOptionEntries and tests.
struct OptionSpec {
	const char *key;
	const char *metavar; // shown in --help, e.g. "ADDR[/MASK]"
	const char *defaultText; // shown in --help
	const char *help;
	bool repeatable;
	bool isBool; // may be given bare (key alone means on)
	const char *goodExample; // a valid value (tests)
	const char *badExample; // an invalid value (tests); nullptr if any string is valid
};

std::span<const OptionSpec> optionTable();

constexpr unsigned kMtuMin = 68;
constexpr unsigned kMtuMax = 65520;
// snaplen: an Ethernet header at least; at most libpcap's MAXIMUM_SNAPLEN.
constexpr unsigned kSnaplenMin = ETH_HLEN;
constexpr unsigned kSnaplenMax = 262144;
constexpr unsigned kBusyPollMaxUs = 10000; // 10 ms: beyond that it is just a spinning process

/*
 * Split "k=v,k=v,open" into pairs, appending to out. An empty item is an error. As in
 * QEMU, ",," stands for a comma inside a value; several hostfwd rules may also be
 * joined with ';' (bhyve).
 */
bool splitOptions(std::string_view text, OptionList &out, std::string &error);

/*
 * Validate options into cfg (which starts from defaults). On the first error returns
 * false with error naming the key, the value and the reason, e.g.
 * "hostfwd: bad port '70000' in 'tcp::70000-:22'".
 */
bool parseConfig(const OptionList &opts, Config &cfg, std::string &error);

// Text listing every option, its metavar, default and help (for --help and README).
std::string optionsHelp();

// Parsers shared with the control paths (also used by tests).
bool parseHostFwd(std::string_view rule, HostFwd &out, std::string &error);
bool parseBool(std::string_view text, bool &out);

/*
 * A BPF expression's shape, before libpcap compiles it: pcap-filter= and capture-start's
 * filter alike. At most kMaxPcapFilter bytes, no control characters, balanced
 * parentheses. error names the expression (the caller adds the key).
 */
constexpr size_t kMaxPcapFilter = 4096;
bool checkPcapFilterText(std::string_view expr, std::string &error);

/*
 * QEMU's hostfwd_remove key "[tcp|udp]:[hostaddr]:hostport" into out.udp and out.host
 * (an empty address is INADDR_ANY, as QEMU). Errors name the text like parseHostFwd.
 */
bool parseHostFwdKey(std::string_view key, HostFwd &out, std::string &error);

/*
 * Complete a parsed rule against the config: an empty guest address becomes the DHCP
 * start address. Fails for an IPv4 guest when IPv4 is off.
 */
bool resolveHostFwd(HostFwd &fwd, const Config &cfg, std::string &error);

// The canonical text of a (resolved) rule, e.g. "tcp:127.0.0.1:2222-10.0.2.15:22".
std::string formatHostFwd(const HostFwd &fwd);

/*
 * policy=strict's rules, which go before the user's (so an allow= cannot reopen them):
 * the guest network's aliases of the host (all but DNS and libslirp's DHCP/TFTP) for TCP
 * and UDP, 127.0.0.0/8, ::1, 169.254.0.0/16 and fe80::/10 for everything. Derived from the
 * resolved config (its gateway, DNS and prefixes).
 */
std::vector<EgressRule> egressStrictRules(const Config &cfg);

std::string formatAddr(const in_addr &a);
std::string formatAddr(const in6_addr &a);

} // namespace slirpnet
