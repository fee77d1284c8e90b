// network.cpp - one libslirp network built from a Config: guest frames in, frames out to a link.
#include "network.hpp"

#include <cerrno>
#include <cstring>

#include <algorithm>

#include "control/control_server.hpp"
#include "packet/dhcp_mtu.hpp"
#include "control/conn_info.hpp"
#include "control/control_commands.hpp"
#include "packet/vnet_hdr.hpp"

namespace slirpnet {

static socklen_t addrLen(const sockaddr_storage &ss)
{
	return ss.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
}

static bool sameHost(const HostFwd &a, const HostFwd &b)
{
	if (a.udp != b.udp || a.host.ss_family != b.host.ss_family)
		return false;
	if (a.host.ss_family == AF_INET6) {
		auto *x = reinterpret_cast<const sockaddr_in6 *>(&a.host);
		auto *y = reinterpret_cast<const sockaddr_in6 *>(&b.host);
		return x->sin6_port == y->sin6_port && IN6_ARE_ADDR_EQUAL(&x->sin6_addr, &y->sin6_addr);
	}
	auto *x = reinterpret_cast<const sockaddr_in *>(&a.host);
	auto *y = reinterpret_cast<const sockaddr_in *>(&b.host);
	return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
}

// Cheap test on the path of every frame: UDP over IPv4 from port 67 to port 68.
static bool isDhcpServerReply(const uint8_t *f, size_t len)
{
	if (len < 14 + 20 + 8 || f[12] != 0x08 || f[13] != 0x00 || f[14 + 9] != 17)
		return false;
	size_t udp = 14 + (f[14] & 0x0f) * 4u;
	return len >= udp + 8 && f[udp] == 0 && f[udp + 1] == 67 && f[udp + 2] == 0 && f[udp + 3] == 68;
}

Network::Network(const Config &cfg, GMainContext *ctx)
	: cfg_(cfg), ctx_(ctx ? g_main_context_ref(ctx) : g_main_context_ref_thread_default()),
	  dhcpBuf_(cfg.maxFrame())
{
}

Network::~Network() = default;

std::unique_ptr<Network> Network::create(const Config &cfg, GMainContext *ctx,
					 SlirpDriver::PacketSink sink, std::string &error)
{
	std::unique_ptr<Network> n(new Network(cfg, ctx));
	const Config &c = n->cfg_;

	// libpcap checks the filter here (the option parser only checks its shape), so a bad
	// one fails start-up even when no capture runs yet: it is capture-start's default.
	if (!c.pcapFilter.empty() && !Capture::checkFilter(c.pcapFilter, c.snaplen, error))
		return nullptr;

	// Frames to the guest are captured once the link has taken them (see network.hpp).
	Network *self = n.get();
	n->toGuest_ = [self, sink = std::move(sink)](const uint8_t *frame, size_t len) -> ssize_t {
		if (self->cfg_.mtu != 1500 && isDhcpServerReply(frame, len) && len <= self->dhcpBuf_.size()) {
			// Maybe a DHCP reply: announce the MTU in a copy (libslirp's is const).
			std::copy(frame, frame + len, self->dhcpBuf_.begin());
			if (addDhcpMtuOption(self->dhcpBuf_.data(), len, static_cast<uint16_t>(self->cfg_.mtu)))
				frame = self->dhcpBuf_.data();
		}
		ssize_t r = sink(frame, len);
		if (r >= 0 && self->capture_)
			self->capture_->write(frame, len);
		// The link has counted any drop; libslirp would only log a critical for each
		// (its contract allows dropping: TCP retransmits), so report the frame as taken.
		return static_cast<ssize_t>(len);
	};
	if (!n->startSlirp(c.mtu, error))
		return nullptr;

	for (const auto &f : c.hostFwds) {
		unsigned id;
		if (!n->addHostFwd(f, id, error))
			return nullptr;
		n->fwds_.back().fromConfig = true;
	}

	if (!c.controlPath.empty()) {
		n->control_ = ControlServer::create(c.controlPath, ctx,
						    [self](std::string_view line) { return handleControlRequest(*self, line); },
						    error);
		if (!n->control_)
			return nullptr;
	}
	// Last, so that a failed start-up leaves no capture file behind. libslirp sends
	// nothing before the loop runs.
	if (!c.pcapFile.empty() && !n->startCapture({ c.pcapFile, c.pcapFilter, c.snaplen }, error))
		return nullptr;
	return n;
}

bool Network::startSlirp(unsigned mtu, std::string &error)
{
	const Config &c = cfg_;
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
	sc.if_mtu = mtu;
	sc.if_mru = c.slirpMru();
	sc.enable_emu = false;

	driver_ = SlirpDriver::create(sc, ctx_.get(), toGuest_, error);
	if (!driver_)
		return false;
	slirpMtu_ = mtu;
	driver_->setAfterDispatch([this] {
		if (txFlush_)
			txFlush_();
	});
	return true;
}

bool Network::useLargeSegments(bool on)
{
	unsigned want = on ? std::max(cfg_.mtu, Config::kLargeSlirpMtu) : cfg_.mtu;
	if (want == slirpMtu_)
		return true;
	// libslirp's MTU is fixed when it starts, so it is restarted; only while the guest
	// has no connection (a guest negotiates offloads when its driver starts, before any
	// traffic). libslirp lists its IPv4 sockets only.
	char *text = slirp_connection_info(driver_->slirp());
	auto rows = parseConnectionInfo(text ? text : "");
	g_free(text);
	for (const auto &r : rows) {
		if (!r.isHostForward()) {
			g_message("offloads changed while the guest has connections: libslirp keeps MTU %u", slirpMtu_);
			return false;
		}
	}
	bool paused = driver_->hostInputPaused();
	unsigned old = slirpMtu_;
	driver_.reset(); // closes the hostfwd listeners, so they can be opened again
	std::string error;
	if (!startSlirp(want, error)) {
		g_critical("restarting libslirp with MTU %u: %s; keeping MTU %u", want, error.c_str(), old);
		if (!startSlirp(old, error))
			g_error("restarting libslirp: %s", error.c_str()); // nothing left to run
	}
	for (const auto &e : fwds_)
		if (!installHostFwd(e.fwd))
			g_critical("hostfwd %u '%s' could not be set up again after a restart: %s", e.id,
				   formatHostFwd(e.fwd).c_str(), strerror(errno));
	driver_->setHostInputPaused(paused);
	g_info("libslirp restarted with MTU %u: the guest %s large TCP segments", slirpMtu_,
	       on ? "takes" : "no longer takes");
	return slirpMtu_ == want;
}

bool Network::installHostFwd(const HostFwd &f)
{
	return slirp_add_hostxfwd(driver_->slirp(), reinterpret_cast<const sockaddr *>(&f.host), addrLen(f.host),
				  reinterpret_cast<const sockaddr *>(&f.guest), addrLen(f.guest),
				  f.udp ? SLIRP_HOSTFWD_UDP : 0) == 0;
}

bool Network::addHostFwd(HostFwd f, unsigned &id, std::string &error)
{
	if (!resolveHostFwd(f, cfg_, error))
		return false;
	errno = 0;
	if (!installHostFwd(f)) {
		error = "hostfwd: could not set up '" + f.rule + "'" +
			(errno ? std::string(": ") + strerror(errno) : std::string());
		return false;
	}
	id = nextFwdId_++;
	g_debug("hostfwd %u: %s", id, formatHostFwd(f).c_str());
	fwds_.push_back({ id, std::move(f), false });
	return true;
}

bool Network::removeHostFwd(unsigned id, HostFwdEntry &removed, std::string &error)
{
	for (auto it = fwds_.begin(); it != fwds_.end(); ++it) {
		if (it->id != id)
			continue;
		const HostFwd &f = it->fwd;
		if (slirp_remove_hostxfwd(driver_->slirp(), reinterpret_cast<const sockaddr *>(&f.host),
					  addrLen(f.host), f.udp ? SLIRP_HOSTFWD_UDP : 0) < 0) {
			error = "hostfwd: libslirp has no listener for rule " + std::to_string(id) + " '" +
				formatHostFwd(f) + "'";
			return false;
		}
		g_debug("hostfwd %u removed: %s", id, formatHostFwd(f).c_str());
		removed = std::move(*it);
		fwds_.erase(it);
		return true;
	}
	error = "hostfwd: no rule with id " + std::to_string(id);
	return false;
}

bool Network::removeHostFwd(const HostFwd &key, HostFwdEntry &removed, std::string &error)
{
	for (const auto &e : fwds_)
		if (sameHost(e.fwd, key))
			return removeHostFwd(e.id, removed, error);
	error = "hostfwd: no rule for '" + key.rule + "'";
	return false;
}

bool Network::startCapture(const CaptureSettings &s, std::string &error)
{
	if (capture_) {
		error = "pcap: a capture to '" + capture_->settings().path + "' is already running";
		return false;
	}
	capture_ = Capture::open(s, ctx_.get(), error);
	return capture_ != nullptr;
}

bool Network::stopCapture(std::string &error)
{
	if (!capture_) {
		error = "pcap: no capture is running";
		return false;
	}
	capture_.reset();
	return true;
}

size_t Network::controlClients() const
{
	return control_ ? control_->clientCount() : 0;
}

void Network::updateBackpressure(size_t queued, size_t capacity)
{
	if (!driver_->hostInputPaused() && queued * 2 > capacity) {
		stats_.pauses++;
		driver_->setHostInputPaused(true);
	} else if (driver_->hostInputPaused() && queued * 8 < capacity) {
		driver_->setHostInputPaused(false);
	}
}

void Network::droppedOversize(size_t len)
{
	stats_.dropOversize++;
	g_debug("dropped a %zu-byte frame from the guest (limit %zu)", len, cfg_.maxFrame());
}

void Network::fromGuest(const uint8_t *frame, size_t len, bool tsoSegment)
{
	// Captured before the checks: a runt or oversized frame is what one wants to see.
	if (capture_)
		capture_->write(frame, len);
	if (len < 14) {
		stats_.dropRunt++;
		g_debug("dropped a %zu-byte runt frame from the guest", len);
		return;
	}
	if (len > (tsoSegment ? kMaxGsoFrame : cfg_.maxFrame())) {
		stats_.dropOversize++;
		g_debug("dropped a %zu-byte frame from the guest (limit %zu)", len, cfg_.maxFrame());
		return;
	}
	if (!fragGuard_.admit(frame, len, driver_->nowMs())) {
		stats_.dropFragment++;
		g_debug("dropped an IPv4 fragment whose first fragment was not seen");
		return;
	}
	stats_.fromGuestFrames++;
	stats_.fromGuestBytes += len;
	stats_.fromGuestGso += tsoSegment;
	driver_->input(frame, len);
}

} // namespace slirpnet
