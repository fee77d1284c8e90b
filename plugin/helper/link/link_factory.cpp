// SPDX-License-Identifier: BSD-2-Clause
// link/link_factory.cpp - which guest link the command line asks for, checked, and the link built from it.
#include "link/link_factory.hpp"

#include <fcntl.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "link/dgram_link.hpp"
#include "link/seqpacket_link.hpp"
#include "link/stream_link.hpp"
#include "link/stream_server.hpp"
#include "link/vhost_user_link.hpp"

namespace slirpnet {

std::string LinkRequest::describe() const
{
	if (kind == Kind::Socket || kind == Kind::Dgram || kind == Kind::VhostUser)
		return path;
	return "fd " + std::to_string(fd);
}

bool checkLinkRequest(LinkRequest &req, std::string &error)
{
	if (req.kind == LinkRequest::Kind::Socket || req.kind == LinkRequest::Kind::Dgram ||
	    req.kind == LinkRequest::Kind::VhostUser)
		return true;
	std::string opt = (req.kind == LinkRequest::Kind::Plugin ? "-S " : "--fd ") + std::to_string(req.fd);
	if (req.fd < 0 || fcntl(req.fd, F_GETFD) < 0) {
		error = opt + ": not an open file descriptor";
		return false;
	}
	socklen_t tl = sizeof(req.fdType);
	if (getsockopt(req.fd, SOL_SOCKET, SO_TYPE, &req.fdType, &tl) < 0) {
		error = opt + ": not a socket (" + strerror(errno) + ")";
		return false;
	}
	if (req.kind == LinkRequest::Kind::Plugin && req.fdType != SOCK_SEQPACKET) {
		error = opt + ": not a SOCK_SEQPACKET socket";
		return false;
	}
	if (req.fdType != SOCK_STREAM && req.fdType != SOCK_DGRAM && req.fdType != SOCK_SEQPACKET) {
		error = opt + ": unsupported socket type " + std::to_string(req.fdType) +
			" (need SOCK_STREAM, SOCK_DGRAM or SOCK_SEQPACKET)";
		return false;
	}
	fcntl(req.fd, F_SETFD, FD_CLOEXEC);
	return true;
}

std::unique_ptr<GuestLink> createLink(const LinkRequest &req, GuestPort &port, GMainContext *ctx, std::string &error)
{
	switch (req.kind) {
	case LinkRequest::Kind::Plugin:
		return SeqpacketLink::create(UniqueFd(req.fd), port, ctx);
	case LinkRequest::Kind::Socket: {
		auto l = StreamServer::create(req.path, port, ctx, req.oneOff, error);
		if (!l)
			error = "--socket: " + error;
		return l;
	}
	case LinkRequest::Kind::Dgram: {
		auto l = DgramLink::bindPath(req.path, port, ctx, error);
		if (!l)
			error = "--dgram: " + error;
		return l;
	}
	case LinkRequest::Kind::VhostUser: {
		auto l = VhostUserServer::create(req.path, port, ctx, req.oneOff, error);
		if (!l)
			error = "--vhost-user: " + error;
		return l;
	}
	case LinkRequest::Kind::Fd:
		if (req.fdType == SOCK_STREAM)
			return StreamLink::create(UniqueFd(req.fd), port, ctx, req.describe());
		return DgramLink::connected(UniqueFd(req.fd), req.fdType, port, ctx, req.describe());
	}
	error = "unknown link kind";
	return nullptr;
}

} // namespace slirpnet
