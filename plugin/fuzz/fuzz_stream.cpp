// SPDX-License-Identifier: BSD-2-Clause
// fuzz/fuzz_stream.cpp - QEMU's stream framing (4-byte length, frame) into StreamLink, cut anywhere, frames echoed back.
#include <glib.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "byte_order.hpp"
#include "fake_port.hpp"
#include "fuzz_common.hpp"
#include "link/stream_link.hpp"

using namespace slirpnet;

namespace {

/*
 * A port that sends every frame it gets straight back through the link, so that the
 * output side (padding, the length prefix, the ring of bytes and its wrap-around while
 * the peer does not read) runs too, with frames of the sizes the input chose.
 */
class EchoPort : public FakePort
{
public:
	void fromGuest(const uint8_t *frame, size_t len, bool) override
	{
		if (len > kQemuMaxFrame)
			abort(); // the framing let through more than a frame
		received++;
		if (link)
			link->sendFrame(frame, len);
	}
	GuestLink *link = nullptr;
	size_t received = 0;
};

/*
 * Reads what the link wrote and checks its framing: every length within
 * [kMinFrame, kQemuMaxFrame] and whole frames only, however the reads cut it.
 */
class OutputChecker
{
public:
	void drain(int fd)
	{
		uint8_t buf[65536];
		ssize_t n;
		while ((n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0)
			for (ssize_t i = 0; i < n;) {
				if (frameLeft_ == 0) {
					header_[headerLen_++] = buf[i++];
					if (headerLen_ < 4)
						continue;
					headerLen_ = 0;
					frameLeft_ = loadBe32(header_);
					if (frameLeft_ < kMinFrame || frameLeft_ > kQemuMaxFrame)
						abort(); // the link broke its own framing
					continue;
				}
				size_t take = std::min(frameLeft_, static_cast<size_t>(n - i));
				frameLeft_ -= take;
				i += static_cast<ssize_t>(take);
			}
	}

private:
	uint8_t header_[4];
	size_t headerLen_ = 0;
	size_t frameLeft_ = 0;
};

} // namespace

extern "C" int LLVMFuzzerInitialize(int *, char ***)
{
	fuzz::quietLog();
	return 0;
}

/*
 * The input is records (fuzz_common.hpp), each written to the socket as it is, then the
 * loop runs, so the framing is cut wherever the records cut it. A record whose length
 * is odd also lets the peer read what the link sent back; otherwise the link's output
 * queues up (and frames are dropped when the ring is full).
 */
extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	GMainContext *ctx = g_main_context_new();
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	UniqueFd peer(sv[0]);
	EchoPort port;
	// The smallest ring the link takes (one whole frame), so that it fills and wraps.
	auto link = StreamLink::create(UniqueFd(sv[1]), port, ctx, "fuzz", 0);
	port.link = link.get();
	OutputChecker out;

	fuzz::Records records(data, size);
	const uint8_t *rec;
	size_t len;
	while (records.next(rec, len) && !link->isClosed()) {
		size_t off = 0;
		for (int tries = 0; off < len && tries < 64; tries++) {
			ssize_t n = send(peer.get(), rec + off, len - off, MSG_DONTWAIT | MSG_NOSIGNAL);
			if (n > 0)
				off += static_cast<size_t>(n);
			g_main_context_iteration(ctx, FALSE);
			if (n < 0)
				out.drain(peer.get()); // full both ways: the link waits for its output
		}
		for (int i = 0; i < 256 && !link->isClosed() && g_main_context_iteration(ctx, FALSE); i++) {
		}
		if (len & 1)
			out.drain(peer.get());
	}
	// The end of the stream: what is left is a partial frame, which the link drops.
	peer.reset();
	for (int i = 0; i < 16 && !link->isClosed() && g_main_context_iteration(ctx, FALSE); i++) {
	}
	port.link = nullptr;
	link.reset();
	g_main_context_unref(ctx);
	return 0;
}
