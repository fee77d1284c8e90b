// SPDX-License-Identifier: BSD-2-Clause
// network.cpp - one libslirp network built from a Config: guest frames in, frames out to a guest link.
#include "network.hpp"

#include <cerrno>
#include <cstring>

#include <algorithm>

#include "byte_order.hpp"
#include "ethernet.hpp"
#include "link/guest_link.hpp"
#include "packet/dhcp_mtu.hpp"
#include "packet/reject.hpp"
#include "packet/vnet_hdr.hpp"

namespace slirpnet {

// Cheap test on the path of every frame: UDP over IPv4 from port 67 to port 68.
static bool isDhcpServerReply(const uint8_t *f, size_t len)
{
	if (len < kEthHeaderLen + kIpv4MinHeaderLen + kUdpHeaderLen || etherType(f) != ETHERTYPE_IP ||
	    f[kEthHeaderLen + offsetof(struct ip, ip_p)] != IPPROTO_UDP)
		return false;
	size_t udp = kEthHeaderLen + (f[kEthHeaderLen] & 0x0f) * 4u;
	return len >= udp + 8 && f[udp] == 0 && f[udp + 1] == 67 && f[udp + 2] == 0 && f[udp + 3] == 68;
}

Network::Network(const Config &cfg, GMainContext *ctx)
	: cfg_(cfg), ctx_(ctx ? g_main_context_ref(ctx) : g_main_context_ref_thread_default()),
	  reassembly_(IpReassembly::Limits{ cfg.fragMem, int64_t{ cfg.fragTimeoutSec } * 1000 }), egress_(cfg),
	  flowLimit_(cfg.maxFlows, FlowLimit::Addresses{ cfg.host, cfg.dns, cfg.ipv6Host, cfg.ipv6Dns }),
	  dhcpBuf_(cfg.maxFrame())
{
}

Network::~Network() = default;

std::unique_ptr<Network> Network::create(const Config &cfg, GMainContext *ctx, std::string &error)
{
	std::unique_ptr<Network> n(new Network(cfg, ctx));
	const Config &c = n->cfg_;

	// libpcap checks the filter here (the option parser only checks its shape), so a bad
	// one fails start-up even when no capture runs yet: it is capture-start's default.
	if (!c.pcapFilter.empty() && !Capture::checkFilter(c.pcapFilter, c.snaplen, error))
		return nullptr;

	// libslirp starts once and is never restarted (a restart would close and re-bind
	// every hostfwd listener). On a link that can negotiate offloads it runs at a large
	// MTU from the start; the link then sends each of its segments to the guest whole
	// (GSO) or cut to the link MTU, per frame, as the guest's features say.
	if (!n->startSlirp(c.vnetHdr ? std::max(c.mtu, Config::kLargeSlirpMtu) : c.mtu, error))
		return nullptr;
	n->fwds_ = std::make_unique<HostFwdTable>(n->cfg_, n->driver_->slirp());

	for (const auto &f : c.hostFwds) {
		unsigned id;
		if (!n->fwds_->add(f, true, id, error))
			return nullptr;
	}

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
	sc.disable_host_loopback = !c.hostLoopback;
	sc.disable_dns = !c.virtualDns;
	if (c.outboundAddr) {
		outboundAddr_.sin_family = AF_INET;
		outboundAddr_.sin_addr = *c.outboundAddr;
		sc.outbound_addr = &outboundAddr_;
	}
	if (c.outboundAddr6) {
		outboundAddr6_.sin6_family = AF_INET6;
		outboundAddr6_.sin6_addr = *c.outboundAddr6;
		sc.outbound_addr6 = &outboundAddr6_;
	}

	driver_ = SlirpDriver::create(
		sc, ctx_.get(), [this](const uint8_t *frame, size_t len) { return toGuest(frame, len); }, error);
	if (!driver_)
		return false;
	slirpMtu_ = mtu;
	driver_->setMaxFlows(cfg_.maxFlows);
	driver_->setFlowClosed([this](int fd) { flowLimit_.closed(fd); });
	driver_->setAfterDispatch([this] {
		if (link_)
			link_->flush();
	});
	return true;
}

void Network::forgetGuestConnections()
{
	size_t n = driver_->resetGuestConnections();
	stats_.guestResets++;
	g_message("new guest: reset %zu TCP connection(s) of the previous one", n);
}

ssize_t Network::toGuest(const uint8_t *frame, size_t len)
{
	if (driver_ && driver_->resetSettling()) {
		// The RSTs libslirp sends while it drops the reset connections are for the old
		// guest: the new one must not see them (nor anything else of the old guest's).
		stats_.dropToGuestError++;
		return static_cast<ssize_t>(len);
	}
	if (!link_) {
		stats_.dropToGuestError++;
		return static_cast<ssize_t>(len);
	}
	if (cfg_.mtu != 1500 && isDhcpServerReply(frame, len) && len <= dhcpBuf_.size()) {
		// Maybe a DHCP reply: announce the MTU in a copy (libslirp's is const).
		std::copy(frame, frame + len, dhcpBuf_.begin());
		if (addDhcpMtuOption(dhcpBuf_.data(), len, static_cast<uint16_t>(cfg_.mtu)))
			frame = dhcpBuf_.data();
	}
	timeWait_.toGuest(frame, len);
	if (link_->sendFrame(frame, len) >= 0)
		notify(FrameDirection::ToGuest, frame, len);
	// The link has counted any drop; libslirp would only log a critical for each (its
	// contract allows dropping: TCP retransmits), so report the frame as taken.
	return static_cast<ssize_t>(len);
}

void Network::addObserver(FrameObserver *o)
{
	observers_.push_back(o);
}

void Network::removeObserver(FrameObserver *o)
{
	std::erase(observers_, o);
}

bool Network::startCapture(const CaptureSettings &s, std::string &error)
{
	if (capture_) {
		error = "pcap: a capture to '" + capture_->settings().path + "' is already running";
		return false;
	}
	CaptureSettings settings = s;
	if (!settings.maxBytes)
		settings.maxBytes = cfg_.pcapMax; // pcap-max= bounds pcap= and capture-start alike
	capture_ = Capture::open(settings, ctx_.get(), error);
	if (capture_)
		addObserver(capture_.get());
	return capture_ != nullptr;
}

bool Network::stopCapture(std::string &error)
{
	if (!capture_) {
		error = "pcap: no capture is running";
		return false;
	}
	removeObserver(capture_.get());
	capture_.reset();
	return true;
}

void Network::toGuestBackpressure(size_t queued, size_t capacity)
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
	notify(FrameDirection::FromGuest, frame, len);
	if (len < kEthHeaderLen) {
		stats_.dropRunt++;
		g_debug("dropped a %zu-byte runt frame from the guest", len);
		return;
	}
	if (len > (tsoSegment ? kMaxGsoFrame : cfg_.maxFrame())) {
		stats_.dropOversize++;
		g_debug("dropped a %zu-byte frame from the guest (limit %zu)", len, cfg_.maxFrame());
		return;
	}
	// Fragments are reassembled here (packet/ip_reassembly.hpp): libslirp 4.7's own
	// reassembly crashes on fragments in an order it does not expect, so it sees whole
	// datagrams only, and the egress policy judges the whole datagram, ports included.
	unsigned frames = 1;
	size_t frameBytes = len;
	if (IpReassembly::Verdict v = reassembly_.input(frame, len, driver_->nowMs());
	    v != IpReassembly::Verdict::Pass) {
		syncFragStats();
		if (v != IpReassembly::Verdict::Complete)
			return; // held, or dropped and counted
		frame = reassembly_.datagram();
		len = reassembly_.datagramLen();
		frames = reassembly_.datagramFrames();
		frameBytes = reassembly_.datagramFrameBytes();
	}
	if (!egress_.open() && !egressAdmits(frame, len, frames))
		return;
	if (driver_->flowCount() >= flowLimit_.max() && !flowAdmits(frame, len, frames))
		return;
	stats_.fromGuestFrames += frames;
	stats_.fromGuestBytes += frameBytes;
	stats_.fromGuestGso += tsoSegment;
	driver_->input(frame, len);
	if (driver_->lastInputFlow() >= 0)
		flowOpened(frame, len);
	if (timeWait_.fromGuest(frame, len, reapBuf_))
		driver_->input(reapBuf_.data(), reapBuf_.size());
}

void Network::syncFragStats()
{
	// The reassembly keeps its own counts (in guest frames); they are the only source of these.
	const IpReassembly::Counters &c = reassembly_.counters();
	stats_.dropFragment = c.malformed;
	stats_.dropFragOverlap = c.overlap;
	stats_.dropFragTimeout = c.timeout;
	stats_.dropFragLimit = c.limit;
	stats_.fragReassembled = c.reassembled;
	stats_.fragHeld = reassembly_.heldFrames();
	stats_.fragHeldBytes = reassembly_.heldBytes();
}

void Network::inputBatchDone()
{
	driver_->flushInput();
	// A batch of refused packets only never starts libslirp's dispatch, whose end flushes.
	if (rejectPending_) {
		rejectPending_ = false;
		if (link_)
			link_->flush();
	}
}

bool Network::egressAdmits(const uint8_t *frame, size_t len, unsigned frames)
{
	EgressPacket p;
	EgressClass c = classifyEgress(frame, len, cfg_.host, p);
	if (c == EgressClass::Exempt)
		return true;
	if (c == EgressClass::Drop) {
		stats_.dropEgressIcmp += frames;
		g_debug("egress: dropped an IP fragment (reassembly hands on whole datagrams only)");
		return false;
	}
	if (egress_.decide(p) == EgressVerdict::Allow)
		return true;
	(p.proto == kEgressTcp   ? stats_.dropEgressTcp
	 : p.proto == kEgressUdp ? stats_.dropEgressUdp
				 : stats_.dropEgressIcmp) += frames;
	if (g_log_writer_default_would_drop(G_LOG_LEVEL_DEBUG, G_LOG_DOMAIN) == FALSE) {
		char dst[INET6_ADDRSTRLEN];
		inet_ntop(p.v6 ? AF_INET6 : AF_INET, p.dst, dst, sizeof(dst));
		g_debug("egress: refused %s to %s port %u",
			p.proto == kEgressTcp   ? "TCP"
			: p.proto == kEgressUdp ? "UDP"
						: "ICMP echo",
			dst, p.port);
	}
	// Answered as libslirp's own frames are, so the capture and the link's counters see it.
	if (buildReject(frame, len, p, cfg_.host, cfg_.ipv6Host, rejectBuf_)) {
		toGuest(rejectBuf_.data(), rejectBuf_.size());
		rejectPending_ = true;
	}
	return false;
}

bool Network::flowAdmits(const uint8_t *frame, size_t len, unsigned frames)
{
	EgressPacket p;
	if (classifyEgress(frame, len, cfg_.host, p) != EgressClass::Check ||
	    flowLimit_.admits(frame, len, p, driver_->flowCount()) || isUdpHostFwdReply(frame, len, p))
		return true;
	(p.proto == kEgressTcp   ? stats_.dropFlowLimitTcp
	 : p.proto == kEgressUdp ? stats_.dropFlowLimitUdp
				 : stats_.dropFlowLimitIcmp) += frames;
	int64_t now = driver_->nowMs();
	if (flowLimitLogMs_ < 0 || now - flowLimitLogMs_ >= 1000) {
		flowLimitLogMs_ = now;
		g_debug("max-flows=%zu reached: refusing the guest's new flows (drop_flow_limit_tcp=%" G_GUINT64_FORMAT
			" udp=%" G_GUINT64_FORMAT " icmp=%" G_GUINT64_FORMAT ")",
			flowLimit_.max(), stats_.dropFlowLimitTcp, stats_.dropFlowLimitUdp, stats_.dropFlowLimitIcmp);
	}
	// Answered as a refusal of the egress policy is: a RST, or an ICMP unreachable.
	if (buildReject(frame, len, p, cfg_.host, cfg_.ipv6Host, rejectBuf_)) {
		toGuest(rejectBuf_.data(), rejectBuf_.size());
		rejectPending_ = true;
	}
	return false;
}

bool Network::isUdpHostFwdReply(const uint8_t *frame, size_t len, const EgressPacket &p) const
{
	// A guest's datagram from the address and port a UDP hostfwd rule forwards to goes out
	// through that rule's socket (libslirp matches it by source): it opens no flow.
	if (p.proto != kEgressUdp)
		return false;
	const uint8_t *ip = frame + p.l3;
	size_t l4 = p.l3 + (p.v6 ? kIpv6HeaderLen : (ip[0] & 0x0fu) * 4u);
	if (l4 + 2 > len)
		return false;
	uint16_t sport = loadBe16(frame + l4);
	for (const HostFwdEntry &e : fwds_->entries()) {
		const sockaddr_storage &g = e.fwd.guest;
		if (!e.fwd.udp)
			continue;
		if (!p.v6 && g.ss_family == AF_INET) {
			auto *a = reinterpret_cast<const sockaddr_in *>(&g);
			if (ntohs(a->sin_port) == sport && std::memcmp(&a->sin_addr, ip + 12, 4) == 0)
				return true;
		} else if (p.v6 && g.ss_family == AF_INET6) {
			auto *a = reinterpret_cast<const sockaddr_in6 *>(&g);
			if (ntohs(a->sin6_port) == sport && std::memcmp(&a->sin6_addr, ip + 8, 16) == 0)
				return true;
		}
	}
	return false;
}

void Network::flowOpened(const uint8_t *frame, size_t len)
{
	// Once per new flow: only UDP ones are remembered (by their guest source).
	EgressPacket p;
	if (classifyEgress(frame, len, cfg_.host, p) == EgressClass::Check)
		flowLimit_.opened(frame, len, p, driver_->lastInputFlow());
}

} // namespace slirpnet
