// SPDX-License-Identifier: BSD-2-Clause
// link/qemu_framing.hpp - limits of QEMU's socket netdevs that the stream and datagram links share.
#pragma once

#include <net/ethernet.h>

#include <cstddef>
#include <cstdint>

namespace slirpnet {

// QEMU's NET_BUFSIZE (include/net/net.h): the largest frame it sends or accepts on a socket.
constexpr size_t kQemuMaxFrame = 4096 + 65536;
// Frames to QEMU are padded to ETH_ZLEN, as net/slirp.c does: the stream, dgram and socket
// netdevs do not pad, and NICs such as e1000 (before QEMU 8) drop shorter frames.
constexpr size_t kMinFrame = ETH_ZLEN;
// What short frames are padded with.
inline constexpr uint8_t kZeroPad[kMinFrame] = {};

} // namespace slirpnet
