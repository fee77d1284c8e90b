// SPDX-License-Identifier: BSD-2-Clause
// vhost/vhost_user_proto.cpp - the vhost-user wire format: messages, their payloads, and a reader that checks them.
#include "vhost/vhost_user_proto.hpp"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace slirpnet::vhost {

std::string requestName(uint32_t request)
{
	static const char *const names[] = {
		nullptr,
		"GET_FEATURES",
		"SET_FEATURES",
		"SET_OWNER",
		"RESET_OWNER",
		"SET_MEM_TABLE",
		"SET_LOG_BASE",
		"SET_LOG_FD",
		"SET_VRING_NUM",
		"SET_VRING_ADDR",
		"SET_VRING_BASE",
		"GET_VRING_BASE",
		"SET_VRING_KICK",
		"SET_VRING_CALL",
		"SET_VRING_ERR",
		"GET_PROTOCOL_FEATURES",
		"SET_PROTOCOL_FEATURES",
		"GET_QUEUE_NUM",
		"SET_VRING_ENABLE",
		"SEND_RARP",
		"NET_SET_MTU",
		"SET_BACKEND_REQ_FD",
		"IOTLB_MSG",
		"SET_VRING_ENDIAN",
		"GET_CONFIG",
		"SET_CONFIG",
	};
	std::string n;
	if (request < sizeof(names) / sizeof(names[0]) && names[request])
		n = names[request];
	else if (request == kResetDevice)
		n = "RESET_DEVICE";
	else if (request == kGetMaxMemSlots)
		n = "GET_MAX_MEM_SLOTS";
	else
		n = "request";
	return n + " (" + std::to_string(request) + ")";
}

namespace {

// The payload a fixed-size request carries; -1: variable or none checked here.
long fixedPayload(uint32_t request)
{
	switch (request) {
	case kGetFeatures:
	case kGetProtocolFeatures:
	case kSetOwner:
	case kResetOwner:
	case kResetDevice:
	case kGetQueueNum:
		return 0;
	case kSetFeatures:
	case kSetProtocolFeatures:
	case kSetVringNum:
	case kSetVringBase:
	case kGetVringBase:
	case kSetVringEnable:
	case kSetVringKick:
	case kSetVringCall:
	case kSetVringErr:
	case kSendRarp:
	case kNetSetMtu:
		return 8;
	case kSetVringAddr:
		return sizeof(VringAddr);
	default:
		return -1;
	}
}

} // namespace

bool checkMessage(const MsgHeader &h, const uint8_t *payload, size_t nfds, std::string &error)
{
	const std::string name = requestName(h.request);
	if ((h.flags & kFlagVersionMask) != kFlagVersion) {
		error = name + ": protocol version " + std::to_string(h.flags & kFlagVersionMask) +
			" (only 1 is spoken)";
		return false;
	}
	if (h.flags & kFlagReply) {
		error = name + ": a reply where a request was expected";
		return false;
	}
	if (h.request == kSetMemTable) {
		if (h.size < 8) {
			error = name + ": " + std::to_string(h.size) + "-byte payload, shorter than its region count";
			return false;
		}
		uint32_t n;
		memcpy(&n, payload, sizeof(n));
		if (n == 0 || n > GuestMemory::kMaxRegions) {
			error = name + ": " + std::to_string(n) + " regions (1 to " +
				std::to_string(GuestMemory::kMaxRegions) + " are accepted)";
			return false;
		}
		if (h.size != 8 + n * sizeof(VhostMemRegion)) {
			error = name + ": " + std::to_string(h.size) + "-byte payload for " + std::to_string(n) +
				" regions (expected " + std::to_string(8 + n * sizeof(VhostMemRegion)) + ")";
			return false;
		}
		if (nfds != n) {
			error = name + ": " + std::to_string(nfds) + " file descriptors for " + std::to_string(n) +
				" regions";
			return false;
		}
		return true;
	}
	long want = fixedPayload(h.request);
	if (want >= 0 && h.size != static_cast<unsigned long>(want)) {
		error = name + ": " + std::to_string(h.size) + "-byte payload (expected " + std::to_string(want) + ")";
		return false;
	}
	size_t wantFds = 0;
	if (h.request == kSetVringKick || h.request == kSetVringCall || h.request == kSetVringErr) {
		uint64_t u;
		memcpy(&u, payload, sizeof(u));
		wantFds = (u & kVringNoFd) ? 0 : 1;
	}
	if (nfds != wantFds) {
		error = name + ": " + std::to_string(nfds) + " file descriptors (expected " + std::to_string(wantFds) +
			")";
		return false;
	}
	return true;
}

MsgReader::MsgReader() : payload_(kMaxPayload)
{
	fds_.reserve(kMaxFds);
}

void MsgReader::next()
{
	fds_.clear();
	got_ = 0;
	excessFds_ = false;
}

void MsgReader::takeFds(msghdr &msg)
{
	if (msg.msg_flags & MSG_CTRUNC)
		excessFds_ = true;
	for (cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < n; i++) {
			int fd;
			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(fd));
			UniqueFd owned(fd); // closed here unless kept below
			if (fds_.size() < kMaxFds)
				fds_.push_back(std::move(owned));
			else
				excessFds_ = true;
		}
	}
}

MsgReader::Result MsgReader::read(int fd, std::string &error)
{
	constexpr size_t kHdr = sizeof(MsgHeader);
	for (;;) {
		size_t want = got_ < kHdr ? kHdr - got_ : kHdr + header_.size - got_;
		if (got_ >= kHdr && want == 0)
			return Result::Message;
		uint8_t *dst = got_ < kHdr ? reinterpret_cast<uint8_t *>(&header_) + got_
					   : payload_.data() + (got_ - kHdr);
		iovec iov{ dst, want };
		// Room for more fds than accepted, so that an excess is seen (and closed), not cut.
		alignas(cmsghdr) uint8_t control[CMSG_SPACE(sizeof(int) * (kMaxFds + 8))];
		msghdr msg{};
		msg.msg_iov = &iov;
		msg.msg_iovlen = 1;
		msg.msg_control = control;
		msg.msg_controllen = sizeof(control);
		ssize_t n = recvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return Result::Again;
			error = strerror(errno);
			return Result::Error;
		}
		takeFds(msg);
		if (n == 0)
			return Result::Closed;
		got_ += static_cast<size_t>(n);
		// Judged once the header says which request it was, for the log.
		if (got_ == kHdr && excessFds_) {
			error = requestName(header_.request) + ": more than " + std::to_string(kMaxFds) +
				" file descriptors with one message";
			return Result::Error;
		}
		if (got_ == kHdr && header_.size > kMaxPayload) {
			error = requestName(header_.request) + ": " + std::to_string(header_.size) +
				"-byte payload (at most " + std::to_string(kMaxPayload) + " are accepted)";
			return Result::Error;
		}
	}
}

bool sendReply(int fd, uint32_t request, const void *payload, size_t size, std::string &error)
{
	MsgHeader h{ request, kFlagVersion | kFlagReply, static_cast<uint32_t>(size) };
	iovec iov[2] = { { &h, sizeof(h) }, { const_cast<void *>(payload), size } };
	msghdr msg{};
	msg.msg_iov = iov;
	msg.msg_iovlen = size ? 2 : 1;
	ssize_t n = sendmsg(fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
	if (n == static_cast<ssize_t>(sizeof(h) + size))
		return true;
	error = requestName(request) + ": the reply could not be sent (" +
		(n < 0 ? std::string(strerror(errno)) : "the socket took " + std::to_string(n) + " bytes") + ")";
	return false;
}

} // namespace slirpnet::vhost
