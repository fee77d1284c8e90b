// SPDX-License-Identifier: BSD-2-Clause
// tapbridge.cpp - benchmark "emulator": moves frames between a tap in a netns and slirpnet's ABI or a stream socket.
//
// The benchmark uses the Linux kernel's TCP stack as the guest: a tap device inside a network
// namespace. This tool plays the emulator's NIC model for two kinds of backend:
//
//   slirpnet-tapbridge --netns PATH --tap NAME --plugin SPEC [--no-offload]
//       libslirpnet's C ABI (slirpnet/netbe.h): tap -> slirpnet_netbe_send(), rx callback ->
//       tap. Two processes in all: this one and the helper the library spawns.
//       Like a virtio NIC it negotiates offloads (get_cap/set_cap): checksum offload and TSO
//       both ways, with a 12-byte virtio_net_hdr_mrg_rxbuf before every frame. The tap then
//       carries the same header (IFF_VNET_HDR, TUNSETOFFLOAD), so the namespace's kernel sends
//       64 KiB TSO superframes with partial checksums and takes GSO frames whole: frames pass
//       through unchanged, as between a guest's virtio driver and the backend. --no-offload,
//       or a backend that offers none, gives plain frames on both sides.
//   slirpnet-tapbridge --netns PATH --tap NAME --stream SOCKPATH
//       QEMU's -netdev stream framing (4-byte big-endian length, then the frame) on a UNIX
//       stream socket, as `slirpnet --socket` and passt serve it.
//   slirpnet-tapbridge --netns PATH --tap NAME --dgram SOCKPATH --local LOCALPATH
//       QEMU's -netdev dgram: one frame per datagram, from our socket bound at LOCALPATH
//       (made writable for all: the sandboxed helper answers as another user) to
//       `slirpnet --dgram SOCKPATH`.
//   slirpnet-tapbridge --netns PATH --tap NAME --fd stream|dgram SPEC
//       QEMU's -netdev socket,fd=: a socketpair of that type, one end given to
//       `$SLIRPNET_HELPER --fd 3 -o SPEC` (started here, as libvirt or a launcher would);
//       stream framing or one frame per datagram on ours.
//
// The tap is opened from inside the namespace (setns) and the process returns to its own
// namespace before anything else, so the backend's sockets live where the bridge was started.
// Like a virtio NIC, a full backend makes the bridge stop reading the tap (the kernel's qdisc
// then pushes back on the guest's TCP) instead of dropping the frame.
// It prints "ready" on stdout once frames can flow, and its counters on stderr at exit
// (including how many frames each way were GSO superframes, so a test can see offloads work).
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib-unix.h>
#include <glib.h>

#include <cerrno>
#include <cinttypes>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <slirpnet/netbe.h>

namespace {

// The vnet header negotiated in plugin mode: struct virtio_net_hdr_mrg_rxbuf, what a virtio
// NIC with VIRTIO_NET_F_MRG_RXBUF (or version 1) puts before every frame. Spelled out here
// because <linux/virtio_net.h> has a member named `class` and does not compile as C++.
struct VnetHdr {
	uint8_t flags; // VIRTIO_NET_HDR_F_*
	uint8_t gsoType; // VIRTIO_NET_HDR_GSO_*
	uint16_t hdrLen, gsoSize, csumStart, csumOffset; // little-endian
	uint16_t numBuffers;
};
constexpr unsigned kVnetHdrLen = sizeof(VnetHdr);
static_assert(kVnetHdrLen == 12);
constexpr uint8_t kVnetFNeedsCsum = 1; // VIRTIO_NET_HDR_F_NEEDS_CSUM
constexpr uint8_t kVnetGsoNone = 0; // VIRTIO_NET_HDR_GSO_NONE
// Largest frame on either side: a vnet header, an Ethernet header and an IP packet of up to
// 65535 bytes (a TSO superframe, or MTU 65520), plus a margin. QEMU's stream framing allows
// 65535 + a little.
constexpr size_t kMaxFrame = kVnetHdrLen + 14 + 65535 + 4096;
// Offloads a virtio NIC would ask for: checksums and TCP segmentation in both directions.
constexpr uint64_t kWantedFeatures = SLIRPNET_NETBE_F_CSUM | SLIRPNET_NETBE_F_GUEST_CSUM | SLIRPNET_NETBE_F_HOST_TSO4 |
				     SLIRPNET_NETBE_F_HOST_TSO6 | SLIRPNET_NETBE_F_GUEST_TSO4 |
				     SLIRPNET_NETBE_F_GUEST_TSO6;
// Frames read from the tap per dispatch: bounded so the rx direction is never starved.
constexpr int kTapBatch = 64;
// How long --stream waits for the backend's socket to appear.
constexpr int kConnectTimeoutMs = 10000;

struct Counters {
	uint64_t toBackendFrames = 0, toBackendBytes = 0;
	uint64_t toGuestFrames = 0, toGuestBytes = 0;
	uint64_t backendFull = 0; // send() said EAGAIN: tap reading paused until writable
	uint64_t tapWriteErrors = 0;
	uint64_t sendErrors = 0;
	uint64_t rxTooBig = 0;
	// With a vnet header: frames with a GSO type (superframes), and with NEEDS_CSUM.
	uint64_t toBackendGso = 0, toBackendCsum = 0;
	uint64_t toGuestGso = 0, toGuestCsum = 0;
};

struct Bridge {
	GMainLoop *loop = nullptr;
	int tapFd = -1;
	int exitCode = 0;
	Counters c;

	// --plugin
	slirpnet_netbe *be = nullptr;
	uint64_t features = 0; // negotiated with set_cap()
	unsigned vnetHdrLen = 0; // 0 or kVnetHdrLen, on the tap and the backend alike

	// --stream, --dgram, --fd: the socket to the backend (dgram: one frame per message)
	int sockFd = -1;
	bool dgram = false;
	// --dgram: the helper's address. Our socket stays unconnected, as QEMU's: a connected
	// UNIX datagram socket takes datagrams from its peer only, and the helper answers from
	// another socket than the one it reads.
	struct sockaddr_un dgramPeer = {};
	guint retrySource = 0; // --dgram: a full helper is retried on a timer (see dgramSend)
	pid_t helperPid = -1; // --fd: the helper we started
	std::vector<uint8_t> in; // reassembly of length-prefixed frames
	size_t inLen = 0;
	std::vector<uint8_t> out; // bytes the socket has not taken yet (at most one frame)
	size_t outOff = 0, outLen = 0;

	// The frame from the tap that the plugin refused with EAGAIN, retried when writable.
	std::vector<uint8_t> held;
	size_t heldLen = 0;

	guint tapSource = 0;
	guint writableSource = 0;
	std::vector<uint8_t> buf = std::vector<uint8_t>(kMaxFrame);
};

Bridge gBridge;

/*
 * g_unix_fd_add() without GLib's recursion guard. While it dispatches a non-recursive source,
 * GLib 2.74 takes the source's fds out of the poll set and puts them back, and each change
 * signals the context's wakeup eventfd: one write(), one extra poll() and one read() per
 * dispatch, all charged to the "emulator". None of these callbacks iterates the loop, so
 * allowing recursion is safe and keeps the bridge's own cost down to the frames it moves.
 */
guint addFdWatch(int fd, GIOCondition cond, GUnixFDSourceFunc fn)
{
	GSource *s = g_unix_fd_source_new(fd, cond);
	g_source_set_can_recurse(s, TRUE);
	g_source_set_callback(s, reinterpret_cast<GSourceFunc>(reinterpret_cast<void (*)()>(fn)), nullptr, nullptr);
	guint id = g_source_attach(s, nullptr);
	g_source_unref(s);
	return id;
}

void quit(int code)
{
	if (code && !gBridge.exitCode)
		gBridge.exitCode = code;
	g_main_loop_quit(gBridge.loop);
}

/*
 * Give the tap our vnet header and tell its kernel which offloads we take (TUNSETOFFLOAD:
 * what it may send us; GSO frames we write are always accepted). The header's byte order
 * is little-endian, as the ABI's: TUNSETVNETLE is a no-op on little-endian hosts and what
 * makes big-endian ones agree. Without a header the offloads are set to none explicitly:
 * they belong to the device and outlive a previous owner of a persistent tap, whose TSO
 * superframes would otherwise reach us with no header to describe them.
 * Returns the failing step, or nullptr.
 */
const char *configureTap(int fd, unsigned vnetHdrLen, unsigned tunOffload)
{
	if (vnetHdrLen) {
		int le = 1, sz = static_cast<int>(vnetHdrLen);
		if (ioctl(fd, TUNSETVNETLE, &le) < 0)
			return "TUNSETVNETLE";
		if (ioctl(fd, TUNSETVNETHDRSZ, &sz) < 0)
			return "TUNSETVNETHDRSZ";
	}
	if (ioctl(fd, TUNSETOFFLOAD, static_cast<unsigned long>(vnetHdrLen ? tunOffload : 0)) < 0)
		return "TUNSETOFFLOAD";
	return nullptr;
}

// Open (attach to) the tap NAME inside the network namespace at nsPath, then come back.
// With vnetHdrLen, every frame read or written carries that header (see configureTap()).
int openTapIn(const char *nsPath, const char *name, unsigned vnetHdrLen, unsigned tunOffload)
{
	int self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	int target = open(nsPath, O_RDONLY | O_CLOEXEC);
	if (self < 0 || target < 0) {
		fprintf(stderr, "tapbridge: opening namespaces: %s\n", strerror(errno));
		return -1;
	}
	if (setns(target, CLONE_NEWNET) < 0) {
		fprintf(stderr, "tapbridge: setns %s: %s\n", nsPath, strerror(errno));
		return -1;
	}
	int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	int err = errno;
	const char *step = "open /dev/net/tun";
	if (fd >= 0) {
		struct ifreq ifr = {};
		// A persistent tap takes the flags of whoever attaches: IFF_VNET_HDR is ours to set.
		ifr.ifr_flags = IFF_TAP | IFF_NO_PI | (vnetHdrLen ? IFF_VNET_HDR : 0);
		g_strlcpy(ifr.ifr_name, name, IFNAMSIZ);
		step = "TUNSETIFF";
		if (ioctl(fd, TUNSETIFF, &ifr) < 0 || (step = configureTap(fd, vnetHdrLen, tunOffload)) != nullptr) {
			err = errno;
			close(fd);
			fd = -1;
		}
	}
	// Back home before anything else: the helper and the sockets belong to this namespace.
	if (setns(self, CLONE_NEWNET) < 0) {
		fprintf(stderr, "tapbridge: setns back: %s\n", strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(self);
	close(target);
	if (fd < 0)
		fprintf(stderr, "tapbridge: tap %s in %s: %s: %s\n", name, nsPath, step, strerror(err));
	return fd;
}

void writeToTap(const uint8_t *frame, size_t len)
{
	// A tap write never blocks for long: the kernel queues or drops it like a NIC would.
	if (write(gBridge.tapFd, frame, len) < 0) {
		gBridge.c.tapWriteErrors++;
		return;
	}
	gBridge.c.toGuestFrames++;
	gBridge.c.toGuestBytes += len;
}

gboolean onTapReadable(gint, GIOCondition, gpointer);

void pauseTap()
{
	if (gBridge.tapSource) {
		g_source_remove(gBridge.tapSource);
		gBridge.tapSource = 0;
	}
}

void resumeTap()
{
	if (!gBridge.tapSource)
		gBridge.tapSource = addFdWatch(gBridge.tapFd, G_IO_IN, onTapReadable);
}

// ---- plugin mode -------------------------------------------------------------------------

gboolean onPluginWritable(gint, GIOCondition, gpointer);

// Count superframes and partial checksums: the proof that offloads are used, not just agreed.
void countVnet(const uint8_t *frame, size_t len, uint64_t &gso, uint64_t &csum)
{
	if (!gBridge.vnetHdrLen || len < gBridge.vnetHdrLen)
		return;
	if (frame[offsetof(VnetHdr, gsoType)] != kVnetGsoNone)
		gso++;
	if (frame[offsetof(VnetHdr, flags)] & kVnetFNeedsCsum)
		csum++;
}

/*
 * Pick the offloads like a virtio device model would: what we want and the backend offers,
 * minus features whose virtio prerequisite is missing (TSO needs checksum offload in the same
 * direction; the tap refuses TSO without TUN_F_CSUM too). Sets gBridge.features/vnetHdrLen;
 * any failure leaves both 0 (plain frames) after saying why.
 */
void negotiateOffloads()
{
	uint64_t caps = slirpnet_netbe_get_cap(gBridge.be);
	uint64_t want = caps & kWantedFeatures;
	if (!(want & SLIRPNET_NETBE_F_CSUM))
		want &= ~(SLIRPNET_NETBE_F_HOST_TSO4 | SLIRPNET_NETBE_F_HOST_TSO6);
	if (!(want & SLIRPNET_NETBE_F_GUEST_CSUM))
		want &= ~(SLIRPNET_NETBE_F_GUEST_TSO4 | SLIRPNET_NETBE_F_GUEST_TSO6);
	if (!want) {
		fprintf(stderr,
			"tapbridge: offloads: the backend offers none we use (get_cap = 0x%" PRIx64
			"): plain frames, no vnet header\n",
			caps);
		return;
	}
	if (slirpnet_netbe_set_cap(gBridge.be, want, kVnetHdrLen) != 0) {
		fprintf(stderr,
			"tapbridge: offloads: slirpnet_netbe_set_cap(0x%" PRIx64 ", %u): %s: "
			"plain frames, no vnet header\n",
			want, kVnetHdrLen, strerror(errno));
		return;
	}
	gBridge.features = want;
	gBridge.vnetHdrLen = kVnetHdrLen;
	fprintf(stderr, "tapbridge: offloads: features=0x%" PRIx64 " (get_cap = 0x%" PRIx64 ") vnet_hdr_len=%u\n", want,
		caps, kVnetHdrLen);
}

// TUNSETOFFLOAD's flags for the negotiated features: what the tap's kernel may send us.
unsigned tunOffloadFor(uint64_t features)
{
	unsigned f = 0;
	if (features & SLIRPNET_NETBE_F_CSUM)
		f |= TUN_F_CSUM;
	if (features & SLIRPNET_NETBE_F_HOST_TSO4)
		f |= TUN_F_TSO4;
	if (features & SLIRPNET_NETBE_F_HOST_TSO6)
		f |= TUN_F_TSO6;
	return f;
}

// Hand one frame to the plugin. False when it is full and the frame is now held.
bool pluginSend(const uint8_t *frame, size_t len)
{
	struct iovec iov = { const_cast<uint8_t *>(frame), len };
	ssize_t n = slirpnet_netbe_send(gBridge.be, &iov, 1);
	if (n >= 0) {
		gBridge.c.toBackendFrames++;
		gBridge.c.toBackendBytes += len;
		countVnet(frame, len, gBridge.c.toBackendGso, gBridge.c.toBackendCsum);
		return true;
	}
	if (errno == EAGAIN) {
		gBridge.c.backendFull++;
		if (gBridge.held.empty())
			gBridge.held.resize(kMaxFrame);
		if (frame != gBridge.held.data())
			memcpy(gBridge.held.data(), frame, len);
		gBridge.heldLen = len;
		pauseTap();
		if (!gBridge.writableSource)
			gBridge.writableSource = addFdWatch(slirpnet_netbe_fd(gBridge.be), G_IO_OUT, onPluginWritable);
		return false;
	}
	if (errno == ECONNRESET || errno == EPIPE) {
		fprintf(stderr, "tapbridge: slirpnet_netbe_send: %s (helper gone)\n", strerror(errno));
		quit(1);
	} else {
		gBridge.c.sendErrors++; // e.g. EMSGSIZE: the frame is dropped, as a NIC would
	}
	return true;
}

gboolean onPluginWritable(gint, GIOCondition, gpointer)
{
	gBridge.writableSource = 0;
	if (gBridge.heldLen && !pluginSend(gBridge.held.data(), gBridge.heldLen))
		return G_SOURCE_REMOVE; // pluginSend re-armed the watch
	gBridge.heldLen = 0;
	resumeTap();
	return G_SOURCE_REMOVE;
}

void onPluginRx(int, void *)
{
	struct iovec iov = { gBridge.buf.data(), gBridge.buf.size() };
	for (;;) {
		ssize_t n = slirpnet_netbe_recv(gBridge.be, &iov, 1);
		if (n > 0) {
			// Counted as handed over: a tap write error is counted on its own.
			countVnet(gBridge.buf.data(), static_cast<size_t>(n), gBridge.c.toGuestGso,
				  gBridge.c.toGuestCsum);
			writeToTap(gBridge.buf.data(), static_cast<size_t>(n));
			continue;
		}
		if (n == 0)
			return;
		if (errno == EMSGSIZE) {
			gBridge.c.rxTooBig++;
			continue;
		}
		fprintf(stderr, "tapbridge: slirpnet_netbe_recv: %s (helper gone)\n", strerror(errno));
		quit(1);
		return;
	}
}

// ---- stream mode -------------------------------------------------------------------------

gboolean onStreamWritable(gint, GIOCondition, gpointer);

// Write the pending bytes; true when all are gone.
bool streamFlush()
{
	while (gBridge.outLen) {
		ssize_t n = send(gBridge.sockFd, gBridge.out.data() + gBridge.outOff, gBridge.outLen,
				 MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return false;
			fprintf(stderr, "tapbridge: stream send: %s\n", strerror(errno));
			quit(1);
			gBridge.outLen = 0;
			return true;
		}
		gBridge.outOff += static_cast<size_t>(n);
		gBridge.outLen -= static_cast<size_t>(n);
	}
	return true;
}

// Send one frame with its length prefix; false when the socket is full (the rest is kept).
bool streamSend(const uint8_t *frame, size_t len)
{
	uint32_t be32 = htonl(static_cast<uint32_t>(len));
	struct iovec iov[2] = { { &be32, 4 }, { const_cast<uint8_t *>(frame), len } };
	struct msghdr m = {};
	m.msg_iov = iov;
	m.msg_iovlen = 2;
	ssize_t n = sendmsg(gBridge.sockFd, &m, MSG_DONTWAIT | MSG_NOSIGNAL);
	if (n < 0) {
		if (errno != EAGAIN && errno != EINTR) {
			fprintf(stderr, "tapbridge: stream send: %s\n", strerror(errno));
			quit(1);
			return true;
		}
		n = 0;
	}
	gBridge.c.toBackendFrames++;
	gBridge.c.toBackendBytes += len;
	size_t total = 4 + len;
	if (static_cast<size_t>(n) == total)
		return true;
	// Keep the unsent tail: the framing must stay intact, so it goes out before anything else.
	gBridge.c.backendFull++;
	if (gBridge.out.empty())
		gBridge.out.resize(4 + kMaxFrame);
	memcpy(gBridge.out.data(), &be32, 4);
	memcpy(gBridge.out.data() + 4, frame, len);
	gBridge.outOff = static_cast<size_t>(n);
	gBridge.outLen = total - static_cast<size_t>(n);
	pauseTap();
	if (!gBridge.writableSource)
		gBridge.writableSource = addFdWatch(gBridge.sockFd, G_IO_OUT, onStreamWritable);
	return false;
}

gboolean onStreamWritable(gint, GIOCondition, gpointer)
{
	if (!streamFlush())
		return G_SOURCE_CONTINUE;
	gBridge.writableSource = 0;
	resumeTap();
	return G_SOURCE_REMOVE;
}

gboolean onStreamReadable(gint fd, GIOCondition, gpointer)
{
	auto &in = gBridge.in;
	ssize_t n = recv(fd, in.data() + gBridge.inLen, in.size() - gBridge.inLen, MSG_DONTWAIT);
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
		fprintf(stderr, "tapbridge: stream closed by the backend%s%s\n", n ? ": " : "",
			n ? strerror(errno) : "");
		quit(1);
		return G_SOURCE_REMOVE;
	}
	if (n < 0)
		return G_SOURCE_CONTINUE;
	gBridge.inLen += static_cast<size_t>(n);
	size_t off = 0;
	while (gBridge.inLen - off >= 4) {
		uint32_t be32;
		memcpy(&be32, in.data() + off, 4);
		size_t len = ntohl(be32);
		if (len > kMaxFrame) {
			fprintf(stderr, "tapbridge: stream frame of %zu bytes: framing lost\n", len);
			quit(1);
			return G_SOURCE_REMOVE;
		}
		if (gBridge.inLen - off - 4 < len)
			break;
		if (len)
			writeToTap(in.data() + off + 4, len);
		off += 4 + len;
	}
	// Move the partial frame to the front; the buffer always holds one whole frame.
	memmove(in.data(), in.data() + off, gBridge.inLen - off);
	gBridge.inLen -= off;
	return G_SOURCE_CONTINUE;
}

int connectStream(const char *path)
{
	struct sockaddr_un sa = {};
	sa.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "tapbridge: socket path too long: %s\n", path);
		return -1;
	}
	strcpy(sa.sun_path, path);
	for (int waited = 0;; waited += 20) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return -1;
		if (connect(fd, reinterpret_cast<sockaddr *>(&sa), sizeof(sa)) == 0)
			return fd;
		int err = errno;
		close(fd);
		if (waited >= kConnectTimeoutMs || (err != ENOENT && err != ECONNREFUSED)) {
			fprintf(stderr, "tapbridge: connect %s: %s\n", path, strerror(err));
			return -1;
		}
		g_usleep(20000);
	}
}

// ---- dgram mode (--dgram, --fd dgram) ----------------------------------------------------

gboolean onDgramWritable(gint, GIOCondition, gpointer);
gboolean onDgramRetry(gpointer);

// Send one frame as one datagram. False when the socket is full and the frame is now held.
bool dgramSend(const uint8_t *frame, size_t len)
{
	ssize_t n = gBridge.dgramPeer.sun_family
			    ? sendto(gBridge.sockFd, frame, len, MSG_DONTWAIT | MSG_NOSIGNAL,
				     reinterpret_cast<const sockaddr *>(&gBridge.dgramPeer), sizeof(gBridge.dgramPeer))
			    : send(gBridge.sockFd, frame, len, MSG_DONTWAIT | MSG_NOSIGNAL);
	if (n >= 0) {
		gBridge.c.toBackendFrames++;
		gBridge.c.toBackendBytes += len;
		return true;
	}
	if (errno == EAGAIN || errno == ENOBUFS) {
		gBridge.c.backendFull++;
		if (gBridge.held.empty())
			gBridge.held.resize(kMaxFrame);
		if (frame != gBridge.held.data())
			memcpy(gBridge.held.data(), frame, len);
		gBridge.heldLen = len;
		pauseTap();
		// An unconnected socket polls writable whatever the receiver's queue: retry
		// on a 1 ms timer rather than spin. A connected one (--fd) has a real signal.
		if (gBridge.dgramPeer.sun_family) {
			if (!gBridge.retrySource)
				gBridge.retrySource = g_timeout_add(1, onDgramRetry, nullptr);
		} else if (!gBridge.writableSource) {
			gBridge.writableSource = addFdWatch(gBridge.sockFd, G_IO_OUT, onDgramWritable);
		}
		return false;
	}
	if (errno == ECONNREFUSED || errno == ECONNRESET || errno == EPIPE) {
		fprintf(stderr, "tapbridge: dgram send: %s (helper gone)\n", strerror(errno));
		quit(1);
	} else {
		gBridge.c.sendErrors++;
	}
	return true;
}

gboolean onDgramWritable(gint, GIOCondition, gpointer)
{
	gBridge.writableSource = 0;
	if (gBridge.heldLen && !dgramSend(gBridge.held.data(), gBridge.heldLen))
		return G_SOURCE_REMOVE; // dgramSend re-armed the watch
	gBridge.heldLen = 0;
	resumeTap();
	return G_SOURCE_REMOVE;
}

gboolean onDgramRetry(gpointer)
{
	gBridge.retrySource = 0;
	if (gBridge.heldLen && !dgramSend(gBridge.held.data(), gBridge.heldLen))
		return G_SOURCE_REMOVE; // dgramSend re-armed the timer
	gBridge.heldLen = 0;
	resumeTap();
	return G_SOURCE_REMOVE;
}

gboolean onDgramReadable(gint fd, GIOCondition, gpointer)
{
	for (int i = 0; i < kTapBatch; i++) {
		ssize_t n = recv(fd, gBridge.buf.data(), gBridge.buf.size(), MSG_DONTWAIT | MSG_TRUNC);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				break;
			fprintf(stderr, "tapbridge: dgram recv: %s (helper gone)\n", strerror(errno));
			quit(1);
			return G_SOURCE_REMOVE;
		}
		if (static_cast<size_t>(n) > gBridge.buf.size()) {
			gBridge.c.rxTooBig++;
			continue;
		}
		if (n > 0)
			writeToTap(gBridge.buf.data(), static_cast<size_t>(n));
	}
	return G_SOURCE_CONTINUE;
}

// --dgram: our socket bound at local; frames go to the helper's at path (once it is there).
int connectDgram(const char *path, const char *local)
{
	struct sockaddr_un sa = {}, la = {};
	sa.sun_family = la.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa.sun_path) || strlen(local) >= sizeof(la.sun_path)) {
		fprintf(stderr, "tapbridge: socket path too long\n");
		return -1;
	}
	strcpy(sa.sun_path, path);
	strcpy(la.sun_path, local);
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	unlink(local);
	if (fd < 0 || bind(fd, reinterpret_cast<sockaddr *>(&la), sizeof(la)) < 0) {
		fprintf(stderr, "tapbridge: bind %s: %s\n", local, strerror(errno));
		return -1;
	}
	// The helper drops to another user after start-up and must still reach us.
	chmod(local, 0666);
	// Large frames (MTU 65520) need room for a few of them in flight.
	int sz = 4 << 20;
	setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sz, sizeof(sz));
	setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof(sz));
	// The helper's socket must exist (its start-up is over) before frames are sent.
	struct stat st;
	for (int waited = 0; stat(path, &st) < 0 || !S_ISSOCK(st.st_mode); waited += 20) {
		if (waited >= kConnectTimeoutMs) {
			fprintf(stderr, "tapbridge: %s: no socket there\n", path);
			close(fd);
			return -1;
		}
		g_usleep(20000);
	}
	gBridge.dgramPeer = sa;
	return fd;
}

// --fd: a socketpair of the given type, its other end as fd 3 of $SLIRPNET_HELPER --fd 3 -o spec.
int spawnFdHelper(int type, const char *spec)
{
	const char *helper = getenv("SLIRPNET_HELPER");
	if (!helper || !*helper) {
		fprintf(stderr, "tapbridge: --fd needs SLIRPNET_HELPER (the helper binary)\n");
		return -1;
	}
	int sv[2];
	if (socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, sv) < 0) {
		fprintf(stderr, "tapbridge: socketpair: %s\n", strerror(errno));
		return -1;
	}
	int sz = 4 << 20;
	for (int fd : sv) {
		setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sz, sizeof(sz));
		setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof(sz));
	}
	pid_t pid = fork();
	if (pid < 0) {
		fprintf(stderr, "tapbridge: fork: %s\n", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		// fd 3 without CLOEXEC; our stdout is the rig's "ready" pipe: the helper logs to stderr.
		if (dup2(sv[1], 3) < 0 || dup2(2, 1) < 0)
			_exit(127);
		execl(helper, helper, "--fd", "3", "-o", spec, static_cast<char *>(nullptr));
		fprintf(stderr, "tapbridge: exec %s: %s\n", helper, strerror(errno));
		_exit(127);
	}
	close(sv[1]);
	gBridge.helperPid = pid;
	return sv[0];
}

// ---- the tap -----------------------------------------------------------------------------

gboolean onTapReadable(gint fd, GIOCondition, gpointer)
{
	uint8_t *frame = gBridge.buf.data();
	for (int i = 0; i < kTapBatch; i++) {
		ssize_t n = read(fd, frame, gBridge.buf.size());
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return G_SOURCE_CONTINUE;
			fprintf(stderr, "tapbridge: tap read: %s\n", strerror(errno));
			quit(1);
			gBridge.tapSource = 0;
			return G_SOURCE_REMOVE;
		}
		// num_buffers: the tap may skip these two bytes (they then hold an older frame's
		// bytes); a virtio driver sends 0 there.
		if (gBridge.vnetHdrLen == kVnetHdrLen && static_cast<size_t>(n) >= kVnetHdrLen)
			memset(frame + offsetof(VnetHdr, numBuffers), 0, sizeof(uint16_t));
		bool sent = gBridge.be      ? pluginSend(frame, static_cast<size_t>(n))
			    : gBridge.dgram ? dgramSend(frame, static_cast<size_t>(n))
					    : streamSend(frame, static_cast<size_t>(n));
		if (!sent) {
			gBridge.tapSource = 0; // pauseTap() removed this source
			return G_SOURCE_REMOVE;
		}
	}
	return G_SOURCE_CONTINUE;
}

gboolean onSignal(gpointer)
{
	quit(0);
	return G_SOURCE_CONTINUE;
}

void usage()
{
	fprintf(stderr, "usage: slirpnet-tapbridge --netns PATH --tap NAME "
			"(--plugin SPEC [--no-offload] | --stream SOCKPATH | --dgram SOCKPATH --local LOCALPATH |\n"
			"       --fd stream|dgram SPEC)\n");
}

} // namespace

int main(int argc, char **argv)
{
	const char *nsPath = nullptr, *tap = nullptr, *spec = nullptr, *sockPath = nullptr;
	const char *dgramPath = nullptr, *localPath = nullptr, *fdType = nullptr, *fdSpec = nullptr;
	bool offload = true;
	for (int i = 1; i < argc; i++) {
		std::string a = argv[i];
		if (a == "--no-offload") {
			offload = false;
			continue;
		}
		const char *v = i + 1 < argc ? argv[i + 1] : nullptr;
		if (!v) {
			usage();
			return 2;
		}
		if (a == "--netns")
			nsPath = v;
		else if (a == "--tap")
			tap = v;
		else if (a == "--plugin")
			spec = v;
		else if (a == "--stream")
			sockPath = v;
		else if (a == "--dgram")
			dgramPath = v;
		else if (a == "--local")
			localPath = v;
		else if (a == "--fd" && i + 2 < argc) {
			fdType = v;
			fdSpec = argv[i + 2];
			i++;
		} else {
			usage();
			return 2;
		}
		i++;
	}
	int modes = (spec != nullptr) + (sockPath != nullptr) + (dgramPath != nullptr) + (fdType != nullptr);
	bool badFd = fdType && strcmp(fdType, "stream") != 0 && strcmp(fdType, "dgram") != 0;
	if (!nsPath || !tap || modes != 1 || !dgramPath != !localPath || badFd) {
		usage();
		return 2;
	}

	gBridge.loop = g_main_loop_new(nullptr, FALSE);

	if (spec) {
		// The backend first: whether the tap gets a vnet header depends on what it offers.
		// rx stays disabled until the tap is open.
		char *err = nullptr;
		if (slirpnet_netbe_init(&gBridge.be, spec, onPluginRx, nullptr, nullptr, &err) != 0) {
			fprintf(stderr, "tapbridge: slirpnet_netbe_init: %s\n", err ? err : "?");
			free(err);
			return 1;
		}
		if (offload)
			negotiateOffloads();
		else
			fprintf(stderr, "tapbridge: offloads: off (--no-offload): plain frames, "
					"no vnet header\n");
		gBridge.tapFd = openTapIn(nsPath, tap, gBridge.vnetHdrLen, tunOffloadFor(gBridge.features));
		if (gBridge.tapFd < 0) {
			slirpnet_netbe_cleanup(gBridge.be);
			return 1;
		}
		slirpnet_netbe_rx_enable(gBridge.be);
	} else {
		gBridge.tapFd = openTapIn(nsPath, tap, 0, 0);
		if (gBridge.tapFd < 0)
			return 1;
		gBridge.dgram = dgramPath || (fdType && strcmp(fdType, "dgram") == 0);
		if (sockPath)
			gBridge.sockFd = connectStream(sockPath);
		else if (dgramPath)
			gBridge.sockFd = connectDgram(dgramPath, localPath);
		else
			gBridge.sockFd = spawnFdHelper(gBridge.dgram ? SOCK_DGRAM : SOCK_STREAM, fdSpec);
		if (gBridge.sockFd < 0)
			return 1;
		if (gBridge.dgram) {
			addFdWatch(gBridge.sockFd, G_IO_IN, onDgramReadable);
		} else {
			gBridge.in.resize(4 + kMaxFrame);
			addFdWatch(gBridge.sockFd, G_IO_IN, onStreamReadable);
		}
	}
	resumeTap();
	g_unix_signal_add(SIGTERM, onSignal, nullptr);
	g_unix_signal_add(SIGINT, onSignal, nullptr);

	printf("ready\n");
	fflush(stdout);
	g_main_loop_run(gBridge.loop);

	const Counters &c = gBridge.c;
	// Bytes include the vnet header when there is one. All values decimal: one k=N format.
	fprintf(stderr,
		"tapbridge: stats: to_backend_frames=%" PRIu64 " to_backend_bytes=%" PRIu64 " to_guest_frames=%" PRIu64
		" to_guest_bytes=%" PRIu64 " backend_full=%" PRIu64 " tap_write_errors=%" PRIu64 " send_errors=%" PRIu64
		" rx_too_big=%" PRIu64 " features=%" PRIu64 " vnet_hdr_len=%u to_backend_gso=%" PRIu64
		" to_backend_csum=%" PRIu64 " to_guest_gso=%" PRIu64 " to_guest_csum=%" PRIu64 "\n",
		c.toBackendFrames, c.toBackendBytes, c.toGuestFrames, c.toGuestBytes, c.backendFull, c.tapWriteErrors,
		c.sendErrors, c.rxTooBig, gBridge.features, gBridge.vnetHdrLen, c.toBackendGso, c.toBackendCsum,
		c.toGuestGso, c.toGuestCsum);
	if (gBridge.be)
		slirpnet_netbe_cleanup(gBridge.be);
	if (gBridge.sockFd >= 0)
		close(gBridge.sockFd); // --fd: the helper sees EOF (stream) or its peer gone and exits
	if (gBridge.helperPid > 0) {
		// Bounded wait for our helper, then SIGKILL: the bridge must not hang at exit.
		int st;
		for (int i = 0; i < 150 && waitpid(gBridge.helperPid, &st, WNOHANG) == 0; i++)
			g_usleep(20000);
		if (waitpid(gBridge.helperPid, &st, WNOHANG) == 0) {
			kill(gBridge.helperPid, SIGTERM);
			g_usleep(200000);
			kill(gBridge.helperPid, SIGKILL);
			waitpid(gBridge.helperPid, &st, 0);
		}
	}
	if (dgramPath)
		unlink(localPath);
	close(gBridge.tapFd);
	return gBridge.exitCode;
}
