// network.cpp - one libslirp network built from a Config: guest frames in, frames out to a link.
#include "network.hpp"

#include <cerrno>
#include <cstring>

namespace slirpnet {

static socklen_t addrLen(const sockaddr_storage &ss)
{
	return ss.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
}

std::unique_ptr<Network> Network::create(const Config &cfg, GMainContext *ctx,
					 SlirpDriver::PacketSink sink, std::string &error)
{
	std::unique_ptr<Network> n(new Network(cfg));
	const Config &c = n->cfg_;

	std::vector<const char *> search;
	for (const auto &s : c.dnsSearch)
		search.push_back(s.c_str());
	search.push_back(nullptr);
	auto orNull = [](const std::string &s) { return s.empty() ? nullptr : s.c_str(); };

	SlirpConfig sc{};
	sc.version = 4;
	sc.restricted = c.restricted;
	sc.in_enabled = c.ipv4;
	sc.vnetwork = c.net;
	sc.vnetmask = c.mask;
	sc.vhost = c.host;
	sc.in6_enabled = c.ipv6;
	sc.vprefix_addr6 = c.ipv6Prefix;
	sc.vprefix_len = c.ipv6PrefixLen;
	sc.vhost6 = c.ipv6Host;
	sc.vhostname = orNull(c.hostname);
	sc.tftp_server_name = orNull(c.tftpServerName);
	sc.tftp_path = orNull(c.tftpPath);
	sc.bootfile = orNull(c.bootFile);
	sc.vdhcp_start = c.dhcpStart;
	sc.vnameserver = c.dns;
	sc.vnameserver6 = c.ipv6Dns;
	sc.vdnssearch = c.dnsSearch.empty() ? nullptr : search.data();
	sc.vdomainname = orNull(c.domainName);
	sc.if_mtu = c.mtu;
	sc.if_mru = c.mru;
	sc.enable_emu = false;

	n->driver_ = SlirpDriver::create(sc, ctx, std::move(sink), error);
	if (!n->driver_)
		return nullptr;

	for (const auto &f : c.hostFwds) {
		errno = 0;
		int r = slirp_add_hostxfwd(n->driver_->slirp(),
					   reinterpret_cast<const sockaddr *>(&f.host), addrLen(f.host),
					   reinterpret_cast<const sockaddr *>(&f.guest), addrLen(f.guest),
					   f.udp ? SLIRP_HOSTFWD_UDP : 0);
		if (r < 0) {
			error = "hostfwd: could not set up '" + f.rule + "'" +
				(errno ? std::string(": ") + strerror(errno) : std::string());
			return nullptr;
		}
		g_debug("hostfwd %s", f.rule.c_str());
	}
	return n;
}

void Network::fromGuest(const uint8_t *frame, size_t len)
{
	if (len < 14) {
		stats_.dropRunt++;
		g_debug("dropped a %zu-byte runt frame from the guest", len);
		return;
	}
	if (len > cfg_.maxFrame()) {
		stats_.dropOversize++;
		g_debug("dropped a %zu-byte frame from the guest (limit %zu)", len, cfg_.maxFrame());
		return;
	}
	stats_.rxFrames++;
	stats_.rxBytes += len;
	driver_->input(frame, len);
}

} // namespace slirpnet
