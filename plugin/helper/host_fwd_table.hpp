// SPDX-License-Identifier: BSD-2-Clause
// host_fwd_table.hpp - the host forwarding rules in effect: ids, libslirp's listeners, add and remove.
#pragma once

#include <slirp/libslirp.h>

#include <string>
#include <vector>

#include "options.hpp"

namespace slirpnet {

// A host forwarding rule in effect, from the config or added through the control socket.
struct HostFwdEntry {
	unsigned id;
	HostFwd fwd; // resolved: the guest address is set
	bool fromConfig;
};

/*
 * libslirp keeps the listening sockets but no list of its rules; this table is that list,
 * with ids for the control socket. libslirp runs once for the helper's whole life (it is
 * never restarted), so a rule's listener is opened once and keeps its socket until the
 * rule is removed.
 */
class HostFwdTable
{
public:
	HostFwdTable(const Config &cfg, Slirp *slirp) : cfg_(cfg), slirp_(slirp) {}

	// Resolve fwd against the config and open its listener. Returns false with error
	// naming the rule (and errno's text) when it could not be set up.
	bool add(HostFwd fwd, bool fromConfig, unsigned &id, std::string &error);
	// Remove the rule with this id, or the one matching key's protocol and host address.
	bool remove(unsigned id, HostFwdEntry &removed, std::string &error);
	bool remove(const HostFwd &key, HostFwdEntry &removed, std::string &error);

	const std::vector<HostFwdEntry> &entries() const { return entries_; }
	const HostFwdEntry *find(unsigned id) const;

private:
	const Config &cfg_;
	Slirp *slirp_;
	std::vector<HostFwdEntry> entries_;
	unsigned nextId_ = 1;
};

} // namespace slirpnet
