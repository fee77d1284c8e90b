// network.hpp - one libslirp network built from a Config: guest frames in, frames out to a link.
#pragma once

#include <glib.h>

#include <memory>
#include <string>
#include <vector>

#include "options.hpp"
#include "slirp_driver.hpp"
#include "stats.hpp"

namespace slirpnet {

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
	// to libslirp. Bad frames are dropped and counted, never passed on.
	void fromGuest(const uint8_t *frame, size_t len);

	Stats &stats() { return stats_; }
	const Config &config() const { return cfg_; }
	Slirp *slirp() const { return driver_->slirp(); }
	size_t maxFrame() const { return cfg_.maxFrame(); }

private:
	explicit Network(const Config &cfg) : cfg_(cfg) {}

	Config cfg_;
	Stats stats_;
	std::unique_ptr<SlirpDriver> driver_;
};

} // namespace slirpnet
