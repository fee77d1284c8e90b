# SPDX-License-Identifier: BSD-2-Clause
"""config.py - the helper's configuration message (GVariant (ua(ss)) of options) and its (bs) status reply."""

__all__ = ["parse_options", "encode_config", "decode_status"]


def parse_options(options):
    """'a=1,open,b=2' or [(k, v), ...] -> [(k, v), ...] (bare keywords get value '')."""
    if options is None:
        return []
    if isinstance(options, str):
        pairs = []
        for item in options.split(","):
            if not item:
                continue
            key, sep, value = item.partition("=")
            pairs.append((key, value if sep else ""))
        return pairs
    return [(str(k), str(v)) for k, v in options]


def _glib():
    try:
        from gi.repository import GLib
    except ImportError as e:  # pragma: no cover - environment problem
        raise RuntimeError("python3-gi is needed for the helper protocol "
                           "(apt-get install python3-gi)") from e
    return GLib


def encode_config(pairs, version=1):
    """Serialize the helper config message: GVariant (ua(ss))."""
    GLib = _glib()
    v = GLib.Variant("(ua(ss))", (version, parse_options(pairs)))
    return v.get_data_as_bytes().get_data()


def decode_status(data):
    """Deserialize the helper's (bs) status message -> (ok, message)."""
    GLib = _glib()
    v = GLib.Variant.new_from_bytes(GLib.VariantType("(bs)"), GLib.Bytes(data), False)
    ok, msg = v.unpack()
    return bool(ok), msg
