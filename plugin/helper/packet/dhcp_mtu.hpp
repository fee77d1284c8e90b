// SPDX-License-Identifier: BSD-2-Clause
// packet/dhcp_mtu.hpp - announces the link MTU in libslirp's DHCP replies (option 26), as passt does.
#pragma once

#include <cstddef>
#include <cstdint>

namespace slirpnet {

/*
 * libslirp 4.7's DHCP server sends no interface-MTU option, so a guest keeps 1500 even
 * when the link takes 65520. If frame (a frame for the guest, writable) is a DHCP OFFER
 * or ACK from the server without option 26, add it with mtu, in the padding after the
 * options, so the frame keeps its length; the UDP checksum is then cleared (allowed for
 * UDP over IPv4) rather than recomputed. Returns true when the frame was changed.
 */
bool addDhcpMtuOption(uint8_t *frame, size_t len, uint16_t mtu);

} // namespace slirpnet
