// SPDX-License-Identifier: BSD-2-Clause
// fake_port.hpp - a GuestPort that records what a link hands it, for the links' unit tests.
#pragma once

#include <glib.h>

#include <cstdint>
#include <vector>

#include "guest_port.hpp"

namespace slirpnet {

class FakePort : public GuestPort
{
public:
	explicit FakePort(Config cfg = Config()) : cfg_(std::move(cfg)) {}

	void fromGuest(const uint8_t *frame, size_t len, bool tso) override
	{
		frames.emplace_back(frame, frame + len);
		tsoFlags.push_back(tso);
	}
	void inputBatchDone() override { batches++; }
	void droppedOversize(size_t len) override { oversize.push_back(len); }
	void toGuestBackpressure(size_t queued, size_t capacity) override
	{
		lastQueued = queued;
		lastCapacity = capacity;
	}
	void forgetGuestConnections() override { forgets++; }
	Stats &stats() override { return stats_; }
	const Config &config() const override { return cfg_; }
	unsigned slirpMtu() const override { return cfg_.vnetHdr ? Config::kLargeSlirpMtu : cfg_.mtu; }

	std::vector<std::vector<uint8_t>> frames;
	std::vector<bool> tsoFlags;
	std::vector<size_t> oversize;
	int batches = 0;
	int forgets = 0;
	size_t lastQueued = 0, lastCapacity = 0;
	Stats stats_;
	Config cfg_;
};

// Run ctx until cond() holds or about a second has passed.
template <typename Cond>
bool iterateUntil(GMainContext *ctx, Cond cond)
{
	for (int i = 0; i < 1000 && !cond(); i++)
		if (!g_main_context_iteration(ctx, FALSE))
			g_usleep(1000);
	return cond();
}

} // namespace slirpnet
