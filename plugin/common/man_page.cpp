// SPDX-License-Identifier: BSD-2-Clause
// man_page.cpp - renders manual pages (roff, man macros) from the tables that drive the programs.
#include "man_page.hpp"

#include <algorithm>
#include <cctype>
#include <cstdio>

#include "options.hpp"

#ifndef SLIRPNET_VERSION
#define SLIRPNET_VERSION "0"
#endif

namespace slirpnet {

namespace {

// Length of the UTF-8 sequence starting with byte b, 0 if b cannot start one.
size_t utf8Length(unsigned char b)
{
	if (b < 0x80)
		return 1;
	if ((b & 0xe0) == 0xc0)
		return 2;
	if ((b & 0xf0) == 0xe0)
		return 3;
	if ((b & 0xf8) == 0xf0)
		return 4;
	return 0;
}

/*
 * Characters escaped wherever they stand: '\' would start an escape, '-' must be \- to
 * print as the ASCII hyphen-minus that a pasted option needs, and non-ASCII is written
 * as \[uXXXX] so that the page renders without preconv or a -k.
 */
std::string escapeChars(std::string_view s)
{
	std::string out;
	out.reserve(s.size() + s.size() / 8);
	for (size_t i = 0; i < s.size();) {
		unsigned char c = static_cast<unsigned char>(s[i]);
		if (c == '\\') {
			out += "\\e";
		} else if (c == '-') {
			out += "\\-";
		} else if (c < 0x80) {
			out += static_cast<char>(c);
		} else {
			size_t n = utf8Length(c);
			char32_t cp = n == 2 ? c & 0x1f : n == 3 ? c & 0x0f : c & 0x07;
			bool ok = n > 1 && i + n <= s.size();
			for (size_t k = 1; ok && k < n; k++) {
				unsigned char cont = static_cast<unsigned char>(s[i + k]);
				ok = (cont & 0xc0) == 0x80;
				cp = (cp << 6) | (cont & 0x3f);
			}
			if (!ok) {
				out += '?'; // not UTF-8: one byte at a time
				i++;
				continue;
			}
			char buf[16];
			snprintf(buf, sizeof(buf), "\\[u%04X]", static_cast<unsigned>(cp));
			out += buf;
			i += n;
			continue;
		}
		i++;
	}
	return out;
}

std::string bold(std::string_view s)
{
	return "\\fB" + escapeChars(s) + "\\fR";
}

std::string italic(std::string_view s)
{
	return "\\fI" + escapeChars(s) + "\\fR";
}

// A macro argument: quoted, so that spaces stay inside it; a '"' in it is written \(dq.
std::string macroArg(std::string_view s)
{
	std::string out = "\"";
	for (char c : escapeChars(s)) // which writes no '"' of its own
		out += c == '"' ? std::string("\\(dq") : std::string(1, c);
	return out + "\"";
}

std::string_view trim(std::string_view s)
{
	size_t b = s.find_first_not_of(" \t"), e = s.find_last_not_of(" \t");
	return b == std::string_view::npos ? std::string_view() : s.substr(b, e - b + 1);
}

size_t leadingSpace(std::string_view s)
{
	size_t n = s.find_first_not_of(" \t");
	return n == std::string_view::npos ? s.size() : n;
}

/*
 * Paragraphs and literal (indented) blocks of text, in a section or in a list entry. No
 * paragraph macro is written before the first: the caller's .SH or .TP has just started
 * one. In an entry, .IP keeps the entry's indent, and a literal block needs a first .RS to
 * reach that indent (.RS counts from the section's margin, not from the entry's).
 */
void renderText(std::string &out, std::string_view text, bool inEntry)
{
	const std::string paragraph = inEntry ? ".IP" : ".PP";
	bool first = true, literal = false, blank = false;
	size_t indent = 0;
	auto closeLiteral = [&] {
		if (literal)
			out += inEntry ? ".fi\n.RE\n.RE\n" : ".fi\n.RE\n";
		literal = false;
	};
	while (!text.empty()) {
		size_t nl = text.find('\n');
		std::string_view line = text.substr(0, nl);
		text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
		std::string_view body = trim(line);
		if (body.empty()) {
			closeLiteral();
			blank = true;
			continue;
		}
		bool indented = line.starts_with('\t') || line.starts_with("  ");
		if (indented) {
			if (!literal) {
				if (!first)
					out += paragraph + "\n";
				out += inEntry ? ".RS\n.RS 4\n.nf\n" : ".RS 4\n.nf\n";
				literal = true;
				indent = leadingSpace(line);
			}
			// Relative indentation stays; trailing blanks go.
			std::string_view kept = line.substr(std::min(indent, leadingSpace(line)));
			out += roffEscape(kept.substr(0, kept.find_last_not_of(" \t") + 1)) + "\n";
		} else {
			bool wasLiteral = literal;
			closeLiteral();
			if (!first && (blank || wasLiteral))
				out += paragraph + "\n";
			out += roffEscape(body) + "\n";
		}
		first = false;
		blank = false;
	}
	closeLiteral();
}

// The tag line of a list entry: bold flags, italic metavar, joined as ManOption says.
std::string tagLine(const ManOption &o)
{
	std::string_view flags = o.flags;
	bool joined = flags.ends_with('=');
	if (joined)
		flags.remove_suffix(1);
	std::string out;
	while (!flags.empty()) {
		size_t comma = flags.find(", ");
		out += bold(flags.substr(0, comma));
		if (comma == std::string_view::npos)
			break;
		out += ", ";
		flags.remove_prefix(comma + 2);
	}
	std::string_view m = o.metavar;
	if (m.empty())
		return out;
	if (joined)
		return out + "=" + italic(m);
	if (m.starts_with("[=") && m.ends_with(']'))
		return out + "[=" + italic(m.substr(2, m.size() - 3)) + "]";
	return out + " " + italic(m);
}

void renderList(std::string &out, const std::vector<ManOption> &items)
{
	for (const auto &o : items) {
		out += ".TP\n" + tagLine(o) + "\n";
		renderText(out, o.help, true);
		if (!o.items.empty()) {
			out += ".RS\n";
			renderList(out, o.items);
			out += ".RE\n";
		}
	}
}

bool wordChar(char c)
{
	return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
}

// A synopsis form: the program bold, its upper-case placeholders italic, the rest roman.
std::string synopsisLine(std::string_view line)
{
	size_t sp = line.find(' ');
	std::string out = bold(line.substr(0, sp));
	if (sp == std::string_view::npos)
		return out;
	std::string_view rest = line.substr(sp);
	size_t plain = 0;
	for (size_t i = 0; i < rest.size();) {
		if (!wordChar(rest[i])) {
			i++;
			continue;
		}
		size_t j = i;
		while (j < rest.size() && wordChar(rest[j]))
			j++;
		std::string_view word = rest.substr(i, j - i);
		bool placeholder = std::isupper(static_cast<unsigned char>(word[0])) &&
				   std::none_of(word.begin(), word.end(),
						[](char c) { return std::islower(static_cast<unsigned char>(c)); });
		// "--json" or "-s" stay roman: a word glued to a '-' is part of an option.
		if (placeholder && (i == 0 || rest[i - 1] != '-')) {
			out += escapeChars(rest.substr(plain, i - plain)) + italic(word);
			plain = j;
		}
		i = j;
	}
	return out + escapeChars(rest.substr(plain));
}

std::string upper(std::string_view s)
{
	std::string u(s);
	for (char &c : u)
		c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
	return u;
}

} // namespace

std::string roffEscape(std::string_view text)
{
	std::string out = escapeChars(text);
	// A '.' or '\'' first would make the line a request; \& is a zero-width guard.
	if (!out.empty() && (out[0] == '.' || out[0] == '\''))
		out.insert(0, "\\&");
	return out;
}

std::string renderManPage(std::string_view name, int section, std::string_view summary, std::string_view synopsis,
			  std::span<const ManSection> sections)
{
	std::string sec = std::to_string(section);
	std::string out = ".\\\" " + std::string(name) + "." + sec + " - generated by " + std::string(name) +
			  " --man from the tables that drive it; do not edit.\n";
	// No date: the page is a build product and should be the same for the same sources.
	out += ".TH " + macroArg(upper(name)) + " " + sec + " \"\" " + macroArg("slirpnet " SLIRPNET_VERSION) + " " +
	       macroArg(section == 1 ? "User Commands" : "") + "\n";
	// Neither hyphenate nor justify: options, addresses and rules are copied from the page,
	// and a long one would otherwise be split or spread its line out.
	out += ".nh\n.ad l\n";
	out += ".SH NAME\n" + escapeChars(name) + " \\- " + escapeChars(summary) + "\n";
	out += ".SH SYNOPSIS\n";
	bool firstForm = true;
	while (!synopsis.empty()) {
		size_t nl = synopsis.find('\n');
		std::string_view form = trim(synopsis.substr(0, nl));
		synopsis = nl == std::string_view::npos ? std::string_view() : synopsis.substr(nl + 1);
		if (form.empty())
			continue;
		if (!firstForm)
			out += ".br\n";
		out += synopsisLine(form) + "\n";
		firstForm = false;
	}
	for (const auto &s : sections) {
		out += ".SH " + macroArg(s.title) + "\n";
		renderText(out, s.text, false);
		renderList(out, s.options);
	}
	return out;
}

ManSection optionTableSection()
{
	ManSection s;
	s.title = "NETWORK OPTIONS";
	s.text = "The network is configured with the keys of QEMU's -netdev user (and bhyve's forms of them). "
		 "Each is given as --KEY=VALUE, or as KEY=VALUE in the comma-separated list of -o, where a "
		 "comma inside a value is written twice.\n"
		 "A key whose value is on|off may be given bare, meaning on.";
	for (const auto &o : optionTable()) {
		ManOption m;
		bool hasValue = *o.metavar != '\0';
		m.flags = std::string(o.key) + (hasValue && !o.isBool ? "=" : "");
		m.metavar = !hasValue ? "" : o.isBool ? "[=" + std::string(o.metavar) + "]" : o.metavar;
		std::string def = o.defaultText;
		m.help = std::string(o.help) + (def.starts_with('(') ? " " + def : " (default: " + def + ")") + ".";
		s.options.push_back(std::move(m));
	}
	return s;
}

std::vector<ManOption> manOptions(const GOptionEntry *entries)
{
	std::vector<ManOption> out;
	for (const GOptionEntry *e = entries; e && e->long_name; e++) {
		// G_OPTION_REMAINING has an empty long name: the positional arguments, not an option.
		if (!*e->long_name || (e->flags & G_OPTION_FLAG_HIDDEN))
			continue;
		ManOption m;
		if (e->short_name)
			m.flags = std::string("-") + e->short_name + ", ";
		m.flags += std::string("--") + e->long_name;
		bool takesValue = e->arg != G_OPTION_ARG_NONE &&
				  !(e->arg == G_OPTION_ARG_CALLBACK && (e->flags & G_OPTION_FLAG_NO_ARG));
		if (takesValue) {
			std::string meta = e->arg_description ? e->arg_description : "VALUE";
			if (e->flags & G_OPTION_FLAG_OPTIONAL_ARG) {
				m.metavar = "[=" + meta + "]";
			} else {
				m.flags += "=";
				m.metavar = meta;
			}
		}
		m.help = e->description ? e->description : "";
		out.push_back(std::move(m));
	}
	return out;
}

} // namespace slirpnet
