// SPDX-License-Identifier: BSD-2-Clause
// netbe.cpp - the C ABI of libslirpnet: picks a backend by name and forwards every call; no exception crosses it.
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>

#include "backend.hpp"

using namespace slirpnet;

struct slirpnet_netbe {
	std::unique_ptr<NetBackend> impl;
};

namespace slirpnet {

static const BackendType kBackendTypes[] = {
	{ "slirp", &createSlirpBackend },
};

std::span<const BackendType> backendTypes()
{
	return kBackendTypes;
}

} // namespace slirpnet

// *errmsg = a malloc()ed copy of msg. Cannot throw: the message is built by the caller.
static void setError(char **errmsg, const char *msg) noexcept
{
	if (errmsg)
		*errmsg = strdup(msg);
}

/*
 * Run f, a call into the backend, at the C ABI: any exception (std::bad_alloc from a
 * long iovec array, in practice) becomes -1 with errno ENOMEM, as netbe.h promises,
 * instead of unwinding into the emulator's C frames.
 */
template <typename F>
static auto guarded(F f) noexcept -> decltype(f())
{
	try {
		return f();
	} catch (...) {
		errno = ENOMEM;
		return -1;
	}
}

/*
 * The entry points. netbe.h cannot declare them noexcept (it is C), so each either only
 * calls noexcept members of NetBackend or catches everything itself (init, send, recv).
 */
#define SLIRPNET_API extern "C" __attribute__((visibility("default")))

// Find the backend named by spec (up to the first comma) and create it; throws only
// std::bad_alloc.
static int createBackend(struct slirpnet_netbe **be, std::string_view spec, slirpnet_rxeof_t cb, void *param,
			 GMainContext *ctx, char **errmsg)
{
	size_t comma = spec.find(',');
	std::string_view name = spec.substr(0, comma);
	std::string_view options = comma == std::string_view::npos ? std::string_view() : spec.substr(comma + 1);

	const BackendType *type = nullptr;
	std::string known;
	for (const auto &t : backendTypes()) {
		known += (known.empty() ? "" : ", ") + std::string(t.name);
		if (name == t.name)
			type = &t;
	}
	if (!type) {
		setError(errmsg, ("unknown backend '" + std::string(name) + "' (known: " + known + ")").c_str());
		errno = EINVAL;
		return -1;
	}
	std::string error;
	auto impl = type->create(BackendArgs{ options, cb, param, ctx }, error);
	if (!impl) {
		setError(errmsg, error.c_str());
		errno = EINVAL;
		return -1;
	}
	*be = new slirpnet_netbe{ std::move(impl) };
	return 0;
}

SLIRPNET_API int slirpnet_netbe_init(struct slirpnet_netbe **be, const char *spec, slirpnet_rxeof_t cb, void *param,
				     GMainContext *ctx, char **errmsg)
{
	if (errmsg)
		*errmsg = nullptr;
	if (!be || !spec) {
		setError(errmsg, "slirpnet_netbe_init: be and spec are required");
		errno = EINVAL;
		return -1;
	}
	*be = nullptr;
	// Whatever was created before an exception has been destroyed by unwinding (no
	// helper is left running), and *errmsg is only set just before a return.
	try {
		return createBackend(be, spec, cb, param, ctx, errmsg);
	} catch (const std::exception &e) {
		char msg[256];
		snprintf(msg, sizeof(msg), "slirpnet_netbe_init: %s", e.what());
		setError(errmsg, msg);
	} catch (...) {
		setError(errmsg, "slirpnet_netbe_init: unexpected exception");
	}
	errno = ENOMEM;
	return -1;
}

SLIRPNET_API void slirpnet_netbe_cleanup(struct slirpnet_netbe *be)
{
	delete be;
}

SLIRPNET_API ssize_t slirpnet_netbe_send(struct slirpnet_netbe *be, const struct iovec *iov, int iovcnt)
{
	return guarded([&] { return be->impl->send(iov, iovcnt); });
}

SLIRPNET_API ssize_t slirpnet_netbe_peek_recvlen(struct slirpnet_netbe *be)
{
	return be->impl->peekRecvlen();
}

SLIRPNET_API ssize_t slirpnet_netbe_recv(struct slirpnet_netbe *be, const struct iovec *iov, int iovcnt)
{
	return guarded([&] { return be->impl->recv(iov, iovcnt); });
}

SLIRPNET_API ssize_t slirpnet_netbe_rx_discard(struct slirpnet_netbe *be)
{
	return be->impl->rxDiscard();
}

SLIRPNET_API void slirpnet_netbe_rx_enable(struct slirpnet_netbe *be)
{
	be->impl->rxEnable();
}

SLIRPNET_API void slirpnet_netbe_rx_disable(struct slirpnet_netbe *be)
{
	be->impl->rxDisable();
}

SLIRPNET_API uint64_t slirpnet_netbe_get_cap(struct slirpnet_netbe *be)
{
	return be->impl->getCap();
}

SLIRPNET_API int slirpnet_netbe_set_cap(struct slirpnet_netbe *be, uint64_t features, unsigned vnet_hdr_len)
{
	return be->impl->setCap(features, vnet_hdr_len);
}

SLIRPNET_API int slirpnet_netbe_fd(struct slirpnet_netbe *be)
{
	return be->impl->fd();
}
