// SPDX-License-Identifier: BSD-2-Clause
// fuzz/fuzz_vnet.cpp - virtio-net headers and the offloads: a guest's record in, a large frame out whole (GSO) or cut.
#include <endian.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "fake_port.hpp"
#include "fuzz_common.hpp"
#include "link/virtio_offloads.hpp"
#include "packet/vnet_hdr.hpp"
#include "virtio_net.hpp"

using namespace slirpnet;

namespace {

uint8_t g_rec[kVnetHdrLen + kMaxGsoFrame];
uint8_t g_out[kVnetHdrLen + kMaxGsoFrame];

// The offload bits an input byte turns on.
constexpr uint64_t kFeatureOfBit[8] = {
	kFeatCsum, kFeatGuestCsum, kFeatGuestTso4, kFeatGuestTso6, kFeatHostTso4, kFeatHostTso6, 0, 0
};

/*
 * The plugin's check of a record from the helper (SlirpBackend::wellFormed, which counts a
 * failure as malformed): what the helper makes must always pass it.
 */
void checkRecord(const uint8_t *rec, size_t recLen, const Config &cfg)
{
	if (recLen < kVnetHdrLen)
		abort();
	VnetHdr h;
	memcpy(&h, rec, sizeof(h));
	size_t len = recLen - kVnetHdrLen;
	uint8_t gso = h.gso_type & static_cast<uint8_t>(~kGsoEcn);
	size_t hdrLen = le16toh(h.hdr_len), gsoSize = le16toh(h.gso_size);
	bool ok = len >= kEthHeaderLen && !(h.flags & ~(kVnetNeedsCsum | kVnetDataValid)) && hdrLen <= len;
	if (gso == kGsoNone)
		ok = ok && len <= cfg.maxFrame() && h.gso_type == kGsoNone;
	else
		ok = ok && gsoSize && gsoSize + kEthHeaderLen <= cfg.maxFrame() && len <= kMaxGsoFrame &&
		     hdrLen >= kEthHeaderLen && hdrLen < len;
	if (h.flags & kVnetNeedsCsum)
		ok = ok && le16toh(h.csum_start) >= kEthHeaderLen &&
		     le16toh(h.csum_start) + le16toh(h.csum_offset) + 2u <= len;
	if (!ok) {
		fprintf(stderr,
			"the helper made a record the plugin would refuse: %zu bytes, flags %u gso %u/%zu hdr_len %zu\n",
			len, h.flags, h.gso_type, gsoSize, hdrLen);
		abort();
	}
}

} // namespace

extern "C" int LLVMFuzzerInitialize(int *, char ***)
{
	fuzz::quietLog();
	return 0;
}

/*
 * Input: the features (byte 0, a bit per offload), the link MTU (byte 1: 68 + 6 per step,
 * at most 1500), then one record as the guest sends it on the v2 wire (virtio-net header
 * and frame). The record goes through vnetRecordFromGuest (the header's checks, the
 * partial checksum completed, the SYN's MSS raised); its frame then goes back as libslirp's
 * (at its large MTU) through vnetFrameToGuest, marked for GSO or cut to the link MTU, and
 * each record made is checked as the plugin will.
 */
extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2 || size - 2 > sizeof(g_rec))
		return 0;
	uint64_t features = 0;
	for (int b = 0; b < 8; b++)
		if (data[0] & (1u << b))
			features |= kFeatureOfBit[b];
	Config cfg;
	cfg.mtu = cfg.mru = std::min(68u + data[1] * 6u, 1500u);
	cfg.vnetHdr = true;
	FakePort port(cfg);

	size_t len = size - 2;
	memcpy(g_rec, data + 2, len);
	vnetRecordFromGuest(port, features, g_rec, len);
	if (!port.frames.empty() && port.frames[0].size() > (port.tsoFlags[0] ? kMaxGsoFrame : len))
		abort();

	if (len < kVnetHdrLen)
		return 0;
	const uint8_t *frame = g_rec + kVnetHdrLen;
	size_t flen = len - kVnetHdrLen;
	if (flen < kEthHeaderLen)
		return 0; // libslirp never makes one
	vnetFrameToGuest(
		port, features, frame, flen, [] { return g_out; },
		[&cfg](size_t recLen) { checkRecord(g_out, recLen, cfg); });
	return 0;
}
