// SPDX-License-Identifier: BSD-2-Clause
// link/link_factory.hpp - which guest link the command line asks for, checked, and the link built from it.
#pragma once

#include <glib.h>

#include <memory>
#include <string>

#include "link/guest_link.hpp"

namespace slirpnet {

// One of the helper's transports, as the command line names it.
struct LinkRequest {
	enum class Kind {
		Plugin, // -S FD: libslirpnet's socketpair (config record first)
		Socket, // --socket PATH: QEMU -netdev stream (listen)
		Dgram, // --dgram PATH: QEMU -netdev dgram (bind)
		Fd, // --fd N: an inherited connected socket (stream, dgram or seqpacket)
		VhostUser, // --vhost-user PATH: QEMU -netdev vhost-user (listen)
	};
	Kind kind = Kind::Socket;
	std::string path; // Socket, Dgram, VhostUser
	int fd = -1; // Plugin, Fd
	bool oneOff = false; // Socket, VhostUser: serve one client, then close
	int fdType = 0; // Plugin, Fd: SO_TYPE, filled by checkLinkRequest()

	// How the log and the "ready" line name it: the path, or "fd N".
	std::string describe() const;
};

/*
 * Check what can be checked before the network starts: an fd is open and a socket of a
 * type the transport serves. Sets FD_CLOEXEC on it (nothing libslirp runs inherits it).
 * Returns false with error naming the option and the value.
 */
bool checkLinkRequest(LinkRequest &req, std::string &error);

/*
 * Build the link (binding or listening where the transport does, so that QEMU can
 * connect as soon as this returns). For Plugin and Fd the link takes ownership of the fd.
 * Returns nullptr with error set.
 */
std::unique_ptr<GuestLink> createLink(const LinkRequest &req, GuestPort &port, GMainContext *ctx, std::string &error);

} // namespace slirpnet
