// SPDX-License-Identifier: BSD-2-Clause
// slirp_driver.cpp - runs a libslirp instance from a GLib main context (sockets, timers, notify).
#include "slirp_driver.hpp"

#include <malloc.h>
#include <sys/socket.h>

#include <algorithm>
#include <climits>
#include <mutex>
#include <set>

namespace slirpnet {

struct SlirpDriver::Source {
	GSource base;
	SlirpDriver *driver;
};

GSourceFuncs SlirpDriver::funcs_ = {
	&SlirpDriver::prepare, &SlirpDriver::check, &SlirpDriver::dispatch, nullptr, nullptr, nullptr,
};

static GIOCondition toGio(int events)
{
	int c = 0;
	if (events & SLIRP_POLL_IN)
		c |= G_IO_IN;
	if (events & SLIRP_POLL_OUT)
		c |= G_IO_OUT;
	if (events & SLIRP_POLL_PRI)
		c |= G_IO_PRI;
	if (events & SLIRP_POLL_ERR)
		c |= G_IO_ERR;
	if (events & SLIRP_POLL_HUP)
		c |= G_IO_HUP;
	return static_cast<GIOCondition>(c);
}

static int fromGio(GIOCondition c)
{
	int e = 0;
	if (c & G_IO_IN)
		e |= SLIRP_POLL_IN;
	if (c & G_IO_OUT)
		e |= SLIRP_POLL_OUT;
	if (c & G_IO_PRI)
		e |= SLIRP_POLL_PRI;
	if (c & (G_IO_ERR | G_IO_NVAL))
		e |= SLIRP_POLL_ERR;
	if (c & G_IO_HUP)
		e |= SLIRP_POLL_HUP;
	return e;
}

const SlirpCb SlirpDriver::callbacks_ = {
	/* send_packet */
	[](const void *buf, size_t len, void *opaque) -> ssize_t {
		auto *d = static_cast<SlirpDriver *>(opaque);
		return d->sink_(static_cast<const uint8_t *>(buf), len);
	},
	/* guest_error */
	[](const char *msg, void *) { g_debug("guest error: %s", msg); },
	/* clock_get_ns */
	[](void *opaque) -> int64_t { return static_cast<SlirpDriver *>(opaque)->clock_(); },
	/* timer_new: unused, timer_new_opaque is provided */
	nullptr,
	/* timer_free */
	[](void *timer, void *opaque) {
		auto *d = static_cast<SlirpDriver *>(opaque);
		std::erase_if(d->timers_, [timer](const auto &t) { return t.get() == timer; });
	},
	/* timer_mod: expire_time is absolute, in ms of clock_get_ns */
	[](void *timer, int64_t expireMs, void *opaque) {
		static_cast<Timer *>(timer)->expireMs = expireMs;
		// The loop may be sleeping with a longer timeout.
		wakeContextFromOtherThread(static_cast<SlirpDriver *>(opaque)->ctx_.get());
	},
	/* register_poll_fd: polled through fill(); remembered for resetGuestConnections() */
	[](int fd, void *opaque) {
		auto *d = static_cast<SlirpDriver *>(opaque);
		if (fd < 0)
			return;
		d->registered_.insert(fd);
		if (d->inInput_) { // opened by the guest's packet: a flow
			d->flows_.insert(fd);
			d->lastInputFlow_ = fd;
		}
	},
	/* unregister_poll_fd: libslirp closes fd right after */
	[](int fd, void *opaque) {
		auto *d = static_cast<SlirpDriver *>(opaque);
		d->registered_.erase(fd);
		d->listeners_.erase(fd);
		// The number can come back within the same poll for another socket (a hostfwd
		// connection accepted after this one closed, announced only as fd -1): without
		// the old tag, the next fill sees it as new and counts it as a flow.
		if (auto it = d->pollTags_.find(fd); it != d->pollTags_.end()) {
			if (d->source_)
				g_source_remove_unix_fd(d->source_.get(), it->second.tag);
			d->pollTags_.erase(it);
		}
		if (fd == d->lastInputFlow_)
			d->lastInputFlow_ = -1;
		if (d->flows_.erase(fd) && d->flowClosed_)
			d->flowClosed_(fd);
	},
	/* notify: a socket can take more data; re-run fill() now rather than after a timeout */
	[](void *opaque) { wakeContextFromOtherThread(static_cast<SlirpDriver *>(opaque)->ctx_.get()); },
	/* init_completed: timers may be created inside slirp_new(), before it returns */
	[](Slirp *slirp, void *opaque) { static_cast<SlirpDriver *>(opaque)->slirp_ = slirp; },
	/* timer_new_opaque */
	[](SlirpTimerId id, void *cbOpaque, void *opaque) -> void * {
		auto *d = static_cast<SlirpDriver *>(opaque);
		d->timers_.push_back(std::make_unique<Timer>(Timer{ id, cbOpaque, -1 }));
		return d->timers_.back().get();
	},
};

SlirpDriver::SlirpDriver(GMainContext *ctx, PacketSink sink, Clock clock)
	: ctx_(ctx ? g_main_context_ref(ctx) : g_main_context_ref_thread_default()), sink_(std::move(sink)),
	  clock_(std::move(clock))
{
	if (!clock_)
		clock_ = [] { return g_get_monotonic_time() * 1000; };
}

void SlirpDriver::tuneAllocator()
{
#ifdef __GLIBC__
	static std::once_flag once;
	std::call_once(once, [] {
		// An explicit trim threshold turns glibc's dynamic thresholds off, so the mmap
		// threshold is set with it, above the largest buffer: without it the buffers would
		// be mmapped and unmapped one by one, the same faults again.
		mallopt(M_MMAP_THRESHOLD, kMmapThreshold);
		mallopt(M_TRIM_THRESHOLD, kTrimThreshold);
	});
#endif
}

std::unique_ptr<SlirpDriver> SlirpDriver::create(const SlirpConfig &cfg, GMainContext *ctx, PacketSink sink,
						 std::string &error, Clock clock)
{
	tuneAllocator();
	std::unique_ptr<SlirpDriver> d(new SlirpDriver(ctx, std::move(sink), std::move(clock)));
	Slirp *s = slirp_new(&cfg, &callbacks_, d.get());
	if (!s) {
		// libslirp logs the reason through g_warning (domain "Slirp").
		error = "libslirp refused the configuration";
		return nullptr;
	}
	d->slirp_ = s;

	GSource *src = g_source_new(&funcs_, sizeof(Source));
	reinterpret_cast<Source *>(src)->driver = d.get();
	g_source_set_name(src, "slirpnet-slirp");
	g_source_set_can_recurse(src, TRUE); // see FdWatch::create: avoids a wakeup per dispatch
	g_source_attach(src, d->ctx_.get());
	d->source_.reset(src);
	return d;
}

SlirpDriver::~SlirpDriver()
{
	source_.reset();
	if (slirp_)
		slirp_cleanup(slirp_); // frees its timers through timer_free
	timers_.clear();
}

void SlirpDriver::input(const uint8_t *frame, size_t len)
{
	// slirp_input is synchronous: a socket it opens is announced before it returns.
	lastInputFlow_ = -1;
	inInput_ = true;
	slirp_input(slirp_, frame, static_cast<int>(len));
	inInput_ = false;
	if (!kicked_) {
		kicked_ = true;
		g_source_set_ready_time(source_.get(), 0);
	}
}

void SlirpDriver::flushInput()
{
	if (!kicked_)
		return;
	kicked_ = false;
	g_source_set_ready_time(source_.get(), -1);
	slirp_pollfds_poll(slirp_, 1, &SlirpDriver::getRevents, this);
	runDueTimers();
	if (afterDispatch_)
		afterDispatch_();
}

int64_t SlirpDriver::nextTimerMs() const
{
	int64_t next = -1;
	for (const auto &t : timers_)
		if (t->expireMs >= 0 && (next < 0 || t->expireMs < next))
			next = t->expireMs;
	return next;
}

int SlirpDriver::runDueTimers()
{
	int fired = 0;
	int64_t now = nowMs();
	// slirp_handle_timer may re-arm or free timers: rescan after each one.
	for (bool again = true; again;) {
		again = false;
		for (auto &t : timers_) {
			if (t->expireMs >= 0 && t->expireMs <= now) {
				t->expireMs = -1;
				slirp_handle_timer(slirp_, t->id, t->cbOpaque);
				fired++;
				again = true;
				break;
			}
		}
	}
	return fired;
}

void SlirpDriver::setHostInputPaused(bool paused)
{
	if (paused == inputPaused_)
		return;
	inputPaused_ = paused;
	g_debug("host input %s", paused ? "paused: the guest side is full" : "resumed");
	// The loop may be asleep on the old fd set: let the next fill() apply the change.
	wakeContextFromOtherThread(ctx_.get());
}

// A TCP connection with the host: libslirp's are the helper's only inet stream sockets,
// and a hostfwd listener is left alone. Checked on each fd rather than trusting the
// bookkeeping, so that a number reused since libslirp closed its socket is never touched.
static bool isTcpConnection(int fd)
{
	int v = 0;
	socklen_t len = sizeof v;
	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &v, &len) < 0 || (v != AF_INET && v != AF_INET6))
		return false;
	len = sizeof v;
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &len) < 0 || v != SOCK_STREAM)
		return false;
	len = sizeof v;
	return getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &len) == 0 && v == 0;
}

size_t SlirpDriver::resetGuestConnections()
{
	std::set<int> fds(registered_.begin(), registered_.end());
	for (const auto &kv : pollTags_)
		fds.insert(kv.first);
	size_t n = 0;
	sockaddr unspec{};
	unspec.sa_family = AF_UNSPEC;
	for (int fd : fds)
		if (isTcpConnection(fd) && connect(fd, &unspec, sizeof unspec) == 0)
			n++;
	// UDP flows stay: a flow is only a binding of the guest's address and port to a host
	// socket, with no state a new guest could trip over; it expires in libslirp's time
	// (a reply arriving meanwhile reaches a port the new guest may not use, as any stray).
	if (n > 0) {
		settleGeneration_ = generation_ + 1;
		if (!kicked_) {
			kicked_ = true;
			g_source_set_ready_time(source_.get(), 0);
		}
	}
	return n;
}

static bool isListening(int fd)
{
	int v = 0;
	socklen_t len = sizeof v;
	return getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &len) == 0 && v != 0;
}

void SlirpDriver::classifyPolled(int fd)
{
	if (flows_.count(fd) || listeners_.count(fd))
		return;
	if (isListening(fd))
		listeners_.insert(fd);
	else if (isTcpConnection(fd))
		flows_.insert(fd); // a hostfwd connection: announced outside input(), or as fd -1
}

int SlirpDriver::addPoll(int fd, int events, void *opaque)
{
	auto *d = static_cast<SlirpDriver *>(opaque);
	if (d->inputPaused_)
		events &= ~SLIRP_POLL_IN;
	// A socket not seen before (or not polled in the last fill): a listener, or a flow.
	if (!d->pollTags_.count(fd))
		d->classifyPolled(fd);
	// At the flow limit a listener is kept in the set but not polled: no accept.
	if (d->maxFlows_ && d->flows_.size() >= d->maxFlows_ && d->listeners_.count(fd))
		events = 0;
	GIOCondition cond = toGio(events);
	auto [it, inserted] = d->pollTags_.try_emplace(fd, PollTag{ nullptr, cond, 0 });
	PollTag &t = it->second;
	if (inserted)
		t.tag = g_source_add_unix_fd(d->source_.get(), fd, cond);
	else if (t.events != cond) {
		g_source_modify_unix_fd(d->source_.get(), t.tag, cond);
		t.events = cond;
	}
	t.generation = d->generation_;
	d->pollIndex_.push_back(fd);
	return static_cast<int>(d->pollIndex_.size() - 1);
}

int SlirpDriver::getRevents(int idx, void *opaque)
{
	auto *d = static_cast<SlirpDriver *>(opaque);
	if (idx < 0 || static_cast<size_t>(idx) >= d->pollIndex_.size())
		return 0;
	auto it = d->pollTags_.find(d->pollIndex_[idx]);
	if (it == d->pollTags_.end())
		return 0;
	return fromGio(g_source_query_unix_fd(d->source_.get(), it->second.tag));
}

void SlirpDriver::fill(gint *timeout)
{
	generation_++;
	pollIndex_.clear();
	uint32_t slirpTimeout = UINT32_MAX;
	slirp_pollfds_fill(slirp_, &slirpTimeout, &SlirpDriver::addPoll, this);
	// Stop polling the fds libslirp no longer asked for (closed sockets and the like).
	std::erase_if(pollTags_, [this](auto &kv) {
		if (kv.second.generation == generation_)
			return false;
		g_source_remove_unix_fd(source_.get(), kv.second.tag);
		return true;
	});

	int64_t now = nowMs();
	// libslirp's timeout is a fixed interval (e.g. 499 ms for its slow TCP timer), not the
	// time left: recomputing it at every wake-up would postpone its timers forever under
	// steady traffic. Keep the earliest deadline until slirp_pollfds_poll() has run.
	if (slirpTimeout != UINT32_MAX && (slirpDeadlineMs_ < 0 || now + slirpTimeout < slirpDeadlineMs_))
		slirpDeadlineMs_ = now + slirpTimeout;
	int64_t deadline = slirpDeadlineMs_;
	int64_t t = nextTimerMs();
	if (t >= 0 && (deadline < 0 || t < deadline))
		deadline = t;
	*timeout = deadline < 0 ? -1 : static_cast<gint>(std::clamp<int64_t>(deadline - now, 0, INT_MAX));
}

bool SlirpDriver::ready()
{
	int64_t now = nowMs();
	if (slirpDeadlineMs_ >= 0 && now >= slirpDeadlineMs_)
		return true;
	int64_t t = nextTimerMs();
	if (t >= 0 && now >= t)
		return true;
	for (const auto &kv : pollTags_)
		if (g_source_query_unix_fd(source_.get(), kv.second.tag))
			return true;
	return false;
}

void SlirpDriver::poll()
{
	slirpDeadlineMs_ = -1;
	if (kicked_) {
		kicked_ = false;
		g_source_set_ready_time(source_.get(), -1);
	}
	slirp_pollfds_poll(slirp_, 0, &SlirpDriver::getRevents, this);
	runDueTimers();
	// The fill before this poll came after the reset: libslirp has read the reset sockets.
	if (settleGeneration_ != 0 && generation_ >= settleGeneration_)
		settleGeneration_ = 0;
	if (afterDispatch_)
		afterDispatch_();
}

gboolean SlirpDriver::prepare(GSource *s, gint *timeout)
{
	reinterpret_cast<Source *>(s)->driver->fill(timeout);
	return *timeout == 0;
}

gboolean SlirpDriver::check(GSource *s)
{
	return reinterpret_cast<Source *>(s)->driver->ready();
}

gboolean SlirpDriver::dispatch(GSource *s, GSourceFunc, gpointer)
{
	reinterpret_cast<Source *>(s)->driver->poll();
	return G_SOURCE_CONTINUE;
}

} // namespace slirpnet
