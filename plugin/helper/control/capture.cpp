// SPDX-License-Identifier: BSD-2-Clause
// control/capture.cpp - records the guest's frames to a classic pcap file with libpcap's dump API.
#include "control/capture.hpp"

#include <fcntl.h>
#include <pcap/pcap.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "log.hpp"
#include "quote.hpp"
#include "unique_fd.hpp"

namespace slirpnet {

namespace {

// On-disk size of a record header (struct pcap_sf_pkthdr: 32-bit seconds and microseconds).
constexpr size_t kRecordHeader = 16;
// And of the file header (struct pcap_file_header).
constexpr size_t kFileHeader = 24;

} // namespace

void Capture::PcapCloser::operator()(pcap *p) const
{
	pcap_close(p);
}

void Capture::DumperCloser::operator()(pcap_dumper *d) const
{
	pcap_dump_close(d); // flushes and fcloses
}

BpfProgram Capture::compileFilter(const std::string &filter, unsigned snaplen, std::string &error)
{
	std::unique_ptr<pcap, PcapCloser> p(pcap_open_dead(DLT_EN10MB, static_cast<int>(snaplen)));
	if (!p) {
		error = "pcap-filter: libpcap could not open a dead handle";
		return nullptr;
	}
	auto prog = std::make_unique<bpf_program>();
	if (pcap_compile(p.get(), prog.get(), filter.c_str(), 1, PCAP_NETMASK_UNKNOWN) < 0) {
		error = "pcap-filter: bad expression " + q(filter) + ": " + pcap_geterr(p.get());
		return nullptr;
	}
	return BpfProgram(prog.release(), [](const bpf_program *b) {
		auto *m = const_cast<bpf_program *>(b);
		pcap_freecode(m);
		delete m;
	});
}

bool Capture::checkFilter(const std::string &filter, unsigned snaplen, std::string &error)
{
	return compileFilter(filter, snaplen, error) != nullptr;
}

struct FilterCompile::State {
	std::string filter;
	unsigned snaplen;
	GMainContextPtr ctx;
	std::mutex mutex; // guards cancelled against the thread's hand-over
	bool cancelled = false;
	Done done; // used on ctx's thread only
	BpfProgram program; // the thread's result...
	std::string error; // ... or its error
};

namespace {

// The compile thread: compile, then hand the result to the loop unless nobody waits.
gpointer compileThread(gpointer data)
{
	std::unique_ptr<std::shared_ptr<FilterCompile::State>> ref(
		static_cast<std::shared_ptr<FilterCompile::State> *>(data));
	FilterCompile::State &s = **ref;
	std::string err;
	BpfProgram prog = Capture::compileFilter(s.filter, s.snaplen, err);
	std::lock_guard lock(s.mutex);
	if (s.cancelled)
		return nullptr; // the program is freed with prog
	s.program = std::move(prog);
	s.error = std::move(err);
	// Back to the loop's thread; the source holds the reference from here on.
	GSource *src = g_idle_source_new();
	g_source_set_priority(src, G_PRIORITY_DEFAULT);
	g_source_set_name(src, "slirpnet-filter-compiled");
	g_source_set_callback(src, &FilterCompile::onDone, ref.release(),
			      [](gpointer p) { delete static_cast<std::shared_ptr<FilterCompile::State> *>(p); });
	g_source_attach(src, s.ctx.get());
	g_source_unref(src);
	return nullptr;
}

} // namespace

std::unique_ptr<FilterCompile> FilterCompile::start(const std::string &filter, unsigned snaplen, GMainContext *ctx,
						    Done done, std::string &error)
{
	auto st = std::make_shared<State>();
	st->filter = filter;
	st->snaplen = snaplen;
	st->ctx.reset(ctx ? g_main_context_ref(ctx) : g_main_context_ref_thread_default());
	st->done = std::move(done);
	auto *ref = new std::shared_ptr<State>(st);
	GError *gerr = nullptr;
	// Detached (the GThread reference dropped): a compile that outlives its request (the
	// capture given up, the helper exiting) must not hold the loop up waiting for it.
	GThread *t = g_thread_try_new("slirpnet-bpf", compileThread, ref, &gerr);
	if (!t) {
		delete ref;
		error = std::string("pcap: cannot start a thread to compile the filter: ") + gerr->message;
		g_error_free(gerr);
		return nullptr;
	}
	g_thread_unref(t);
	return std::unique_ptr<FilterCompile>(new FilterCompile(std::move(st)));
}

FilterCompile::~FilterCompile()
{
	std::lock_guard lock(state_->mutex);
	state_->cancelled = true; // onDone (if already queued) and the thread do nothing more
}

const std::string &FilterCompile::filter() const
{
	return state_->filter;
}

gboolean FilterCompile::onDone(gpointer p)
{
	State &s = **static_cast<std::shared_ptr<State> *>(p);
	{
		std::lock_guard lock(s.mutex);
		if (s.cancelled)
			return G_SOURCE_REMOVE;
	}
	// done may destroy the FilterCompile (it usually does: the compile is over).
	Done done = std::move(s.done);
	BpfProgram program = std::move(s.program);
	std::string error = std::move(s.error);
	done(std::move(program), error);
	return G_SOURCE_REMOVE;
}

Capture::Capture(const CaptureSettings &s, GMainContext *ctx)
	: settings_(s), ctx_(ctx ? g_main_context_ref(ctx) : g_main_context_ref_thread_default())
{
}

std::unique_ptr<Capture> Capture::open(const CaptureSettings &s, GMainContext *ctx, std::string &error)
{
	std::unique_ptr<Capture> c(new Capture(s, ctx));
	c->pcap_.reset(pcap_open_dead(DLT_EN10MB, static_cast<int>(s.snaplen)));
	if (!c->pcap_) {
		error = "pcap: libpcap could not open a dead handle";
		return nullptr;
	}
	if (s.program) {
		c->program_ = s.program; // compiled off the loop (FilterCompile)
	} else if (!s.filter.empty()) {
		c->program_ = compileFilter(s.filter, s.snaplen, error);
		if (!c->program_)
			return nullptr;
	}

	// A FIFO or socket would make every flush wait for its reader: refuse them up front
	// (O_NONBLOCK keeps the open itself from waiting for a FIFO's reader).
	// (/dev/null, a character device, is fine.)
	auto writable = [](const struct stat &sb) { return S_ISREG(sb.st_mode) || S_ISCHR(sb.st_mode); };
	struct stat sb;
	if (lstat(s.path.c_str(), &sb) == 0 && S_ISLNK(sb.st_mode)) {
		error = "pcap: " + q(s.path) + " is a symbolic link; not following it";
		return nullptr;
	}
	if (stat(s.path.c_str(), &sb) == 0 && !writable(sb)) {
		error = "pcap: " + q(s.path) + " is not a regular file";
		return nullptr;
	}
	// O_NOFOLLOW: a link planted after the check above is refused too (ELOOP).
	UniqueFd fd(::open(s.path.c_str(),
			   O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | O_NOFOLLOW, 0600));
	if (!fd) {
		error = "pcap: cannot create " + q(s.path) + ": " +
			(errno == ELOOP ? std::string("it is a symbolic link") : strerror(errno));
		return nullptr;
	}
	if (fstat(fd.get(), &sb) < 0 || !writable(sb)) {
		error = "pcap: " + q(s.path) + " is not a regular file";
		return nullptr;
	}
	fcntl(fd.get(), F_SETFL, fcntl(fd.get(), F_GETFL) & ~O_NONBLOCK);
	FILE *fp = fdopen(fd.get(), "w");
	if (!fp) {
		error = "pcap: cannot open " + q(s.path) + ": " + strerror(errno);
		return nullptr;
	}
	fd.release(); // the FILE owns it now
	// Room for several whole records, so that a record never straddles a flush.
	c->bufferBytes_ = std::max(kBufferBytes, 4 * (kRecordHeader + s.snaplen));
	c->buffer_ = std::make_unique<char[]>(c->bufferBytes_);
	setvbuf(fp, c->buffer_.get(), _IOFBF, c->bufferBytes_);
	c->dumper_.reset(pcap_dump_fopen(c->pcap_.get(), fp));
	if (!c->dumper_) {
		error = "pcap: cannot write " + q(s.path) + ": " + pcap_geterr(c->pcap_.get());
		fclose(fp);
		return nullptr;
	}
	// The header on disk at once: the file is a valid (empty) capture from the start.
	if (pcap_dump_flush(c->dumper_.get()) != 0) {
		error = "pcap: cannot write " + q(s.path) + ": " + strerror(errno);
		c->failed_ = true;
		return nullptr;
	}
	c->fileBytes_ = kFileHeader;
	slirpnet_message_ratelimited("capturing to %s%s%s (snaplen %u)", s.path.c_str(),
				     s.filter.empty() ? "" : ", filter ", s.filter.c_str(), s.snaplen);
	return c;
}

Capture::~Capture()
{
	flushTimer_.reset();
	if (!dumper_ || failed_)
		return;
	flush();
	slirpnet_message_ratelimited("capture %s closed: %" G_GUINT64_FORMAT " frames, %" G_GUINT64_FORMAT
				     " filtered out",
				     settings_.path.c_str(), frames_, filtered_);
}

void Capture::write(const uint8_t *frame, size_t len)
{
	if (failed_ || *stopped_) {
		unrecorded_++;
		return;
	}
	pcap_pkthdr h{};
	gint64 now = g_get_real_time();
	h.ts.tv_sec = static_cast<time_t>(now / G_USEC_PER_SEC);
	h.ts.tv_usec = static_cast<suseconds_t>(now % G_USEC_PER_SEC);
	h.len = static_cast<bpf_u_int32>(len);
	h.caplen = h.len; // the filter sees the whole frame, whatever the snaplen
	if (program_ && !pcap_offline_filter(program_.get(), &h, frame)) {
		filtered_++;
		return;
	}
	h.caplen = static_cast<bpf_u_int32>(std::min<size_t>(len, settings_.snaplen));
	size_t record = kRecordHeader + h.caplen;
	if (settings_.maxBytes && fileBytes_ + record > settings_.maxBytes) {
		stopped_ = "size limit";
		unrecorded_++;
		flush();
		g_warning("pcap: %s reached pcap-max (%" G_GUINT64_FORMAT " bytes) after %" G_GUINT64_FORMAT
			  " frames; capture stopped",
			  settings_.path.c_str(), settings_.maxBytes, frames_);
		return;
	}
	// Never let stdio write out a partial record when the buffer fills: flush first.
	if (buffered_ + record >= bufferBytes_)
		flush();
	if (failed_)
		return;
	pcap_dump(reinterpret_cast<u_char *>(dumper_.get()), &h, frame);
	buffered_ += record;
	fileBytes_ += record;
	frames_++;
	bytes_ += len;
	scheduleFlush();
}

void Capture::flush()
{
	flushTimer_.reset();
	if (buffered_ == 0 || failed_)
		return;
	buffered_ = 0;
	if (pcap_dump_flush(dumper_.get()) != 0) {
		failed_ = true;
		stopped_ = "write error";
		g_warning("pcap: writing %s: %s; capture stopped", settings_.path.c_str(), strerror(errno));
	}
}

void Capture::scheduleFlush()
{
	if (flushTimer_)
		return;
	GSource *s = g_timeout_source_new(kFlushIntervalMs);
	g_source_set_callback(s, &Capture::onFlushTimer, this, nullptr);
	g_source_set_name(s, "slirpnet-capture-flush");
	g_source_attach(s, ctx_.get());
	flushTimer_.reset(s);
}

gboolean Capture::onFlushTimer(gpointer self)
{
	// flush() drops flushTimer_, which destroys this (running) source: that is allowed.
	static_cast<Capture *>(self)->flush();
	return G_SOURCE_REMOVE;
}

} // namespace slirpnet
