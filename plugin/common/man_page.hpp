// SPDX-License-Identifier: BSD-2-Clause
// man_page.hpp - renders manual pages (roff, man macros) from the tables that drive the programs.
#pragma once

#include <glib.h>

#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace slirpnet {

/*
 * Text fields are plain text, never roff: the renderer escapes them. In help and section
 * text a blank line starts a new paragraph, and lines indented by a tab or two spaces are
 * kept as they are (examples), set apart from the paragraphs around them.
 */

// One entry of a tagged list: an option, a network key, a command.
struct ManOption {
	// Bold, split at ", ": "-s, --socket". A trailing '=' joins the metavar: "net=" + ADDR.
	std::string flags;
	// Italic: "PATH". One given as "[=on|off]" joins the flags with only "on|off" italic.
	std::string metavar;
	std::string help;
	std::vector<ManOption> items; // a nested list after the help (a command's arguments)
};

struct ManSection {
	std::string title; // upper case by convention: "OPTIONS"
	std::string text; // before the options
	std::vector<ManOption> options;
};

/*
 * The whole page. synopsis has one form per line; its first word is set bold and its
 * upper-case words (PATH, ARG...) italic. summary is the NAME line's "name - summary".
 */
std::string renderManPage(std::string_view name, int section, std::string_view summary, std::string_view synopsis,
			  std::span<const ManSection> sections);

// text as one roff text line: backslashes, hyphens (\-), a leading '.' or '\'', non-ASCII.
std::string roffEscape(std::string_view text);

// "NETWORK OPTIONS" of slirpnet(1): every row of optionTable() as KEY=VALUE with its default.
ManSection optionTableSection();

// The entries of a GOptionEntry array (ended by an entry without long_name), hidden ones left out.
std::vector<ManOption> manOptions(const GOptionEntry *entries);

} // namespace slirpnet
