// SPDX-License-Identifier: BSD-2-Clause
// wire.cpp - the plugin⇄helper control messages (config and status) as serialized GVariants.
#include "wire.hpp"

#include <glib.h>

#include "glib_ptr.hpp"

namespace slirpnet {

static std::vector<uint8_t> serialize(GVariant *v)
{
	GVariantPtr owned(g_variant_ref_sink(v));
	const auto *p = static_cast<const uint8_t *>(g_variant_get_data(owned.get()));
	return std::vector<uint8_t>(p, p + g_variant_get_size(owned.get()));
}

// Untrusted bytes: copy them (alignment) and require normal form, so that a malformed
// message is rejected instead of being read with GVariant's permissive defaults.
static GVariantPtr deserialize(const char *type, const uint8_t *data, size_t len)
{
	GBytes *bytes = g_bytes_new(data, len);
	GVariantPtr v(g_variant_ref_sink(g_variant_new_from_bytes(G_VARIANT_TYPE(type), bytes, FALSE)));
	g_bytes_unref(bytes);
	if (!g_variant_is_normal_form(v.get()))
		return nullptr;
	return v;
}

std::vector<uint8_t> encodeConfig(const OptionList &opts, uint32_t version)
{
	GVariantBuilder b;
	g_variant_builder_init(&b, G_VARIANT_TYPE("a(ss)"));
	for (const auto &[k, v] : opts)
		g_variant_builder_add(&b, "(ss)", k.c_str(), v.c_str());
	return serialize(g_variant_new("(ua(ss))", version, &b));
}

bool decodeConfig(const uint8_t *data, size_t len, OptionList &opts, std::string &error, uint32_t *versionOut)
{
	GVariantPtr v = deserialize("(ua(ss))", data, len);
	if (!v) {
		error = "malformed config message (" + std::to_string(len) + " bytes)";
		return false;
	}
	uint32_t version;
	GVariantIter *iter;
	g_variant_get(v.get(), "(ua(ss))", &version, &iter);
	if (version != kWireVersionPlain && version != kWireVersionVnetHdr) {
		g_variant_iter_free(iter);
		error = "config message version " + std::to_string(version) + " not supported (expected " +
			std::to_string(kWireVersionPlain) + " or " + std::to_string(kWireVersionVnetHdr) + ")";
		return false;
	}
	if (versionOut)
		*versionOut = version;
	const char *k, *val;
	while (g_variant_iter_next(iter, "(&s&s)", &k, &val))
		opts.emplace_back(k, val);
	g_variant_iter_free(iter);
	return true;
}

std::vector<uint8_t> encodeStatus(bool ok, const std::string &message)
{
	return serialize(g_variant_new("(bs)", ok, message.c_str()));
}

bool decodeStatus(const uint8_t *data, size_t len, bool &ok, std::string &message)
{
	GVariantPtr v = deserialize("(bs)", data, len);
	if (!v)
		return false;
	gboolean b;
	const char *m;
	g_variant_get(v.get(), "(b&s)", &b, &m);
	ok = b;
	message = m;
	return true;
}

} // namespace slirpnet
