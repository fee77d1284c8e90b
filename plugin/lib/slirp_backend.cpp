// SPDX-License-Identifier: BSD-2-Clause
// slirp_backend.cpp - the "slirp" backend: spawns the slirpnet helper and moves frames over SEQPACKET.
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <endian.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "backend.hpp"
#include "ethernet.hpp"
#include "fd_watch.hpp"
#include "options.hpp"
#include "unique_fd.hpp"
#include "unix_socket.hpp"
#include "virtio_net.hpp"
#include "wire.hpp"

#ifndef SLIRPNET_HELPER_PATH
#define SLIRPNET_HELPER_PATH "/usr/libexec/slirpnet"
#endif

namespace slirpnet {

namespace {

// Bound on the wait for the helper's status (it reads /etc/resolv.conf, binds hostfwds).
constexpr int kStatusTimeoutMs = 10000;
// How long cleanup lets the helper exit on its own (EOF), then after SIGTERM.
constexpr int kExitGraceMs = 1000;
// The helper's stdin/out/err plus the socket, which it finds as fd 3.
constexpr int kHelperFd = 3;
// How long set_cap() waits for room in a full socket.
constexpr int kSetCapWaitMs = 1000;
// recv() skips at most this many frames the emulator can no longer take (see acceptable).
constexpr size_t kRxSkipLimit = 64;

std::string describeExit(int status)
{
	if (WIFEXITED(status))
		return "exited with status " + std::to_string(WEXITSTATUS(status));
	if (WIFSIGNALED(status))
		return std::string("was killed by signal ") + strsignal(WTERMSIG(status));
	return "stopped";
}

// waitpid with a deadline; true when reaped (or not our child any more).
bool reapWithin(pid_t pid, int ms, int *status)
{
	for (int waited = 0;; waited++) {
		pid_t r = waitpid(pid, status, WNOHANG);
		if (r == pid || (r < 0 && errno == ECHILD))
			return true;
		if (waited >= ms)
			return false;
		g_usleep(1000);
	}
}

size_t iovLength(const struct iovec *iov, int iovcnt)
{
	size_t n = 0;
	for (int i = 0; i < iovcnt; i++)
		n += iov[i].iov_len;
	return n;
}

// Copy n bytes between a buffer and the start of an iovec array (long enough: checked).
void copyFromIov(const struct iovec *iov, int iovcnt, void *dst, size_t n)
{
	auto *d = static_cast<uint8_t *>(dst);
	for (int i = 0; i < iovcnt && n; i++) {
		size_t k = std::min(n, iov[i].iov_len);
		memcpy(d, iov[i].iov_base, k);
		d += k;
		n -= k;
	}
}

void copyToIov(const struct iovec *iov, int iovcnt, const void *src, size_t n)
{
	auto *s = static_cast<const uint8_t *>(src);
	for (int i = 0; i < iovcnt && n; i++) {
		size_t k = std::min(n, iov[i].iov_len);
		memcpy(iov[i].iov_base, s, k);
		s += k;
		n -= k;
	}
}

/*
 * The wire header followed by the caller's iovecs minus their first skip bytes (the
 * caller's own header, of the negotiated length): what one sendmsg/recvmsg moves. Lives
 * on the caller's stack; only a caller with more than kInline iovecs makes it allocate,
 * which may throw std::bad_alloc (netbe.cpp turns it into -1/ENOMEM).
 */
class WireIov
{
public:
	WireIov(VnetHdr *hdr, const struct iovec *iov, int iovcnt, size_t skip)
	{
		if (iovcnt + 1 > kInline) {
			heap_.resize(static_cast<size_t>(iovcnt) + 1);
			v_ = heap_.data();
		}
		v_[n_++] = { hdr, kVnetHdrLen };
		for (int i = 0; i < iovcnt; i++) {
			size_t k = std::min(skip, iov[i].iov_len);
			skip -= k;
			if (iov[i].iov_len > k)
				v_[n_++] = { static_cast<uint8_t *>(iov[i].iov_base) + k, iov[i].iov_len - k };
		}
	}
	struct msghdr msg()
	{
		struct msghdr m = {};
		m.msg_iov = v_;
		m.msg_iovlen = n_;
		return m;
	}

private:
	static constexpr int kInline = 64;
	struct iovec inline_[kInline];
	std::vector<struct iovec> heap_;
	struct iovec *v_ = inline_;
	size_t n_ = 0;
};

class SlirpBackend final : public NetBackend
{
public:
	SlirpBackend(slirpnet_rxeof_t cb, void *param, size_t maxFrame) : cb_(cb), param_(param), maxFrame_(maxFrame) {}
	~SlirpBackend() override;

	bool start(const std::string &options, GMainContext *ctx, std::string &error);

	ssize_t send(const struct iovec *iov, int iovcnt) override;
	ssize_t peekRecvlen() noexcept override;
	ssize_t recv(const struct iovec *iov, int iovcnt) override;
	ssize_t rxDiscard() noexcept override;
	void rxEnable() noexcept override
	{
		if (watch_)
			watch_->enable();
	}
	void rxDisable() noexcept override
	{
		if (watch_)
			watch_->disable();
	}
	uint64_t getCap() const noexcept override { return kOffloadFeatures; }
	int setCap(uint64_t features, unsigned vnetHdrLen) noexcept override;
	int fd() const noexcept override { return sock_.get(); }

private:
	bool spawnHelper(int childEnd, std::string &error);
	bool awaitStatus(std::string &error);
	void stopHelper();
	void onEvent(int fd, GIOCondition cond);
	bool acceptable(const VnetHdr &h, size_t frameLen) const noexcept;
	bool wellFormed(const VnetHdr &h, size_t frameLen) const noexcept;
	void countMalformed() noexcept;
	ssize_t gone() noexcept
	{
		dead_ = true;
		errno = ECONNRESET;
		return -1;
	}

	slirpnet_rxeof_t cb_;
	void *param_;
	size_t maxFrame_;
	UniqueFd sock_;
	GPid pid_ = 0;
	std::unique_ptr<FdWatch> watch_;
	std::atomic<bool> dead_{ false };
	// Negotiated by setCap: the header length the emulator uses (0, 10, 12) and the
	// offloads. The wire always carries a 12-byte header (wire version 2).
	std::atomic<unsigned> hdrLen_{ 0 };
	std::atomic<uint64_t> features_{ 0 };
	// Frames from the helper whose virtio-net header did not describe them (dropped).
	std::atomic<uint64_t> malformed_{ 0 };
};

SlirpBackend::~SlirpBackend()
{
	watch_.reset(); // no callback after this point
	stopHelper();
}

bool SlirpBackend::spawnHelper(int childEnd, std::string &error)
{
	// secure_getenv: in a set-uid or file-capability emulator the environment is the
	// caller's, who must not pick the program this process runs.
	const char *env = secure_getenv("SLIRPNET_HELPER");
	std::string path = env && *env ? env : SLIRPNET_HELPER_PATH;
	std::string fdArg = std::to_string(kHelperFd);
	const gchar *argv[] = { path.c_str(), "-S", fdArg.c_str(), nullptr };
	int source[] = { childEnd };
	int target[] = { kHelperFd };
	GError *err = nullptr;
	// GLib closes every other fd in the child and maps the socket to fd 3; stdout and
	// stderr are inherited so the helper's log lines reach the emulator's stderr.
	if (!g_spawn_async_with_pipes_and_fds(nullptr, argv, nullptr, G_SPAWN_DO_NOT_REAP_CHILD, nullptr, nullptr, -1,
					      -1, -1, source, target, 1, &pid_, nullptr, nullptr, nullptr, &err)) {
		error = "cannot start the slirpnet helper '" + path + "': " + err->message +
			(env ? "" : " (set SLIRPNET_HELPER to its path)");
		g_error_free(err);
		pid_ = 0;
		return false;
	}
	return true;
}

bool SlirpBackend::awaitStatus(std::string &error)
{
	struct pollfd p = { sock_.get(), POLLIN, 0 };
	int r;
	do
		r = poll(&p, 1, kStatusTimeoutMs);
	while (r < 0 && errno == EINTR);
	if (r == 0) {
		error = "the slirpnet helper did not answer within " + std::to_string(kStatusTimeoutMs / 1000) + " s";
		return false;
	}
	std::vector<uint8_t> buf(kMaxControlMessage);
	ssize_t n = ::recv(sock_.get(), buf.data(), buf.size(), MSG_DONTWAIT | MSG_TRUNC);
	if (n <= 0 || static_cast<size_t>(n) > buf.size()) {
		int status = 0;
		sock_.reset();
		if (reapWithin(pid_, kExitGraceMs, &status)) {
			pid_ = 0;
			error = "the slirpnet helper " + describeExit(status) + " before it was ready";
		} else {
			error = "the slirpnet helper closed its socket before it was ready";
		}
		return false;
	}
	bool ok;
	std::string message;
	if (!decodeStatus(buf.data(), static_cast<size_t>(n), ok, message)) {
		error = "the slirpnet helper sent a malformed status message";
		return false;
	}
	if (!ok) {
		error = message;
		return false;
	}
	return true;
}

bool SlirpBackend::start(const std::string &options, GMainContext *ctx, std::string &error)
{
	OptionList opts;
	Config cfg;
	// Refuse bad options here, before any process exists.
	if (!splitOptions(options, opts, error) || !parseConfig(opts, cfg, error))
		return false;
	maxFrame_ = cfg.maxFrame();

	int sv[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0) {
		error = std::string("socketpair: ") + strerror(errno);
		return false;
	}
	sock_.reset(sv[0]);
	growSendBuffer(sock_.get(), static_cast<int>(cfg.sndbuf)); // frames to the helper
	UniqueFd childEnd(sv[1]);
	if (!spawnHelper(childEnd.get(), error))
		return false;
	childEnd.reset(); // only the helper holds that end now: its death means EOF here

	std::vector<uint8_t> msg = encodeConfig(opts);
	if (::send(sock_.get(), msg.data(), msg.size(), MSG_EOR | MSG_NOSIGNAL) < 0) {
		error = std::string("sending the config to the slirpnet helper: ") + strerror(errno);
		return false;
	}
	if (!awaitStatus(error))
		return false;

	// Created disabled, as bhyve's mevent_add_disabled: the emulator enables rx. Not
	// recursion-safe: the callback is the emulator's, which may iterate the context.
	watch_ = FdWatch::create(
		ctx, sock_.get(), static_cast<GIOCondition>(G_IO_IN | G_IO_HUP | G_IO_ERR),
		[this](int fd, GIOCondition c) { onEvent(fd, c); }, false);
	return true;
}

void SlirpBackend::onEvent(int fd, GIOCondition cond)
{
	cb_(fd, param_);
	if (cond & (G_IO_HUP | G_IO_ERR)) {
		// The helper is gone. Once its last frames are drained, stop firing: the
		// emulator has been told (recv returns -1/ECONNRESET) and must not spin.
		char c;
		ssize_t n = ::recv(sock_.get(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
		if (n <= 0 && !(n < 0 && errno == EAGAIN)) {
			dead_ = true;
			watch_->disable();
		}
	}
}

void SlirpBackend::stopHelper()
{
	sock_.reset(); // the helper exits 0 on EOF
	if (pid_ <= 0)
		return;
	int status = 0;
	if (!reapWithin(pid_, kExitGraceMs, &status)) {
		kill(pid_, SIGTERM);
		if (!reapWithin(pid_, kExitGraceMs, &status)) {
			kill(pid_, SIGKILL);
			waitpid(pid_, &status, 0);
		}
	}
	g_spawn_close_pid(pid_);
	pid_ = 0;
}

int SlirpBackend::setCap(uint64_t features, unsigned vnetHdrLen) noexcept
{
	// virtio's feature dependencies: TSO needs checksum offload in the same direction.
	bool missingDependency = ((features & (kFeatGuestTso4 | kFeatGuestTso6)) && !(features & kFeatGuestCsum)) ||
				 ((features & (kFeatHostTso4 | kFeatHostTso6)) && !(features & kFeatCsum));
	if ((vnetHdrLen != 0 && vnetHdrLen != 10 && vnetHdrLen != kVnetHdrLen) || (features & ~kOffloadFeatures) ||
	    (features && !vnetHdrLen) || missingDependency) {
		errno = EINVAL;
		return -1;
	}
	if (dead_)
		return static_cast<int>(gone());
	// The helper learns the features in order with the frames: a set-features record.
	uint8_t rec[kSetFeaturesLen] = {};
	rec[0] = kVnetFlagSetFeatures;
	uint64_t le = htole64(features);
	memcpy(rec + kVnetHdrLen, &le, sizeof(le));
	gint64 deadline = g_get_monotonic_time() + kSetCapWaitMs * 1000;
	for (;;) {
		if (::send(sock_.get(), rec, sizeof(rec), MSG_EOR | MSG_NOSIGNAL | MSG_DONTWAIT) >= 0)
			break;
		if (errno == EPIPE || errno == ECONNRESET)
			return static_cast<int>(gone());
		if (errno != EAGAIN && errno != EINTR)
			return -1;
		// A full socket (the guest is sending hard): this must not be lost; wait, bounded.
		gint64 left = (deadline - g_get_monotonic_time()) / 1000;
		struct pollfd p = { sock_.get(), POLLOUT, 0 };
		if (left <= 0 || (errno == EAGAIN && poll(&p, 1, static_cast<int>(left)) == 0)) {
			errno = EAGAIN;
			return -1;
		}
	}
	hdrLen_ = vnetHdrLen;
	features_ = features;
	return 0;
}

ssize_t SlirpBackend::send(const struct iovec *iov, int iovcnt)
{
	size_t len = iovLength(iov, iovcnt);
	unsigned hl = hdrLen_;
	if (len < hl + kEthHeaderLen) {
		// Not even an Ethernet header: refuse it here (an empty record would also look
		// like end-of-file to a reader of the socket).
		errno = EINVAL;
		return -1;
	}
	VnetHdr hdr{};
	if (hl)
		copyFromIov(iov, iovcnt, &hdr, hl);
	hdr.num_buffers = 0;
	hdr.flags &= kVnetNeedsCsum | kVnetDataValid; // the guest's, never the wire's own bits
	if (len - hl > (hdr.gso_type != kGsoNone ? kMaxGsoFrame : maxFrame_)) {
		errno = EMSGSIZE;
		return -1;
	}
	WireIov wire(&hdr, iov, iovcnt, hl);
	struct msghdr m = wire.msg();
	ssize_t n = sendmsg(sock_.get(), &m, MSG_EOR | MSG_NOSIGNAL | MSG_DONTWAIT);
	if (n < 0)
		return errno == EPIPE || errno == ECONNRESET ? gone() : -1;
	return n - static_cast<ssize_t>(kVnetHdrLen) + hl;
}

ssize_t SlirpBackend::peekRecvlen() noexcept
{
	if (dead_)
		return gone();
	// Frames recv() would skip are dropped here too, so that the length is the one of
	// the frame recv() returns next.
	for (size_t skipped = 0; skipped <= kRxSkipLimit; skipped++) {
		VnetHdr hdr{};
		// MSG_TRUNC makes the peek return the record's full length.
		ssize_t n = ::recv(sock_.get(), &hdr, sizeof(hdr), MSG_PEEK | MSG_TRUNC | MSG_DONTWAIT);
		if (n < 0)
			return errno == EAGAIN ? 0 : -1;
		if (n == 0)
			return gone(); // EOF: the helper never sends empty frames
		if (n >= static_cast<ssize_t>(kVnetHdrLen) && acceptable(hdr, static_cast<size_t>(n) - kVnetHdrLen))
			return n - static_cast<ssize_t>(kVnetHdrLen) + hdrLen_;
		if (::recv(sock_.get(), nullptr, 0, MSG_TRUNC | MSG_DONTWAIT) == 0)
			return gone();
	}
	return 0;
}

/*
 * Whether a frame from the helper may go to the emulator: false for frames made for
 * offloads the emulator has since withdrawn (skipped quietly) and for headers that do
 * not describe their frame (wellFormed: dropped and counted).
 */
bool SlirpBackend::acceptable(const VnetHdr &h, size_t frameLen) const noexcept
{
	uint64_t f = features_;
	uint8_t gso = h.gso_type & static_cast<uint8_t>(~kGsoEcn);
	if (gso == kGsoTcpv4 ? !(f & kFeatGuestTso4) : gso == kGsoTcpv6 ? !(f & kFeatGuestTso6) : gso != kGsoNone)
		return false;
	if ((h.flags & kVnetNeedsCsum) && !(f & kFeatGuestCsum))
		return false;
	if (!wellFormed(h, frameLen)) {
		const_cast<SlirpBackend *>(this)->countMalformed();
		return false;
	}
	return true;
}

/*
 * The helper parses the guest's traffic, so what it sends is checked like input from the
 * guest before an emulator (and its guest driver, and a host kernel through a tap) acts on
 * the header: every field within the frame it describes.
 */
bool SlirpBackend::wellFormed(const VnetHdr &h, size_t frameLen) const noexcept
{
	uint8_t gso = h.gso_type & static_cast<uint8_t>(~kGsoEcn);
	if (frameLen < kEthHeaderLen || (h.flags & ~(kVnetNeedsCsum | kVnetDataValid)))
		return false;
	// ECN is a modifier of a GSO type, never alone.
	if (gso == kGsoNone && h.gso_type != kGsoNone)
		return false;
	size_t hdrLen = le16toh(h.hdr_len), gsoSize = le16toh(h.gso_size);
	if (hdrLen > frameLen)
		return false;
	if (gso == kGsoNone) {
		if (frameLen > maxFrame_)
			return false;
	} else {
		// A segment size the guest's link could carry, and headers to copy before it.
		if (gsoSize == 0 || gsoSize + kEthHeaderLen > maxFrame_ || frameLen > kMaxGsoFrame ||
		    hdrLen < kEthHeaderLen || hdrLen >= frameLen)
			return false;
	}
	if (h.flags & kVnetNeedsCsum) {
		size_t start = le16toh(h.csum_start), offset = le16toh(h.csum_offset);
		if (start < kEthHeaderLen || start + offset + 2 > frameLen)
			return false;
	}
	return true;
}

void SlirpBackend::countMalformed() noexcept
{
	// The library has no counters of its own: the log says how many, without flooding.
	uint64_t n = ++malformed_;
	if ((n & (n - 1)) == 0)
		g_warning("slirpnet: dropped a frame from the helper with an invalid virtio-net header (%llu so far)",
			  static_cast<unsigned long long>(n));
}

ssize_t SlirpBackend::recv(const struct iovec *iov, int iovcnt)
{
	if (dead_)
		return gone();
	unsigned hl = hdrLen_;
	size_t room = iovLength(iov, iovcnt);
	// Bounded: frames made for offloads the emulator has since withdrawn are skipped.
	for (int skipped = 0; skipped < static_cast<int>(kRxSkipLimit); skipped++) {
		VnetHdr hdr{};
		WireIov wire(&hdr, iov, iovcnt, hl);
		struct msghdr m = wire.msg();
		ssize_t n = recvmsg(sock_.get(), &m, MSG_DONTWAIT);
		if (n < 0)
			return errno == EAGAIN ? 0 : -1;
		if (n == 0)
			return gone();
		if ((m.msg_flags & MSG_TRUNC) || room < hl) {
			// The frame did not fit: it is consumed, and the caller is told, not fooled.
			errno = EMSGSIZE;
			return -1;
		}
		if (n < static_cast<ssize_t>(kVnetHdrLen) || !acceptable(hdr, static_cast<size_t>(n) - kVnetHdrLen))
			continue;
		if (hl) {
			hdr.num_buffers = htole16(1);
			copyToIov(iov, iovcnt, &hdr, hl);
		}
		return n - static_cast<ssize_t>(kVnetHdrLen) + hl;
	}
	return 0;
}

ssize_t SlirpBackend::rxDiscard() noexcept
{
	if (dead_)
		return gone();
	ssize_t n = ::recv(sock_.get(), nullptr, 0, MSG_TRUNC | MSG_DONTWAIT);
	if (n < 0)
		return errno == EAGAIN ? 0 : -1;
	if (n == 0)
		return gone();
	return n < static_cast<ssize_t>(kVnetHdrLen) ? n : n - static_cast<ssize_t>(kVnetHdrLen) + hdrLen_;
}

} // namespace

std::unique_ptr<NetBackend> createSlirpBackend(const BackendArgs &args, std::string &error)
{
	auto be = std::make_unique<SlirpBackend>(args.callback, args.param, 0);
	if (!be->start(std::string(args.options), args.ctx, error))
		return nullptr; // the destructor ends any helper already started
	return be;
}

} // namespace slirpnet
