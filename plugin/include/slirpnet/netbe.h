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
 * Rx callback: called from the backend's main context (see init) when frames may be
 * available, or when the helper has gone away (recv then returns -1, errno ECONNRESET).
 * fd is slirpnet_netbe_fd(); param is init's param. The callback should drain frames
 * with peek_recvlen()/recv() until they return 0. Level-triggered: it keeps firing while
 * frames are pending and rx is enabled. After reporting a dead helper once it stops.
 */
typedef void (*slirpnet_rxeof_t)(int fd, void *param);

/*
 * Create a backend. spec is "BACKEND[,key=value...]", e.g.
 * "slirp,hostfwd=tcp:127.0.0.1:2222-:22,mtu=4000"; BACKEND is matched by prefix against
 * the registered backends ("slirp"). ctx is the GLib main context that dispatches cb
 * (NULL: the calling thread's default context). The backend starts with rx disabled.
 * Returns 0 and sets *be, or -1 and sets *errmsg (if errmsg is not NULL) to a malloc()ed
 * message naming the bad key and value, or the helper's own error; the caller free()s it.
 * On failure no process, fd or GLib source is left behind.
 */
int slirpnet_netbe_init(struct slirpnet_netbe **be, const char *spec, slirpnet_rxeof_t cb,
                        void *param, struct _GMainContext *ctx, char **errmsg);

/*
 * Destroy a backend: remove the rx source, close the socket, end the helper (SIGTERM,
 * then SIGKILL after a short grace) and reap it. Safe on NULL. Must not be called from
 * inside the backend's own rx callback.
 */
void slirpnet_netbe_cleanup(struct slirpnet_netbe *be);

/*
 * Transmit one guest frame (the iovecs concatenated, behind the negotiated virtio-net
 * header if any, see set_cap). Returns the bytes sent, or -1 with errno: EAGAIN when the
 * helper's queue is full (drop it; TCP retransmits), EMSGSIZE when the frame is larger
 * than the backend accepts (MTU/MRU + 14, or 14 + 65535 with a GSO type), EINVAL when it
 * is shorter than an Ethernet header (14 bytes, plus the header), ECONNRESET/EPIPE when
 * the helper is gone.
 */
ssize_t slirpnet_netbe_send(struct slirpnet_netbe *be, const struct iovec *iov, int iovcnt);

/* Length of the next frame to the guest, without consuming it. 0 when none is pending;
 * -1 with errno (ECONNRESET when the helper is gone). */
ssize_t slirpnet_netbe_peek_recvlen(struct slirpnet_netbe *be);

/*
 * Receive the next frame into iov. Returns its length; 0 when none is pending; -1 with
 * errno: EMSGSIZE when the frame does not fit in iov (the frame is consumed and dropped,
 * never truncated silently), ECONNRESET when the helper is gone.
 */
ssize_t slirpnet_netbe_recv(struct slirpnet_netbe *be, const struct iovec *iov, int iovcnt);

/* Drop the next frame. Returns its length, 0 when none is pending, -1 with errno. */
ssize_t slirpnet_netbe_rx_discard(struct slirpnet_netbe *be);

/* Start / stop calling the rx callback. Idempotent. Wakes the context. */
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
 * with the old ones. Taking GUEST_TSO restarts libslirp with a large MTU when the guest
 * has no connection yet (as when its driver starts); connections opened while GUEST_TSO
 * was negotiated keep large segments, and when it is withdrawn (a reset) the backend cuts
 * those to the link MTU; frames already queued that the new features exclude are
 * skipped by peek_recvlen()/recv().
 */
#define SLIRPNET_NETBE_F_CSUM (1ULL << 0)
#define SLIRPNET_NETBE_F_GUEST_CSUM (1ULL << 1)
#define SLIRPNET_NETBE_F_GUEST_TSO4 (1ULL << 7)
#define SLIRPNET_NETBE_F_GUEST_TSO6 (1ULL << 8)
#define SLIRPNET_NETBE_F_HOST_TSO4 (1ULL << 11)
#define SLIRPNET_NETBE_F_HOST_TSO6 (1ULL << 12)

/* The offload features this backend supports (all of the above for slirp). */
uint64_t slirpnet_netbe_get_cap(struct slirpnet_netbe *be);

/*
 * Negotiate offloads: features must be a subset of get_cap() that respects the
 * dependencies above, vnet_hdr_len 0 (no header: then features must be 0), 10 or 12.
 * Returns 0, or -1 with errno EINVAL (bad arguments), EAGAIN (the helper's queue stayed
 * full for a second: call again) or ECONNRESET (helper gone). May be called again (e.g.
 * on a device reset), but not concurrently with send/recv/peek_recvlen/rx_discard.
 */
int slirpnet_netbe_set_cap(struct slirpnet_netbe *be, uint64_t features, unsigned vnet_hdr_len);

/* The socket the rx callback watches (for emulators with their own poll loop). */
int slirpnet_netbe_fd(struct slirpnet_netbe *be);

#ifdef __cplusplus
}
#endif

#endif /* SLIRPNET_NETBE_H */
