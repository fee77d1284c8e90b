// network.hpp - one libslirp network built from a Config: guest frames in, frames out to a link.
#pragma once

#include <glib.h>

#include <memory>
#include <string>
#include <vector>

#include "control/capture.hpp"
#include "packet/frag_guard.hpp"
#include "host_fwd_table.hpp"
#include "options.hpp"
#include "slirp_driver.hpp"
#include "stats.hpp"

namespace slirpnet {

/*
 * Observability is part of the network, so every transport gets it: Config::pcapFile
 * starts a capture of the frames in both directions (rx: every frame the guest link
 * delivered, before the size checks; tx: every frame the link took), and
 * Config::controlPath the JSON control socket (control_commands.cpp).
 */
class Network
{
public:
	/*
	 * Start libslirp with cfg on ctx and apply its hostfwd rules. Frames for the guest go
	 * to sink. Returns nullptr with error set (naming the rule for a failed hostfwd).
	 */
	static std::unique_ptr<Network> create(const Config &cfg, GMainContext *ctx,
					       SlirpDriver::PacketSink sink, std::string &error);

	// One frame from the guest: counted, checked against the size limits, then handed
	// to libslirp. Bad frames are dropped and counted, never passed on. A tsoSegment (a
	// guest's TSO frame, its checksum completed) may be up to kMaxGsoFrame bytes.
	void fromGuest(const uint8_t *frame, size_t len, bool tsoSegment = false);

	/*
	 * Reading from libslirp paced by the guest side's writability: a link reports how
	 * full its output queue is (or 1/1 when its socket refused a frame, 0 when it took
	 * frames again), and host input pauses above half full, resumes below an eighth.
	 */
	void updateBackpressure(size_t queued, size_t capacity);

	// A link that batches its output registers how to write the batch; it is called
	// when a dispatch of libslirp ends (nullptr: none).
	void setTxFlush(std::function<void()> fn) { txFlush_ = std::move(fn); }

	// A link read all it will read in this wake-up: let libslirp send what the batch
	// produced (see SlirpDriver::flushInput).
	void inputBatchDone() { driver_->flushInput(); }

	// A frame larger than the link's buffer (so only its length is known): counted as
	// drop_oversize, never read, captured or passed on.
	void droppedOversize(size_t len);

	// libslirp's MTU: the link's, or Config::kLargeSlirpMtu on a link with offloads.
	unsigned slirpMtu() const { return slirpMtu_; }

	Stats &stats() { return stats_; }
	const Config &config() const { return cfg_; }
	Slirp *slirp() const { return driver_->slirp(); }
	size_t maxFrame() const { return cfg_.maxFrame(); }

	~Network();

	// Host forwarding rules (opened in libslirp).
	HostFwdTable &hostFwds() { return *fwds_; }

	// At most one capture at a time; stopCapture flushes and closes it.
	bool startCapture(const CaptureSettings &s, std::string &error);
	bool stopCapture(std::string &error);
	const Capture *capture() const { return capture_.get(); }


private:
	Network(const Config &cfg, GMainContext *ctx);
	bool startSlirp(unsigned mtu, std::string &error);

	Config cfg_;
	GMainContextPtr ctx_;
	Stats stats_;
	FragGuard fragGuard_;
	std::vector<uint8_t> dhcpBuf_; // a DHCP reply rewritten with the MTU option (maxFrame)
	std::unique_ptr<Capture> capture_; // outlives driver_, whose sink writes to it
	SlirpDriver::PacketSink toGuest_; // what libslirp's frames go through (capture, DHCP MTU)
	std::unique_ptr<SlirpDriver> driver_;
	unsigned slirpMtu_ = 0;
	std::unique_ptr<HostFwdTable> fwds_;
	std::function<void()> txFlush_;
};

} // namespace slirpnet
