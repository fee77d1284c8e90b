// SPDX-License-Identifier: BSD-2-Clause
// control/capture.hpp - records the guest's frames to a classic pcap file with libpcap's dump API.
#pragma once

#include <glib.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "frame_observer.hpp"
#include "glib_ptr.hpp"

// libpcap's types, so that users of this header need not include <pcap/pcap.h>.
struct pcap;
struct pcap_dumper;
struct bpf_program;

namespace slirpnet {

// A compiled BPF program; shareable (read-only) between threads, freed with pcap_freecode.
using BpfProgram = std::shared_ptr<const bpf_program>;

struct CaptureSettings {
	std::string path;
	std::string filter; // BPF expression in libpcap syntax; empty: every frame
	unsigned snaplen = 65535;
	// pcap-max=: the capture stops before the file would grow beyond this; 0: no limit.
	uint64_t maxBytes = 0;
	// filter already compiled (FilterCompile); null: open() compiles it.
	BpfProgram program{};
};

/*
 * Compiles a BPF expression on a thread of its own, off the helper's loop: libpcap's
 * compiler and optimiser can take seconds on a long expression (a 4 KiB chain of
 * "or host A" takes about 7 s), and the loop moves the frames. pcap_compile is safe to
 * call from several threads since libpcap 1.8, each with its own pcap_t (here a dead
 * one). done(program, error) runs on ctx, unless the FilterCompile is destroyed first;
 * the thread then finishes its compile and frees it. Creating a thread needs clone
 * (CLONE_THREAD), which the seccomp allowlist has (glibc falls back to it from clone3).
 */
class FilterCompile
{
public:
	using Done = std::function<void(BpfProgram program, const std::string &error)>;

	// nullptr with error set when no thread could be started.
	static std::unique_ptr<FilterCompile> start(const std::string &filter, unsigned snaplen, GMainContext *ctx,
						    Done done, std::string &error);
	~FilterCompile();
	FilterCompile(const FilterCompile &) = delete;
	FilterCompile &operator=(const FilterCompile &) = delete;

	const std::string &filter() const;

	struct State; // shared with the thread (capture.cpp)
	static gboolean onDone(gpointer state);

private:
	explicit FilterCompile(std::shared_ptr<State> state) : state_(std::move(state)) {}
	std::shared_ptr<State> state_;
};

/*
 * One open capture: LINKTYPE_ETHERNET, microsecond timestamps, frames cut to snaplen.
 *
 * Flush policy. Frames go through a stdio buffer that is never allowed to fill up in
 * the middle of a record (write() flushes it first when the next record would not fit),
 * and it is flushed at most kFlushIntervalMs after the first frame that went into it and
 * when the capture is closed. So the file on disk always ends on a whole record: a helper
 * killed with SIGKILL leaves a readable file that lacks at most the last
 * kFlushIntervalMs of frames. There is no fsync: the data path never waits for the disk,
 * only for a write() into the page cache every kFlushIntervalMs or kBufferBytes.
 *
 * A write error (disk full, ...) is logged once and stops the capture; the network goes on.
 * So does reaching settings().maxBytes: the record that would cross it is not written (the
 * file stays a valid capture of whole records), stopped() says "size limit", and the
 * frames seen from then on are counted (unrecorded()).
 */
class Capture : public FrameObserver
{
public:
	static constexpr unsigned kFlushIntervalMs = 100;
	static constexpr size_t kBufferBytes = 256 * 1024;

	// Compile filter as Network::create and capture-start do; error names key and expression.
	static bool checkFilter(const std::string &filter, unsigned snaplen, std::string &error);
	// The same, keeping the program (any thread). error names the expression.
	static BpfProgram compileFilter(const std::string &filter, unsigned snaplen, std::string &error);

	/*
	 * Create (truncate) s.path with mode 0600 - it holds the guest's traffic - and write
	 * the file header. Refuses FIFOs and sockets, whose reader could block the data path,
	 * and a symbolic link (O_NOFOLLOW: the helper may run with more rights than whoever
	 * could plant one).
	 * ctx (NULL: the thread default) runs the flush timer.
	 */
	static std::unique_ptr<Capture> open(const CaptureSettings &s, GMainContext *ctx, std::string &error);
	~Capture();
	Capture(const Capture &) = delete;
	Capture &operator=(const Capture &) = delete;

	// One frame (either direction), timestamped now. Filtered, cut to snaplen, buffered.
	void write(const uint8_t *frame, size_t len);
	// A capture records both directions alike (network.hpp adds it as an observer).
	void observe(FrameDirection, const uint8_t *frame, size_t len) override { write(frame, len); }
	// Push buffered records to the file (one write()).
	void flush();

	const CaptureSettings &settings() const { return settings_; }
	uint64_t frames() const { return frames_; } // records written
	uint64_t bytes() const { return bytes_; } // frame bytes of those records (before snaplen)
	uint64_t filtered() const { return filtered_; } // frames the filter left out
	bool failed() const { return failed_; }
	// Why the capture stopped early: "" (it has not), "size limit" or "write error".
	const char *stopped() const { return stopped_; }
	uint64_t unrecorded() const { return unrecorded_; } // frames seen after it stopped
	uint64_t fileBytes() const { return fileBytes_; } // the file's size (header and records)

private:
	struct PcapCloser {
		void operator()(pcap *p) const;
	};
	struct DumperCloser {
		void operator()(pcap_dumper *d) const;
	};

	Capture(const CaptureSettings &s, GMainContext *ctx);
	void scheduleFlush();
	static gboolean onFlushTimer(gpointer self);

	CaptureSettings settings_;
	GMainContextPtr ctx_;
	std::unique_ptr<pcap, PcapCloser> pcap_;
	BpfProgram program_; // null: no filter
	std::unique_ptr<char[]> buffer_; // the FILE's buffer: outlives dumper_
	std::unique_ptr<pcap_dumper, DumperCloser> dumper_; // closes the FILE
	GSourcePtr flushTimer_; // armed while records wait in the buffer
	size_t buffered_ = 0; // bytes in the stdio buffer since the last flush
	size_t bufferBytes_ = kBufferBytes;
	uint64_t frames_ = 0, bytes_ = 0, filtered_ = 0;
	uint64_t fileBytes_ = 0, unrecorded_ = 0;
	bool failed_ = false;
	const char *stopped_ = "";
};

} // namespace slirpnet
