// SPDX-License-Identifier: BSD-2-Clause
// fuzz/fuzz_wire.cpp - the plugin wire: config/status records, and records from the helper through libslirpnet's recv path.
#include <glib.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "fuzz_common.hpp"
#include "options.hpp"
#include "slirpnet/netbe.h"
#include "virtio_net.hpp"
#include "wire.hpp"

using namespace slirpnet;

/*
 * libslirpnet only talks to a helper it started itself. This program is that helper too:
 * run as SLIRPNET_HELPER with SLIRPNET_FUZZ_FAKE_HELPER set, it answers the config with
 * "ready" and hands its end of the socketpair (fd 3) back to the fuzzing process over the
 * abstract socket that variable names, then exits. The fuzzer then writes, as the helper,
 * whatever records an input holds, and the real backend (SlirpBackend) reads them.
 */
namespace {

constexpr int kHelperFd = 3;

[[noreturn]] void fakeHelper(const char *name)
{
	std::vector<uint8_t> buf(kMaxControlMessage);
	pollfd p = { kHelperFd, POLLIN, 0 };
	poll(&p, 1, 5000);
	if (recv(kHelperFd, buf.data(), buf.size(), 0) <= 0)
		_exit(1);
	std::vector<uint8_t> status = encodeStatus(true, "");
	if (send(kHelperFd, status.data(), status.size(), MSG_EOR) < 0)
		_exit(1);
	int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	sockaddr_un sa{};
	sa.sun_family = AF_UNIX;
	strncpy(sa.sun_path + 1, name, sizeof(sa.sun_path) - 2);
	socklen_t sl = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + strlen(name));
	char byte = 0;
	iovec iov = { &byte, 1 };
	alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
	msghdr m{};
	m.msg_name = &sa;
	m.msg_namelen = sl;
	m.msg_iov = &iov;
	m.msg_iovlen = 1;
	m.msg_control = control;
	m.msg_controllen = sizeof(control);
	cmsghdr *c = CMSG_FIRSTHDR(&m);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	int fd = kHelperFd;
	memcpy(CMSG_DATA(c), &fd, sizeof(fd));
	_exit(sendmsg(s, &m, 0) < 0 ? 1 : 0);
}

slirpnet_netbe *g_be;
int g_helperEnd = -1; // the helper's end of the socketpair, in this process

void startBackend()
{
	std::string name = "slirpnet-fuzz-wire-" + std::to_string(getpid());
	int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	sockaddr_un sa{};
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path + 1, name.data(), name.size());
	if (bind(s, reinterpret_cast<sockaddr *>(&sa),
		 static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size())) < 0) {
		perror("fuzz_wire: bind");
		abort();
	}
	setenv("SLIRPNET_HELPER", "/proc/self/exe", 1);
	setenv("SLIRPNET_FUZZ_FAKE_HELPER", name.c_str(), 1);
	char *err = nullptr;
	if (slirpnet_netbe_init(
		    &g_be, "slirp", [](int, void *) {}, nullptr, nullptr, &err) < 0) {
		fprintf(stderr, "fuzz_wire: the fake helper did not start: %s\n", err ? err : "?");
		abort();
	}
	unsetenv("SLIRPNET_FUZZ_FAKE_HELPER");
	char byte;
	iovec iov = { &byte, 1 };
	alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
	msghdr m{};
	m.msg_iov = &iov;
	m.msg_iovlen = 1;
	m.msg_control = control;
	m.msg_controllen = sizeof(control);
	pollfd p = { s, POLLIN, 0 };
	poll(&p, 1, 5000);
	if (recvmsg(s, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC) < 0 || !CMSG_FIRSTHDR(&m)) {
		fprintf(stderr, "fuzz_wire: no socket from the fake helper\n");
		abort();
	}
	memcpy(&g_helperEnd, CMSG_DATA(CMSG_FIRSTHDR(&m)), sizeof(int));
	close(s);
}

// The part of the input that is the helper's records: what the plugin reads.
void pluginReceives(const uint8_t *data, size_t size)
{
	static std::vector<uint8_t> buf(kVnetHdrLen + kMaxGsoFrame);
	static std::vector<uint8_t> rx(kVnetHdrLen + kMaxGsoFrame);
	if (size < 2)
		return;
	// Byte 0: the features the emulator negotiated (a bit per offload); byte 1: bits 0-1
	// the header length (0, 10, 12), bits 2-7 the receive buffer size in 1 KiB steps.
	static constexpr uint64_t kBit[8] = { SLIRPNET_NETBE_F_CSUM,
					      SLIRPNET_NETBE_F_GUEST_CSUM,
					      SLIRPNET_NETBE_F_GUEST_TSO4,
					      SLIRPNET_NETBE_F_GUEST_TSO6,
					      SLIRPNET_NETBE_F_HOST_TSO4,
					      SLIRPNET_NETBE_F_HOST_TSO6,
					      0,
					      0 };
	uint64_t features = 0;
	for (int b = 0; b < 8; b++)
		if (data[0] & (1u << b))
			features |= kBit[b];
	static constexpr unsigned kHdrLens[4] = { 0, 10, 12, 12 };
	unsigned hdrLen = kHdrLens[data[1] & 3];
	size_t room = std::min<size_t>(rx.size(), 64 + (data[1] >> 2) * 1024u);
	if (slirpnet_netbe_set_cap(g_be, features, hdrLen) < 0)
		slirpnet_netbe_set_cap(g_be, 0, hdrLen);
	while (recv(g_helperEnd, buf.data(), buf.size(), MSG_DONTWAIT) > 0) {
	} // the set-features record

	fuzz::Records records(data + 2, size - 2);
	const uint8_t *rec;
	size_t len;
	while (records.next(rec, len)) {
		if (len == 0)
			continue; // an empty record reads as the helper's end of file
		send(g_helperEnd, rec, len, MSG_DONTWAIT | MSG_EOR);
	}
	// Read as an emulator does: the length first, then the frame in two iovecs.
	for (int i = 0; i < 1000; i++) {
		ssize_t want = slirpnet_netbe_peek_recvlen(g_be);
		if (want <= 0)
			break;
		size_t split = std::min<size_t>(room, hdrLen + 7);
		iovec iov[2] = { { rx.data(), split }, { rx.data() + split, room - split } };
		ssize_t got = slirpnet_netbe_recv(g_be, iov, 2);
		if (got < 0 && errno == EMSGSIZE)
			continue;
		if (got != want || static_cast<size_t>(got) > room) {
			fprintf(stderr, "peek_recvlen said %zd, recv gave %zd (room %zu)\n", want, got, room);
			abort();
		}
	}
	while (slirpnet_netbe_rx_discard(g_be) > 0) {
	}
}

} // namespace

extern "C" int LLVMFuzzerInitialize(int *, char ***)
{
	if (const char *name = getenv("SLIRPNET_FUZZ_FAKE_HELPER"))
		fakeHelper(name);
	fuzz::quietLog();
	startBackend();
	return 0;
}

/*
 * The whole input is also tried as a config record (the helper's first read from the
 * plugin) and as a status record (the plugin's from the helper): a config accepted must
 * round-trip through encodeConfig and be checked by parseConfig as the helper would.
 * Then it is the helper's side of a session (pluginReceives).
 */
extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	OptionList opts;
	std::string error;
	uint32_t version = 0;
	if (decodeConfig(data, size, opts, error, &version)) {
		std::vector<uint8_t> again = encodeConfig(opts, version);
		OptionList opts2;
		uint32_t version2 = 0;
		if (!decodeConfig(again.data(), again.size(), opts2, error, &version2) || opts2 != opts ||
		    version2 != version)
			abort();
		Config cfg;
		parseConfig(opts, cfg, error);
	} else if (error.empty()) {
		abort();
	}
	bool ok;
	std::string message;
	decodeStatus(data, size, ok, message);

	pluginReceives(data, size);
	return 0;
}
