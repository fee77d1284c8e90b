// SPDX-License-Identifier: BSD-2-Clause
// man_page_test.cpp - the roff renderer: escaping, tags, paragraphs, examples, the options section; groff's verdict.
#include <glib.h>
#include <glib/gstdio.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <set>
#include <sstream>

#include "man_page.hpp"
#include "options.hpp"

using namespace slirpnet;

namespace {

bool contains(const std::string &s, const std::string &part)
{
	return s.find(part) != std::string::npos;
}

std::vector<std::string> lines(const std::string &s)
{
	std::vector<std::string> out;
	std::istringstream in(s);
	for (std::string l; std::getline(in, l);)
		out.push_back(l);
	return out;
}

// Text that a careless renderer turns into requests, escapes or a wrong hyphen.
const char kNasty[] = ".leading dot\n'leading quote\nback\\slash \\fB not bold, C:\\dir\n"
		      "--dashes - and \"quotes\" and UTF-8: caf\xc3\xa9 \xe2\x87\x84 and a stray \xff byte";

std::string nastyPage()
{
	std::vector<ManSection> sections = {
		{ "DESCRIPTION",
		  std::string(kNasty) + "\n\nSecond paragraph.\n\n\t.example line\n\t  indented more\nAfter.",
		  {} },
		{ "OPTIONS",
		  "",
		  {
			  { "-s, --socket", "PATH", "the socket.\n\n.second paragraph", {} },
			  { "net=", "ADDR[/MASK]", kNasty, {} },
			  { "restrict", "[=on|off]", "bare means on", {} },
			  { "hostfwd-add",
			    "",
			    "with arguments\n\tslirpnet-test hostfwd-add RULE",
			    { { "rule=", "string", "the rule", {} } } },
		  } },
		{ "SEE ALSO", "slirpnet(1)", {} },
	};
	return renderManPage("slirpnet-test", 1, "a page - to test",
			     "slirpnet-test [-s PATH] [--json] COMMAND [ARG...]\nslirpnet-test --man", sections);
}

} // namespace

TEST(ManPage, Escaping)
{
	EXPECT_EQ(roffEscape("a\\b"), "a\\eb");
	EXPECT_EQ(roffEscape("--json -s"), "\\-\\-json \\-s");
	EXPECT_EQ(roffEscape(".TH"), "\\&.TH");
	EXPECT_EQ(roffEscape("'quoted'"), "\\&'quoted'");
	EXPECT_EQ(roffEscape("mid . and ' stay"), "mid . and ' stay");
	EXPECT_EQ(roffEscape("caf\xc3\xa9"), "caf\\[u00E9]");
	EXPECT_EQ(roffEscape("\xe2\x87\x84"), "\\[u21C4]");
	EXPECT_EQ(roffEscape("\xf0\x9f\x98\x80"), "\\[u1F600]");
	EXPECT_EQ(roffEscape("x\xff"), "x?");
	EXPECT_EQ(roffEscape("\xc3"), "?"); // cut short
}

TEST(ManPage, HeaderNameSynopsis)
{
	std::string page = nastyPage();
	auto l = lines(page);
	ASSERT_GE(l.size(), 6u);
	EXPECT_TRUE(l[0].starts_with(".\\\" ")) << l[0];
	EXPECT_TRUE(l[1].starts_with(".TH \"SLIRPNET\\-TEST\" 1 \"\" \"slirpnet ")) << l[1];
	EXPECT_TRUE(contains(page, ".SH \"NAME\"\nslirpnet\\-test \\- a page \\- to test\n") ||
		    contains(page, ".SH NAME\nslirpnet\\-test \\- a page \\- to test\n"))
		<< page;
	EXPECT_TRUE(contains(page, "\\fBslirpnet\\-test\\fR [\\-s \\fIPATH\\fR] [\\-\\-json] "
				   "\\fICOMMAND\\fR [\\fIARG\\fR...]\n.br\n"
				   "\\fBslirpnet\\-test\\fR \\-\\-man\n"))
		<< page;
	EXPECT_TRUE(contains(page, ".SH \"SEE ALSO\"\n")) << page;
}

TEST(ManPage, TagsParagraphsExamples)
{
	std::string page = nastyPage();
	EXPECT_TRUE(contains(page, ".TP\n\\fB\\-s\\fR, \\fB\\-\\-socket\\fR \\fIPATH\\fR\n"
				   "the socket.\n.IP\n\\&.second paragraph\n"))
		<< page;
	EXPECT_TRUE(contains(page, ".TP\n\\fBnet\\fR=\\fIADDR[/MASK]\\fR\n")) << page;
	EXPECT_TRUE(contains(page, ".TP\n\\fBrestrict\\fR[=\\fIon|off\\fR]\n")) << page;
	// In an entry, a literal block first reaches the entry's indent (.RS), then its own.
	EXPECT_TRUE(contains(page, "with arguments\n.IP\n.RS\n.RS 4\n.nf\n"
				   "slirpnet\\-test hostfwd\\-add RULE\n.fi\n.RE\n.RE\n"
				   ".RS\n.TP\n\\fBrule\\fR=\\fIstring\\fR\nthe rule\n.RE\n"))
		<< page;
	// A paragraph after the first gets .PP; an indented block is kept line for line.
	EXPECT_TRUE(contains(page, "\n.PP\nSecond paragraph.\n.PP\n"
				   ".RS 4\n.nf\n\\&.example line\n  indented more\n.fi\n.RE\n.PP\nAfter.\n"))
		<< page;
}

TEST(ManPage, NoStrayRequests)
{
	// Every line that roff reads as a request is one the renderer meant.
	const std::set<std::string> macros = {
		".\\\"", ".TH", ".SH", ".PP", ".IP", ".TP", ".RS", ".RE", ".nf", ".fi", ".br", ".nh", ".ad",
	};
	for (const auto &l : lines(nastyPage())) {
		if (l.starts_with('.')) {
			EXPECT_TRUE(macros.count(l.substr(0, l.find(' ')))) << l;
		}
		EXPECT_FALSE(l.starts_with('\'')) << l;
		EXPECT_FALSE(l.empty()) << "a blank line is a vertical space, not a paragraph";
	}
}

TEST(ManPage, OptionTableSection)
{
	ManSection s = optionTableSection();
	EXPECT_EQ(s.title, "NETWORK OPTIONS");
	ASSERT_EQ(s.options.size(), optionTable().size());
	for (size_t i = 0; i < s.options.size(); i++) {
		const OptionSpec &o = optionTable()[i];
		EXPECT_TRUE(s.options[i].flags.starts_with(o.key)) << o.key;
		EXPECT_TRUE(contains(s.options[i].help, o.help)) << o.key;
		EXPECT_TRUE(contains(s.options[i].help, o.defaultText)) << o.key;
	}
	auto find = [&](std::string_view key) {
		for (const auto &o : s.options)
			if (o.flags == key || o.flags == std::string(key) + "=")
				return o;
		ADD_FAILURE() << key;
		return ManOption{};
	};
	EXPECT_EQ(find("net").flags, "net=");
	EXPECT_EQ(find("net").metavar, "ADDR[/MASK]");
	EXPECT_EQ(find("restrict").metavar, "[=on|off]");
	EXPECT_EQ(find("open").metavar, "");
}

TEST(ManPage, GOptionEntries)
{
	gchar *path = nullptr;
	gboolean flag = FALSE;
	int n = 0;
	const GOptionEntry entries[] = {
		{ "socket", 0, 0, G_OPTION_ARG_FILENAME, &path, "listen on PATH", "PATH" },
		{ "seqpacket-fd", 'S', 0, G_OPTION_ARG_INT, &n, "serve FD", "FD" },
		{ "verbose", 'v', 0, G_OPTION_ARG_NONE, &flag, "log more", nullptr },
		{ "secret", 0, G_OPTION_FLAG_HIDDEN, G_OPTION_ARG_NONE, &flag, "not shown", nullptr },
		{ "level", 0, G_OPTION_FLAG_OPTIONAL_ARG, G_OPTION_ARG_CALLBACK, nullptr, "maybe a level", "N" },
		{ "count", 0, 0, G_OPTION_ARG_INT, &n, "no metavar", nullptr },
		{ G_OPTION_REMAINING, 0, 0, G_OPTION_ARG_STRING_ARRAY, nullptr, nullptr, nullptr },
		{ nullptr, 0, 0, G_OPTION_ARG_NONE, nullptr, nullptr, nullptr },
	};
	auto m = manOptions(entries);
	ASSERT_EQ(m.size(), 5u);
	EXPECT_EQ(m[0].flags, "--socket=");
	EXPECT_EQ(m[0].metavar, "PATH");
	EXPECT_EQ(m[0].help, "listen on PATH");
	EXPECT_EQ(m[1].flags, "-S, --seqpacket-fd=");
	EXPECT_EQ(m[2].flags, "-v, --verbose");
	EXPECT_EQ(m[2].metavar, "");
	EXPECT_EQ(m[3].flags, "--level");
	EXPECT_EQ(m[3].metavar, "[=N]");
	EXPECT_EQ(m[4].metavar, "VALUE");
}

TEST(ManPage, GroffRendersWithoutWarnings)
{
	gchar *groff = g_find_program_in_path("groff");
	if (!groff)
		GTEST_SKIP() << "groff is not installed";
	g_free(groff);
	std::string page = nastyPage();
	// A wide line, so that filling does not break the phrases looked for below.
	const gchar *argv[] = { "groff", "-man", "-Tutf8", "-ww", "-rLL=300n", nullptr };
	// groff reads the page from stdin; a file keeps this free of pipes and threads.
	gchar *tmp = nullptr;
	gint fd = g_file_open_tmp("man_page_test-XXXXXX.1", &tmp, nullptr);
	ASSERT_GE(fd, 0);
	close(fd);
	ASSERT_TRUE(g_file_set_contents(tmp, page.c_str(), static_cast<gssize>(page.size()), nullptr));
	std::vector<const gchar *> args(std::begin(argv), std::end(argv) - 1);
	args.push_back(tmp);
	args.push_back(nullptr);
	gchar *out = nullptr, *err = nullptr;
	gint status = 0;
	ASSERT_TRUE(g_spawn_sync(nullptr, const_cast<gchar **>(args.data()), nullptr, G_SPAWN_SEARCH_PATH, nullptr,
				 nullptr, &out, &err, &status, nullptr));
	g_unlink(tmp);
	g_free(tmp);
	std::string text = out ? out : "", warnings = err ? err : "";
	g_free(out);
	g_free(err);
	EXPECT_TRUE(g_spawn_check_wait_status(status, nullptr));
	EXPECT_EQ(warnings, "");
	// What the reader sees: the text as written, ASCII hyphens, the UTF-8 back.
	EXPECT_TRUE(contains(text, ".leading dot")) << text;
	EXPECT_TRUE(contains(text, "back\\slash \\fB not bold, C:\\dir")) << text;
	EXPECT_TRUE(contains(text, "caf\xc3\xa9 \xe2\x87\x84")) << text;
	EXPECT_TRUE(contains(text, "  .example line")) << text;
}
