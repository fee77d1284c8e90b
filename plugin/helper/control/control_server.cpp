// SPDX-License-Identifier: BSD-2-Clause
// control/control_server.cpp - the control socket: line-delimited requests from many local clients.
#include "control/control_server.hpp"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "log.hpp"

namespace slirpnet {

namespace {

// Bytes read from one client per wake-up.
constexpr size_t kReadChunk = 16 * 1024;

// One error line for clients refused before any request (same shape as encodeError's).
const char kTooManyClients[] = "{\"error\":{\"class\":\"GenericError\",\"desc\":\"too many control clients\"}}\n";
// To a client accepted only to be closed, the helper being out of descriptors.
const char kOutOfDescriptors[] =
	"{\"error\":{\"class\":\"GenericError\",\"desc\":\"the helper is out of file descriptors; try again later\"}}\n";
const char kLineTooLong[] =
	"{\"error\":{\"class\":\"ParseError\",\"desc\":\"request line too long; disconnecting\"}}\n";

} // namespace

struct ControlServer::Client {
	unsigned id;
	UniqueFd fd; // declared before the watches: they go first
	std::unique_ptr<FdWatch> readWatch;
	std::unique_ptr<FdWatch> writeWatch;
	std::string in; // bytes read, not yet handled
	std::string out; // reply bytes not yet sent
	size_t outSent = 0; // of out
	bool eof = false; // the client half-closed: answer what it sent, then close
	bool waiting = false; // a deferred reply is due: its next requests wait
	bool dead = false; // dropped; freed by onIdle (not from inside its own watch)

	size_t unsent() const { return out.size() - outSent; }
	bool finished() const { return eof && !hasLine() && unsent() == 0 && !waiting; }
	bool hasLine() const { return in.find('\n') != std::string::npos || (eof && !in.empty()); }
};

namespace {

// The request being handled (set around the Handler call): what deferReply() defers.
struct Handling {
	std::weak_ptr<ControlServer *> server;
	unsigned clientId = 0;
	bool *waiting = nullptr; // the client's
};
thread_local Handling *tHandling = nullptr;

} // namespace

ControlServer::ControlServer(GMainContext *ctx, Handler handler, const Limits &limits)
	: ctx_(ctx ? g_main_context_ref(ctx) : g_main_context_ref_thread_default()), handler_(std::move(handler)),
	  limits_(limits), alive_(std::make_shared<ControlServer *>(this))
{
}

ControlServer::Responder ControlServer::deferReply()
{
	if (!tHandling || *tHandling->waiting)
		return {};
	// Set now, so that a Responder called before the Handler returns still works.
	*tHandling->waiting = true;
	std::weak_ptr<ControlServer *> server = tHandling->server;
	unsigned id = tHandling->clientId;
	return [server, id](std::string reply) {
		if (auto s = server.lock())
			(*s)->deliver(id, std::move(reply));
	};
}

void ControlServer::deliver(unsigned clientId, std::string reply)
{
	for (auto &c : clients_) {
		if (c->id != clientId || c->dead)
			continue;
		c->waiting = false;
		queueReply(*c, std::move(reply));
		if (!c->dead)
			service(*c); // sends it, and handles what the client sent meanwhile
		return;
	}
	g_debug("control: client %u left before its reply", clientId);
}

std::unique_ptr<ControlServer> ControlServer::create(const std::string &path, GMainContext *ctx, Handler handler,
						     std::string &error)
{
	return create(path, ctx, std::move(handler), error, Limits{});
}

std::unique_ptr<ControlServer> ControlServer::create(const std::string &path, GMainContext *ctx, Handler handler,
						     std::string &error, const Limits &limits)
{
	std::unique_ptr<ControlServer> s(new ControlServer(ctx, std::move(handler), limits));
	UnixListenerOptions o;
	o.mode = limits.access.mode;
	o.group = limits.access.group;
	o.refuseMessage = kOutOfDescriptors;
	ControlServer *self = s.get();
	s->listener_ = UnixListener::create(
		path, s->ctx_.get(), o, [self](UniqueFd fd) { self->onAccept(std::move(fd)); }, error);
	if (!s->listener_) {
		error = "control: " + error;
		return nullptr;
	}
	g_message("control socket %s ready", path.c_str());
	return s;
}

ControlServer::~ControlServer()
{
	alive_.reset(); // pending Responders do nothing from now on
	idle_.reset();
	clients_.clear();
	listener_.reset(); // unlinks the socket file if it is still ours
}

size_t ControlServer::clientCount() const
{
	size_t n = 0;
	for (const auto &c : clients_)
		n += !c->dead;
	return n;
}

void ControlServer::onAccept(UniqueFd fd)
{
	if (clientCount() >= limits_.maxClients) {
		slirpnet_warning_ratelimited("control: refusing a client: %zu already connected", clientCount());
		(void)!send(fd.get(), kTooManyClients, sizeof(kTooManyClients) - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
		return;
	}
	auto c = std::make_unique<Client>();
	c->id = nextClientId_++;
	c->fd = std::move(fd);
	Client *cp = c.get();
	int cfd = c->fd.get();
	c->readWatch = FdWatch::create(ctx_.get(), cfd, static_cast<GIOCondition>(G_IO_IN | G_IO_HUP | G_IO_ERR),
				       [this, cp](int, GIOCondition cond) { onReadable(*cp, cond); });
	c->writeWatch = FdWatch::create(ctx_.get(), cfd, static_cast<GIOCondition>(G_IO_OUT | G_IO_ERR),
					[this, cp](int, GIOCondition) { onWritable(*cp); });
	c->readWatch->enable();
	clients_.push_back(std::move(c));
	g_debug("control: client %u connected (%zu now)", cp->id, clientCount());
}

void ControlServer::onReadable(Client &c, GIOCondition cond)
{
	if (c.dead)
		return;
	char buf[kReadChunk];
	ssize_t n = recv(c.fd.get(), buf, sizeof(buf), MSG_DONTWAIT);
	if (n < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return;
		drop(c, strerror(errno));
		return;
	}
	if (n == 0) {
		c.eof = true;
	} else {
		c.in.append(buf, static_cast<size_t>(n));
		// A request may be up to maxLine bytes; whatever precedes its '\n' is bounded so.
		size_t nl = c.in.find('\n');
		if ((nl == std::string::npos ? c.in.size() : nl) > limits_.maxLine) {
			slirpnet_warning_ratelimited(
				"control: client %u sent a request line over %zu bytes; disconnecting", c.id,
				limits_.maxLine);
			(void)!send(c.fd.get(), kLineTooLong, sizeof(kLineTooLong) - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
			drop(c, "request line too long");
			return;
		}
	}
	(void)cond;
	service(c);
}

void ControlServer::service(Client &c)
{
	for (int handled = 0; !c.dead && !c.waiting && c.hasLine(); handled++) {
		if (c.unsent() > limits_.outputHighWater)
			break; // resumed by onWritable once the client reads
		if (handled == limits_.requestsPerTurn) {
			scheduleIdle(); // the rest when the loop has nothing better to do
			break;
		}
		size_t nl = c.in.find('\n');
		std::string line = c.in.substr(0, nl);
		c.in.erase(0, nl == std::string::npos ? c.in.size() : nl + 1);
		if (!line.empty() && line.back() == '\r')
			line.pop_back();
		if (line.find_first_not_of(" \t") == std::string::npos)
			continue;
		Handling h{ alive_, c.id, &c.waiting };
		tHandling = &h;
		std::string reply = handler_(line);
		tHandling = nullptr;
		queueReply(c, std::move(reply)); // "" when deferred: deliver() gives it and resumes
	}
	if (c.dead)
		return;
	flushOutput(c);
}

void ControlServer::queueReply(Client &c, std::string reply)
{
	if (reply.empty() || c.dead)
		return;
	if (c.unsent() + reply.size() > limits_.maxOutput) {
		slirpnet_warning_ratelimited(
			"control: client %u does not read its replies (%zu bytes unsent); disconnecting", c.id,
			c.unsent());
		drop(c, "reply backlog too large");
		return;
	}
	if (c.outSent > 0 && c.outSent == c.out.size()) {
		c.out.clear();
		c.outSent = 0;
	}
	c.out += reply;
}

void ControlServer::flushOutput(Client &c)
{
	while (!c.dead && c.unsent() > 0) {
		ssize_t n = send(c.fd.get(), c.out.data() + c.outSent, c.unsent(), MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				break;
			drop(c, strerror(errno));
			return;
		}
		c.outSent += static_cast<size_t>(n);
	}
	if (c.unsent() == 0) {
		c.out.clear();
		c.outSent = 0;
	} else if (c.outSent > limits_.outputHighWater) {
		c.out.erase(0, c.outSent); // keep the buffer from growing with what was sent
		c.outSent = 0;
	}
	if (c.finished()) {
		drop(c, "client closed the connection");
		return;
	}
	updateWatches(c);
}

void ControlServer::updateWatches(Client &c)
{
	// Read only when the previous requests are handled and their replies mostly sent:
	// that bounds c.in to maxLine + kReadChunk and c.out to maxOutput.
	bool wantRead = !c.eof && !c.hasLine() && c.unsent() <= limits_.outputHighWater;
	// (While a deferred reply is due, reading goes on until a whole line waits: bounded.)
	if (wantRead)
		c.readWatch->enable();
	else
		c.readWatch->disable();
	if (c.unsent() > 0)
		c.writeWatch->enable();
	else
		c.writeWatch->disable();
}

void ControlServer::onWritable(Client &c)
{
	if (c.dead)
		return;
	flushOutput(c);
	if (!c.dead && !c.waiting && c.hasLine() && c.unsent() <= limits_.outputHighWater)
		service(c);
}

void ControlServer::drop(Client &c, const char *why)
{
	if (c.dead)
		return;
	c.dead = true;
	c.readWatch->disable();
	c.writeWatch->disable();
	g_debug("control: client %u gone: %s", c.id, why);
	scheduleIdle(); // freed there: this may run inside one of its watches
}

void ControlServer::scheduleIdle()
{
	if (idle_)
		return;
	GSource *s = g_idle_source_new();
	g_source_set_priority(s, G_PRIORITY_DEFAULT_IDLE);
	g_source_set_callback(s, &ControlServer::onIdle, this, nullptr);
	g_source_set_name(s, "slirpnet-control-idle");
	g_source_attach(s, ctx_.get());
	idle_.reset(s);
}

gboolean ControlServer::onIdle(gpointer p)
{
	auto *self = static_cast<ControlServer *>(p);
	self->idle_.reset(); // service() below may schedule a new one
	self->clients_.remove_if([](const std::unique_ptr<Client> &c) { return c->dead; });
	for (auto &c : self->clients_)
		if (!c->waiting && c->hasLine() && c->unsent() <= self->limits_.outputHighWater)
			self->service(*c);
	return G_SOURCE_REMOVE;
}

} // namespace slirpnet
