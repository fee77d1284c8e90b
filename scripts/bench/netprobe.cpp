// SPDX-License-Identifier: BSD-2-Clause
// netprobe.cpp - benchmark probes: TCP request/response latency and connection rate, with their echo server.
//
//   slirpnet-netprobe serve ADDR PORT
//       echo server (one epoll loop): echoes whatever arrives, closes on EOF. Prints "ready".
//   slirpnet-netprobe rr ADDR PORT SECONDS [SIZE] [SRCADDR]
//       one connection, TCP_NODELAY; SIZE bytes out, the same back, as fast as possible for
//       SECONDS. Prints JSON: transactions and latency median/p99/min/max in microseconds.
//   slirpnet-netprobe crr ADDR PORT SECONDS [SRCADDR] [--server-close]
//       connect, 1 byte out, 1 byte back, close; repeated for SECONDS. Prints JSON:
//       connections, connections per second (overall and each second), failures.
//       --server-close: the server closes first (as an HTTP/1.0 server does), so the
//       backend's end is the one that lingers (TIME_WAIT) after each connection.
//   slirpnet-netprobe urr ADDR PORT SECONDS RATE [SRCADDR]
//       UDP request/response against serve's UDP echo: RATE datagrams a second, each matched
//       to its echo. Prints JSON: sent, received, lost, latency; exits 1 if any was lost.
//   slirpnet-netprobe vserve ADDR PORT / verify ADDR PORT [--conns N] [--up B] [--down B] ...
//       verified transfers: N connections at once, each sending B bytes of a deterministic
//       pseudo-random stream each way, SHA-256 compared on both ends (see "verified
//       transfers" below). Prints JSON; exits 1 on any mismatch or incomplete connection.
//
// In C++ rather than Python so that the probe's own cost stays far below what it measures
// (loopback round trips are a few microseconds). Every socket wait is bounded: a stalled
// backend yields an error in the JSON, never a hung benchmark.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <glib.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <memory>
#include <string>
#include <vector>

namespace {

// Per-operation bound on a client's wait (connect, send, receive).
constexpr int kIoTimeoutSec = 3;
// Round trips discarded before timing starts (connection warm-up, ARP, slow start).
constexpr int kWarmup = 50;
// The one-byte request after which serve closes the connection itself (crr --server-close).
constexpr char kCloseFirst = 'C';

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

int listenOn(const sockaddr_in &addr, int type);

int serve(const sockaddr_in &addr)
{
	int one = 1;
	int lfd = listenOn(addr, SOCK_STREAM);
	// The UDP echo of `urr`, on the same address and port.
	int ufd = listenOn(addr, SOCK_DGRAM);
	if (lfd < 0 || ufd < 0)
		return 1;
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = {};
	ev.events = EPOLLIN;
	ev.data.fd = lfd;
	epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
	ev.data.fd = ufd;
	epoll_ctl(ep, EPOLL_CTL_ADD, ufd, &ev);
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
			if (fd == ufd) {
				sockaddr_in from;
				socklen_t fl = sizeof(from);
				ssize_t r;
				while ((r = recvfrom(ufd, buf.data(), buf.size(), MSG_DONTWAIT,
						     reinterpret_cast<sockaddr *>(&from), &fl)) >= 0) {
					sendto(ufd, buf.data(), static_cast<size_t>(r), MSG_DONTWAIT,
					       reinterpret_cast<sockaddr *>(&from), fl);
					fl = sizeof(from);
				}
				continue;
			}
			ssize_t r = recv(fd, buf.data(), buf.size(), MSG_DONTWAIT);
			if (r < 0 && (errno == EAGAIN || errno == EINTR))
				continue;
			if (r <= 0 || !sendAll(fd, buf.data(), static_cast<size_t>(r)))
				close(fd); // also leaves the epoll set
			else if (r == 1 && buf[0] == kCloseFirst)
				close(fd); // crr --server-close: we close first, the backend's side lingers
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

volatile sig_atomic_t gStop = 0;

void onStopSignal(int)
{
	gStop = 1;
}

// crr ends early, printing what it counted, on SIGTERM or SIGINT (a run beside another one).
int crr(const sockaddr_in &dst, double seconds, const char *src, bool serverClose)
{
	struct sigaction sa = {};
	sa.sa_handler = onStopSignal; // no SA_RESTART: a blocked connect() returns EINTR
	sigaction(SIGTERM, &sa, nullptr);
	sigaction(SIGINT, &sa, nullptr);
	long ok = 0, failed = 0;
	std::string lastError;
	double start = nowSec(), end = start + seconds, now = start;
	// Connections completed in each whole second since the start: the rate over time, to
	// see whether a backend keeps its rate or collapses as closed connections pile up.
	std::vector<long> perSecond(static_cast<size_t>(seconds) + 1, 0);
	while ((now = nowSec()) < end && !gStop) {
		int fd = connectTo(dst, src);
		char c = serverClose ? kCloseFirst : 'x';
		// --server-close: the server's FIN must come before ours (recv() == 0), so that
		// the backend, not the guest, is the side that closed first and keeps the state.
		if (fd < 0 || !sendAll(fd, &c, 1) || !recvAll(fd, &c, 1) || (serverClose && recv(fd, &c, 1, 0) != 0)) {
			if (gStop) {
				if (fd >= 0)
					close(fd);
				break; // interrupted, not failed
			}
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
		size_t sec = static_cast<size_t>(nowSec() - start);
		if (sec < perSecond.size())
			perSecond[sec]++;
	}
	double elapsed = now - start;
	std::string series;
	for (size_t i = 0; i < perSecond.size() && static_cast<double>(i) + 1 <= elapsed + 1e-3; i++)
		series += (series.empty() ? "" : ", ") + std::to_string(perSecond[i]);
	printf("{\"connections\": %ld, \"failed\": %ld, \"seconds\": %.3f, \"per_sec\": %.1f, \"per_second\": [%s]%s%s%s}\n",
	       ok, failed, elapsed, static_cast<double>(ok) / elapsed, series.c_str(),
	       lastError.empty() ? "" : ", \"last_error\": \"", lastError.c_str(), lastError.empty() ? "" : "\"");
	return ok ? 0 : 1;
}

// ---- verified transfers: `vserve` and `verify` -------------------------------------------
//
// A client connection starts with a header {magic, seed, up, down} (little-endian u64s), then
// sends `up` bytes of the stream gen(seed, kUp) while the server sends `down` bytes of
// gen(seed, kDown). Both sides hash what they send and what they receive (SHA-256). Once the
// server has received all `up` bytes and sent all `down` bytes it sends a 64-byte trailer,
// sha256(received) then sha256(sent), and closes. The client checks that the server received
// exactly what it sent and sent exactly what it received: any byte lost, duplicated, reordered
// or altered on either way fails that connection.

constexpr uint64_t kMagic = 0x31564e4c52494c53ULL; // "SLIRNLV1"
constexpr uint64_t kUp = 0x5550, kDown = 0x444e; // stream tags: each direction its own bytes
constexpr size_t kHeader = 32, kTrailer = 64, kDigest = 32;
constexpr size_t kChunk = 65536;

// The deterministic pseudo-random stream: 8-byte word k of stream (seed, tag) is
// splitmix64(seed ^ tag, k), so any offset can be generated without keeping state.
inline uint64_t streamWord(uint64_t key, uint64_t k)
{
	uint64_t z = key + (k + 1) * 0x9e3779b97f4a7c15ULL;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

// Fill out with bytes [off, off + n) of stream key (n <= kChunk).
void genStream(uint64_t key, uint64_t off, size_t n, uint8_t *out)
{
	static uint64_t words[kChunk / 8 + 2];
	uint64_t first = off / 8, count = (off % 8 + n + 7) / 8;
	for (uint64_t i = 0; i < count; i++)
		words[i] = streamWord(key, first + i);
	memcpy(out, reinterpret_cast<uint8_t *>(words) + off % 8, n);
}

void putU64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = static_cast<uint8_t>(v >> (8 * i));
}

uint64_t getU64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

struct Sha256 {
	GChecksum *c = g_checksum_new(G_CHECKSUM_SHA256);
	Sha256() = default;
	Sha256(const Sha256 &) = delete;
	Sha256 &operator=(const Sha256 &) = delete;
	~Sha256() { g_checksum_free(c); }
	void update(const uint8_t *p, size_t n) { g_checksum_update(c, p, static_cast<gssize>(n)); }
	void digest(uint8_t *out)
	{
		gsize len = kDigest;
		g_checksum_get_digest(c, out, &len);
	}
};

std::string hex(const uint8_t *p, size_t n)
{
	static const char *d = "0123456789abcdef";
	std::string s;
	for (size_t i = 0; i < n; i++) {
		s += d[p[i] >> 4];
		s += d[p[i] & 15];
	}
	return s;
}

// One side of a verified connection: what is left to send and receive, and the hashes.
struct Xfer {
	int fd = -1;
	uint64_t seed = 0, up = 0, down = 0;
	uint64_t sent = 0, received = 0; // stream bytes (not counting header or trailer)
	std::unique_ptr<Sha256> hashIn, hashOut;
	uint8_t hdr[kHeader + kTrailer + 1] = {}; // header, then (client) the trailer and 1 byte too many
	uint32_t events = 0; // what epoll watches for (server)
	size_t hdrDone = 0;
	bool failed = false;
	std::string error;
};

// Send the next piece of stream key; false on a hard error. Updates x.sent and hashOut.
bool sendStream(Xfer &x, uint64_t key, uint64_t total, uint8_t *scratch)
{
	while (x.sent < total) {
		size_t n = static_cast<size_t>(std::min<uint64_t>(kChunk, total - x.sent));
		genStream(key, x.sent, n, scratch);
		ssize_t r = send(x.fd, scratch, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (r < 0)
			return errno == EAGAIN || errno == EINTR;
		x.hashOut->update(scratch, static_cast<size_t>(r));
		x.sent += static_cast<uint64_t>(r);
	}
	return true;
}

void raiseFdLimit()
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int listenOn(const sockaddr_in &addr, int type)
{
	int fd = socket(AF_INET, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (fd < 0 || bind(fd, reinterpret_cast<const sockaddr *>(&addr), sizeof(addr)) < 0 ||
	    (type == SOCK_STREAM && listen(fd, 4096) < 0)) {
		fprintf(stderr, "netprobe: bind/listen: %s\n", strerror(errno));
		return -1;
	}
	return fd;
}

// The verify server: any number of connections at once, one epoll loop, never blocking.
int vserve(const sockaddr_in &addr)
{
	raiseFdLimit();
	int lfd = listenOn(addr, SOCK_STREAM);
	if (lfd < 0)
		return 1;
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = {};
	ev.events = EPOLLIN;
	ev.data.ptr = nullptr;
	epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
	printf("ready\n");
	fflush(stdout);
	std::vector<uint8_t> scratch(kChunk), in(kChunk);
	struct epoll_event events[256];
	auto finish = [&](Xfer *x) {
		if (x->failed)
			fprintf(stderr, "netprobe vserve: connection (seed %" PRIu64 "): %s\n", x->seed,
				x->error.c_str());
		close(x->fd);
		delete x;
	};
	for (;;) {
		int n = epoll_wait(ep, events, 256, -1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return 1;
		for (int i = 0; i < n; i++) {
			auto *x = static_cast<Xfer *>(events[i].data.ptr);
			if (!x) {
				int c;
				while ((c = accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
					auto *nx = new Xfer;
					nx->fd = c;
					nx->events = EPOLLIN | EPOLLRDHUP; // EPOLLOUT once there is a stream to send
					struct epoll_event cev = {};
					cev.events = nx->events;
					cev.data.ptr = nx;
					epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
				}
				continue;
			}
			bool done = false;
			// Header first; then the client's stream in, ours out; then the trailer.
			while (x->hdrDone < kHeader) {
				ssize_t r = recv(x->fd, x->hdr + x->hdrDone, kHeader - x->hdrDone, 0);
				if (r <= 0) {
					if (r < 0 && (errno == EAGAIN || errno == EINTR))
						break;
					x->failed = true;
					x->error = "closed before the header";
					done = true;
					break;
				}
				x->hdrDone += static_cast<size_t>(r);
				if (x->hdrDone == kHeader) {
					if (getU64(x->hdr) != kMagic) {
						x->failed = true;
						x->error = "bad header";
						done = true;
						break;
					}
					x->seed = getU64(x->hdr + 8);
					x->up = getU64(x->hdr + 16);
					x->down = getU64(x->hdr + 24);
					x->hashIn = std::make_unique<Sha256>();
					x->hashOut = std::make_unique<Sha256>();
					x->hdrDone = kHeader;
				}
			}
			if (!done && x->hdrDone == kHeader) {
				while (x->received < x->up) {
					size_t want = static_cast<size_t>(
						std::min<uint64_t>(kChunk, x->up - x->received));
					ssize_t r = recv(x->fd, in.data(), want, 0);
					if (r < 0 && (errno == EAGAIN || errno == EINTR))
						break;
					if (r <= 0) {
						x->failed = true;
						x->error = "closed after " + std::to_string(x->received) + " of " +
							   std::to_string(x->up) + " bytes";
						done = true;
						break;
					}
					x->hashIn->update(in.data(), static_cast<size_t>(r));
					x->received += static_cast<uint64_t>(r);
				}
				if (!done && !sendStream(*x, x->seed ^ kDown, x->down, scratch.data())) {
					x->failed = true;
					x->error = std::string("send: ") + strerror(errno);
					done = true;
				}
				if (!done && x->received == x->up && x->sent == x->down) {
					// The trailer is 64 bytes into an empty-enough buffer: a blocking
					// send with a bound is simpler than one more state.
					uint8_t t[kTrailer];
					x->hashIn->digest(t);
					x->hashOut->digest(t + kDigest);
					struct timeval tv = { kIoTimeoutSec, 0 };
					int fl = fcntl(x->fd, F_GETFL);
					fcntl(x->fd, F_SETFL, fl & ~O_NONBLOCK);
					setsockopt(x->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
					if (!sendAll(x->fd, reinterpret_cast<const char *>(t), kTrailer)) {
						x->failed = true;
						x->error = "trailer not sent";
					}
					done = true;
				}
			}
			if (done) {
				finish(x);
			} else {
				// EPOLLOUT only while there is something to send: level-triggered, it
				// would wake the loop for nothing otherwise.
				uint32_t want = EPOLLIN | EPOLLRDHUP |
						(x->hdrDone == kHeader && x->sent < x->down ? uint32_t{ EPOLLOUT }
											    : 0u);
				if (want != x->events) {
					x->events = want;
					struct epoll_event cev = {};
					cev.events = want;
					cev.data.ptr = x;
					epoll_ctl(ep, EPOLL_CTL_MOD, x->fd, &cev);
				}
			}
		}
	}
}

struct VerifyArgs {
	long conns = 1;
	uint64_t up = 0, down = 0;
	double timeout = 120; // seconds for all connections of a round
	double repeatSeconds = 0; // run rounds until this much time passed (0: one round)
	double pauseSeconds = 0; // between rounds: a bounded rate of new connections
	const char *src = nullptr;
	uint64_t seed = 1;
};

// One round: args.conns connections at once, each its own seed. Adds to the counters.
struct VerifyTotals {
	long completed = 0, failed = 0, rounds = 0;
	uint64_t upBytes = 0, downBytes = 0;
	std::string firstError, sha256Up, sha256Down;
};

void verifyRound(const sockaddr_in &dst, const VerifyArgs &a, uint64_t seedBase, VerifyTotals &t)
{
	int ep = epoll_create1(EPOLL_CLOEXEC);
	std::vector<uint8_t> scratch(kChunk), in(kChunk);
	std::vector<std::unique_ptr<Xfer>> xs;
	long open = 0;
	auto fail = [&](Xfer &x, const std::string &why) {
		if (x.fd >= 0) {
			close(x.fd);
			x.fd = -1;
			open--;
		}
		x.failed = true;
		x.error = why;
		t.failed++;
		if (t.firstError.empty())
			t.firstError = "connection " + std::to_string(x.seed - seedBase) + ": " + why;
	};
	for (long i = 0; i < a.conns; i++) {
		auto x = std::make_unique<Xfer>();
		x->seed = seedBase + static_cast<uint64_t>(i);
		x->up = a.up;
		x->down = a.down;
		x->hashIn = std::make_unique<Sha256>();
		x->hashOut = std::make_unique<Sha256>();
		putU64(x->hdr, kMagic);
		putU64(x->hdr + 8, x->seed);
		putU64(x->hdr + 16, a.up);
		putU64(x->hdr + 24, a.down);
		x->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (x->fd < 0) {
			xs.push_back(std::move(x));
			fail(*xs.back(), std::string("socket: ") + strerror(errno));
			continue;
		}
		open++;
		if (a.src) {
			sockaddr_in sa = {};
			sa.sin_family = AF_INET;
			inet_pton(AF_INET, a.src, &sa.sin_addr);
			if (bind(x->fd, reinterpret_cast<sockaddr *>(&sa), sizeof(sa)) < 0) {
				xs.push_back(std::move(x));
				fail(*xs.back(), std::string("bind: ") + strerror(errno));
				continue;
			}
		}
		if (connect(x->fd, reinterpret_cast<const sockaddr *>(&dst), sizeof(dst)) < 0 && errno != EINPROGRESS) {
			xs.push_back(std::move(x));
			fail(*xs.back(), std::string("connect: ") + strerror(errno));
			continue;
		}
		struct epoll_event ev = {};
		ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP;
		ev.data.ptr = x.get();
		epoll_ctl(ep, EPOLL_CTL_ADD, x->fd, &ev);
		xs.push_back(std::move(x));
	}
	double deadline = nowSec() + a.timeout;
	struct epoll_event events[256];
	while (open > 0) {
		int ms = static_cast<int>((deadline - nowSec()) * 1000);
		if (ms <= 0)
			break;
		int n = epoll_wait(ep, events, 256, ms);
		if (n < 0 && errno == EINTR)
			continue;
		for (int i = 0; i < n; i++) {
			Xfer &x = *static_cast<Xfer *>(events[i].data.ptr);
			if (x.fd < 0)
				continue;
			if (x.hdrDone < kHeader) { // connecting, or the header not all sent yet
				int err = 0;
				socklen_t el = sizeof(err);
				getsockopt(x.fd, SOL_SOCKET, SO_ERROR, &err, &el);
				if (err) {
					fail(x, std::string("connect: ") + strerror(err));
					continue;
				}
				ssize_t r = send(x.fd, x.hdr + x.hdrDone, kHeader - x.hdrDone,
						 MSG_NOSIGNAL | MSG_DONTWAIT);
				if (r < 0 && errno != EAGAIN && errno != EINTR && errno != ENOTCONN) {
					fail(x, std::string("send: ") + strerror(errno));
					continue;
				}
				if (r > 0)
					x.hdrDone += static_cast<size_t>(r);
				if (x.hdrDone < kHeader)
					continue;
			}
			if (!sendStream(x, x.seed ^ kUp, x.up, scratch.data())) {
				fail(x, std::string("send: ") + strerror(errno));
				continue;
			}
			// Receive the server's stream, then its trailer (kept in hdr after the header).
			bool closed = false;
			for (;;) {
				uint64_t need = x.down - x.received;
				size_t want = need ? static_cast<size_t>(std::min<uint64_t>(kChunk, need))
						   : kTrailer + 1 - (x.hdrDone - kHeader);
				uint8_t *dst2 = need ? in.data() : x.hdr + x.hdrDone;
				ssize_t r = recv(x.fd, dst2, want, 0);
				if (r < 0 && (errno == EAGAIN || errno == EINTR))
					break;
				if (r < 0) {
					fail(x, std::string("recv: ") + strerror(errno));
					closed = true;
					break;
				}
				if (r == 0) {
					closed = true;
					break;
				}
				if (need) {
					x.hashIn->update(in.data(), static_cast<size_t>(r));
					x.received += static_cast<uint64_t>(r);
				} else {
					x.hdrDone += static_cast<size_t>(r);
					if (x.hdrDone > kHeader + kTrailer) {
						fail(x, "bytes after the trailer");
						closed = true;
						break;
					}
				}
			}
			if (x.fd < 0)
				continue;
			if (closed) {
				if (x.received < x.down || x.hdrDone < kHeader + kTrailer || x.sent < x.up) {
					fail(x, "closed early: sent " + std::to_string(x.sent) + "/" +
							std::to_string(x.up) + ", received " +
							std::to_string(x.received) + "/" + std::to_string(x.down));
					continue;
				}
				uint8_t mineIn[kDigest], mineOut[kDigest];
				x.hashIn->digest(mineIn);
				x.hashOut->digest(mineOut);
				const uint8_t *theirsIn = x.hdr + kHeader, *theirsOut = x.hdr + kHeader + kDigest;
				if (memcmp(mineOut, theirsIn, kDigest) != 0) {
					fail(x, "guest-to-server bytes differ: sha256 sent " + hex(mineOut, kDigest) +
							", received " + hex(theirsIn, kDigest));
					continue;
				}
				if (memcmp(mineIn, theirsOut, kDigest) != 0) {
					fail(x, "server-to-client bytes differ: sha256 sent " +
							hex(theirsOut, kDigest) + ", received " + hex(mineIn, kDigest));
					continue;
				}
				if (a.conns == 1) {
					t.sha256Up = hex(mineOut, kDigest);
					t.sha256Down = hex(mineIn, kDigest);
				}
				t.completed++;
				t.upBytes += x.sent;
				t.downBytes += x.received;
				close(x.fd);
				x.fd = -1;
				open--;
				continue;
			}
			if (x.sent == x.up) {
				struct epoll_event ev = {};
				ev.events = EPOLLIN | EPOLLRDHUP;
				ev.data.ptr = &x;
				epoll_ctl(ep, EPOLL_CTL_MOD, x.fd, &ev);
			}
		}
	}
	for (auto &x : xs)
		if (x->fd >= 0)
			fail(*x, "incomplete after " + std::to_string(static_cast<int>(a.timeout)) + " s: sent " +
					 std::to_string(x->sent) + "/" + std::to_string(x->up) + ", received " +
					 std::to_string(x->received) + "/" + std::to_string(x->down));
	close(ep);
	t.rounds++;
}

int verify(const sockaddr_in &dst, const VerifyArgs &a)
{
	raiseFdLimit();
	VerifyTotals t;
	double start = nowSec();
	uint64_t seed = a.seed;
	do {
		verifyRound(dst, a, seed, t);
		seed += static_cast<uint64_t>(a.conns);
		if (a.pauseSeconds > 0 && a.repeatSeconds > 0) {
			if (nowSec() - start + a.pauseSeconds >= a.repeatSeconds)
				break; // the next round would start after the end
			usleep(static_cast<useconds_t>(a.pauseSeconds * 1e6));
		}
	} while (a.repeatSeconds > 0 && nowSec() - start < a.repeatSeconds && !t.failed);
	double el = nowSec() - start;
	printf("{\"connections\": %ld, \"completed\": %ld, \"failed\": %ld, \"rounds\": %ld, \"bytes_up\": %" PRIu64
	       ", \"bytes_down\": %" PRIu64 ", \"seconds\": %.3f, \"gbps_up\": %.3f, \"gbps_down\": %.3f",
	       a.conns * t.rounds, t.completed, t.failed, t.rounds, t.upBytes, t.downBytes, el,
	       static_cast<double>(t.upBytes) * 8 / el / 1e9, static_cast<double>(t.downBytes) * 8 / el / 1e9);
	if (!t.sha256Up.empty())
		printf(", \"sha256_up\": \"%s\", \"sha256_down\": \"%s\"", t.sha256Up.c_str(), t.sha256Down.c_str());
	if (!t.firstError.empty())
		printf(", \"first_error\": \"%s\"", t.firstError.c_str());
	printf("}\n");
	return t.failed || !t.completed ? 1 : 0;
}

// ---- UDP request/response: `urr` against `serve`'s UDP echo -------------------------------

// RATE datagrams per second, each {seq, send time}; every echo is matched to its sequence
// number. After SECONDS, stragglers get kStragglerSec (a late answer is slow, not lost).
// Lost = sent - distinct echoes received.
constexpr double kStragglerSec = 10;
int urr(const sockaddr_in &dst, double seconds, double rate, const char *src)
{
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (src) {
		sockaddr_in sa = {};
		sa.sin_family = AF_INET;
		inet_pton(AF_INET, src, &sa.sin_addr);
		bind(fd, reinterpret_cast<sockaddr *>(&sa), sizeof(sa));
	}
	if (connect(fd, reinterpret_cast<const sockaddr *>(&dst), sizeof(dst)) < 0) {
		printError("connect");
		return 1;
	}
	std::vector<uint8_t> seen;
	std::vector<double> lat;
	long sent = 0, received = 0, dup = 0, sendErrors = 0;
	double start = nowSec(), end = start + seconds, last = end + kStragglerSec;
	for (;;) {
		double now = nowSec();
		if (now >= last || (now >= end && received + dup >= sent))
			break;
		while (now < end && static_cast<double>(sent) < (now - start) * rate) {
			uint8_t m[32] = {};
			putU64(m, kMagic);
			putU64(m + 8, static_cast<uint64_t>(sent));
			double t0 = nowSec();
			memcpy(m + 16, &t0, sizeof(t0));
			if (send(fd, m, sizeof(m), 0) < 0)
				sendErrors++;
			sent++;
			seen.push_back(0);
		}
		struct pollfd pfd = { fd, POLLIN, 0 };
		poll(&pfd, 1, 1);
		uint8_t m[64];
		ssize_t r;
		while ((r = recv(fd, m, sizeof(m), 0)) >= 0) {
			if (r != 32 || getU64(m) != kMagic)
				continue;
			uint64_t seq = getU64(m + 8);
			if (seq >= seen.size())
				continue;
			if (seen[seq]++) {
				dup++;
				continue;
			}
			double t0;
			memcpy(&t0, m + 16, sizeof(t0));
			lat.push_back((nowSec() - t0) * 1e6);
			received++;
		}
	}
	close(fd);
	std::sort(lat.begin(), lat.end());
	auto pct = [&](double p) {
		return lat.empty() ? 0.0
				   : lat[std::min(lat.size() - 1,
						  static_cast<size_t>(p * static_cast<double>(lat.size())))];
	};
	printf("{\"sent\": %ld, \"received\": %ld, \"lost\": %ld, \"duplicates\": %ld, \"send_errors\": %ld, "
	       "\"median_us\": %.1f, \"p99_us\": %.1f}\n",
	       sent, received, sent - received, dup, sendErrors, pct(0.5), pct(0.99));
	return sent == received && !sendErrors ? 0 : 1;
}

int usage()
{
	fprintf(stderr, "usage: slirpnet-netprobe serve ADDR PORT\n"
			"       slirpnet-netprobe rr ADDR PORT SECONDS [SIZE] [SRCADDR]\n"
			"       slirpnet-netprobe crr ADDR PORT SECONDS [SRCADDR] [--server-close]\n"
			"       slirpnet-netprobe urr ADDR PORT SECONDS RATE [SRCADDR]\n"
			"       slirpnet-netprobe vserve ADDR PORT\n"
			"       slirpnet-netprobe verify ADDR PORT [--conns N] [--up BYTES] [--down BYTES]\n"
			"                         [--timeout S] [--repeat S [--pause S]] [--src SRCADDR] [--seed N]\n");
	return 2;
}

// A byte count with an optional K/M/G suffix (powers of 1024).
uint64_t parseBytes(const char *s)
{
	char *end = nullptr;
	double v = strtod(s, &end);
	switch (end && *end ? *end : ' ') {
	case 'K':
	case 'k':
		v *= 1024;
		break;
	case 'M':
	case 'm':
		v *= 1024 * 1024;
		break;
	case 'G':
	case 'g':
		v *= 1024.0 * 1024 * 1024;
		break;
	default:
		break;
	}
	return static_cast<uint64_t>(v);
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
	if (mode == "vserve")
		return vserve(sa);
	if (mode == "verify") {
		VerifyArgs a;
		for (int i = 4; i < argc; i += 2) {
			std::string k = argv[i];
			if (i + 1 >= argc)
				return usage();
			const char *v = argv[i + 1];
			if (k == "--conns")
				a.conns = atol(v);
			else if (k == "--up")
				a.up = parseBytes(v);
			else if (k == "--down")
				a.down = parseBytes(v);
			else if (k == "--timeout")
				a.timeout = atof(v);
			else if (k == "--repeat")
				a.repeatSeconds = atof(v);
			else if (k == "--pause")
				a.pauseSeconds = atof(v);
			else if (k == "--src")
				a.src = v;
			else if (k == "--seed")
				a.seed = strtoull(v, nullptr, 0);
			else
				return usage();
		}
		if (a.conns < 1 || a.timeout <= 0)
			return usage();
		return verify(sa, a);
	}
	if (argc < 5)
		return usage();
	double seconds = atof(argv[4]);
	if (mode == "rr") {
		size_t size = argc > 5 ? static_cast<size_t>(atol(argv[5])) : 1;
		return rr(sa, seconds, size ? size : 1, argc > 6 ? argv[6] : nullptr);
	}
	if (mode == "crr") {
		bool serverClose = false;
		const char *src = nullptr;
		for (int i = 5; i < argc; i++) {
			if (std::string(argv[i]) == "--server-close")
				serverClose = true;
			else
				src = argv[i];
		}
		return crr(sa, seconds, src, serverClose);
	}
	if (mode == "urr" && argc > 5)
		return urr(sa, seconds, atof(argv[5]), argc > 6 ? argv[6] : nullptr);
	return usage();
}
