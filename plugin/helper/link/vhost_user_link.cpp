// SPDX-License-Identifier: BSD-2-Clause
// link/vhost_user_link.cpp - one vhost-user front-end (QEMU): its messages, the guest's memory, and frames straight between the virtqueues and libslirp.
#include "link/vhost_user_link.hpp"

#include <endian.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "link/virtio_offloads.hpp"
#include "log.hpp"
#include "virtio_net.hpp"

namespace slirpnet {

using namespace vhost;

namespace {

// The RX queue's waiting records: enough for a burst of large segments while the guest
// refills its buffers (the socket links queue 2 MiB too).
constexpr size_t kPendingBytes = 2u << 20;
constexpr size_t kLenPrefix = 4;
// Chains taken from TX per wake-up before the rest of the loop (libslirp's sockets) runs.
constexpr unsigned kTxBudget = 256;
// gatherTx(): the chain was dropped (counted).
constexpr size_t kDropped = SIZE_MAX;

std::string hex(uint64_t v)
{
	char b[24];
	snprintf(b, sizeof(b), "0x%llx", static_cast<unsigned long long>(v));
	return b;
}

const char *queueName(unsigned qi)
{
	return qi == 0 ? "0 (rx)" : "1 (tx)";
}

void setNonBlocking(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl >= 0 && !(fl & O_NONBLOCK))
		fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

} // namespace

/*
 * The offloads to act on: virtio makes TSO depend on checksum offload (GUEST_TSO4/6 on
 * GUEST_CSUM, HOST_TSO4/6 on CSUM), but QEMU 7.2 passes `csum=off` with the TSO properties
 * left on straight to the back-end. Honouring TSO then would mark segments for a guest that
 * verifies every checksum: treated as not negotiated, as a virtio device must.
 */
uint64_t VhostUserSession::usableOffloads(uint64_t acked)
{
	uint64_t f = acked & kOffloadFeatures;
	if (!(f & kFeatGuestCsum))
		f &= ~(kFeatGuestTso4 | kFeatGuestTso6);
	if (!(f & kFeatCsum))
		f &= ~(kFeatHostTso4 | kFeatHostTso6);
	return f;
}

uint64_t VhostUserSession::offeredFeatures()
{
	// No INDIRECT_DESC (a guest without it sends its header and frame as a short chain),
	// no MQ, no logging (no migration while the helper serves), no packed rings.
	return kFeatVersion1 | kFeatMrgRxbuf | kFeatEventIdx | kFeatProtocolFeatures | kFeatNetMtu | kOffloadFeatures;
}

uint64_t VhostUserSession::offeredProtocolFeatures()
{
	return kProtoReplyAck | kProtoNetMtu | kProtoResetDevice;
}

VhostUserSession::VhostUserSession(UniqueFd fd, GuestPort &port, GMainContext *ctx, std::string name)
	: GuestLink(port, std::move(name)), fd_(std::move(fd)), ctx_(ctx), txBuf_(kVnetHdrLen + kMaxGsoFrame),
	  stage_(kVnetHdrLen + kMaxGsoFrame), drain_(kVnetHdrLen + kMaxGsoFrame), pending_(kPendingBytes),
	  chain_(std::make_unique<VirtqChain>())
{
	rxUsed_.reserve(Virtqueue::kMaxSize);
}

std::unique_ptr<VhostUserSession> VhostUserSession::create(UniqueFd fd, GuestPort &port, GMainContext *ctx,
							   std::string name)
{
	setNonBlocking(fd.get());
	std::unique_ptr<VhostUserSession> s(new VhostUserSession(std::move(fd), port, ctx, std::move(name)));
	s->startWatches(ctx, s->fd_.get(), -1);
	return s;
}

VhostUserSession::~VhostUserSession()
{
	readWatch_.reset(); // before fd_ closes
	txAgain_.reset();
	for (Queue &q : q_)
		q.kickWatch.reset(); // before the fds they watch close
}

void VhostUserSession::dropQueued()
{
	dropPending();
	for (unsigned qi = 0; qi < kQueues; qi++)
		stopQueue(qi);
}

// ---- messages

void VhostUserSession::onReadable(GIOCondition cond)
{
	// A handful of messages per wake-up: the front-end waits for most replies, so it never
	// has many in flight, and the loop's other sources get their turn.
	for (int i = 0; i < 32 && !isClosed(); i++) {
		std::string error;
		MsgReader::Result r = reader_.read(fd_.get(), error);
		if (r == MsgReader::Result::Again)
			break;
		if (r == MsgReader::Result::Closed) {
			closeLink(reader_.partial() ? "the front-end left in the middle of a message"
						    : "the front-end closed the connection",
				  reader_.partial());
			return;
		}
		if (r == MsgReader::Result::Error || !handleMessage(error)) {
			slirpnet_warning_ratelimited("vhost-user front-end on '%s': %s; closing the connection",
						     name().c_str(), error.c_str());
			closeLink("vhost-user protocol error: " + error, true);
			return;
		}
		reader_.next();
	}
	if (!isClosed() && !(cond & G_IO_IN))
		closeIfHungUp(fd_.get(), cond);
}

// REPLY_ACK: answer a request that has no reply of its own when the front-end asked.
bool VhostUserSession::ack(bool ok, std::string &error)
{
	const MsgHeader &h = reader_.header();
	if (!(protocol_ & kProtoReplyAck) || !(h.flags & kFlagNeedReply))
		return ok;
	uint64_t status = ok ? 0 : 1;
	std::string sendError;
	if (!sendReply(fd_.get(), h.request, &status, sizeof(status), sendError)) {
		error = sendError;
		return false;
	}
	return ok;
}

VhostUserSession::Queue *VhostUserSession::queueFor(uint32_t index, std::string &error)
{
	if (index < kQueues)
		return &q_[index];
	error = requestName(reader_.header().request) + ": queue " + std::to_string(index) +
		" (one queue pair: 0 and 1 exist)";
	return nullptr;
}

bool VhostUserSession::handleMessage(std::string &error)
{
	const MsgHeader &h = reader_.header();
	const uint8_t *p = reader_.payload();
	if (!checkMessage(h, p, reader_.fds().size(), error))
		return false;
	const std::string name = requestName(h.request);
	g_debug("vhost-user: %s, %u-byte payload, %zu fd(s)", name.c_str(), h.size, reader_.fds().size());
	uint64_t u64 = 0;
	if (h.size >= sizeof(u64))
		memcpy(&u64, p, sizeof(u64));
	VringState state{};
	if (h.size >= sizeof(state))
		memcpy(&state, p, sizeof(state));

	switch (h.request) {
	case kGetFeatures: {
		uint64_t f = offeredFeatures();
		return sendReply(fd_.get(), h.request, &f, sizeof(f), error);
	}
	case kGetProtocolFeatures: {
		uint64_t f = offeredProtocolFeatures();
		return sendReply(fd_.get(), h.request, &f, sizeof(f), error);
	}
	case kSetFeatures:
		if (u64 & ~offeredFeatures()) {
			error = name + ": features " + hex(u64 & ~offeredFeatures()) + " were not offered";
			return false;
		}
		setAcked(u64);
		return ack(true, error);
	case kSetProtocolFeatures:
		if (u64 & ~offeredProtocolFeatures()) {
			error = name + ": protocol features " + hex(u64 & ~offeredProtocolFeatures()) +
				" were not offered";
			return false;
		}
		protocol_ = u64;
		return ack(true, error);
	case kSetOwner:
		return ack(true, error);
	case kResetOwner:
	case kResetDevice:
		resetDevice();
		return ack(true, error);
	case kGetQueueNum: {
		uint64_t n = 1; // queue pairs
		return sendReply(fd_.get(), h.request, &n, sizeof(n), error);
	}
	case kSetMemTable:
		return handleMemTable(error) && ack(true, error);
	case kSetVringNum: {
		Queue *q = queueFor(state.index, error);
		if (!q)
			return false;
		stopQueue(state.index);
		if (q->vq.size() != state.num)
			q->haveAddr = false; // the rings were checked for the old size: SET_VRING_ADDR again
		if (!q->vq.setSize(state.num, error)) {
			error = name + ": " + error;
			return false;
		}
		return ack(true, error);
	}
	case kSetVringAddr: {
		VringAddr a;
		memcpy(&a, p, sizeof(a));
		Queue *q = queueFor(a.index, error);
		if (!q)
			return false;
		if (a.flags & 1) {
			error = name + ": dirty-page logging was not offered";
			return false;
		}
		if (mem_.empty()) {
			error = name + ": before any SET_MEM_TABLE";
			return false;
		}
		stopQueue(a.index);
		if (!q->vq.setAddresses(mem_, a.desc, a.avail, a.used, error)) {
			error = name + " for queue " + std::to_string(a.index) + ": " + error;
			return false;
		}
		q->addr = a;
		q->haveAddr = true;
		tryStart(a.index);
		return ack(true, error);
	}
	case kSetVringBase: {
		Queue *q = queueFor(state.index, error);
		if (!q)
			return false;
		if (state.num > 0xffff) {
			error = name + ": base " + std::to_string(state.num) + " is not a 16-bit ring index";
			return false;
		}
		stopQueue(state.index);
		q->vq.setBase(static_cast<uint16_t>(state.num));
		return ack(true, error);
	}
	case kGetVringBase: {
		Queue *q = queueFor(state.index, error);
		if (!q)
			return false;
		// The front-end stops the queue: it takes the ring back, and the kick fd with it.
		stopQueue(state.index);
		q->kickWatch.reset();
		q->kick.reset();
		q->enabled = false;
		if (state.index == kRx)
			dropPending();
		VringState reply{ state.index, q->vq.base() };
		return sendReply(fd_.get(), h.request, &reply, sizeof(reply), error);
	}
	case kSetVringKick:
	case kSetVringCall:
	case kSetVringErr:
		return handleVringFd(h.request, error) && ack(true, error);
	case kSetVringEnable: {
		Queue *q = queueFor(state.index, error);
		if (!q)
			return false;
		if (state.num > 1) {
			error = name + ": state " + std::to_string(state.num) + " (0 or 1)";
			return false;
		}
		q->enabled = state.num == 1;
		if (q->enabled) {
			tryStart(state.index);
		} else {
			stopQueue(state.index);
			if (state.index == kRx)
				dropPending(); // nothing is written while disabled; host input must not stay paused
		}
		return ack(true, error);
	}
	case kSendRarp:
		// Sent after a migration to update switches: there is no switch here.
		return ack(true, error);
	case kNetSetMtu: {
		unsigned mtu = port_.config().mtu;
		if (u64 != mtu)
			g_message(
				"vhost-user: the device's host_mtu is %llu, the helper's mtu= is %u: the guest may send "
				"frames up to its MTU, and frames above mtu=%u are dropped (drop_oversize)",
				static_cast<unsigned long long>(u64), mtu, std::max<unsigned>(mtu, port_.config().mru));
		return ack(true, error);
	}
	default:
		// requestName() knows every request up to SET_CONFIG and the two after it.
		if (name.rfind("request (", 0) == 0)
			error = "unknown " + name;
		else
			error = name + ": not supported (it needs a feature this back-end does not offer)";
		return false;
	}
}

void VhostUserSession::setAcked(uint64_t features)
{
	acked_ = features;
	mergeable_ = features & kFeatMrgRxbuf;
	// virtio 1.x and MRG_RXBUF use the 12-byte header; only a legacy guest without
	// MRG_RXBUF has the 10-byte one.
	hdrLen_ = (features & (kFeatVersion1 | kFeatMrgRxbuf)) ? kVnetHdrLen : kVnetHdrLen - 2;
	for (Queue &q : q_)
		q.vq.setEventIdx(features & kFeatEventIdx);
	setFeatures(usableOffloads(features));
	g_debug("vhost-user: features 0x%llx acked (offloads 0x%llx, %s, %zu-byte header)",
		static_cast<unsigned long long>(features), static_cast<unsigned long long>(this->features()),
		mergeable_ ? "mergeable rx buffers" : "one rx buffer per frame", hdrLen_);
}

bool VhostUserSession::handleMemTable(std::string &error)
{
	MemTable t{};
	memcpy(&t, reader_.payload(), reader_.header().size);
	// The rings point into the old mapping: stop them, replace, translate them again.
	bool wasRunning[kQueues];
	for (unsigned qi = 0; qi < kQueues; qi++) {
		wasRunning[qi] = q_[qi].running;
		stopQueue(qi);
		q_[qi].vq.stop();
	}
	if (!mem_.replace(t.regions, t.nregions, std::move(reader_.fds()), error)) {
		error = requestName(kSetMemTable) + ": " + error;
		return false;
	}
	for (unsigned qi = 0; qi < kQueues; qi++) {
		Queue &q = q_[qi];
		if (!q.haveAddr)
			continue;
		std::string why;
		if (!q.vq.setAddresses(mem_, q.addr.desc, q.addr.avail, q.addr.used, why)) {
			q.haveAddr = false;
			if (wasRunning[qi])
				stopBroken(qi, "its rings are not inside the new memory table (" + why + ")");
			continue;
		}
		if (wasRunning[qi])
			tryStart(qi);
	}
	g_debug("vhost-user: memory table of %zu region(s) mapped", mem_.regionCount());
	return true;
}

bool VhostUserSession::handleVringFd(uint32_t request, std::string &error)
{
	uint64_t u;
	memcpy(&u, reader_.payload(), sizeof(u));
	if (u & ~(kVringIndexMask | kVringNoFd)) {
		error = requestName(request) + ": unknown bits in " + hex(u);
		return false;
	}
	unsigned qi = static_cast<unsigned>(u & kVringIndexMask);
	Queue *q = queueFor(qi, error);
	if (!q)
		return false;
	UniqueFd fd;
	if (!(u & kVringNoFd)) {
		fd = std::move(reader_.fds()[0]);
		// An eventfd is an anonymous inode (no file type bits). Anything else could block
		// (a FUSE file), spin the loop (/dev/zero as a kick) or grow (a regular file).
		struct stat st;
		if (fstat(fd.get(), &st) < 0 || (st.st_mode & S_IFMT) != 0) {
			error = requestName(request) + ": the file descriptor is not an eventfd";
			return false;
		}
		setNonBlocking(fd.get());
	}
	if (request == kSetVringCall) {
		q->call = std::move(fd);
		// A call may have been held back while there was no fd: one now is harmless
		// (the guest finds nothing new) and rescues a batch that would wait otherwise.
		if (q->call && q->vq.isStarted()) {
			uint64_t one = 1;
			(void)!write(q->call.get(), &one, sizeof(one));
			q->needCall = false;
		}
		return true;
	}
	if (request == kSetVringErr) {
		q->err = std::move(fd);
		return true;
	}
	// SET_VRING_KICK
	if (!fd) {
		error = requestName(request) + ": polling (no kick fd) is not supported";
		return false;
	}
	stopQueue(qi);
	q->kickWatch.reset();
	q->kick = std::move(fd);
	q->kickWatch = FdWatch::create(ctx_, q->kick.get(), static_cast<GIOCondition>(G_IO_IN | G_IO_ERR),
				       [this, qi](int, GIOCondition) { onKick(qi); });
	// Without PROTOCOL_FEATURES a ring starts when kicked; with them, at SET_VRING_ENABLE.
	if (!(acked_ & kFeatProtocolFeatures))
		q->enabled = true;
	tryStart(qi);
	return true;
}

void VhostUserSession::resetDevice()
{
	for (unsigned qi = 0; qi < kQueues; qi++) {
		stopQueue(qi);
		Queue &q = q_[qi];
		q.kickWatch.reset();
		q.kick.reset();
		q.call.reset();
		q.err.reset();
		q.vq.stop();
		q.haveAddr = false;
		q.enabled = false;
		q.vq.setBase(0);
	}
	dropPending();
	setAcked(0);
	// Protocol features stay: QEMU negotiates them once per connection, and goes on
	// asking for replies (REPLY_ACK) after a reset.
}

// ---- queues

void VhostUserSession::tryStart(unsigned qi)
{
	Queue &q = q_[qi];
	if (q.running || !q.enabled || !q.haveAddr || !q.kick || mem_.empty())
		return;
	std::string error;
	if (!q.vq.start(error)) {
		stopBroken(qi, error);
		return;
	}
	q.running = true;
	q.kickWatch->enable();
	g_debug("vhost-user: queue %s started (size %u, base %u)", queueName(qi), q.vq.size(), q.vq.base());
	if (qi == kTx) {
		processTx(); // the guest may have queued frames before the queue ran
	} else {
		rxStalled_ = false;
		q.vq.setKickWanted(!pending_.empty());
		processRx();
	}
}

void VhostUserSession::stopQueue(unsigned qi)
{
	Queue &q = q_[qi];
	if (!q.running)
		return;
	q.running = false;
	if (q.kickWatch)
		q.kickWatch->disable();
	if (qi == kTx)
		txAgain_.reset();
	// What the guest was given so far stays given, and it is told.
	if (q.vq.isStarted())
		q.vq.publish();
	call(qi);
}

void VhostUserSession::stopBroken(unsigned qi, const std::string &why)
{
	stopQueue(qi);
	port_.stats().vhostQueueStops++;
	slirpnet_warning_ratelimited("vhost-user on '%s': queue %s stopped: %s", name().c_str(), queueName(qi),
				     why.c_str());
	if (q_[qi].err) {
		uint64_t one = 1;
		(void)!write(q_[qi].err.get(), &one, sizeof(one)); // QEMU logs "vhost vring error"
	}
}

void VhostUserSession::call(unsigned qi)
{
	Queue &q = q_[qi];
	// Held until there is a call fd and a started ring to decide on.
	if (!q.needCall || !q.call || !q.vq.isStarted())
		return;
	q.needCall = false;
	if (q.vq.shouldCall()) {
		uint64_t one = 1;
		(void)!write(q.call.get(), &one, sizeof(one)); // EAGAIN: the counter is full, the guest is told anyway
	}
}

void VhostUserSession::onKick(unsigned qi)
{
	Queue &q = q_[qi];
	uint64_t n;
	// Clear the eventfd; a non-eventfd that reads 0 or fails must not spin the loop.
	ssize_t r = read(q.kick.get(), &n, sizeof(n));
	if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
		stopBroken(qi, "its kick fd failed (" + std::string(r == 0 ? "end of file" : strerror(errno)) + ")");
		return;
	}
	if (!q.running)
		return;
	if (qi == kTx)
		processTx();
	else
		processRx();
}

size_t VhostUserSession::gatherTx(const VirtqChain &chain)
{
	// The record as vnetRecordFromGuest() takes it: the 12-byte header, then the frame. A
	// legacy 10-byte header is widened (num_buffers is unused on TX).
	uint64_t frameBytes = chain.readableBytes > hdrLen_ ? chain.readableBytes - hdrLen_ : 0;
	if (frameBytes > kMaxGsoFrame) {
		port_.droppedOversize(frameBytes);
		return kDropped;
	}
	uint8_t *dst = txBuf_.data();
	size_t out = 0; // bytes of the chain copied so far
	size_t gap = kVnetHdrLen - hdrLen_;
	memset(dst, 0, kVnetHdrLen);
	for (size_t i = 0; i < chain.readable; i++) {
		const uint8_t *src = static_cast<const uint8_t *>(chain.iov[i].iov_base);
		size_t len = chain.iov[i].iov_len;
		while (len > 0) {
			size_t at = out < hdrLen_ ? out : out + gap;
			size_t n = out < hdrLen_ ? std::min(len, hdrLen_ - out) : len;
			memcpy(dst + at, src, n);
			src += n;
			len -= n;
			out += n;
		}
	}
	return out < hdrLen_ ? out : out + gap;
}

void VhostUserSession::processTx()
{
	Queue &q = q_[kTx];
	if (!q.running)
		return;
	txAgain_.reset();
	unsigned budget = kTxBudget;
	bool any = false;
	for (;;) {
		q.vq.setKickWanted(false);
		while (budget > 0 && q.running) {
			Virtqueue::Pop r = q.vq.pop(mem_, *chain_);
			if (r == Virtqueue::Pop::Empty)
				break;
			if (r == Virtqueue::Pop::Broken) {
				stopBroken(kTx, q.vq.brokenReason());
				break;
			}
			budget--;
			q.vq.push(chain_->head, 0);
			q.needCall = true;
			if (r == Virtqueue::Pop::TooLong) {
				port_.stats().dropVhostChain++;
				slirpnet_warning_ratelimited("vhost-user: dropped a tx chain of more than %zu segments",
							     VirtqChain::kMaxSegments);
				continue;
			}
			size_t len = gatherTx(*chain_);
			if (len == kDropped)
				continue;
			any = true;
			vnetRecordFromGuest(port_, features(), txBuf_.data(), len);
			if (isClosed())
				return;
		}
		if (q.vq.isStarted())
			q.vq.publish();
		if (!q.running || budget == 0)
			break;
		// Empty: ask for kicks again, then look once more for what came meanwhile.
		q.vq.setKickWanted(true);
		if (!q.vq.hasAvailable())
			break;
	}
	call(kTx);
	if (any)
		port_.inputBatchDone();
	if (q.running && budget == 0) {
		// More is waiting: come back after the loop's other sources have run.
		GSource *s = g_idle_source_new();
		g_source_set_callback(
			s,
			[](gpointer self) -> gboolean {
				auto *me = static_cast<VhostUserSession *>(self);
				me->processTx(); // destroys this source first (allowed from its callback)
				return G_SOURCE_REMOVE;
			},
			this, nullptr);
		g_source_attach(s, ctx_);
		txAgain_.reset(s);
	}
	// Frames libslirp answered with while this ran (ARP, ICMP) wait in the RX ring.
	flush();
}

VhostUserSession::RxWrite VhostUserSession::writeRecord(const uint8_t *rec, size_t recLen)
{
	Queue &q = q_[kRx];
	Stats &st = port_.stats();
	// What the guest gets: the header as negotiated (10 or 12 bytes), then the frame.
	const size_t gap = kVnetHdrLen - hdrLen_;
	const size_t total = recLen - gap;
	size_t done = 0; // bytes of total written
	uint8_t *numBuffers[2] = { nullptr, nullptr }; // where bytes 10 and 11 of the header went
	bool skipped = false; // an unusable chain was given back while this record was being written
	rxUsed_.clear();
	// The chains taken so far go back: untouched as far as the guest can tell when nothing
	// was given back in between (nothing was published), else returned empty.
	auto giveBack = [&]() {
		if (!skipped) {
			q.vq.setBase(static_cast<uint16_t>(q.vq.base() - rxUsed_.size()));
			return;
		}
		for (const auto &[head, len] : rxUsed_)
			q.vq.push(head, 0);
		q.vq.publish();
		q.needCall = true;
	};
	for (;;) {
		Virtqueue::Pop r = q.vq.pop(mem_, *chain_);
		if (r == Virtqueue::Pop::Empty) {
			if (!skipped) {
				giveBack(); // wait for a kick
				return RxWrite::NoRoom;
			}
			giveBack();
			st.dropToGuestFull++;
			return RxWrite::Dropped;
		}
		if (r == Virtqueue::Pop::Broken) {
			giveBack();
			stopBroken(kRx, q.vq.brokenReason());
			st.dropToGuestError++;
			return RxWrite::Dropped;
		}
		if (r == Virtqueue::Pop::TooLong || chain_->writable == 0 ||
		    (!mergeable_ && chain_->writableBytes < total)) {
			// Unusable for this frame: give the buffer back empty (the guest's driver counts
			// it as a length error) rather than stall the queue on it.
			q.vq.push(chain_->head, 0);
			q.vq.publish();
			q.needCall = true;
			skipped = true;
			st.dropVhostChain++;
			if (!mergeable_) {
				slirpnet_warning_ratelimited("vhost-user: a %zu-byte rx buffer cannot hold a %zu-byte "
							     "frame without MRG_RXBUF; frame dropped",
							     static_cast<size_t>(chain_->writableBytes), total);
				st.dropToGuestError++;
				return RxWrite::Dropped;
			}
			continue;
		}
		uint32_t written = 0;
		for (size_t i = chain_->readable; i < chain_->readable + chain_->writable && done < total; i++) {
			uint8_t *dst = static_cast<uint8_t *>(chain_->iov[i].iov_base);
			size_t room = chain_->iov[i].iov_len;
			while (room > 0 && done < total) {
				size_t n;
				const uint8_t *src;
				if (done < hdrLen_) {
					n = std::min(room, hdrLen_ - done);
					src = rec + done;
					// Remember where num_buffers lands: it is known only at the end.
					for (size_t b = 10; b < 12 && b < hdrLen_; b++)
						if (done <= b && b < done + n)
							numBuffers[b - 10] = dst + (b - done);
				} else {
					n = std::min(room, total - done);
					src = rec + done + gap;
				}
				memcpy(dst, src, n);
				dst += n;
				room -= n;
				done += n;
				written += static_cast<uint32_t>(n);
			}
		}
		rxUsed_.emplace_back(chain_->head, written);
		if (done == total)
			break;
		if (rxUsed_.size() >= q.vq.size()) {
			// Every buffer of the ring and still not enough: legal, but this frame can never
			// be taken. Dropped; the queue goes on.
			giveBack();
			st.dropToGuestError++;
			slirpnet_warning_ratelimited(
				"vhost-user: a %zu-byte frame does not fit in the whole receive ring "
				"(%u buffers); dropped",
				total, q.vq.size());
			return RxWrite::Dropped;
		}
	}
	if (hdrLen_ == kVnetHdrLen) {
		uint16_t nb = htole16(mergeable_ ? static_cast<uint16_t>(rxUsed_.size()) : 1);
		const uint8_t *nbBytes = reinterpret_cast<const uint8_t *>(&nb);
		for (int b = 0; b < 2; b++)
			if (numBuffers[b])
				*numBuffers[b] = nbBytes[b];
	}
	for (const auto &[head, len] : rxUsed_)
		q.vq.push(head, len);
	// Visible at once (a store); the call, a system call, waits for flush().
	q.vq.publish();
	q.needCall = true;
	countToGuest(recLen - kVnetHdrLen);
	return RxWrite::Written;
}

void VhostUserSession::deliver(size_t recLen)
{
	Stats &st = port_.stats();
	Queue &q = q_[kRx];
	if (pending_.empty() && q.running && !rxStalled_) {
		if (writeRecord(stage_.data(), recLen) != RxWrite::NoRoom)
			return;
		noteRxStall();
	}
	if (!q.running && !q.enabled) {
		// The guest's driver is not up (or was reset): a NIC without buffers drops.
		st.dropToGuestError++;
		return;
	}
	if (pending_.free() < kLenPrefix + recLen) {
		processRx(); // buffers may have come without a kick yet
		if (pending_.free() < kLenPrefix + recLen) {
			st.dropToGuestFull++;
			return;
		}
	}
	uint32_t l = static_cast<uint32_t>(recLen);
	pending_.push(&l, sizeof(l));
	pending_.push(stage_.data(), recLen);
	processRx(); // asks for a kick, and catches buffers that came meanwhile
}

// The RX ring could not take a record: nothing is tried again until the guest's available
// index moves past what was seen (a kick says so), however many frames come meanwhile.
void VhostUserSession::noteRxStall()
{
	Queue &q = q_[kRx];
	rxStalled_ = true;
	rxStalledAt_ = q.vq.availSeen();
	q.vq.setKickWanted(true);
}

ssize_t VhostUserSession::sendFrame(const uint8_t *frame, size_t len)
{
	if (isClosed()) {
		port_.stats().dropToGuestError++;
		return -1;
	}
	int n = vnetFrameToGuest(
		port_, features(), frame, len, [this]() -> uint8_t * { return stage_.data(); },
		[this](size_t recLen) { deliver(recLen); });
	return n < 0 ? -1 : static_cast<ssize_t>(len);
}

void VhostUserSession::processRx()
{
	Queue &q = q_[kRx];
	while (q.running && !pending_.empty()) {
		if (rxStalled_) {
			// Kick wanted since the stall (with EVENT_IDX: beyond rxStalledAt_); the fence in
			// setKickWanted() orders it before this look at the index.
			if (q.vq.availIndex() == rxStalledAt_)
				break;
			rxStalled_ = false;
		}
		uint32_t l;
		pending_.copyOut(0, &l, sizeof(l));
		pending_.copyOut(kLenPrefix, drain_.data(), l);
		if (writeRecord(drain_.data(), l) == RxWrite::NoRoom) {
			noteRxStall();
			continue; // looks at the index once more: buffers added before the request
		}
		pending_.consume(kLenPrefix + l);
	}
	if (q.running && pending_.empty() && !rxStalled_)
		q.vq.setKickWanted(false);
	port_.toGuestBackpressure(pending_.size(), pending_.capacity());
	call(kRx);
}

// Records waiting for RX buffers that will not come (the ring stopped, the front-end left).
void VhostUserSession::dropPending()
{
	while (!pending_.empty()) {
		uint32_t l;
		pending_.copyOut(0, &l, sizeof(l));
		pending_.consume(kLenPrefix + l);
		port_.stats().dropToGuestError++;
	}
	rxStalled_ = false;
	port_.toGuestBackpressure(0, pending_.capacity());
}

void VhostUserSession::flush()
{
	call(kRx);
}

// ---- the listening side

VhostUserServer::VhostUserServer(const std::string &path, GuestPort &port, GMainContext *ctx, bool oneOff)
	: GuestLink(port, path), ctx_(ctx), oneOff_(oneOff)
{
}

std::unique_ptr<VhostUserServer> VhostUserServer::create(const std::string &path, GuestPort &port, GMainContext *ctx,
							 bool oneOff, std::string &error)
{
	std::unique_ptr<VhostUserServer> s(new VhostUserServer(path, port, ctx, oneOff));
	UnixListenerOptions opts;
	opts.backlog = 4; // one front-end is served, the others are turned away
	SocketAccess access;
	if (!socketAccessForGroup(port.config().socketGroup, access, error))
		return nullptr;
	opts.mode = access.mode;
	opts.group = access.group;
	s->peers_ = PeerPolicy(port.config().peerUids);
	VhostUserServer *self = s.get();
	s->listener_ = UnixListener::create(
		path, ctx, opts, [self](UniqueFd fd) { self->onAccept(std::move(fd)); }, error);
	if (!s->listener_)
		return nullptr;
	return s;
}

VhostUserServer::~VhostUserServer()
{
	reaper_.reset();
	session_.reset();
	listener_.reset(); // unlinks the socket file if it is still ours
}

void VhostUserServer::onAccept(UniqueFd fd)
{
	ucred cred{};
	if (!peerCredentials(fd.get(), cred) || !peers_.allows(cred.uid)) {
		port_.stats().refusedPeers++;
		uint64_t heldBack = 0;
		if (refusedLog_.shouldLog(heldBack))
			g_warning("refused a vhost-user front-end on '%s': uid %u (pid %d) is not allowed (see "
				  "peer-uid=); %llu more refused since the last warning",
				  name().c_str(), static_cast<unsigned>(cred.uid), static_cast<int>(cred.pid),
				  static_cast<unsigned long long>(heldBack));
		return;
	}
	if (hasSession()) {
		slirpnet_warning_ratelimited("refused a second vhost-user front-end on '%s': one is already connected",
					     name().c_str());
		return;
	}
	if (oneOff_ && sessions_ > 0) {
		slirpnet_warning_ratelimited("refused a vhost-user front-end on '%s': --one-off serves a single "
					     "connection",
					     name().c_str());
		return;
	}
	retire();
	// A new front-end is a new device (a restarted QEMU, a rebooted guest): the previous
	// one's connections would only confuse it.
	if (sessions_ > 0 && !port_.config().socketKeepState)
		port_.forgetGuestConnections();
	sessions_++;
	slirpnet_message_ratelimited("vhost-user front-end %llu connected on '%s' (pid %d)",
				     static_cast<unsigned long long>(sessions_), name().c_str(),
				     static_cast<int>(cred.pid));
	session_ = VhostUserSession::create(std::move(fd), port_, ctx_, name());
	session_->setClosedCallback([this](const std::string &why, bool error) { onSessionClosed(why, error); });
}

void VhostUserServer::onSessionClosed(const std::string &why, bool error)
{
	if (oneOff_) {
		closeLink("the --one-off vhost-user front-end left (" + why + ")", error);
		return;
	}
	slirpnet_message_ratelimited("vhost-user front-end left (%s); listening again on '%s'", why.c_str(),
				     name().c_str());
	if (!reaper_) {
		GSource *s = g_idle_source_new();
		g_source_set_callback(
			s,
			[](gpointer self) -> gboolean {
				static_cast<VhostUserServer *>(self)->retire();
				return G_SOURCE_REMOVE;
			},
			this, nullptr);
		g_source_attach(s, ctx_);
		reaper_.reset(s);
	}
}

void VhostUserServer::retire()
{
	reaper_.reset();
	if (session_ && session_->isClosed())
		session_.reset();
}

ssize_t VhostUserServer::sendFrame(const uint8_t *frame, size_t len)
{
	if (!hasSession()) {
		port_.stats().dropToGuestError++;
		return -1;
	}
	return session_->sendFrame(frame, len);
}

void VhostUserServer::flush()
{
	if (hasSession())
		session_->flush();
}

} // namespace slirpnet
