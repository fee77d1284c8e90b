// SPDX-License-Identifier: BSD-2-Clause
// sandbox/sanitizer_build.hpp - whether this is the AddressSanitizer build, whose runtime the sandbox must let work.
#pragma once

/*
 * The test suite also runs in a build with -Db_sanitize=address,undefined (scripts/run-tests).
 * ASan's runtime lives in the helper's process and, when it reports, reads /proc/self/maps
 * and the binaries to print the stack, and LeakSanitizer stops the process with ptrace at
 * exit: the sandbox makes room for that in this build only (the differences are marked
 * with kAsanBuild). gcc says __SANITIZE_ADDRESS__, clang __has_feature(address_sanitizer).
 */
#if defined(__SANITIZE_ADDRESS__)
#define SLIRPNET_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SLIRPNET_ASAN 1
#endif
#endif
#ifndef SLIRPNET_ASAN
#define SLIRPNET_ASAN 0
#endif

namespace slirpnet {

inline constexpr bool kAsanBuild = SLIRPNET_ASAN;

} // namespace slirpnet
