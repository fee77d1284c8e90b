/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * netbe.h - slirpnet's network backend ABI for emulators (bhyve's backend contract, in C).
 *
 * An emulator links libslirpnet (pkg-config: slirpnet), creates one backend per NIC with
 * slirpnet_netbe_init() and moves Ethernet frames with send/recv. The backend does its
 * work in a helper process; the emulator only sees a socket whose readiness is reported
 * through the rx callback, dispatched from a GLib main context.
 *
 * Threading: send() may be called from any thread (e.g. a TX thread) concurrently with
 * the rx path. peek_recvlen()/recv()/rx_discard() must not run concurrently with each
 * other. rx_enable()/rx_disable() may be called from any thread.
 *
 * Errors: functions that can fail return -1 and set errno; none of them blocks for
 * long (set_cap() at most a second, init() at most the helper's start-up) and none
 * raises a signal (SIGPIPE is suppressed) or lets a C++ exception escape. Besides the
 * errno values listed with each function, any call that moves frames may fail with
 * ENOMEM (memory for a large iovec array could not be allocated; nothing was sent or
 * consumed) or, rarely, another errno of sendmsg(2)/recvmsg(2).
 */
#ifndef SLIRPNET_NETBE_H
#define SLIRPNET_NETBE_H

#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* GLib's GMainContext (a typedef of this struct), named without the typedef so that C99
 * users may include this header with or without glib.h. */
struct _GMainContext;

struct slirpnet_netbe;

/*
 * Rx callback (bhyve's net_be_rxeof_t): called by the backend, from its main context
 * (see init) and only while rx is enabled, when frames may be available or when the
 * helper has gone away (recv then returns -1, errno ECONNRESET). fd is
 * slirpnet_netbe_fd(); param is init's param. The callback should drain frames with
 * peek_recvlen()/recv() until they return 0 (or rx_discard() those it cannot take).
 * Level-triggered: it keeps firing while frames are pending and rx is enabled, so a
 * callback that stops early (e.g. guest ring full) should rx_disable() until it has
 * room. After reporting a dead helper once it stops.
 */
typedef void (*slirpnet_rxeof_t)(int fd, void *param);

/*
 * Create a backend: called by the emulator once per NIC, when the NIC is configured,
 * before any other function. spec is "BACKEND[,key=value...]", e.g.
 * "slirp,hostfwd=tcp:127.0.0.1:2222-:22,mtu=4000"; BACKEND, the text before the first
 * comma, must be the exact name of a registered backend ("slirp"). ctx is the GLib main
 * context that dispatches cb (NULL: the calling thread's thread-default context, i.e.
 * g_main_context_ref_thread_default()). It
 * validates the options, starts the helper and waits (at most 10 s) until it is ready.
 * The backend starts with rx disabled. Returns 0 and sets *be, or -1 with errno EINVAL
 * (no be or spec, an unknown backend, a bad option, a helper that cannot start) or
 * ENOMEM, sets *be to NULL and *errmsg (if errmsg is not NULL) to a malloc()ed message
 * naming the bad key and value, or the helper's own error; the caller free()s it.
 * On failure no process, fd or GLib source is left behind.
 */
int slirpnet_netbe_init(struct slirpnet_netbe **be, const char *spec, slirpnet_rxeof_t cb, void *param,
			struct _GMainContext *ctx, char **errmsg);

/*
 * Destroy a backend: called by the emulator when the NIC goes away, once no other call
 * on be can be running. Removes the rx source (no callback runs after it returns),
 * closes the socket, lets the helper exit on EOF (then SIGTERM, then SIGKILL, each after
 * a second's grace) and reaps it. Safe on NULL. Must not be called from inside the
 * backend's own rx callback.
 */
void slirpnet_netbe_cleanup(struct slirpnet_netbe *be);

/*
 * Transmit one guest frame: called by the emulator's TX path for each frame the guest
 * sends (the iovecs concatenated, behind the negotiated virtio-net header if any, see
 * set_cap). Never blocks. Returns the bytes taken (the whole iovec length: a frame is
 * never sent in part), or -1 with errno: EAGAIN when the helper's queue is full (drop
 * it; TCP retransmits), EMSGSIZE when the frame is larger than the backend accepts
 * (max(MTU, MRU) + 14, or 14 + 65535 with a GSO type), EINVAL when it is shorter than an
 * Ethernet header (14 bytes, plus the negotiated header), ECONNRESET when the helper is
 * gone, ENOMEM (see Errors above).
 */
ssize_t slirpnet_netbe_send(struct slirpnet_netbe *be, const struct iovec *iov, int iovcnt);

/*
 * Length of the next frame to the guest (the negotiated header included), without
 * consuming it: called from the rx callback, before recv(), to size or pick the guest
 * buffers. Never blocks. Returns 0 when no frame is pending, -1 with errno ECONNRESET
 * when the helper is gone. Frames that recv() would skip (see set_cap) are dropped
 * here, so the length is that of the frame recv() returns next.
 */
ssize_t slirpnet_netbe_peek_recvlen(struct slirpnet_netbe *be);

/*
 * Receive the next frame into iov (the negotiated header first): called from the rx
 * callback, repeatedly until it returns 0. Never blocks. Returns the frame's length; 0
 * when no frame is pending; -1 with errno: EMSGSIZE when the frame does not fit in iov
 * (the frame is consumed and dropped, never truncated silently), ECONNRESET when the
 * helper is gone, ENOMEM (see Errors above; the frame stays queued).
 */
ssize_t slirpnet_netbe_recv(struct slirpnet_netbe *be, const struct iovec *iov, int iovcnt);

/*
 * Drop the next frame: called from the rx callback when the guest has no buffer for it
 * (bhyve drops rather than stalls the backend). Never blocks. Returns the dropped
 * frame's length (the negotiated header included), 0 when no frame is pending, -1 with
 * errno ECONNRESET when the helper is gone.
 */
ssize_t slirpnet_netbe_rx_discard(struct slirpnet_netbe *be);

/*
 * Start / stop calling the rx callback: called by the emulator when the guest's receive
 * queue becomes ready (after init, and again after a reset) or full. Idempotent; may
 * be called from any thread, and wake the context so that the change takes effect at
 * once. Called on the context's own thread, rx_disable() guarantees no further callback
 * until rx_enable(); from another thread, one already being dispatched may still run.
 */
void slirpnet_netbe_rx_enable(struct slirpnet_netbe *be);
void slirpnet_netbe_rx_disable(struct slirpnet_netbe *be);

/*
 * Offloads (bhyve's get_cap/set_cap). The feature bits are virtio-net's VIRTIO_NET_F_*
 * (as masks). Once set_cap() has negotiated a vnet_hdr_len of 10 (struct virtio_net_hdr)
 * or 12 (struct virtio_net_hdr_mrg_rxbuf; num_buffers is written as 1), every frame given
 * to send() and returned by recv() starts with that header, in little-endian byte order,
 * and peek_recvlen()/recv()/rx_discard() count it:
 *   CSUM        send() frames may have VIRTIO_NET_HDR_F_NEEDS_CSUM (the backend completes
 *               the checksum from csum_start/csum_offset);
 *   HOST_TSO4/6 send() frames may be TCP segments of up to 64 KiB with gso_type TCPV4/6
 *               (the backend takes them whole: no segmentation is ever done);
 *   GUEST_CSUM  recv() frames may have NEEDS_CSUM (only together with a GSO type);
 *   GUEST_TSO4/6 recv() frames may be TCP segments of up to 64 KiB with gso_type TCPV4/6
 *               and gso_size the link's MSS (MTU minus the frame's IP and TCP headers).
 * As in virtio, TSO needs checksum offload in the same direction (HOST_TSO: CSUM,
 * GUEST_TSO: GUEST_CSUM). Without GUEST_TSO no frame to the guest exceeds the link MTU.
 * Features take effect in order with the frames: frames sent before set_cap() are read
 * with the old ones. The helper's libslirp runs with a large MTU from the start; each of
 * its segments larger than the link MTU goes to the guest whole (GSO) while GUEST_TSO is
 * negotiated, and is cut to the link MTU otherwise (e.g. after a reset withdrew it);
 * frames already queued that the new features exclude are skipped by
 * peek_recvlen()/recv().
 */
#define SLIRPNET_NETBE_F_CSUM (1ULL << 0)
#define SLIRPNET_NETBE_F_GUEST_CSUM (1ULL << 1)
#define SLIRPNET_NETBE_F_GUEST_TSO4 (1ULL << 7)
#define SLIRPNET_NETBE_F_GUEST_TSO6 (1ULL << 8)
#define SLIRPNET_NETBE_F_HOST_TSO4 (1ULL << 11)
#define SLIRPNET_NETBE_F_HOST_TSO6 (1ULL << 12)

/*
 * The offload features this backend supports (all of the above for slirp): called by
 * the emulator when it builds the features it offers the guest. Never fails.
 */
uint64_t slirpnet_netbe_get_cap(struct slirpnet_netbe *be);

/*
 * Negotiate offloads: called by the emulator once the guest has accepted its features
 * (and again on a device reset, with 0 and 0). features must be a subset of get_cap()
 * that respects the dependencies above, vnet_hdr_len 0 (no header: then features must
 * be 0), 10 or 12. Waits at most a second for room in the helper's queue. Returns 0, or
 * -1 with errno EINVAL (bad arguments), EAGAIN (the helper's queue stayed full for a
 * second: call again) or ECONNRESET (helper gone); the old features then stay in force.
 * Not to be called concurrently with send/recv/peek_recvlen/rx_discard.
 */
int slirpnet_netbe_set_cap(struct slirpnet_netbe *be, uint64_t features, unsigned vnet_hdr_len);

/*
 * The socket the rx callback watches, for emulators with their own poll loop (poll it
 * for POLLIN, then call the rx path as the callback would). Owned by the backend: do
 * not read, write or close it. Never fails.
 */
int slirpnet_netbe_fd(struct slirpnet_netbe *be);

#ifdef __cplusplus
}
#endif

#endif /* SLIRPNET_NETBE_H */
