// SPDX-License-Identifier: BSD-2-Clause
// netprobe.cpp - benchmark probes: TCP request/response latency and connection rate, with their echo server.
//
//   slirpnet-netprobe serve ADDR PORT
//       echo server (one epoll loop): echoes whatever arrives, closes on EOF. Prints "ready".
//   slirpnet-netprobe rr ADDR PORT SECONDS [SIZE] [SRCADDR]
//       one connection, TCP_NODELAY; SIZE bytes out, the same back, as fast as possible for
//       SECONDS. Prints JSON: transactions and latency median/p99/min/max in microseconds.
//   slirpnet-netprobe crr ADDR PORT SECONDS [SRCADDR]
//       connect, 1 byte out, 1 byte back, close; repeated for SECONDS. Prints JSON:
//       connections, connections per second, failures.
//
// In C++ rather than Python so that the probe's own cost stays far below what it measures
// (loopback round trips are a few microseconds). Every socket wait is bounded: a stalled
// backend yields an error in the JSON, never a hung benchmark.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

namespace {

// Per-operation bound on a client's wait (connect, send, receive).
constexpr int kIoTimeoutSec = 3;
// Round trips discarded before timing starts (connection warm-up, ARP, slow start).
constexpr int kWarmup = 50;

double nowSec()
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

bool parseAddr(const char *addr, const char *port, sockaddr_in &sa)
{
	sa = {};
	sa.sin_family = AF_INET;
	sa.sin_port = htons(static_cast<uint16_t>(atoi(port)));
	return inet_pton(AF_INET, addr, &sa.sin_addr) == 1;
}

void setTimeouts(int fd)
{
	struct timeval tv = { kIoTimeoutSec, 0 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)); // also bounds connect()
}

// A connected, blocking client socket with bounded waits; -1 and errno on failure.
int connectTo(const sockaddr_in &dst, const char *src)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setTimeouts(fd);
	if (src) {
		// A non-loopback source keeps pasta from splicing host-side connections past its tap.
		sockaddr_in sa = {};
		sa.sin_family = AF_INET;
		if (inet_pton(AF_INET, src, &sa.sin_addr) != 1 ||
		    bind(fd, reinterpret_cast<sockaddr *>(&sa), sizeof(sa)) < 0) {
			int e = errno;
			close(fd);
			errno = e ? e : EINVAL;
			return -1;
		}
	}
	if (connect(fd, reinterpret_cast<const sockaddr *>(&dst), sizeof(dst)) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

bool sendAll(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t r = send(fd, p, n, MSG_NOSIGNAL);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return false;
		p += r;
		n -= static_cast<size_t>(r);
	}
	return true;
}

bool recvAll(int fd, char *p, size_t n)
{
	while (n) {
		ssize_t r = recv(fd, p, n, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			if (r == 0)
				errno = ECONNRESET;
			return false;
		}
		p += r;
		n -= static_cast<size_t>(r);
	}
	return true;
}

void printError(const char *what)
{
	printf("{\"error\": \"%s: %s\"}\n", what, strerror(errno));
}

int serve(const sockaddr_in &addr)
{
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lfd, reinterpret_cast<const sockaddr *>(&addr), sizeof(addr)) < 0 || listen(lfd, 4096) < 0) {
		fprintf(stderr, "netprobe: bind/listen: %s\n", strerror(errno));
		return 1;
	}
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = {};
	ev.events = EPOLLIN;
	ev.data.fd = lfd;
	epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
	printf("ready\n");
	fflush(stdout);

	std::vector<char> buf(65536);
	struct epoll_event events[64];
	for (;;) {
		int n = epoll_wait(ep, events, 64, -1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return 1;
		for (int i = 0; i < n; i++) {
			int fd = events[i].data.fd;
			if (fd == lfd) {
				int c;
				while ((c = accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC)) >= 0) {
					setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
					// Blocking writes: an echo reply is small and the client reads it.
					struct timeval tv = { kIoTimeoutSec, 0 };
					setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
					struct epoll_event cev = {};
					cev.events = EPOLLIN;
					cev.data.fd = c;
					epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
				}
				continue;
			}
			ssize_t r = recv(fd, buf.data(), buf.size(), MSG_DONTWAIT);
			if (r < 0 && (errno == EAGAIN || errno == EINTR))
				continue;
			if (r <= 0 || !sendAll(fd, buf.data(), static_cast<size_t>(r)))
				close(fd); // also leaves the epoll set
		}
	}
}

int rr(const sockaddr_in &dst, double seconds, size_t size, const char *src)
{
	int fd = connectTo(dst, src);
	if (fd < 0) {
		printError("connect");
		return 1;
	}
	std::vector<char> msg(size, 'x'), back(size);
	std::vector<double> lat;
	lat.reserve(1 << 20);
	double end = 0;
	for (long i = 0;; i++) {
		if (i == kWarmup)
			end = nowSec() + seconds;
		double t0 = nowSec();
		if (i >= kWarmup && t0 >= end)
			break;
		if (!sendAll(fd, msg.data(), size) || !recvAll(fd, back.data(), size)) {
			printError("round trip");
			close(fd);
			return 1;
		}
		if (i >= kWarmup)
			lat.push_back((nowSec() - t0) * 1e6);
	}
	close(fd);
	std::sort(lat.begin(), lat.end());
	size_t n = lat.size();
	auto pct = [&](double p) { return lat[std::min(n - 1, static_cast<size_t>(p * static_cast<double>(n)))]; };
	printf("{\"transactions\": %zu, \"seconds\": %.3f, \"median_us\": %.2f, \"p99_us\": %.2f, "
	       "\"min_us\": %.2f, \"max_us\": %.2f}\n",
	       n, seconds, pct(0.5), pct(0.99), lat.front(), lat.back());
	return 0;
}

int crr(const sockaddr_in &dst, double seconds, const char *src)
{
	long ok = 0, failed = 0;
	std::string lastError;
	double start = nowSec(), end = start + seconds, now = start;
	while ((now = nowSec()) < end) {
		int fd = connectTo(dst, src);
		char c = 'x';
		if (fd < 0 || !sendAll(fd, &c, 1) || !recvAll(fd, &c, 1)) {
			failed++;
			lastError = strerror(errno);
			if (fd >= 0)
				close(fd);
			if (failed > 100 && failed > ok)
				break; // the backend is broken, not slow
			continue;
		}
		close(fd);
		ok++;
	}
	double elapsed = now - start;
	printf("{\"connections\": %ld, \"failed\": %ld, \"seconds\": %.3f, \"per_sec\": %.1f%s%s%s}\n", ok, failed,
	       elapsed, static_cast<double>(ok) / elapsed, lastError.empty() ? "" : ", \"last_error\": \"",
	       lastError.c_str(), lastError.empty() ? "" : "\"");
	return ok ? 0 : 1;
}

int usage()
{
	fprintf(stderr, "usage: slirpnet-netprobe serve ADDR PORT\n"
			"       slirpnet-netprobe rr ADDR PORT SECONDS [SIZE] [SRCADDR]\n"
			"       slirpnet-netprobe crr ADDR PORT SECONDS [SRCADDR]\n");
	return 2;
}

} // namespace

int main(int argc, char **argv)
{
	if (argc < 4)
		return usage();
	std::string mode = argv[1];
	sockaddr_in sa;
	if (!parseAddr(argv[2], argv[3], sa)) {
		fprintf(stderr, "netprobe: bad IPv4 address %s\n", argv[2]);
		return 2;
	}
	if (mode == "serve")
		return serve(sa);
	if (argc < 5)
		return usage();
	double seconds = atof(argv[4]);
	if (mode == "rr") {
		size_t size = argc > 5 ? static_cast<size_t>(atol(argv[5])) : 1;
		return rr(sa, seconds, size ? size : 1, argc > 6 ? argv[6] : nullptr);
	}
	if (mode == "crr")
		return crr(sa, seconds, argc > 5 ? argv[5] : nullptr);
	return usage();
}
