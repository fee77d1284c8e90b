// SPDX-License-Identifier: BSD-2-Clause
// slirp_driver.hpp - runs a libslirp instance from a GLib main context (sockets, timers, notify).
#pragma once

#include <glib.h>
#include <libslirp.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "glib_ptr.hpp"

namespace slirpnet {

/*
 * Owns one Slirp and the GSource that drives it, following QEMU's net/slirp.c:
 *  - prepare: slirp_pollfds_fill() (libslirp's fd set changes every iteration), lowering
 *    the timeout to libslirp's own and to the nearest timer;
 *  - check: any polled fd ready, libslirp's timeout reached, or a timer due;
 *  - dispatch: slirp_pollfds_poll(), then run due timers (slirp_handle_timer).
 * Timers use the CFI-friendly timer_new_opaque API; expiry times are absolute ms on the
 * clock_get_ns clock, which is the GLib monotonic clock unless a test injects a fake one.
 * notify() wakes the context so that libslirp's next fill sees writable sockets at once.
 */
class SlirpDriver
{
public:
	// Frame from libslirp to the guest. Return the bytes taken or <0 (libslirp drops it).
	using PacketSink = std::function<ssize_t(const uint8_t *frame, size_t len)>;
	// Nanoseconds on a monotonic clock.
	using Clock = std::function<int64_t()>;

	/*
	 * cfg must be a complete SlirpConfig (version 4); ctx NULL means the thread default.
	 * Returns nullptr and sets error if libslirp refuses the configuration.
	 */
	static std::unique_ptr<SlirpDriver> create(const SlirpConfig &cfg, GMainContext *ctx, PacketSink sink,
						   std::string &error, Clock clock = nullptr);
	~SlirpDriver();
	SlirpDriver(const SlirpDriver &) = delete;
	SlirpDriver &operator=(const SlirpDriver &) = delete;

	Slirp *slirp() const { return slirp_; }
	/*
	 * A frame from the guest. The source is then made ready, so slirp_pollfds_poll() runs
	 * in the next iteration: it sends what libslirp queued (e.g. packets held until the
	 * guest answered an ARP request), as QEMU does by polling slirp every iteration.
	 */
	void input(const uint8_t *frame, size_t len);

	/*
	 * After a batch of input(): let libslirp send what it queued (if_start) and run its
	 * due timers now, without waiting for the next loop iteration. This is
	 * slirp_pollfds_poll() with select_error set, which skips the sockets (their poll
	 * results are stale here) and does the rest.
	 */
	void flushInput();

	// Called when a dispatch of libslirp (poll, flushInput) ends, e.g. to write the
	// frames it produced in one batch.
	void setAfterDispatch(std::function<void()> fn) { afterDispatch_ = std::move(fn); }

	/*
	 * Backpressure from the guest side: while paused, libslirp's host sockets are not
	 * polled for input, so it reads nothing more from the host and TCP's flow control
	 * slows the sender down, instead of frames being made only to be dropped.
	 * Writing to host sockets and timers go on; new hostfwd connections wait in their
	 * listen backlog (libslirp polls listening sockets for input too) until it resumes.
	 */
	void setHostInputPaused(bool paused);
	bool hostInputPaused() const { return inputPaused_; }

	/*
	 * Forget the guest's TCP connections, for a new guest on the same network (a new
	 * --socket client): every TCP connection libslirp holds with the host is reset, the
	 * hostfwd listeners and UDP flows are left alone. Returns how many were reset.
	 *
	 * libslirp 4.7 cannot close a connection on request, so each connected socket is
	 * dissolved under it with connect(AF_UNSPEC): the host peer gets a RST at once, and
	 * libslirp, at its next read of the socket, finds it reset by the peer (a path it has)
	 * and drops the connection, sending the guest a RST. shutdown() would not do: libslirp
	 * would take it for a graceful close and send the (gone) guest a FIN, then retransmit
	 * it for minutes. A socket libslirp does not poll at all (its buffer toward the guest
	 * full, nothing to write) is reset for the host peer too, but libslirp keeps its state
	 * until it polls it again or its timers give up; a guest that gets a segment of it
	 * answers with a RST, which ends it.
	 *
	 * Until the end of the first dispatch that polled the sockets after the reset,
	 * resetSettling() is true: what libslirp sends then is for the old guest (those RSTs)
	 * and the caller drops it. The source is made ready so that this is the next iteration.
	 */
	size_t resetGuestConnections();
	bool resetSettling() const { return settleGeneration_ != 0; }

	/*
	 * Guest flows: the sockets libslirp holds for the guest (TCP connections, UDP flows,
	 * ICMP echo sockets), hostfwd listeners excluded, the connections they accepted
	 * included. libslirp 4.7 announces a socket (register_poll_fd) when it creates its
	 * host fd and withdraws it (unregister_poll_fd) just before closing it, when it frees
	 * the socket and its buffers; a connection in TIME_WAIT or LAST_ACK keeps its fd (and
	 * buffers) until then, so it counts. A socket announced during input() was opened by
	 * that guest packet (tcp_fconnect, udp_attach, icmp_send run inside slirp_input). A
	 * connection a hostfwd listener accepted is announced outside input() (and by some
	 * 4.7 builds as fd -1, a typo fixed later), so it is adopted when it is first polled:
	 * an inet stream socket, not listening (the listeners are the only other TCP ones).
	 */
	size_t flowCount() const { return flows_.size(); }
	// The socket the last input() made libslirp open and still holds, or -1.
	int lastInputFlow() const { return lastInputFlow_; }
	// Called with a flow's fd when libslirp withdraws it (the fd is still open then).
	void setFlowClosed(std::function<void(int fd)> fn) { flowClosed_ = std::move(fn); }
	/*
	 * At or above this many flows the hostfwd listeners are not polled: new host
	 * connections wait in their listen backlog (the kernel's bound) instead of being
	 * accepted past the limit, or spinning libslirp's accept on EMFILE. 0: no limit.
	 */
	void setMaxFlows(size_t n) { maxFlows_ = n; }

	/*
	 * libslirp 4.7 gives each TCP connection two 128 KiB socket buffers (sbreserve) when
	 * the guest's SYN arrives, reallocs both to a multiple of the MSS when the host
	 * connect completes (tcp_mss: a copy of each), and frees them when the connection
	 * ends. glibc serves them from the heap (its dynamic mmap threshold rises past them
	 * after the first), but with its default trim threshold the heap top is given back to
	 * the kernel (brk, with a TLB shootdown) whenever the last connection ends, so the next
	 * one faults ~160 fresh zeroed pages back in while copying its buffers: 1.5-2.5 ms
	 * between the host connect completing and the SYN-ACK to the guest on a VM, most of
	 * a short connection's life (bench churn with the server closing first: ~400 conn/s,
	 * one at a time). So up to kTrimThreshold of free heap top stays mapped (bounded RSS,
	 * enough for a few connections' buffers), and buffers up to kMmapThreshold stay on the
	 * heap as they are now. Process-wide; done once, by create().
	 */
	static constexpr int kMmapThreshold = 512 * 1024; // > 128 KiB + a 64 KiB MSS, the largest
	static constexpr int kTrimThreshold = 4 * 1024 * 1024;
	static void tuneAllocator();

	// Timers, exposed for tests that drive time by hand.
	size_t timerCount() const { return timers_.size(); }
	// Absolute ms of the nearest armed timer, or -1.
	int64_t nextTimerMs() const;
	// Fire every timer whose expiry is <= now; returns how many fired.
	int runDueTimers();
	int64_t nowMs() const { return clock_() / 1000000; }

private:
	struct Timer {
		SlirpTimerId id;
		void *cbOpaque;
		int64_t expireMs; // -1: not armed
	};
	struct PollTag {
		gpointer tag;
		GIOCondition events;
		uint64_t generation;
	};
	struct Source;

	SlirpDriver(GMainContext *ctx, PacketSink sink, Clock clock);

	// GSource steps
	static gboolean prepare(GSource *s, gint *timeout);
	static gboolean check(GSource *s);
	static gboolean dispatch(GSource *s, GSourceFunc, gpointer);
	static GSourceFuncs funcs_;
	void fill(gint *timeout);
	bool ready();
	void poll();

	// libslirp callbacks
	static const SlirpCb callbacks_;
	static int addPoll(int fd, int events, void *opaque);
	static int getRevents(int idx, void *opaque);
	void classifyPolled(int fd);

	GMainContextPtr ctx_;
	PacketSink sink_;
	Clock clock_;
	Slirp *slirp_ = nullptr;
	GSourcePtr source_;

	std::vector<std::unique_ptr<Timer>> timers_;
	std::unordered_map<int, PollTag> pollTags_;
	std::vector<int> pollIndex_; // add_poll index -> fd, rebuilt by each fill
	// Sockets libslirp announced (register_poll_fd), polled or not. Not every one is: 4.7
	// announces a hostfwd connection it accepts before setting its fd, hence pollTags_ too.
	std::unordered_set<int> registered_;
	std::unordered_set<int> flows_; // see flowCount()
	std::unordered_set<int> listeners_; // polled listening sockets (hostfwd), found by SO_ACCEPTCONN
	bool inInput_ = false;
	int lastInputFlow_ = -1;
	size_t maxFlows_ = 0;
	std::function<void(int)> flowClosed_;
	uint64_t generation_ = 0;
	uint64_t settleGeneration_ = 0; // resetSettling() until a dispatch after this fill generation
	int64_t slirpDeadlineMs_ = -1; // when libslirp wants slirp_pollfds_poll() again
	bool kicked_ = false; // ready time set by input(), cleared by poll()
	bool inputPaused_ = false;
	std::function<void()> afterDispatch_;
};

} // namespace slirpnet
