// helper_main.cpp - the slirpnet helper: options, the guest link, and the GLib loop around libslirp.
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <glib-unix.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "glib_ptr.hpp"
#include "log.hpp"
#include "network.hpp"
#include "options.hpp"
#include "seqpacket_link.hpp"
#include "unique_fd.hpp"
#include "wire.hpp"

#ifndef SLIRPNET_VERSION
#define SLIRPNET_VERSION "0"
#endif

using namespace slirpnet;

namespace {

// How long the helper waits for the parent's config message.
constexpr int kConfigTimeoutMs = 30000;

struct CommandLine {
	OptionList options; // from --KEY=VALUE and -o, in order
	std::string optionError;
	int seqpacketFd = -1;
	gboolean verbose = FALSE;
	gboolean version = FALSE;
};

CommandLine gCmd;

gboolean onTableOption(const gchar *name, const gchar *value, gpointer, GError **)
{
	// name is "--key"
	gCmd.options.emplace_back(name + 2, value ? value : "");
	return TRUE;
}

gboolean onCommaOptions(const gchar *, const gchar *value, gpointer, GError **error)
{
	std::string err;
	if (!splitOptions(value, gCmd.options, err)) {
		g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE, "-o: %s", err.c_str());
		return FALSE;
	}
	return TRUE;
}

// Parse argv; the table rows become --KEY options. Returns an exit code, or -1 to go on.
int parseCommandLine(int argc, char **argv)
{
	std::vector<std::string> descriptions;
	auto table = optionTable();
	descriptions.reserve(table.size());
	std::vector<GOptionEntry> entries;
	for (const auto &o : table) {
		descriptions.push_back(std::string(o.help) + " (default: " + o.defaultText + ")");
		GOptionEntry e{};
		e.long_name = o.key;
		e.flags = o.isBool ? G_OPTION_FLAG_OPTIONAL_ARG : 0;
		e.arg = G_OPTION_ARG_CALLBACK;
		e.arg_data = reinterpret_cast<gpointer>(onTableOption);
		e.description = descriptions.back().c_str();
		e.arg_description = *o.metavar ? o.metavar : nullptr;
		entries.push_back(e);
	}
	entries.push_back(GOptionEntry{ nullptr, 0, 0, G_OPTION_ARG_NONE, nullptr, nullptr, nullptr });

	GOptionEntry mainEntries[] = {
		{ "seqpacket-fd", 'S', 0, G_OPTION_ARG_INT, &gCmd.seqpacketFd,
		  "serve the plugin on the inherited SOCK_SEQPACKET socket FD (config arrives as the first message)", "FD" },
		{ "options", 'o', 0, G_OPTION_ARG_CALLBACK, reinterpret_cast<gpointer>(onCommaOptions),
		  "options in the comma form of -netdev user, e.g. 'net=10.0.2.0/24,hostfwd=tcp::2222-:22'", "K=V,..." },
		{ "verbose", 'v', 0, G_OPTION_ARG_NONE, &gCmd.verbose, "log debug messages", nullptr },
		{ "version", 0, 0, G_OPTION_ARG_NONE, &gCmd.version, "print the version and exit", nullptr },
		{ nullptr, 0, 0, G_OPTION_ARG_NONE, nullptr, nullptr, nullptr },
	};

	GOptionContext *ctx = g_option_context_new("- user-mode networking for virtual machines (libslirp helper)");
	g_option_context_add_main_entries(ctx, mainEntries, nullptr);
	GOptionGroup *group = g_option_group_new("network", "Network options (QEMU -netdev user keys; also usable with -o):",
						 "Show the network options", nullptr, nullptr);
	g_option_group_add_entries(group, entries.data());
	g_option_context_add_group(ctx, group);
	std::string desc = "Network options in the comma form (-o, plugin spec), with defaults:\n" + optionsHelp();
	g_option_context_set_description(ctx, desc.c_str());
	g_option_context_set_help_enabled(ctx, TRUE);

	GError *err = nullptr;
	bool ok = g_option_context_parse(ctx, &argc, &argv, &err);
	g_option_context_free(ctx);
	if (!ok) {
		fprintf(stderr, "slirpnet: %s (see --help)\n", err->message);
		g_error_free(err);
		return 2;
	}
	if (argc > 1) {
		fprintf(stderr, "slirpnet: unexpected argument '%s' (see --help)\n", argv[1]);
		return 2;
	}
	return -1;
}

// Wait (bounded) for the first message on the plugin's socket and decode it.
bool receiveConfig(int fd, OptionList &opts, std::string &error)
{
	struct pollfd p = { fd, POLLIN, 0 };
	int r;
	do
		r = poll(&p, 1, kConfigTimeoutMs);
	while (r < 0 && errno == EINTR);
	if (r == 0) {
		error = "no config message from the parent within " + std::to_string(kConfigTimeoutMs / 1000) + " s";
		return false;
	}
	std::vector<uint8_t> buf(kMaxControlMessage);
	ssize_t n = recv(fd, buf.data(), buf.size(), MSG_DONTWAIT | MSG_TRUNC);
	if (n < 0) {
		error = std::string("reading the config message: ") + strerror(errno);
		return false;
	}
	if (n == 0) {
		error = "the parent closed the socket before sending a config";
		return false;
	}
	if (static_cast<size_t>(n) > buf.size()) {
		error = "config message too large (" + std::to_string(n) + " bytes)";
		return false;
	}
	return decodeConfig(buf.data(), static_cast<size_t>(n), opts, error);
}

void sendStatus(int fd, bool ok, const std::string &message)
{
	std::vector<uint8_t> m = encodeStatus(ok, message);
	// The socket is empty at this point, so this cannot block for long; wait for room
	// anyway rather than lose the one message the parent is waiting for.
	struct pollfd p = { fd, POLLOUT, 0 };
	poll(&p, 1, 1000);
	if (send(fd, m.data(), m.size(), MSG_NOSIGNAL | MSG_EOR | MSG_DONTWAIT) < 0)
		g_debug("sending status: %s", strerror(errno));
}

struct Loop {
	GMainLoopPtr loop{ g_main_loop_new(nullptr, FALSE) };
	int exitCode = 0;
	Network *net = nullptr;
};

int runSeqpacket(int fd)
{
	if (fcntl(fd, F_GETFD) < 0) {
		g_critical("-S %d: not an open file descriptor", fd);
		return 1;
	}
	int type = 0;
	socklen_t tl = sizeof(type);
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) < 0 || type != SOCK_SEQPACKET) {
		g_critical("-S %d: not a SOCK_SEQPACKET socket", fd);
		return 1;
	}
	UniqueFd sock(fd);
	fcntl(fd, F_SETFD, FD_CLOEXEC);

	OptionList opts = gCmd.options;
	std::string error;
	Config cfg;
	if (!receiveConfig(fd, opts, error) || !parseConfig(opts, cfg, error)) {
		g_critical("%s", error.c_str());
		sendStatus(fd, false, error);
		return 1;
	}

	Loop loop;
	SeqpacketLink *link = nullptr;
	auto net = Network::create(cfg, nullptr,
				   [&link](const uint8_t *f, size_t len) -> ssize_t {
					   return link ? link->sendFrame(f, len) : -1;
				   },
				   error);
	if (!net) {
		g_critical("%s", error.c_str());
		sendStatus(fd, false, error);
		return 1;
	}
	sendStatus(fd, true, "");
	loop.net = net.get();

	auto owned = SeqpacketLink::create(std::move(sock), *net, nullptr, [&loop](const char *why) {
		g_debug("parent: %s; exiting", why);
		g_main_loop_quit(loop.loop.get());
	});
	link = owned.get();

	g_unix_signal_add(SIGTERM, [](gpointer l) -> gboolean {
		g_debug("SIGTERM; exiting");
		g_main_loop_quit(static_cast<Loop *>(l)->loop.get());
		return G_SOURCE_CONTINUE;
	}, &loop);
	g_unix_signal_add(SIGINT, [](gpointer l) -> gboolean {
		g_main_loop_quit(static_cast<Loop *>(l)->loop.get());
		return G_SOURCE_CONTINUE;
	}, &loop);
	g_unix_signal_add(SIGUSR1, [](gpointer l) -> gboolean {
		g_message("stats: %s", static_cast<Loop *>(l)->net->stats().format().c_str());
		return G_SOURCE_CONTINUE;
	}, &loop);

	g_debug("ready: mtu %u, mru %u, %s, %zu hostfwd rule(s)", cfg.mtu, cfg.mru,
		cfg.restricted ? "restricted" : "open", cfg.hostFwds.size());
	g_main_loop_run(loop.loop.get());
	g_message("stats: %s", net->stats().format().c_str());
	link = nullptr;
	owned.reset();
	net.reset();
	return loop.exitCode;
}

} // namespace

int main(int argc, char **argv)
{
	// libslirp writes to its sockets; a peer that went away must not kill the helper.
	signal(SIGPIPE, SIG_IGN);

	int rc = parseCommandLine(argc, argv);
	if (rc >= 0)
		return rc;
	logInit("slirpnet", gCmd.verbose);
	if (gCmd.version) {
		printf("slirpnet %s (libslirp %s)\n", SLIRPNET_VERSION, slirp_version_string());
		return 0;
	}

	// Validate command-line options up front, even when more arrive from the parent.
	Config probe;
	std::string error;
	if (gCmd.seqpacketFd < 0) {
		if (!parseConfig(gCmd.options, probe, error)) {
			g_critical("%s", error.c_str());
			return 2;
		}
		g_critical("no guest link given: use -S FD (see --help)");
		return 2;
	}
	return runSeqpacket(gCmd.seqpacketFd);
}
