// SPDX-License-Identifier: BSD-2-Clause
// wire.hpp - the plugin⇄helper control messages (config and status) as serialized GVariants.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "options.hpp"

namespace slirpnet {

// 1: records are bare Ethernet frames; 2: each starts with a virtio-net header
// (virtio_net.hpp). The helper speaks both; libslirpnet sends 2.
constexpr uint32_t kWireVersionPlain = 1;
constexpr uint32_t kWireVersionVnetHdr = 2;
// Generous bound for a config or status message (hundreds of hostfwd rules fit).
constexpr size_t kMaxControlMessage = 256 * 1024;

// Config: GVariant "(ua(ss))" = (version, options). See PROTOCOL.md.
std::vector<uint8_t> encodeConfig(const OptionList &opts, uint32_t version = kWireVersionVnetHdr);
bool decodeConfig(const uint8_t *data, size_t len, OptionList &opts, std::string &error, uint32_t *version = nullptr);

// Status: GVariant "(bs)" = (ready, error text).
std::vector<uint8_t> encodeStatus(bool ok, const std::string &message);
bool decodeStatus(const uint8_t *data, size_t len, bool &ok, std::string &message);

} // namespace slirpnet
