// SPDX-License-Identifier: BSD-2-Clause
// network.hpp - one libslirp network built from a Config: guest frames in, frames out to a guest link.
#pragma once

#include <glib.h>

#include <memory>
#include <string>
#include <vector>

#include "control/capture.hpp"
#include "frame_observer.hpp"
#include "guest_port.hpp"
#include "host_fwd_table.hpp"
#include "options.hpp"
#include "packet/egress_policy.hpp"
#include "packet/flow_limit.hpp"
#include "packet/ip_reassembly.hpp"
#include "slirp_driver.hpp"
#include "stats.hpp"

namespace slirpnet {

class GuestLink;

/*
 * libslirp (through SlirpDriver), started once for the helper's life, and what sits on
 * the path of every frame: the size checks, IP reassembly, the DHCP MTU rewrite,
 * the counters, and the frame observers (the pcap capture). The host forwarding rules are
 * a HostFwdTable of their own; the control socket is owned by the helper's main.
 */
class Network : public GuestPort
{
public:
	/*
	 * Start libslirp with cfg on ctx and apply its hostfwd rules (the pcap file is
	 * started by the caller, last, once nothing else can fail).
	 * Returns nullptr with error set (naming the rule for a failed hostfwd).
	 */
	static std::unique_ptr<Network> create(const Config &cfg, GMainContext *ctx, std::string &error);
	~Network() override;

	/*
	 * Frames for the guest go to link from now on (nullptr: dropped and counted as
	 * drop_to_guest_error, as before any link exists). The link must outlive the
	 * attachment: detach before destroying it.
	 */
	void attach(GuestLink *link) { link_ = link; }

	// GuestPort: what the link calls.
	void fromGuest(const uint8_t *frame, size_t len, bool tsoSegment = false) override;
	void inputBatchDone() override;
	void droppedOversize(size_t len) override;
	void toGuestBackpressure(size_t queued, size_t capacity) override;
	void forgetGuestConnections() override;
	Stats &stats() override { return stats_; }
	const Config &config() const override { return cfg_; }
	unsigned slirpMtu() const override { return slirpMtu_; }

	Slirp *slirp() const { return driver_->slirp(); }
	size_t maxFrame() const { return cfg_.maxFrame(); }

	// Host forwarding rules (their listeners are libslirp's).
	HostFwdTable &hostFwds() { return *fwds_; }

	// The egress rules (allow=/deny=, policy=, control egress-*), checked in fromGuest.
	EgressPolicy &egress() { return egress_; }

	// Sockets libslirp holds for the guest now, and the limit on them (max-flows=).
	size_t flowCount() const { return driver_->flowCount(); }
	size_t maxFlows() const { return flowLimit_.max(); }

	// At most one capture at a time; stopCapture flushes and closes it.
	bool startCapture(const CaptureSettings &s, std::string &error);
	bool stopCapture(std::string &error);
	const Capture *capture() const { return capture_.get(); }

	// Observers see every frame both ways (frame_observer.hpp); not owned.
	void addObserver(FrameObserver *o);
	void removeObserver(FrameObserver *o);

private:
	Network(const Config &cfg, GMainContext *ctx);
	bool startSlirp(unsigned mtu, std::string &error);
	ssize_t toGuest(const uint8_t *frame, size_t len);
	// The egress policy's verdict on a guest frame; false: refused (answered, counted).
	// frames: the guest frames it stands for (a reassembled datagram: its fragments).
	bool egressAdmits(const uint8_t *frame, size_t len, unsigned frames);
	void syncFragStats();
	// max-flows=: false if the frame would open a flow past the limit (answered, counted).
	bool flowAdmits(const uint8_t *frame, size_t len, unsigned frames);
	// A UDP datagram a UDP hostfwd rule's socket takes (libslirp opens none for it).
	bool isUdpHostFwdReply(const uint8_t *frame, size_t len, const EgressPacket &p) const;
	void flowOpened(const uint8_t *frame, size_t len); // libslirp opened a socket for it
	void notify(FrameDirection dir, const uint8_t *frame, size_t len)
	{
		for (FrameObserver *o : observers_)
			o->observe(dir, frame, len);
	}

	Config cfg_;
	GMainContextPtr ctx_;
	Stats stats_;
	IpReassembly reassembly_; // libslirp gets whole datagrams only
	EgressPolicy egress_;
	FlowLimit flowLimit_;
	TimeWaitReaper timeWait_; // libslirp's TIME_WAIT ended at the guest's last FIN
	std::vector<uint8_t> reapBuf_; // the RST that ends it
	int64_t flowLimitLogMs_ = -1; // the last flow-limit log line (one a second at most)
	std::vector<uint8_t> rejectBuf_; // the RST or ICMP error answering a denied packet
	bool rejectPending_ = false; // a reject was sent outside libslirp's dispatch: flush the link
	sockaddr_in outboundAddr_{}; // libslirp's outbound_addr/outbound_addr6 point here
	sockaddr_in6 outboundAddr6_{};
	std::vector<uint8_t> dhcpBuf_; // a DHCP reply rewritten with the MTU option (maxFrame)
	std::vector<FrameObserver *> observers_;
	std::unique_ptr<Capture> capture_; // outlives driver_, whose sink writes to it
	GuestLink *link_ = nullptr;
	std::unique_ptr<SlirpDriver> driver_;
	unsigned slirpMtu_ = 0;
	std::unique_ptr<HostFwdTable> fwds_;
};

} // namespace slirpnet
