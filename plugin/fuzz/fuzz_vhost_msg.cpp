// SPDX-License-Identifier: BSD-2-Clause
// fuzz_vhost_msg.cpp - placeholder
#include <cstddef>
#include <cstdint>
extern "C" int LLVMFuzzerTestOneInput(const uint8_t *, size_t) { return 0; }
