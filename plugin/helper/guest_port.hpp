// SPDX-License-Identifier: BSD-2-Clause
// guest_port.hpp - the network as a guest link sees it: where guest frames go, back-pressure.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>

#include "options.hpp"
#include "stats.hpp"

namespace slirpnet {

/*
 * Implemented by Network; a link holds one and knows nothing else of libslirp, so a link
 * can be tested against a fake port. Every call comes from the thread running the loop.
 */
class GuestPort
{
public:
	virtual ~GuestPort() = default;

	/*
	 * One frame from the guest. The port counts it, checks it against the size limits and
	 * hands it to libslirp; bad frames are dropped and counted. A tsoSegment (a guest's
	 * TSO segment, its checksum completed) may be up to kMaxGsoFrame bytes.
	 */
	virtual void fromGuest(const uint8_t *frame, size_t len, bool tsoSegment = false) = 0;
	// The link read all it will read in this wake-up: libslirp may send what the batch made.
	virtual void inputBatchDone() = 0;
	// A frame larger than the link's buffer (only its length is known): dropped, counted.
	virtual void droppedOversize(size_t len) = 0;
	/*
	 * How full the link's output to the guest is (1/1: its socket refused a frame; 0: all
	 * written). Host input pauses above half full and resumes below an eighth, so libslirp
	 * never reads from the host faster than the guest takes it.
	 */
	virtual void toGuestBackpressure(size_t queued, size_t capacity) = 0;

	/*
	 * A new guest replaces the previous one on this link (a new --socket client): reset
	 * the previous guest's TCP connections with the host (SlirpDriver::resetGuestConnections)
	 * and drop what libslirp sends the old guest while that settles. Counted (guest_resets).
	 */
	virtual void forgetGuestConnections() = 0;

	virtual Stats &stats() = 0;
	virtual const Config &config() const = 0;
	// libslirp's MTU: the link's, or larger on a link that negotiates offloads.
	virtual unsigned slirpMtu() const = 0;
};

} // namespace slirpnet
