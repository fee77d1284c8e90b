// SPDX-License-Identifier: BSD-2-Clause
// fuzz/fuzz_dgram.cpp - datagrams (one frame each) into a connected DgramLink, SOCK_DGRAM or SOCK_SEQPACKET, frames echoed back.
#include <glib.h>
#include <sys/socket.h>

#include <cstdint>
#include <cstring>
#include <memory>

#include "fake_port.hpp"
#include "fuzz_common.hpp"
#include "link/dgram_link.hpp"
#include "link/qemu_framing.hpp"

using namespace slirpnet;

namespace {

// Sends every frame back through the link: its queue of whole frames fills while the peer
// does not read, and is written out when it does.
class EchoPort : public FakePort
{
public:
	void fromGuest(const uint8_t *frame, size_t len, bool) override
	{
		if (len > cfg_.maxFrame())
			abort(); // a datagram above the limit was passed on (cut) instead of dropped
		if (link)
			link->sendFrame(frame, len);
	}
	GuestLink *link = nullptr;
};

// What the link sent: every datagram at least kMinFrame and at most the largest frame.
void drain(int fd, const Config &cfg)
{
	static uint8_t buf[kQemuMaxFrame + 1];
	ssize_t n;
	while ((n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT | MSG_TRUNC)) >= 0) {
		if (n == 0)
			break;
		if (static_cast<size_t>(n) < kMinFrame || static_cast<size_t>(n) > std::max(cfg.maxFrame(), kMinFrame))
			abort();
	}
}

} // namespace

/*
 * One link of each type for the whole run, as its 1 MiB output queue costs more to set up
 * than an input to run; each input ends with that queue drained and the link as new.
 */
struct Session {
	GMainContext *ctx = nullptr;
	UniqueFd peer;
	EchoPort port;
	std::unique_ptr<DgramLink> link;

	void open(int type)
	{
		if (!ctx)
			ctx = g_main_context_new();
		int sv[2];
		if (socketpair(AF_UNIX, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
			abort();
		port.link = nullptr;
		link.reset();
		peer.reset(sv[0]);
		link = DgramLink::connected(UniqueFd(sv[1]), type, port, ctx, "fuzz");
		port.link = link.get();
	}
	void runLoop()
	{
		for (int i = 0; i < 256 && !link->isClosed() && g_main_context_iteration(ctx, FALSE); i++) {
		}
	}
};
Session g_sessions[2];

extern "C" int LLVMFuzzerInitialize(int *, char ***)
{
	fuzz::quietLog();
	g_sessions[0].open(SOCK_DGRAM);
	g_sessions[1].open(SOCK_SEQPACKET);
	return 0;
}

/*
 * The first byte: bit 0 picks SOCK_SEQPACKET (else SOCK_DGRAM). The rest is records
 * (fuzz_common.hpp), each sent as one datagram (an empty one too); after each the loop
 * runs, and a record of odd length lets the peer read what came back.
 */
extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	int type = (data[0] & 1) ? SOCK_SEQPACKET : SOCK_DGRAM;
	Session &s = g_sessions[data[0] & 1];
	if (s.link->isClosed())
		s.open(type); // a send failed for good: a new peer
	const Config &cfg = s.port.cfg_;

	fuzz::Records records(data + 1, size - 1);
	const uint8_t *rec;
	size_t len;
	while (records.next(rec, len) && !s.link->isClosed()) {
		if (send(s.peer.get(), rec, len, MSG_DONTWAIT | MSG_NOSIGNAL | MSG_EOR) < 0) {
			drain(s.peer.get(), cfg); // full both ways, as the link waits for its output
			send(s.peer.get(), rec, len, MSG_DONTWAIT | MSG_NOSIGNAL | MSG_EOR);
		}
		s.runLoop();
		if (len & 1)
			drain(s.peer.get(), cfg);
	}
	// Leave nothing for the next input: the queue written out, everything read.
	for (int i = 0; i < 8 && !s.link->isClosed(); i++) {
		drain(s.peer.get(), cfg);
		s.runLoop();
	}
	drain(s.peer.get(), cfg);
	return 0;
}
