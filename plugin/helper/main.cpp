// SPDX-License-Identifier: BSD-2-Clause
// main.cpp - the slirpnet helper: options, the guest link, and the GLib loop around libslirp.
#include <fcntl.h>
#include <glib-unix.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "busy_poll_loop.hpp"
#include "control/control_commands.hpp"
#include "control/control_server.hpp"
#include "link/link_factory.hpp"
#include "link/seqpacket_link.hpp"
#include "log.hpp"
#include "man_page.hpp"
#include "network.hpp"
#include "options.hpp"
#include "pid_file.hpp"
#include "sandbox/sandbox.hpp"
#include "unique_fd.hpp"
#include "wire.hpp"

#ifndef SLIRPNET_VERSION
#define SLIRPNET_VERSION "0"
#endif

using namespace slirpnet;

namespace {

// What --print-capabilities reports to libvirt (qemu_slirp.c): only what works. ipv4/ipv6
// are --net/--net6, tftp and restrict are table options; no D-Bus, so no migration.
constexpr const char *kFeatures[] = { "ipv4", "ipv6", "tftp", "restrict", "exit-with-parent" };

constexpr const char *kManDescription =
	"slirpnet runs libslirp, the user-mode TCP/IP stack of QEMU's -netdev user, in a process of its own and "
	"serves one guest link: QEMU's -netdev stream (--socket), -netdev dgram (--dgram), -netdev vhost-user "
	"(--vhost-user: the guest's virtqueues in shared memory), an inherited socket (--fd, also libvirt's slirp "
	"helper contract) or libslirpnet's socketpair (-S, started by the plugin). "
	"Network options are QEMU's -netdev user keys, given as --KEY=VALUE or in the comma form with -o.";

struct CommandLine {
	OptionList options; // from --KEY=VALUE and -o, in order
	std::string optionError;
	int seqpacketFd = -1;
	int fd = -1;
	gchar *socketPath = nullptr;
	gchar *dgramPath = nullptr;
	gchar *vhostUserPath = nullptr;
	gchar *pidFile = nullptr;
	gboolean oneOff = FALSE;
	gboolean exitWithParent = FALSE;
	gboolean printCapabilities = FALSE;
	gboolean verbose = FALSE;
	gboolean version = FALSE;
	gboolean man = FALSE;
};

CommandLine gCmd;
pid_t gParentAtStart = 0; // --exit-with-parent watches it

gboolean onTableOption(const gchar *name, const gchar *value, gpointer, GError **)
{
	// name is "--key"
	gCmd.options.emplace_back(name + 2, value ? value : "");
	return TRUE;
}

// libvirt's slirp-helper contract names the IPv6 network --net6; it is the table's ipv6-net.
gboolean onNet6(const gchar *, const gchar *value, gpointer, GError **)
{
	gCmd.options.emplace_back("ipv6-net", value ? value : "");
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
		{ "socket", 0, 0, G_OPTION_ARG_FILENAME, &gCmd.socketPath,
		  "listen on the UNIX stream socket PATH for QEMU's "
		  "-netdev stream,server=off,addr.type=unix,addr.path=PATH",
		  "PATH" },
		{ "dgram", 0, 0, G_OPTION_ARG_FILENAME, &gCmd.dgramPath,
		  "bind the UNIX datagram socket PATH for QEMU's -netdev dgram,...,remote.type=unix,remote.path=PATH",
		  "PATH" },
		{ "vhost-user", 0, 0, G_OPTION_ARG_FILENAME, &gCmd.vhostUserPath,
		  "listen on the UNIX stream socket PATH as the vhost-user back-end of QEMU's "
		  "-chardev socket,id=c0,path=PATH -netdev vhost-user,id=n0,chardev=c0 (guest memory must be shared: "
		  "-object memory-backend-memfd,share=on)",
		  "PATH" },
		{ "fd", 0, 0, G_OPTION_ARG_INT, &gCmd.fd,
		  "serve the inherited connected socket N "
		  "(stream: length-prefixed frames; dgram/seqpacket: one frame per message)",
		  "N" },
		{ "seqpacket-fd", 'S', 0, G_OPTION_ARG_INT, &gCmd.seqpacketFd,
		  "serve the plugin on the inherited SOCK_SEQPACKET socket FD (config arrives as the first message)",
		  "FD" },
		{ "pid", 0, 0, G_OPTION_ARG_FILENAME, &gCmd.pidFile,
		  "write the helper's PID to FILE once it is ready (removed at exit)", "FILE" },
		{ "one-off", 0, 0, G_OPTION_ARG_NONE, &gCmd.oneOff,
		  "with --socket or --vhost-user: exit when the first client disconnects instead of listening again",
		  nullptr },
		{ "exit-with-parent", 0, 0, G_OPTION_ARG_NONE, &gCmd.exitWithParent,
		  "exit (SIGTERM) when the parent process exits", nullptr },
		{ "net6", 0, 0, G_OPTION_ARG_CALLBACK, reinterpret_cast<gpointer>(onNet6),
		  "the same as --ipv6-net (libvirt's name)", "ADDR/LEN" },
		{ "print-capabilities", 0, 0, G_OPTION_ARG_NONE, &gCmd.printCapabilities,
		  "print the features for libvirt's slirp_helper as JSON and exit", nullptr },
		{ "options", 'o', 0, G_OPTION_ARG_CALLBACK, reinterpret_cast<gpointer>(onCommaOptions),
		  "options in the comma form of -netdev user, e.g. 'net=10.0.2.0/24,hostfwd=tcp::2222-:22'",
		  "K=V,..." },
		{ "verbose", 'v', 0, G_OPTION_ARG_NONE, &gCmd.verbose, "log debug messages", nullptr },
		{ "version", 0, 0, G_OPTION_ARG_NONE, &gCmd.version, "print the version and exit", nullptr },
		{ "man", 0, 0, G_OPTION_ARG_NONE, &gCmd.man, "print the manual page slirpnet(1) as roff and exit",
		  nullptr },
		{ nullptr, 0, 0, G_OPTION_ARG_NONE, nullptr, nullptr, nullptr },
	};

	GOptionContext *ctx = g_option_context_new("- user-mode networking for virtual machines (libslirp helper)");
	g_option_context_add_main_entries(ctx, mainEntries, nullptr);
	GOptionGroup *group = g_option_group_new(
		"network", "Network options (QEMU -netdev user keys; also usable with -o):", "Show the network options",
		nullptr, nullptr);
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
	if (gCmd.man) {
		// The same tables as the parser: the page cannot drift from the options.
		std::vector<ManOption> options = manOptions(mainEntries);
		options.push_back({ "-h, --help", "", "show the options and exit", {} });
		const ManSection sections[] = {
			{ "DESCRIPTION", kManDescription, {} },
			{ "OPTIONS", "Exactly one of --socket, --dgram, --vhost-user, --fd or -S names the guest link.",
			  options },
			optionTableSection(),
			{ "SIGNALS", "SIGTERM and SIGINT end the helper (status 0); SIGUSR1 logs its counters.", {} },
			{ "SEE ALSO", "slirpnet-ctl(1), qemu(1)", {} },
		};
		fputs(renderManPage("slirpnet", 1, "user-mode networking for virtual machines (libslirp helper)",
				    "slirpnet [OPTION...] [--KEY=VALUE...] [-o KEY=VALUE,...]", sections)
			      .c_str(),
		      stdout);
		return 0;
	}
	return -1;
}

struct Loop {
	std::unique_ptr<BusyPollLoop> runner; // set once the config (busy-poll) is known
	bool quitEarly = false; // quit() before run(): a signal during start-up
	int exitCode = 0;
	Network *net = nullptr;

	void quit(int code)
	{
		exitCode = code;
		if (runner)
			runner->quit();
		else
			quitEarly = true;
	}
	void run(const Config &cfg)
	{
		runner = std::make_unique<BusyPollLoop>(nullptr, cfg.busyPollUs);
		if (!quitEarly)
			runner->run();
		g_debug("main loop: %llu sleeps, %llu polling windows, %llu polling rounds",
			static_cast<unsigned long long>(runner->sleeps()),
			static_cast<unsigned long long>(runner->windows()),
			static_cast<unsigned long long>(runner->spins()));
	}
};

// SIGTERM/SIGINT end the loop with status 0; SIGUSR1 logs the counters. Installed before
// anything else can deliver them (--exit-with-parent), dispatched once the loop runs.
gboolean onQuitSignal(gpointer loop)
{
	g_debug("SIGTERM or SIGINT; exiting");
	static_cast<Loop *>(loop)->quit(0);
	return G_SOURCE_CONTINUE;
}

gboolean onStatsSignal(gpointer loop)
{
	if (Network *net = static_cast<Loop *>(loop)->net)
		g_message("stats: %s", net->stats().format().c_str());
	return G_SOURCE_CONTINUE;
}

constexpr int kHandledSignals[] = { SIGTERM, SIGINT, SIGUSR1 };

// Held pending from the start until the handlers exist: GLib's handlers start a worker
// thread, which must be started after Landlock is in force so that it is confined too.
void blockHandledSignals(int how)
{
	sigset_t set;
	sigemptyset(&set);
	for (int sig : kHandledSignals)
		sigaddset(&set, sig);
	sigprocmask(how, &set, nullptr);
}

void addSignalHandlers(Loop &loop)
{
	g_unix_signal_add(SIGTERM, onQuitSignal, &loop);
	g_unix_signal_add(SIGINT, onQuitSignal, &loop);
	g_unix_signal_add(SIGUSR1, onStatsSignal, &loop);
	blockHandledSignals(SIG_UNBLOCK); // what arrived meanwhile is dispatched by the loop
}

// The control socket (control=PATH), served from the top level: it acts on the network.
class ControlEndpoint
{
public:
	bool start(Network &net, std::string &error)
	{
		const std::string &path = net.config().controlPath;
		if (path.empty())
			return true;
		ControlServer::Limits limits;
		if (!socketAccessForGroup(net.config().socketGroup, limits.access, error))
			return false;
		ctx_ = std::make_unique<ControlContext>(ControlContext{ net });
		server_ = ControlServer::create(
			path, nullptr,
			[this](std::string_view line) {
				ctx_->controlClients = server_->clientCount();
				return handleControlRequest(*ctx_, line);
			},
			error, limits);
		return server_ != nullptr;
	}

private:
	std::unique_ptr<ControlContext> ctx_;
	std::unique_ptr<ControlServer> server_;
};

// The link the command line names (main() checked that there is exactly one).
LinkRequest linkRequest()
{
	LinkRequest req;
	if (gCmd.seqpacketFd >= 0) {
		req.kind = LinkRequest::Kind::Plugin;
		req.fd = gCmd.seqpacketFd;
	} else if (gCmd.socketPath) {
		req.kind = LinkRequest::Kind::Socket;
		req.path = gCmd.socketPath;
		req.oneOff = gCmd.oneOff;
	} else if (gCmd.dgramPath) {
		req.kind = LinkRequest::Kind::Dgram;
		req.path = gCmd.dgramPath;
	} else if (gCmd.vhostUserPath) {
		req.kind = LinkRequest::Kind::VhostUser;
		req.path = gCmd.vhostUserPath;
		req.oneOff = gCmd.oneOff;
	} else {
		req.kind = LinkRequest::Kind::Fd;
		req.fd = gCmd.fd;
	}
	return req;
}

// What the sandbox must leave reachable once the helper serves.
LockDownPlan lockDownPlan(const Config &cfg, const LinkRequest &req)
{
	LockDownPlan plan;
	plan.tftpDir = cfg.tftpPath;
	for (const std::string &f : { cfg.pcapFile, cfg.controlPath, std::string(gCmd.pidFile ? gCmd.pidFile : "") })
		if (!f.empty())
			plan.createFiles.push_back(f);
	if (!req.path.empty())
		plan.removeFiles.push_back(req.path); // --socket, --dgram, --vhost-user: unlinked at exit
	plan.parentDeathSignal = gCmd.exitWithParent ? SIGTERM : 0;
	plan.parent = gParentAtStart;
	plan.seccomp = cfg.seccomp;
	plan.seccompLog = cfg.seccompLog;
	plan.seccompNeeds.acceptsClients = req.kind == LinkRequest::Kind::Socket ||
					   req.kind == LinkRequest::Kind::VhostUser || !cfg.controlPath.empty();
	plan.seccompNeeds.capture = !cfg.controlPath.empty(); // capture-start
	plan.seccompNeeds.tftp = !cfg.tftpPath.empty();
	return plan;
}

/*
 * The one path of every transport: options (for the plugin, with the ones of its config
 * record), the network, the link, the control socket, then the loop until the link closes
 * for good or a signal ends it.
 */
/*
 * max-flows= must fit the descriptors the helper may open: each flow is a socket, plus one
 * per hostfwd listener and a reserve for the rest. With a lower inherited limit, past it
 * libslirp's accept() would fail with EMFILE and spin on its readable listener before the
 * flow limit ever engaged; so the limit in effect is lowered to fit, and said so.
 */
static void fitMaxFlowsToFdLimit(Config &cfg)
{
	rlimit fds{};
	if (getrlimit(RLIMIT_NOFILE, &fds) < 0 || fds.rlim_cur == RLIM_INFINITY)
		return;
	unsigned long other = cfg.hostFwds.size() + kSandboxFdReserve;
	unsigned long fit = fds.rlim_cur > other + 1 ? fds.rlim_cur - other : 1;
	if (cfg.maxFlows == 0 || cfg.maxFlows <= fit)
		return;
	g_warning("max-flows=%u does not fit the descriptor limit %lu (%lu kept for listeners, links and files): "
		  "using max-flows=%lu",
		  cfg.maxFlows, static_cast<unsigned long>(fds.rlim_cur), other, fit);
	cfg.maxFlows = static_cast<unsigned>(fit);
}

int serve(Loop &loop, LinkRequest req)
{
	std::string error;
	if (!checkLinkRequest(req, error)) {
		g_critical("%s", error.c_str());
		return 1;
	}
	const bool plugin = req.kind == LinkRequest::Kind::Plugin;
	// The plugin's status record answers its config record, success or failure.
	auto fail = [&](int code) {
		g_critical("%s", error.c_str());
		if (plugin)
			SeqpacketLink::sendStatus(req.fd, false, error);
		return code;
	};

	OptionList opts = gCmd.options;
	uint32_t version = kWireVersionPlain;
	if (plugin && !SeqpacketLink::receiveConfig(req.fd, opts, version, error))
		return fail(1);
	Config cfg;
	if (!parseConfig(opts, cfg, error))
		return fail(plugin ? 1 : 2);
	// Links with virtio-net headers: libslirp runs at a large MTU from the start.
	cfg.vnetHdr = (plugin && version == kWireVersionVnetHdr) || req.kind == LinkRequest::Kind::VhostUser;
	if (cfg.sandbox) {
		if (!hardenProcess(cfg, error))
			return fail(1);
	} else {
		g_message("sandbox=off: the helper runs without its sandbox (meant for debugging only)");
	}
	fitMaxFlowsToFdLimit(cfg);

	auto net = Network::create(cfg, nullptr, error);
	if (!net)
		return fail(1);
	ControlEndpoint control;
	if (!control.start(*net, error))
		return fail(1);
	auto link = createLink(req, *net, nullptr, error);
	if (!link)
		return fail(1);
	link->setClosedCallback([&loop](const std::string &why, bool err) {
		g_message("%s; exiting", why.c_str());
		loop.quit(err ? 1 : 0);
	});
	net->attach(link.get());
	loop.net = net.get();

	PidFile pidFile;
	if (!pidFile.write(gCmd.pidFile, error))
		return fail(1);
	// Last, so that a failed start-up leaves no capture file behind (libslirp sends
	// nothing before the loop runs).
	if (!cfg.pcapFile.empty() && !net->startCapture({ cfg.pcapFile, cfg.pcapFilter, cfg.snaplen }, error))
		return fail(1);
	// Everything is bound and open: give up what serving does not need, then announce ready.
	LockDownPlan plan = lockDownPlan(cfg, req);
	if (cfg.sandbox && !lockDown(plan, error))
		return fail(1);
	addSignalHandlers(loop);
	if (cfg.sandbox && !installSyscallFilter(plan, error))
		return fail(1);
	if (plugin) {
		SeqpacketLink::sendStatus(req.fd, true, "");
	} else {
		// Scripts wait for this line before starting QEMU (7.2 never retries a connect).
		printf("slirpnet: ready on %s\n", link->name().c_str());
		fflush(stdout);
	}
	g_debug("ready on %s: mtu %u, mru %u (libslirp's mtu %u, mru %u), %s, %zu hostfwd rule(s)%s",
		link->name().c_str(), cfg.mtu, cfg.mru, net->slirpMtu(), cfg.slirpMru(),
		cfg.restricted ? "restricted" : "open", cfg.hostFwds.size(),
		plugin ? (", wire version " + std::to_string(version)).c_str() : "");

	loop.run(cfg);
	g_message("stats: %s", net->stats().format().c_str());
	loop.net = nullptr;
	net->attach(nullptr);
	link.reset();
	return loop.exitCode;
}

// --exit-with-parent: SIGTERM when the parent dies, and exit now if it already has.
bool watchParent(pid_t parentAtStart)
{
	if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0) {
		g_critical("--exit-with-parent: prctl(PR_SET_PDEATHSIG): %s", strerror(errno));
		return false;
	}
	// The parent may have died before prctl took effect: then we were reparented.
	if (getppid() != parentAtStart) {
		g_message("the parent (pid %d) has already exited; exiting", static_cast<int>(parentAtStart));
		return false;
	}
	return true;
}

} // namespace

int main(int argc, char **argv)
{
	pid_t parentAtStart = gParentAtStart = getppid();
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
	if (gCmd.printCapabilities) {
		// The sandbox as a helper with these options would have it on this kernel.
		Config cfg;
		std::string ignored;
		if (!parseConfig(gCmd.options, cfg, ignored))
			cfg = Config{};
		printf("%s\n", capabilitiesJson(kFeatures, sandboxProbe(cfg)).c_str());
		return 0;
	}

	// Validate command-line options up front, even when more arrive from the parent.
	Config probe;
	std::string error;
	int links = (gCmd.seqpacketFd >= 0) + (gCmd.fd >= 0) + (gCmd.socketPath != nullptr) +
		    (gCmd.dgramPath != nullptr) + (gCmd.vhostUserPath != nullptr);
	if (links != 1) {
		if (gCmd.seqpacketFd < 0 && !parseConfig(gCmd.options, probe, error)) {
			g_critical("%s", error.c_str());
			return 2;
		}
		g_critical(
			"%s: use one of --socket PATH, --dgram PATH, --vhost-user PATH, --fd N or -S FD (see --help)",
			links ? "more than one guest link given" : "no guest link given");
		return 2;
	}
	if (gCmd.oneOff && !gCmd.socketPath && !gCmd.vhostUserPath) {
		g_critical("--one-off only applies to --socket and --vhost-user");
		return 2;
	}

	// Nothing inherited stays open but the link (sandbox=off from the plugin's config comes
	// too late for this; the plugin's spawn closes every other descriptor anyway).
	if (!sandboxOffOnCommandLine(gCmd.options)) {
		const int keep[] = { gCmd.seqpacketFd, gCmd.fd };
		if (!closeInheritedFds(keep, gCmd.seqpacketFd >= 0, error)) {
			g_critical("sandbox: %s", error.c_str());
			return 1;
		}
	}

	Loop loop;
	blockHandledSignals(SIG_BLOCK); // serve() installs the handlers
	if (gCmd.exitWithParent && !watchParent(parentAtStart))
		return 0;
	return serve(loop, linkRequest());
}
