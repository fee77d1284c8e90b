// netbe.cpp - the C ABI of libslirpnet: picks a backend by spec prefix and forwards every call.
#include <cerrno>
#include <cstdlib>
#include <cstring>
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

static void setError(char **errmsg, const std::string &msg)
{
	if (errmsg)
		*errmsg = strdup(msg.c_str());
}

#define SLIRPNET_API extern "C" __attribute__((visibility("default")))

SLIRPNET_API int slirpnet_netbe_init(struct slirpnet_netbe **be, const char *spec,
				     slirpnet_rxeof_t cb, void *param, GMainContext *ctx,
				     char **errmsg)
{
	if (errmsg)
		*errmsg = nullptr;
	if (!be || !spec) {
		setError(errmsg, "slirpnet_netbe_init: be and spec are required");
		errno = EINVAL;
		return -1;
	}
	*be = nullptr;
	std::string_view s(spec);
	size_t comma = s.find(',');
	std::string_view prefix = s.substr(0, comma);
	std::string_view options = comma == std::string_view::npos ? std::string_view() : s.substr(comma + 1);

	const BackendType *type = nullptr;
	std::string known;
	for (const auto &t : backendTypes()) {
		known += (known.empty() ? "" : ", ") + std::string(t.prefix);
		if (prefix == t.prefix)
			type = &t;
	}
	if (!type) {
		setError(errmsg, "unknown backend '" + std::string(prefix) + "' (known: " + known + ")");
		errno = EINVAL;
		return -1;
	}

	std::string error;
	try {
		auto impl = type->create(BackendArgs{ options, cb, param, ctx }, error);
		if (!impl) {
			setError(errmsg, error);
			errno = EINVAL;
			return -1;
		}
		*be = new slirpnet_netbe{ std::move(impl) };
	} catch (const std::exception &e) {
		// Never let an exception cross the C ABI.
		setError(errmsg, std::string("slirpnet_netbe_init: ") + e.what());
		errno = ENOMEM;
		return -1;
	}
	return 0;
}

SLIRPNET_API void slirpnet_netbe_cleanup(struct slirpnet_netbe *be)
{
	delete be;
}

SLIRPNET_API ssize_t slirpnet_netbe_send(struct slirpnet_netbe *be, const struct iovec *iov, int iovcnt)
{
	return be->impl->send(iov, iovcnt);
}

SLIRPNET_API ssize_t slirpnet_netbe_peek_recvlen(struct slirpnet_netbe *be)
{
	return be->impl->peekRecvlen();
}

SLIRPNET_API ssize_t slirpnet_netbe_recv(struct slirpnet_netbe *be, const struct iovec *iov, int iovcnt)
{
	return be->impl->recv(iov, iovcnt);
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
