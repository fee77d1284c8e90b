# SPDX-License-Identifier: BSD-2-Clause
"""hostfwd: a host client on 127.0.0.1:PORT reaches the guest's port 8080 (hostfwd=tcp:127.0.0.1:PORT-:8080)."""

from harness import hostfwd_exchange


def options(ctx):
    ctx.port = ctx.free_port()
    return "ipv6=off,hostfwd=tcp:127.0.0.1:%d-:8080" % ctx.port


def run(peer, ctx):
    hostfwd_exchange(peer, ctx.port, 8080)
    ctx.note("127.0.0.1:%d -> 10.0.2.15:8080, data both ways" % ctx.port)
