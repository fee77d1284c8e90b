# SPDX-License-Identifier: BSD-2-Clause
"""match.py - what an expect() matches (templates, layer classes, predicates) and how a failed one is described."""

import struct

from .layers import ICMPv6ND_RA, NoPayload, Packet, Padding, Raw

__all__ = ["packet_matches", "template_dump", "describe_match", "compile_match",
           "is_router_advert"]


def _payload_bytes(layer):
    """Bytes of layer (and what follows it) without trailing Ethernet padding."""
    data = bytes(layer)
    pad = layer.getlayer(Padding)
    if pad is not None and len(pad.load):
        data = data[: -len(pad.load)]
    return data


def _field_eq(tl, pl, fld, tval, pval):
    if tval == pval:
        return True
    try:
        return fld.i2m(tl, tval) == fld.i2m(pl, pval)
    except Exception:
        return False


def packet_matches(template, pkt):
    """True when every field set explicitly in template equals pkt's, layer by layer."""
    t, p = template, pkt
    while t is not None and not isinstance(t, NoPayload):
        if p is None or isinstance(p, NoPayload):
            return False
        if isinstance(t, Raw) and not isinstance(p, Raw):
            return _payload_bytes(p) == bytes(t.load)
        if type(t) is not type(p):
            return False
        for name, tval in t.fields.items():
            if tval is None:
                continue
            fld = t.get_field(name)
            if not _field_eq(t, p, fld, tval, p.getfieldval(name)):
                return False
        if isinstance(t, Raw):
            return True
        t, p = t.payload, p.payload
    return True


def template_dump(tmpl):
    """Dissect a template like Packet.show(), but only the fields it sets (the ones
    packet_matches compares); defaults that would need resolving are not touched."""
    lines = []
    layer, depth = tmpl, 0
    while layer is not None and not isinstance(layer, NoPayload):
        pad = "  " * depth
        lines.append("%s###[ %s ]###" % (pad, layer.name))
        for fld in layer.fields_desc:
            if fld.name in layer.fields and layer.fields[fld.name] is not None:
                try:
                    val = fld.i2repr(layer, layer.fields[fld.name])
                except Exception:
                    val = repr(layer.fields[fld.name])
                lines.append("%s  %-10s= %s" % (pad, fld.name, val))
        layer, depth = layer.payload, depth + 1
    lines.append("(fields not shown are not compared)")
    return "\n".join(lines)


def describe_match(match, desc=None):
    if desc:
        return desc
    if match is None:
        return "any frame"
    if isinstance(match, Packet):
        return template_dump(match)
    if isinstance(match, type):
        return "any frame with a %s layer" % match.__name__
    doc = getattr(match, "__doc__", None)
    name = getattr(match, "__name__", repr(match))
    if doc and not isinstance(match, type) and name != "<lambda>":
        return "%s: %s" % (name, doc.strip())
    return name


def compile_match(match):
    if match is None:
        return lambda p: True
    if isinstance(match, Packet):
        return lambda p: packet_matches(match, p)
    if isinstance(match, type) and issubclass(match, Packet):
        return lambda p: match in p
    if callable(match):
        def safe(p):
            try:
                return bool(match(p))
            except (AttributeError, IndexError, KeyError, TypeError, struct.error):
                return False
        return safe
    raise TypeError("match must be None, a Packet, a Packet class or a callable")


def is_router_advert(p):
    """Unsolicited Router Advertisement (libslirp sends them every 200-600 s)."""
    return ICMPv6ND_RA in p
