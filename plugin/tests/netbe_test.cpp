// SPDX-License-Identifier: BSD-2-Clause
// netbe_test.cpp - the C ABI of libslirpnet: an allocation failure inside a call is -1/ENOMEM, never an exception.
#include <gtest/gtest.h>

#include <poll.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

#include "slirpnet/netbe.h"

// Every operator new of the process, libslirpnet's included (the executable's definition
// interposes libstdc++'s), fails while gFailAllocations is set.
static bool gFailAllocations = false;

// new and delete below are a matching malloc/free pair; gcc 12 with -fsanitize=address sees
// gtest's inlined delete of a new'd test and warns of a mismatch all the same.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

void *operator new(size_t n)
{
	if (gFailAllocations)
		throw std::bad_alloc();
	if (void *p = malloc(n ? n : 1))
		return p;
	throw std::bad_alloc();
}

void operator delete(void *p) noexcept
{
	free(p);
}

void operator delete(void *p, size_t) noexcept
{
	free(p);
}

namespace {

// Allocation fails for the lifetime of this object.
struct FailAllocations {
	FailAllocations() { gFailAllocations = true; }
	~FailAllocations() { gFailAllocations = false; }
};

// An ARP request from the guest (10.0.2.15) for the gateway (10.0.2.2).
// clang-format off: one row per header field
const unsigned char kArpRequest[42] = {
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x08, 0x06,
	0x00, 0x01, 0x08, 0x00, 6,    4,    0x00, 0x01, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56,
	10,   0,    2,    15,   0,    0,    0,    0,    0,    0,    10,   0,    2,    2,
};
// clang-format on

// More iovecs than libslirpnet keeps on its stack (64), so that it allocates: one per
// byte of buf, then empty ones.
std::vector<struct iovec> manyIovecs(unsigned char *buf, size_t len, size_t count)
{
	std::vector<struct iovec> v(count, iovec{ nullptr, 0 });
	for (size_t i = 0; i < len && i < count; i++)
		v[i] = { buf + i, 1 };
	return v;
}

struct Backend {
	struct slirpnet_netbe *be = nullptr;
	Backend()
	{
		char *err = nullptr;
		int r = slirpnet_netbe_init(
			&be, "slirp,restrict=on", [](int, void *) {}, nullptr, nullptr, &err);
		EXPECT_EQ(r, 0) << (err ? err : "");
		free(err);
	}
	~Backend() { slirpnet_netbe_cleanup(be); }
};

} // namespace

TEST(NetbeAbi, InitOutOfMemoryIsMinusOneEnomem)
{
	struct slirpnet_netbe *be = reinterpret_cast<struct slirpnet_netbe *>(1);
	char *err = nullptr;
	int r, e;
	{
		FailAllocations fail;
		errno = 0;
		r = slirpnet_netbe_init(
			&be, "slirp,restrict=on", [](int, void *) {}, nullptr, nullptr, &err);
		e = errno;
	}
	EXPECT_EQ(r, -1);
	EXPECT_EQ(e, ENOMEM);
	EXPECT_EQ(be, nullptr);
	ASSERT_NE(err, nullptr); // strdup() is malloc(), which still works
	EXPECT_NE(strstr(err, "slirpnet_netbe_init"), nullptr) << err;
	free(err);
}

TEST(NetbeAbi, SendAndRecvOutOfMemoryAreMinusOneEnomem)
{
	Backend b;
	ASSERT_NE(b.be, nullptr);
	unsigned char frame[42];
	memcpy(frame, kArpRequest, sizeof(frame));
	auto txIov = manyIovecs(frame, sizeof(frame), 100);
	unsigned char reply[1514] = {};
	auto rxIov = manyIovecs(reply, 99, 100);
	rxIov.back() = { reply + 99, sizeof(reply) - 99 }; // room for any reply

	ssize_t sent, got;
	int sendErrno, recvErrno;
	{
		FailAllocations fail;
		errno = 0;
		sent = slirpnet_netbe_send(b.be, txIov.data(), static_cast<int>(txIov.size()));
		sendErrno = errno;
		errno = 0;
		got = slirpnet_netbe_recv(b.be, rxIov.data(), static_cast<int>(rxIov.size()));
		recvErrno = errno;
	}
	EXPECT_EQ(sent, -1);
	EXPECT_EQ(sendErrno, ENOMEM);
	EXPECT_EQ(got, -1);
	EXPECT_EQ(recvErrno, ENOMEM);

	// The backend is unharmed: the same calls work once memory is there again. The
	// failed send() sent nothing, so there is one reply, to this one.
	ASSERT_EQ(slirpnet_netbe_send(b.be, txIov.data(), static_cast<int>(txIov.size())), 42);
	struct pollfd p = { slirpnet_netbe_fd(b.be), POLLIN, 0 };
	ASSERT_EQ(poll(&p, 1, 5000), 1);
	got = slirpnet_netbe_recv(b.be, rxIov.data(), static_cast<int>(rxIov.size()));
	ASSERT_GE(got, 42);
	EXPECT_EQ(reply[12], 0x08);
	EXPECT_EQ(reply[13], 0x06); // ARP
	EXPECT_EQ(reply[21], 2); // reply
	EXPECT_EQ(memcmp(reply + 28, "\x0a\x00\x02\x02", 4), 0); // from the gateway
	EXPECT_EQ(slirpnet_netbe_recv(b.be, rxIov.data(), static_cast<int>(rxIov.size())), 0);
}
