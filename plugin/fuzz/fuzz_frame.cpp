// SPDX-License-Identifier: BSD-2-Clause
// fuzz/fuzz_frame.cpp - guest frames (bare or with virtio-net headers) into Network and a real libslirp (restrict=on, own netns).
#include <glib.h>

#include <endian.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "fuzz_common.hpp"
#include "link/guest_link.hpp"
#include "link/virtio_offloads.hpp"
#include "network.hpp"
#include "options.hpp"
#include "virtio_net.hpp"

using namespace slirpnet;

/*
 * The fake clock. SlirpDriver reads the GLib monotonic clock (libslirp's timers: TCP
 * retransmission and keepalive, ARP/NDP) and so does the helper's IP reassembly (its
 * timeout) through it; this definition takes the place of GLib's in the program, so an input
 * decides when time passes and timers fire, and a run does not depend on the wall clock.
 */
static gint64 g_fakeNowUs = 1000000000;
extern "C" gint64 g_get_monotonic_time(void)
{
	return g_fakeNowUs;
}

namespace {

/*
 * The first byte of an input picks the configuration (bits 0-3), the rest are records
 * (fuzz_common.hpp). Each record's first byte is an operation:
 *   0: the rest is one record of the plugin link: a frame, or on the v2 wire a
 *      virtio-net header and a frame, or a set-features record;
 *   1: time passes: rest[0] * 64 ms, then the loop runs (libslirp's timers);
 *   2: (v2 wire) set-features to the little-endian 64-bit rest;
 *   3: the batch ends and the loop runs (libslirp answers).
 * Configurations: bit 0: the v2 wire (virtio-net headers, offloads negotiable);
 * bit 1: policy=strict (the egress rules and the answers to refused packets);
 * bit 2: mtu=1400 (the DHCP MTU rewrite; the offload cut to a smaller link MTU);
 * bit 3: small limits (frag-timeout=1, max-flows=2), so that inputs reach them.
 */
std::vector<Config> g_configs;

Config makeConfig(unsigned variant)
{
	// The smallest reassembly memory: set up per input (a Network per input keeps runs
	// reproducible), the 4 MiB default would cost more than most inputs take to run.
	OptionList opts = { { "restrict", "on" }, { "frag-mem", std::to_string(Config::kFragMemMin) } };
	if (variant & 2)
		opts.emplace_back("policy", "strict");
	if (variant & 4)
		opts.emplace_back("mtu", "1400");
	if (variant & 8) {
		opts.emplace_back("frag-timeout", "1");
		opts.emplace_back("max-flows", "2");
	}
	Config cfg;
	std::string error;
	if (!parseConfig(opts, cfg, error)) {
		fprintf(stderr, "fuzz_frame: %s\n", error.c_str());
		abort();
	}
	if (!cfg.restricted)
		abort(); // never without restrict=on
	cfg.vnetHdr = variant & 1;
	return cfg;
}

// Run the loop until it has nothing ready (bounded: a libslirp that always has work).
void runLoop(GMainContext *ctx)
{
	for (int i = 0; i < 64 && g_main_context_iteration(ctx, FALSE); i++) {
	}
}

// Buffers of the largest record, allocated once (a link's are, once per link).
uint8_t g_inRec[kVnetHdrLen + kMaxGsoFrame];
uint8_t g_outRec[kVnetHdrLen + kMaxGsoFrame];

/*
 * The plugin link's frame handling without its socket (SeqpacketLink: fromPeer,
 * setFeaturesRecord, sendFrame), so that a Network per input costs no 2 MB of slots: records
 * in through vnetRecordFromGuest, frames out through vnetFrameToGuest (GSO or cut).
 */
class FuzzLink : public GuestLink
{
public:
	explicit FuzzLink(GuestPort &port) : GuestLink(port, "fuzz"), vnetHdr_(port.config().vnetHdr) {}

	void record(const uint8_t *rec, size_t len)
	{
		if (!vnetHdr_) {
			port_.fromGuest(rec, len);
			return;
		}
		if (len >= kVnetHdrLen && (rec[0] & kVnetFlagSetFeatures)) {
			if (len != kSetFeaturesLen)
				return;
			uint64_t f;
			memcpy(&f, rec + kVnetHdrLen, sizeof(f));
			setFeatures(le64toh(f) & kOffloadFeatures);
			return;
		}
		memcpy(g_inRec, rec, len); // checksums are completed in place
		vnetRecordFromGuest(port_, features(), g_inRec, len);
	}

	ssize_t sendFrame(const uint8_t *frame, size_t len) override
	{
		if (!vnetHdr_) {
			if (len > port_.config().maxFrame())
				abort(); // libslirp made a frame above the link's MTU
			countToGuest(len);
			return static_cast<ssize_t>(len);
		}
		if (len > kMaxGsoFrame)
			return -1;
		int n = vnetFrameToGuest(
			port_, features(), frame, len, [] { return g_outRec; },
			[this](size_t recLen) {
				// What the guest gets must fit the link, unless marked for GSO.
				VnetHdr h;
				memcpy(&h, g_outRec, sizeof(h));
				if (h.gso_type == kGsoNone && recLen - kVnetHdrLen > port_.config().maxFrame())
					abort();
				countToGuest(recLen - kVnetHdrLen);
			});
		return n > 0 ? static_cast<ssize_t>(len) : -1;
	}

private:
	bool vnetHdr_;
};

} // namespace

extern "C" int LLVMFuzzerInitialize(int *, char ***)
{
	fuzz::requireLoopbackOnlyNetns("fuzz_frame");
	fuzz::quietLog();
	for (unsigned v = 0; v < 16; v++)
		g_configs.push_back(makeConfig(v));
	return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	const Config &cfg = g_configs[data[0] & 15];
	GMainContext *ctx = g_main_context_new();
	std::string error;
	auto net = Network::create(cfg, ctx, error);
	if (!net) {
		fprintf(stderr, "fuzz_frame: %s\n", error.c_str());
		abort();
	}
	FuzzLink link(*net);
	net->attach(&link);

	fuzz::Records records(data + 1, size - 1);
	const uint8_t *rec;
	size_t len;
	while (records.next(rec, len)) {
		if (len == 0)
			continue;
		switch (rec[0] & 3) {
		case 0:
			link.record(rec + 1, len - 1);
			break;
		case 1:
			net->inputBatchDone();
			g_fakeNowUs += (len > 1 ? rec[1] : 1) * 64000;
			runLoop(ctx);
			break;
		case 2: {
			uint8_t sf[kSetFeaturesLen] = {};
			sf[0] = kVnetFlagSetFeatures;
			memcpy(sf + kVnetHdrLen, rec + 1, std::min(len - 1, size_t{ 8 }));
			link.record(sf, sizeof(sf));
			break;
		}
		case 3:
			net->inputBatchDone();
			runLoop(ctx);
			break;
		}
	}
	net->inputBatchDone();
	runLoop(ctx);

	net->attach(nullptr);
	net.reset();
	g_main_context_unref(ctx);
	g_fakeNowUs += 1000000;
	return 0;
}
