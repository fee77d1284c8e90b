// SPDX-License-Identifier: BSD-2-Clause
// link/guest_link.cpp - the one interface of every transport: frames both ways, back-pressure, offloads.
#include "link/guest_link.hpp"

#include <cerrno>

namespace slirpnet {

GuestLink::GuestLink(GuestPort &port, std::string name) : port_(port), name_(std::move(name)) {}

GuestLink::~GuestLink() = default;

void GuestLink::startWatches(GMainContext *ctx, int rxFd, int txFd)
{
	readWatch_ = FdWatch::create(ctx, rxFd, static_cast<GIOCondition>(G_IO_IN | G_IO_HUP | G_IO_ERR),
				     [this](int, GIOCondition c) { onReadable(c); });
	if (txFd >= 0)
		writeWatch_ = FdWatch::create(ctx, txFd, static_cast<GIOCondition>(G_IO_OUT | G_IO_ERR),
					      [this](int, GIOCondition c) { onWritable(c); });
	readWatch_->enable();
}

void GuestLink::closeLink(const std::string &why, bool error)
{
	if (closed_)
		return;
	closed_ = true;
	if (readWatch_)
		readWatch_->disable();
	if (writeWatch_)
		writeWatch_->disable();
	dropQueued();
	port_.toGuestBackpressure(0, 1);
	if (onClosed_)
		onClosed_(why, error);
}

bool GuestLink::closeIfHungUp(int fd, GIOCondition cond)
{
	if (closed_ || !(cond & (G_IO_HUP | G_IO_ERR)))
		return closed_;
	char probe;
	ssize_t r = recv(fd, &probe, 1, MSG_PEEK | MSG_DONTWAIT);
	if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
		closeLink("peer hung up");
		return true;
	}
	return false;
}

RecordBatch::RecordBatch(size_t slots, size_t slotSize, bool withSenders, bool withCredentials)
	: slotSize_(slotSize), withSenders_(withSenders), buf_(slots * slotSize), iov_(slots), msgs_(slots),
	  senders_(withSenders ? slots : 0), control_(withCredentials ? slots * CMSG_SPACE(sizeof(ucred)) : 0)
{
	for (size_t i = 0; i < slots; i++) {
		iov_[i] = { buf_.data() + i * slotSize, slotSize };
		msgs_[i].msg_hdr.msg_iov = &iov_[i];
		msgs_[i].msg_hdr.msg_iovlen = 1;
	}
}

int RecordBatch::read(int fd)
{
	for (size_t i = 0; i < msgs_.size(); i++) {
		msgs_[i].msg_hdr.msg_flags = 0;
		if (withSenders_) {
			msgs_[i].msg_hdr.msg_name = &senders_[i];
			msgs_[i].msg_hdr.msg_namelen = sizeof(sockaddr_storage);
		}
		if (!control_.empty()) {
			msgs_[i].msg_hdr.msg_control = control_.data() + i * CMSG_SPACE(sizeof(ucred));
			msgs_[i].msg_hdr.msg_controllen = CMSG_SPACE(sizeof(ucred));
		}
	}
	int n = recvmmsg(fd, msgs_.data(), static_cast<unsigned>(msgs_.size()), MSG_DONTWAIT | MSG_TRUNC, nullptr);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	return n;
}

const ucred *RecordBatch::credentials(int i) const
{
	if (control_.empty())
		return nullptr;
	auto *m = const_cast<msghdr *>(&msgs_[i].msg_hdr);
	for (cmsghdr *c = CMSG_FIRSTHDR(m); c; c = CMSG_NXTHDR(m, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS &&
		    c->cmsg_len >= CMSG_LEN(sizeof(ucred)))
			return reinterpret_cast<const ucred *>(CMSG_DATA(c));
	return nullptr;
}

} // namespace slirpnet
