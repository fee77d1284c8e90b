// SPDX-License-Identifier: BSD-2-Clause
// link/byte_ring.hpp - a fixed-size ring of bytes: the output queue of the stream and datagram links.
#pragma once

#include <sys/uio.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

namespace slirpnet {

/*
 * Allocated once; push() copies in, peek() describes queued bytes as at most two iovecs
 * (the ring may wrap), consume() drops them once written. Callers check free() before
 * push(), so a frame is queued whole or not at all.
 */
class ByteRing
{
public:
	explicit ByteRing(size_t capacity) : buf_(capacity) {}

	size_t size() const { return len_; }
	size_t capacity() const { return buf_.size(); }
	size_t free() const { return buf_.size() - len_; }
	bool empty() const { return len_ == 0; }

	void push(const void *data, size_t n)
	{
		size_t cap = buf_.size();
		size_t tail = (head_ + len_) % cap;
		size_t first = std::min(n, cap - tail);
		memcpy(buf_.data() + tail, data, first);
		memcpy(buf_.data(), static_cast<const uint8_t *>(data) + first, n - first);
		len_ += n;
	}

	// The n queued bytes starting offset bytes after the head, as 1 or 2 iovecs (returned).
	int peek(size_t offset, size_t n, iovec iov[2])
	{
		size_t cap = buf_.size();
		size_t start = (head_ + offset) % cap;
		size_t first = std::min(n, cap - start);
		iov[0] = { buf_.data() + start, first };
		iov[1] = { buf_.data(), n - first };
		return n > first ? 2 : 1;
	}

	// Copy n queued bytes starting offset bytes after the head (e.g. a length prefix).
	void copyOut(size_t offset, void *dst, size_t n)
	{
		iovec iov[2];
		peek(offset, n, iov);
		memcpy(dst, iov[0].iov_base, iov[0].iov_len);
		memcpy(static_cast<uint8_t *>(dst) + iov[0].iov_len, iov[1].iov_base, iov[1].iov_len);
	}

	void consume(size_t n)
	{
		head_ = (head_ + n) % buf_.size();
		len_ -= n;
		if (len_ == 0)
			head_ = 0; // keep the next writes contiguous
	}

	void clear() { head_ = len_ = 0; }

private:
	std::vector<uint8_t> buf_;
	size_t head_ = 0;
	size_t len_ = 0;
};

} // namespace slirpnet
