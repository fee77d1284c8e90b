// SPDX-License-Identifier: BSD-2-Clause
// backend.hpp - the backend interface behind the C ABI, and the registry of backends by name.
#pragma once

#include <glib.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "slirpnet/netbe.h"

namespace slirpnet {

/*
 * One emulator-side backend (bhyve's struct net_backend as a C++ interface). The
 * contracts are those of the matching slirpnet_netbe_* functions in netbe.h. send() and
 * recv() may throw std::bad_alloc (an iovec array too long for the stack); netbe.cpp
 * turns any exception into -1/ENOMEM. The others must not throw.
 */
class NetBackend
{
public:
	virtual ~NetBackend() = default;
	virtual ssize_t send(const struct iovec *iov, int iovcnt) = 0;
	virtual ssize_t peekRecvlen() noexcept = 0;
	virtual ssize_t recv(const struct iovec *iov, int iovcnt) = 0;
	virtual ssize_t rxDiscard() noexcept = 0;
	virtual void rxEnable() noexcept = 0;
	virtual void rxDisable() noexcept = 0;
	virtual uint64_t getCap() const noexcept = 0;
	virtual int setCap(uint64_t features, unsigned vnetHdrLen) noexcept = 0;
	virtual int fd() const noexcept = 0;
};

struct BackendArgs {
	std::string_view options; // the spec after "NAME," (may be empty)
	slirpnet_rxeof_t callback;
	void *param;
	GMainContext *ctx;
};

struct BackendType {
	const char *name; // the spec's BACKEND, matched exactly
	std::unique_ptr<NetBackend> (*create)(const BackendArgs &args, std::string &error);
};

// All registered backend types.
std::span<const BackendType> backendTypes();

// The slirp backend (slirp_backend.cpp).
std::unique_ptr<NetBackend> createSlirpBackend(const BackendArgs &args, std::string &error);

} // namespace slirpnet
