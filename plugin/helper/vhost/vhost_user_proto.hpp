// SPDX-License-Identifier: BSD-2-Clause
// vhost/vhost_user_proto.hpp - the vhost-user wire format: messages, their payloads, and a reader that checks them.
#pragma once

#include <sys/socket.h>
#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "unique_fd.hpp"
#include "vhost/guest_memory.hpp"

namespace slirpnet {

/*
 * QEMU's docs/interop/vhost-user.rst, the back-end side. Every message is a 12-byte header
 * (request, flags, payload size; host byte order, which is little-endian on every host a
 * vhost-user front-end runs us on) and a payload; file descriptors ride along as
 * SCM_RIGHTS on the header's bytes. The front-end is a local client of our socket and so
 * untrusted: sizes, fd counts and versions are checked here before anything acts on them.
 */
namespace vhost {

enum Request : uint32_t {
	kGetFeatures = 1,
	kSetFeatures = 2,
	kSetOwner = 3,
	kResetOwner = 4,
	kSetMemTable = 5,
	kSetLogBase = 6,
	kSetLogFd = 7,
	kSetVringNum = 8,
	kSetVringAddr = 9,
	kSetVringBase = 10,
	kGetVringBase = 11,
	kSetVringKick = 12,
	kSetVringCall = 13,
	kSetVringErr = 14,
	kGetProtocolFeatures = 15,
	kSetProtocolFeatures = 16,
	kGetQueueNum = 17,
	kSetVringEnable = 18,
	kSendRarp = 19,
	kNetSetMtu = 20,
	kGetConfig = 24,
	kSetConfig = 25,
	kResetDevice = 34,
	kGetMaxMemSlots = 36,
};

constexpr uint32_t kFlagVersionMask = 0x3;
constexpr uint32_t kFlagVersion = 0x1;
constexpr uint32_t kFlagReply = 1u << 2;
constexpr uint32_t kFlagNeedReply = 1u << 3;

// Features (virtio and vhost-user's own).
constexpr uint64_t kFeatMrgRxbuf = 1ull << 15; // VIRTIO_NET_F_MRG_RXBUF
constexpr uint64_t kFeatEventIdx = 1ull << 29; // VIRTIO_RING_F_EVENT_IDX
constexpr uint64_t kFeatProtocolFeatures = 1ull << 30; // VHOST_USER_F_PROTOCOL_FEATURES
constexpr uint64_t kFeatVersion1 = 1ull << 32; // VIRTIO_F_VERSION_1
constexpr uint64_t kFeatNetMtu = 1ull << 3; // VIRTIO_NET_F_MTU

// Protocol features.
constexpr uint64_t kProtoReplyAck = 1ull << 3;
constexpr uint64_t kProtoNetMtu = 1ull << 4;
constexpr uint64_t kProtoResetDevice = 1ull << 13;

// SET_VRING_KICK/CALL/ERR's u64: the queue index, and "no fd" (polling) in bit 8.
constexpr uint64_t kVringIndexMask = 0xff;
constexpr uint64_t kVringNoFd = 1ull << 8;

struct MsgHeader {
	uint32_t request;
	uint32_t flags;
	uint32_t size;
};
static_assert(sizeof(MsgHeader) == 12);

struct VringState {
	uint32_t index;
	uint32_t num;
};
struct VringAddr {
	uint32_t index;
	uint32_t flags; // bit 0: VHOST_VRING_F_LOG (not offered)
	uint64_t desc; // the front-end's virtual addresses
	uint64_t used;
	uint64_t avail;
	uint64_t log;
};
static_assert(sizeof(VringAddr) == 40);
struct MemTable {
	uint32_t nregions;
	uint32_t padding;
	VhostMemRegion regions[GuestMemory::kMaxRegions];
};

// The largest payload accepted: a whole memory table; anything above is a broken peer.
constexpr size_t kMaxPayload = sizeof(MemTable);
// At most one fd per memory region: more is refused (and closed).
constexpr size_t kMaxFds = GuestMemory::kMaxRegions;

// "SET_MEM_TABLE (5)", for the log.
std::string requestName(uint32_t request);

/*
 * What a request's payload and fds must be, checked before it is handled: the payload
 * size (exact for fixed-size payloads, the region count for a memory table) and the
 * number of fds. False with error naming the request and the problem.
 */
bool checkMessage(const MsgHeader &h, const uint8_t *payload, size_t nfds, std::string &error);

/*
 * Assembles one message at a time from a non-blocking stream socket, whatever the split of
 * the reads: the header, then the payload, with the fds that came with them (taken with
 * MSG_CMSG_CLOEXEC; a truncated control message, or more than kMaxFds, is an error). Its
 * buffers are sized once for the largest accepted message.
 */
class MsgReader
{
public:
	enum class Result {
		Message, // header(), payload() and fds() hold a whole message; call next() after
		Again, // nothing more to read now
		Closed, // the peer closed the connection (between messages or inside one: see partial())
		Error, // the socket failed or the peer broke the framing (error says which)
	};
	MsgReader();
	Result read(int fd, std::string &error);
	// The message has been handled: forget it (its fds are closed unless taken).
	void next();
	bool partial() const { return got_ > 0; }

	const MsgHeader &header() const { return header_; }
	const uint8_t *payload() const { return payload_.data(); }
	std::vector<UniqueFd> &fds() { return fds_; }

private:
	// Keep the fds that came with a read (closing any beyond kMaxFds, noted in excessFds_).
	void takeFds(msghdr &msg);

	MsgHeader header_{};
	std::vector<uint8_t> payload_;
	std::vector<UniqueFd> fds_;
	size_t got_ = 0; // bytes of header + payload read so far
	bool excessFds_ = false; // more fds than kMaxFds, or a truncated control message
};

// Write a reply (header with the reply flag, then the payload) at once; false with error
// when the socket does not take it whole (the front-end waits for it, so that is fatal).
bool sendReply(int fd, uint32_t request, const void *payload, size_t size, std::string &error);

} // namespace vhost
} // namespace slirpnet
