// SPDX-License-Identifier: BSD-2-Clause
// frame_observer.hpp - something that sees every frame crossing the guest link (the pcap capture), without a say in it.
#pragma once

#include <cstddef>
#include <cstdint>

namespace slirpnet {

enum class FrameDirection { FromGuest, ToGuest };

class FrameObserver
{
public:
	virtual ~FrameObserver() = default;
	/*
	 * From the guest: every frame the link delivered, before the size checks (a runt or an
	 * oversized frame is what one wants to see). To the guest: every frame the link took.
	 * Must not block or call back into the network.
	 */
	virtual void observe(FrameDirection dir, const uint8_t *frame, size_t len) = 0;
};

} // namespace slirpnet
