// SPDX-License-Identifier: BSD-2-Clause
// fuzz/fuzz_vhost_msg.cpp - a hostile vhost-user front-end: any message sequence, real fds, guest memory and rings from the input.
#include <fcntl.h>
#include <glib.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "fake_port.hpp"
#include "fuzz_common.hpp"
#include "link/vhost_user_link.hpp"

using namespace slirpnet;

namespace {

/*
 * Input: the first 2 bytes give M, the next M bytes (at most kMemBytes) seed the guest
 * memory (a memfd of kMemBytes, the rest zero: rings and descriptors the input wrote);
 * then messages as the front-end sends them: a 12-byte header and its payload, cut where the
 * input ends. The fds a request needs are attached (the memfd for each region of a memory
 * table, eventfds for kick/call/err), so the session can get as far as moving frames: after
 * every message all kick eventfds are signalled, the loop runs, and a frame is sent towards
 * the guest. Every frame the guest sends is echoed back (both ring directions run).
 */
constexpr size_t kMemBytes = 64 * 1024;

class EchoPort : public FakePort
{
public:
	EchoPort() : FakePort(vnetConfig()) {}
	static Config vnetConfig()
	{
		Config c;
		c.vnetHdr = true;
		return c;
	}
	void fromGuest(const uint8_t *frame, size_t len, bool tso) override
	{
		(void)tso;
		if (len > kMaxGsoFrame)
			abort(); // more than a frame got through
		if (link && len <= 2048)
			link->sendFrame(frame, len);
	}
	GuestLink *link = nullptr;
};

struct Env {
	UniqueFd mem;
	std::vector<UniqueFd> kicks; // our ends of the kick eventfds
	Env()
	{
		fuzz::quietLog();
		mem.reset(memfd_create("fuzz-guest", MFD_CLOEXEC));
		if (!mem || ftruncate(mem.get(), kMemBytes) < 0)
			abort();
	}
};

void runLoop(GMainContext *ctx)
{
	for (int i = 0; i < 8 && g_main_context_iteration(ctx, FALSE); i++) {
	}
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static Env env;
	if (size < 2)
		return 0;
	size_t seed = std::min<size_t>((data[0] | data[1] << 8), kMemBytes);
	seed = std::min(seed, size - 2);
	{
		// Reset the guest memory: zeros, then the seed.
		void *m = mmap(nullptr, kMemBytes, PROT_READ | PROT_WRITE, MAP_SHARED, env.mem.get(), 0);
		if (m == MAP_FAILED)
			abort();
		memset(m, 0, kMemBytes);
		memcpy(m, data + 2, seed);
		munmap(m, kMemBytes);
	}
	data += 2 + seed;
	size -= 2 + seed;

	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	UniqueFd ours(sv[0]);
	GMainContext *ctx = g_main_context_new();
	EchoPort port;
	env.kicks.clear();
	{
		auto session = VhostUserSession::create(UniqueFd(sv[1]), port, ctx, "fuzz");
		port.link = session.get();
		static const uint8_t frame[60] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x52,
						   0x55, 0x0a, 0x00, 0x02, 0x02, 0x08, 0x06 };
		while (size >= sizeof(vhost::MsgHeader) && !session->isClosed()) {
			vhost::MsgHeader h;
			memcpy(&h, data, sizeof(h));
			size_t payload = std::min<size_t>(h.size, size - sizeof(h));
			payload = std::min(payload, vhost::kMaxPayload + 16);
			// The fds this request asks for, as a front-end would attach them.
			std::vector<int> fds;
			std::vector<UniqueFd> owned;
			if (h.request == vhost::kSetMemTable && payload >= 4) {
				uint32_t n;
				memcpy(&n, data + sizeof(h), sizeof(n));
				for (uint32_t i = 0; i < std::min<uint32_t>(n, vhost::kMaxFds); i++)
					fds.push_back(env.mem.get());
			} else if ((h.request == vhost::kSetVringKick || h.request == vhost::kSetVringCall ||
				    h.request == vhost::kSetVringErr) &&
				   payload >= 8 && !(data[sizeof(h) + 1] & 1)) {
				owned.emplace_back(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
				fds.push_back(owned.back().get());
				if (h.request == vhost::kSetVringKick)
					env.kicks.emplace_back(dup(owned.back().get()));
			}
			iovec iov{ const_cast<uint8_t *>(data), sizeof(h) + payload };
			msghdr msg{};
			msg.msg_iov = &iov;
			msg.msg_iovlen = 1;
			alignas(cmsghdr) uint8_t control[CMSG_SPACE(sizeof(int) * vhost::kMaxFds)];
			if (!fds.empty()) {
				msg.msg_control = control;
				msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
				cmsghdr *c = CMSG_FIRSTHDR(&msg);
				c->cmsg_level = SOL_SOCKET;
				c->cmsg_type = SCM_RIGHTS;
				c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
				memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
			}
			if (sendmsg(ours.get(), &msg, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
				break;
			data += sizeof(h) + payload;
			size -= sizeof(h) + payload;
			session->processMessages();
			// Drain replies so the socket never fills.
			uint8_t sink[4096];
			while (recv(ours.get(), sink, sizeof(sink), MSG_DONTWAIT) > 0) {
			}
			uint64_t one = 1;
			for (const UniqueFd &k : env.kicks)
				(void)!write(k.get(), &one, sizeof(one));
			runLoop(ctx);
			if (!session->isClosed()) {
				session->sendFrame(frame, sizeof(frame));
				session->flush();
			}
		}
		port.link = nullptr;
	}
	env.kicks.clear();
	g_main_context_unref(ctx);
	return 0;
}
