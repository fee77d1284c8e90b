// SPDX-License-Identifier: BSD-2-Clause
// host_fwd_table.cpp - the host forwarding rules in effect: ids, libslirp's listeners, add and remove.
#include "host_fwd_table.hpp"

#include <glib.h>

#include <cerrno>
#include <cstring>

#include "sandbox/sandbox.hpp"

namespace slirpnet {

static socklen_t addrLen(const sockaddr_storage &ss)
{
	return ss.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
}

static bool sameHost(const HostFwd &a, const HostFwd &b)
{
	if (a.udp != b.udp || a.host.ss_family != b.host.ss_family)
		return false;
	if (a.host.ss_family == AF_INET6) {
		auto *x = reinterpret_cast<const sockaddr_in6 *>(&a.host);
		auto *y = reinterpret_cast<const sockaddr_in6 *>(&b.host);
		return x->sin6_port == y->sin6_port && IN6_ARE_ADDR_EQUAL(&x->sin6_addr, &y->sin6_addr);
	}
	auto *x = reinterpret_cast<const sockaddr_in *>(&a.host);
	auto *y = reinterpret_cast<const sockaddr_in *>(&b.host);
	return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
}

bool HostFwdTable::add(HostFwd f, bool fromConfig, unsigned &id, std::string &error)
{
	if (!resolveHostFwd(f, cfg_, error))
		return false;
	errno = 0;
	if (slirp_add_hostxfwd(slirp_, reinterpret_cast<const sockaddr *>(&f.host), addrLen(f.host),
			       reinterpret_cast<const sockaddr *>(&f.guest), addrLen(f.guest),
			       f.udp ? SLIRP_HOSTFWD_UDP : 0) != 0) {
		int err = errno;
		unsigned port = ntohs(reinterpret_cast<const sockaddr_in *>(&f.host)->sin_port); // same place in v6
		error = "hostfwd: could not set up '" + f.rule + "'" +
			(err ? std::string(": ") + strerror(err) : std::string()) +
			(err == EACCES ? privilegedPortHint(port) : std::string());
		return false;
	}
	id = nextId_++;
	g_debug("hostfwd %u: %s", id, formatHostFwd(f).c_str());
	entries_.push_back({ id, std::move(f), fromConfig });
	return true;
}

const HostFwdEntry *HostFwdTable::find(unsigned id) const
{
	for (const auto &e : entries_)
		if (e.id == id)
			return &e;
	return nullptr;
}

bool HostFwdTable::remove(unsigned id, HostFwdEntry &removed, std::string &error)
{
	for (auto it = entries_.begin(); it != entries_.end(); ++it) {
		if (it->id != id)
			continue;
		const HostFwd &f = it->fwd;
		if (slirp_remove_hostxfwd(slirp_, reinterpret_cast<const sockaddr *>(&f.host), addrLen(f.host),
					  f.udp ? SLIRP_HOSTFWD_UDP : 0) < 0) {
			error = "hostfwd: libslirp has no listener for rule " + std::to_string(id) + " '" +
				formatHostFwd(f) + "'";
			return false;
		}
		g_debug("hostfwd %u removed: %s", id, formatHostFwd(f).c_str());
		removed = std::move(*it);
		entries_.erase(it);
		return true;
	}
	error = "hostfwd: no rule with id " + std::to_string(id);
	return false;
}

bool HostFwdTable::remove(const HostFwd &key, HostFwdEntry &removed, std::string &error)
{
	for (const auto &e : entries_)
		if (sameHost(e.fwd, key))
			return remove(e.id, removed, error);
	error = "hostfwd: no rule for '" + key.rule + "'";
	return false;
}

} // namespace slirpnet
