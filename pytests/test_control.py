# SPDX-License-Identifier: BSD-2-Clause
"""control=PATH: the JSON control socket (every command, many clients, bad input) and slirpnet-ctl."""

import json
import os
import socket
import stat
import subprocess
import time

import pytest

from harness import (ARP, GW_IP, STATS_COUNTERS, TCP, UDP, CaptureFile, ControlClient,
                     ControlError, TcpConn, arp_who_has, free_port, hostfwd_exchange, icmp_echo,
                     icmp_echo_reply_from, udp_to)


@pytest.fixture
def ctl_path(helper_path):
    """slirpnet-ctl: $SLIRPNET_CTL, else next to the helper in the build tree."""
    path = os.environ.get("SLIRPNET_CTL") or os.path.join(os.path.dirname(helper_path),
                                                          "slirpnet-ctl")
    if not os.path.exists(path):
        pytest.fail("slirpnet-ctl not found at %s (build it, or set SLIRPNET_CTL)" % path)
    return path


@pytest.fixture
def ctlnet(direct, control_socket):
    """Factory: ctlnet(options="") -> (DirectPeer with control=PATH, ControlClient)."""
    clients = []

    def factory(options="", **kw):
        p = direct("control=%s%s" % (control_socket, "," + options if options else ""), **kw)
        c = ControlClient(control_socket)
        clients.append(c)
        p.control_path = control_socket
        return p, c

    yield factory
    for c in clients:
        c.close()


def ping(p, seq=1):
    p.send(icmp_echo(p, seq=seq))
    p.expect(icmp_echo_reply_from(p, seq=seq))


def refused(port, host="127.0.0.1"):
    """True when a TCP connect to host:port is refused (nothing listens)."""
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    s.settimeout(3)
    try:
        s.connect((host, port))
        return False
    except ConnectionRefusedError:
        return True
    finally:
        s.close()


def ipv6_loopback():
    try:
        s = socket.socket(socket.AF_INET6)
        s.bind(("::1", 0))
        s.close()
        return True
    except OSError:
        return False


# ---------------------------------------------------------------------------------------
# the commands

def test_version(ctlnet):
    _, c = ctlnet()
    v = c.call("version")
    assert v["version"] and v["libslirp"].count(".") >= 1
    assert "libpcap" in v["libpcap"] and v["json-glib"]


def test_query_commands_lists_everything(ctlnet):
    _, c = ctlnet()
    names = {cmd["name"] for cmd in c.call("query-commands")}
    assert names >= {"hostfwd-add", "hostfwd-remove", "hostfwd-list", "info-usernet", "stats",
                     "capture-start", "capture-stop", "version"}


def test_id_is_echoed(ctlnet):
    _, c = ctlnet()
    r = c.request({"execute": "version", "id": {"n": [1, "x"]}})
    assert r["id"] == {"n": [1, "x"]} and "return" in r
    r = c.request({"execute": "nope", "id": 5})
    assert r["id"] == 5 and r["error"]["class"] == "CommandNotFound"


def test_stats_counts_frames_drops_and_agrees_with_sigusr1(ctlnet, tcp_echo):
    p, c = ctlnet("ipv6=off")
    before = c.call("stats")
    ping(p)
    p.send(b"\x00" * 10)                      # a runt, dropped and counted
    conn = TcpConn.connect(p, GW_IP, tcp_echo.port)
    st = c.call("stats")
    assert st["from_guest_frames"] >= before["from_guest_frames"] + 2
    assert st["to_guest_frames"] >= before["to_guest_frames"] + 2
    assert st["from_guest_bytes"] > before["from_guest_bytes"]
    assert st["to_guest_bytes"] > before["to_guest_bytes"]
    drops = {k: v for k, v in st.items() if k.startswith("drop_")}
    assert drops == {"drop_oversize": 0, "drop_runt": 1, "drop_fragment": 0,
                     "drop_to_guest_full": 0, "drop_to_guest_error": 0, "drop_vnet_hdr": 0,
                     "drop_foreign_sender": 0, "drop_egress_tcp": 0, "drop_egress_udp": 0,
                     "drop_egress_icmp": 0, "drop_frag_overlap": 0, "drop_frag_timeout": 0,
                     "drop_frag_limit": 0, "drop_flow_limit_tcp": 0, "drop_flow_limit_udp": 0,
                     "drop_flow_limit_icmp": 0, "drop_vhost_chain": 0}, st
    assert st["flows"] == 1 and st["max_flows"] == 4096, st
    assert st["pauses"] == 0
    assert st["connections"] == 1 and st["connections_by_protocol"]["tcp"] == 1
    assert st["capture"] is None and st["control_clients"] == 1
    conn.close()
    p.flush(0.2)
    st = c.call("stats")
    sig = p.stats()                            # the SIGUSR1 line of the same counters
    # The reply is flat: the log line's counters under the same names, then the rest.
    assert list(sig) == list(STATS_COUNTERS), sig
    assert set(st) == set(STATS_COUNTERS) | {"connections", "connections_by_protocol",
                                             "hostfwd_listeners", "hostfwd_rules", "flows", "max_flows",
                                             "capture", "control_clients"}, st
    for k in STATS_COUNTERS:
        assert st[k] == sig[k], (k, st, sig)


def test_info_usernet_rows_and_text(ctlnet, tcp_echo, udp_echo):
    port = free_port()
    p, c = ctlnet("hostfwd=tcp:127.0.0.1:%d-:2222" % port)
    conn = TcpConn.connect(p, GW_IP, tcp_echo.port)
    p.send(udp_to(p, udp_echo.port, b"hello", sport=41000))
    p.expect(lambda x: UDP in x and x[UDP].dport == 41000)
    info = c.call("info-usernet")
    assert info["text"].startswith("  Protocol[State]    FD  Source Address  Port")
    rows = info["connections"]
    assert len(rows) == len(info["text"].splitlines()) - 1
    fwd = [r for r in rows if r["state"] == "HOST_FORWARD"]
    assert fwd == [{"protocol": "tcp", "state": "HOST_FORWARD", "expires_sec": None,
                    "fd": fwd[0]["fd"], "src_addr": "127.0.0.1", "src_port": port,
                    "dst_addr": "10.0.2.15", "dst_port": 2222, "recv_q": 0, "send_q": 0}]
    tcp = [r for r in rows if r["protocol"] == "tcp" and r["state"] == "ESTABLISHED"]
    assert len(tcp) == 1, rows
    assert (tcp[0]["src_addr"], tcp[0]["src_port"]) == ("10.0.2.15", conn.local_port)
    assert (tcp[0]["dst_addr"], tcp[0]["dst_port"]) == (GW_IP, tcp_echo.port)
    udp = [r for r in rows if r["protocol"] == "udp" and r["src_port"] == 41000]
    assert len(udp) == 1 and udp[0]["state"] is None and udp[0]["expires_sec"] > 0, rows
    assert c.call("stats")["connections"] == 2
    conn.close()


def test_hostfwd_added_at_runtime_carries_traffic_then_refuses(ctlnet):
    p, c = ctlnet()
    port = free_port()
    assert refused(port)
    r = c.call("hostfwd-add", rule="tcp:127.0.0.1:%d-:8080" % port)
    assert r["rule"] == "tcp:127.0.0.1:%d-10.0.2.15:8080" % port
    assert r["origin"] == "runtime" and r["host_port"] == port and r["id"] >= 1
    hostfwd_exchange(p, port, 8080)
    removed = c.call("hostfwd-remove", rule="tcp:127.0.0.1:%d" % port)   # QEMU's syntax
    assert removed["id"] == r["id"]
    assert refused(port)
    assert c.call("hostfwd-list") == []


def test_hostfwd_structured_fields_and_remove_by_id(ctlnet):
    p, c = ctlnet()
    port = free_port()
    r = c.call("hostfwd-add", proto="tcp", host_addr="127.0.0.1", host_port=port,
               guest_port=9090)
    assert r["guest_addr"] == "10.0.2.15" and r["guest_port"] == 9090
    hostfwd_exchange(p, port, 9090)
    c.call("hostfwd-remove", id=r["id"])
    assert refused(port)
    with pytest.raises(ControlError) as e:
        c.call("hostfwd-remove", id=r["id"])
    assert e.value.cls == "GenericError" and str(r["id"]) in e.value.desc


def test_hostfwd_udp_at_runtime(ctlnet):
    p, c = ctlnet()
    port = free_port(socket.SOCK_DGRAM)
    c.call("hostfwd-add", rule="udp:127.0.0.1:%d-:5555" % port)
    h = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        h.sendto(b"via runtime rule", ("127.0.0.1", port))
        r = p.expect(lambda x: UDP in x and x[UDP].dport == 5555)
        assert bytes(r[UDP].payload)[:16] == b"via runtime rule"
    finally:
        h.close()
    c.call("hostfwd-remove", proto="udp", host_addr="127.0.0.1", host_port=port)
    assert c.call("hostfwd-list") == []


def test_hostfwd_list_config_and_runtime_ipv4_ipv6(ctlnet):
    p1 = free_port()
    p, c = ctlnet("hostfwd=tcp:127.0.0.1:%d-:22" % p1)
    rules = c.call("hostfwd-list")
    assert len(rules) == 1
    assert rules[0]["origin"] == "config" and rules[0]["host_family"] == "ipv4"
    assert rules[0]["rule"] == "tcp:127.0.0.1:%d-10.0.2.15:22" % p1
    if not ipv6_loopback():
        pytest.skip("no IPv6 loopback here")
    p2 = free_port()
    r = c.call("hostfwd-add", rule="tcp:[::1]:%d-:23" % p2)
    assert r["host_addr"] == "::1" and r["host_family"] == "ipv6"
    assert r["rule"] == "tcp:[::1]:%d-10.0.2.15:23" % p2
    rules = c.call("hostfwd-list")
    assert [(x["host_addr"], x["host_port"], x["origin"]) for x in rules] == [
        ("127.0.0.1", p1, "config"), ("::1", p2, "runtime")]
    h = socket.create_connection(("::1", p2), timeout=3)
    try:
        syn = p.expect(lambda x: TCP in x and x[TCP].dport == 23 and str(x[TCP].flags) == "S")
        assert syn[TCP].dport == 23
    finally:
        h.close()
    # a config rule can be removed like any other
    c.call("hostfwd-remove", rule="tcp:127.0.0.1:%d" % p1)
    assert refused(p1)
    c.call("hostfwd-remove", rule="tcp:[::1]:%d" % p2)
    assert refused(p2, "::1")


@pytest.mark.parametrize("args,cls,words", [
    ({"rule": "tcp::70000-:22"}, "InvalidArgument", ["70000"]),
    ({"rule": "sctp:127.0.0.1:1-:2"}, "InvalidArgument", ["sctp"]),
    ({}, "InvalidArgument", ["host_port"]),
    ({"rule": "tcp:127.0.0.1:1-:2", "host_port": 5}, "InvalidArgument", ["either"]),
    ({"host_port": 70000, "guest_port": 1}, "InvalidArgument", ["70000"]),
    ({"host_port": "22", "guest_port": 1}, "InvalidArgument", ["integer"]),
    ({"rule": 5}, "InvalidArgument", ["string"]),
    ({"rule": "tcp:127.0.0.1:1-:2", "colour": "red"}, "InvalidArgument", ["colour"]),
])
def test_hostfwd_add_bad_arguments(ctlnet, args, cls, words):
    _, c = ctlnet()
    with pytest.raises(ControlError) as e:
        c.call("hostfwd-add", **args)
    assert e.value.cls == cls
    for w in words:
        assert w in e.value.desc, e.value.desc


def test_hostfwd_add_port_in_use_and_remove_unknown(ctlnet):
    _, c = ctlnet()
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    port = s.getsockname()[1]
    try:
        with pytest.raises(ControlError) as e:
            c.call("hostfwd-add", rule="tcp:127.0.0.1:%d-:22" % port)
        assert e.value.cls == "GenericError" and str(port) in e.value.desc
    finally:
        s.close()
    with pytest.raises(ControlError) as e:
        c.call("hostfwd-remove", rule="tcp:127.0.0.1:1")
    assert e.value.cls == "GenericError" and "no rule" in e.value.desc
    with pytest.raises(ControlError) as e:
        c.call("hostfwd-remove", rule="tcp:127.0.0.1:1", id=3)
    assert e.value.cls == "InvalidArgument"
    assert c.call("hostfwd-list") == []


def test_capture_start_stop_at_runtime_with_filter(ctlnet, tmp_path):
    p, c = ctlnet("ipv6=off")
    path = str(tmp_path / "runtime.pcap")
    ping(p, 1)                                 # before the capture: not recorded
    r = c.call("capture-start", file=path, filter="icmp", snaplen=128)
    assert r == {"file": path, "filter": "icmp", "snaplen": 128, "frames": 0, "bytes": 0,
                 "filtered": 0}
    assert c.call("stats")["capture"]["file"] == path
    with pytest.raises(ControlError) as e:
        c.call("capture-start", file=str(tmp_path / "second.pcap"))
    assert e.value.cls == "GenericError" and "already" in e.value.desc
    p.send(arp_who_has(p.gw_ip, p))
    p.expect(lambda x: ARP in x and x[ARP].op == 2)
    ping(p, 2)
    ping(p, 3)
    done = c.call("capture-stop")
    assert done["frames"] == 4 and done["filtered"] >= 2, done
    assert c.call("stats")["capture"] is None
    with pytest.raises(ControlError) as e:
        c.call("capture-stop")
    assert e.value.cls == "GenericError" and "no capture" in e.value.desc
    ping(p, 4)                                 # after the capture: not recorded
    cap = CaptureFile(path)
    assert cap.header().snaplen == 128
    mix = cap.assert_decodes(expect=("icmp",), count=4)
    assert mix["arp"] == 0
    # and again, to another file, with the default (no) filter
    path2 = str(tmp_path / "again.pcap")
    c.call("capture-start", file=path2)
    ping(p, 5)
    assert c.call("capture-stop")["frames"] == 2
    CaptureFile(path2).assert_decodes(expect=("icmp",), count=2)


def test_capture_start_errors(ctlnet, tmp_path):
    _, c = ctlnet()
    for args, cls, word in [
        ({"file": str(tmp_path / "x.pcap"), "filter": "tcp port"}, "InvalidArgument", "tcp port"),
        ({"file": str(tmp_path / "x.pcap"), "snaplen": 5}, "InvalidArgument", "snaplen"),
        ({"file": "/nonexistent/dir/x.pcap"}, "GenericError", "/nonexistent/dir/x.pcap"),
        ({"file": ""}, "InvalidArgument", "file"),
        ({}, "InvalidArgument", "file"),
    ]:
        with pytest.raises(ControlError) as e:
            c.call("capture-start", **args)
        assert e.value.cls == cls and word in e.value.desc, (args, e.value.desc)
    assert c.call("stats")["capture"] is None


def test_capture_start_defaults_to_config_filter(ctlnet, tmp_path):
    p, c = ctlnet("pcap-filter=arp,snaplen=200,ipv6=off")
    r = c.call("capture-start", file=str(tmp_path / "d.pcap"))
    assert r["filter"] == "arp" and r["snaplen"] == 200
    p.send(arp_who_has(p.gw_ip, p))
    p.expect(ARP)
    ping(p)
    assert c.call("capture-stop")["frames"] == 2


def test_config_capture_can_be_stopped_and_restarted(ctlnet, tmp_path):
    first = str(tmp_path / "first.pcap")
    p, c = ctlnet("pcap=%s,ipv6=off" % first)
    ping(p, 1)
    assert c.call("capture-stop")["file"] == first
    assert CaptureFile(first).assert_decodes(expect=("icmp",))["icmp"] == 2
    ping(p, 2)
    second = str(tmp_path / "second.pcap")
    c.call("capture-start", file=second)
    ping(p, 3)
    p.close()                                  # the helper's exit closes the capture
    assert CaptureFile(first).assert_decodes()["icmp"] == 2
    assert CaptureFile(second).assert_decodes(expect=("icmp",))["icmp"] == 2


# ---------------------------------------------------------------------------------------
# robustness

BAD_REQUESTS = [
    (b"this is not json", "ParseError"),
    (b"{\"execute\": ", "ParseError"),
    (b"\xff\xfe\xfd garbage", "ParseError"),
    (b"[" * 5000 + b"]" * 5000, "ParseError"),
    (b"[1, 2, 3]", "InvalidRequest"),
    (b"\"stats\"", "InvalidRequest"),
    (b"{}", "InvalidRequest"),
    (b"{\"execute\": 42}", "InvalidRequest"),
    (b"{\"execute\": \"stats\", \"arguments\": [1]}", "InvalidRequest"),
    (b"{\"exec\": \"stats\"}", "InvalidRequest"),
    (b"{\"execute\": \"reboot\"}", "CommandNotFound"),
    (b"{\"execute\": \"stats\", \"arguments\": {\"verbose\": true}}", "InvalidArgument"),
    (b"{\"execute\": \"hostfwd-remove\", \"arguments\": {\"id\": -1}}", "InvalidArgument"),
    (b"{\"execute\": \"hostfwd-remove\", \"arguments\": {\"id\": 12345}}", "GenericError"),
]


def test_malformed_requests_get_errors_and_the_connection_survives(ctlnet):
    p, c = ctlnet()
    other = ControlClient(p.control_path)
    try:
        for req, cls in BAD_REQUESTS:
            r = c.request(req)
            assert set(r) == {"error"}, (req[:40], r)
            assert r["error"]["class"] == cls, (req[:40], r)
            assert r["error"]["desc"]
            assert c.call("version")["version"]          # same connection still serves
        assert other.call("version")["version"]          # and so does the other client
        ping(p)                                          # and the data path
    finally:
        other.close()


# json-glib 1.6 reads more than JSON, and parses nesting recursively: only strict RFC 8259
# JSON may reach it. Each line is answered with a ParseError saying why; nesting hidden
# from a standard-JSON guard (in a comment, in a single-quoted string) is refused too.
DEEP = "[" * 20000
NOT_STRICT_JSON = [
    ('{"execute": "version"} /* comment */', "comments"),
    ('{"execute": "version"} // comment', "comments"),
    ('{"execute": /* "x" */ "version"}', "comments"),
    ("{'execute': 'version'}", "double quotes"),
    ('{"execute": "version", "id": [1, 2,]}', "value"),
    ('{"execute": "version",}', "object key"),
    ('{"execute": "version", "id": NaN}', "NaN"),
    ('{"execute": "version", "id": 0x1}', "expected ','"),
    ('{"execute": "ver\tsion"}', "control character"),
    ('{"execute": "ver\\qsion"}', "bad escape"),
    ('{"execute": "version", "id": /*"*/ ' + DEEP + ' }', "comments"),
    ('{"execute": "version", "id": \'\\\'' + DEEP + "' }", "double quotes"),
    (DEEP, "nested deeper"),
]


def test_only_strict_json_reaches_the_parser(ctlnet):
    p, c = ctlnet()
    for line, why in NOT_STRICT_JSON:
        r = c.request(line.encode())
        assert set(r) == {"error"}, (line[:60], r)
        assert r["error"]["class"] == "ParseError", (line[:60], r)
        assert why in r["error"]["desc"], (line[:60], r)
        assert c.call("version")["version"]          # the connection still serves
    ping(p)                                          # and so does the data path


def test_deferred_reply_to_a_half_closed_client(ctlnet, tmp_path):
    """capture-start with a filter answers once its filter is compiled (off the loop);
    a client that sent it and half-closed still gets that reply, then the next one."""
    p, _ = ctlnet("ipv6=off")
    s = socket.socket(socket.AF_UNIX)
    s.connect(p.control_path)
    path = str(tmp_path / "later.pcap")
    s.sendall(json.dumps({"execute": "capture-start", "id": "a",
                          "arguments": {"file": path, "filter": "icmp"}}).encode() + b"\n" +
              b'{"execute": "capture-stop", "id": "b"}\n')
    s.shutdown(socket.SHUT_WR)
    s.settimeout(10)
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    replies = [json.loads(l) for l in data.splitlines()]
    assert [r["id"] for r in replies] == ["a", "b"], replies
    assert replies[0]["return"]["file"] == path and replies[1]["return"]["file"] == path, replies


def test_blank_lines_and_crlf(ctlnet):
    _, c = ctlnet()
    c.send_raw(b"\n   \n\r\n")
    r = c.request(b"{\"execute\": \"version\", \"id\": 1}\r")
    assert r["id"] == 1 and "return" in r


def test_pipelined_requests_answered_in_order(ctlnet):
    _, c = ctlnet()
    n = 200                                    # more than one wake-up's worth (32)
    c.send_raw(b"".join(b'{"execute": "version", "id": %d}\n' % i for i in range(n)))
    ids = [c.read_reply()["id"] for _ in range(n)]
    assert ids == list(range(n))


def test_half_closed_client_gets_its_replies(ctlnet):
    """Like `echo '{...}' | socat - UNIX:...`: request, EOF, then the reply arrives."""
    p, _ = ctlnet()
    s = socket.socket(socket.AF_UNIX)
    s.connect(p.control_path)
    s.sendall(b'{"execute": "version", "id": "a"}\n{"execute": "stats", "id": "b"}')  # no final \n
    s.shutdown(socket.SHUT_WR)
    s.settimeout(3)
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    replies = [json.loads(line) for line in data.splitlines()]
    assert [r["id"] for r in replies] == ["a", "b"]


def test_concurrent_clients(ctlnet):
    p, first = ctlnet()
    clients = [first] + [ControlClient(p.control_path) for _ in range(7)]
    try:
        # everyone sends before anyone reads: requests interleave inside the helper
        for i, c in enumerate(clients):
            c.send_raw(b"".join(b'{"execute": "stats", "id": [%d, %d]}\n' % (i, k)
                                for k in range(5)))
        for i, c in enumerate(clients):
            for k in range(5):
                r = c.read_reply()
                assert r["id"] == [i, k] and "from_guest_frames" in r["return"]
        assert first.call("stats")["control_clients"] == 8
        # one client's runtime rule is visible to the others
        port = free_port()
        rid = clients[3].call("hostfwd-add", rule="tcp:127.0.0.1:%d-:80" % port)["id"]
        assert [x["id"] for x in clients[5].call("hostfwd-list")] == [rid]
    finally:
        for c in clients[1:]:
            c.close()
    deadline = time.monotonic() + 2
    while first.call("stats")["control_clients"] != 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert first.call("stats")["control_clients"] == 1


def test_overlong_line_disconnects_only_that_client(ctlnet):
    p, c = ctlnet()
    bad = ControlClient(p.control_path)
    try:
        try:
            bad.send_raw(b"{" + b"a" * (80 * 1024))    # no newline, over the 64 KiB limit
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert bad.is_closed(3), "the server kept a client with an overlong line"
        assert b"too long" in bad.buf
    finally:
        bad.close()
    assert c.call("version")["version"]
    ping(p)


def test_client_that_never_reads_does_not_stall_the_data_path(ctlnet):
    """A flood of requests whose replies are never read: the helper stops reading that
    client (its socket fills up), while frames and other clients are served promptly."""
    p, c = ctlnet("ipv6=off")
    flood = socket.socket(socket.AF_UNIX)
    flood.connect(p.control_path)
    flood.setblocking(False)
    req = b'{"execute": "info-usernet"}\n' * 1000
    sent = 0
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            sent += flood.send(req)
        except BlockingIOError:
            break                               # the helper stopped reading us: good
    assert time.monotonic() < deadline, "the helper kept reading a client that never reads"
    try:
        for seq in range(1, 21):
            t0 = time.monotonic()
            ping(p, seq)
            assert time.monotonic() - t0 < 0.5
        t0 = time.monotonic()
        assert c.call("version")["version"]
        assert time.monotonic() - t0 < 0.5
        assert c.call("stats")["control_clients"] == 2
    finally:
        flood.close()


def test_too_many_clients(ctlnet):
    p, first = ctlnet()
    clients = [ControlClient(p.control_path) for _ in range(31)]
    try:
        for c in clients:
            assert c.call("version")
        extra = ControlClient(p.control_path)
        try:
            line = extra.read_line()
            assert json.loads(line)["error"]["desc"] == "too many control clients"
            assert extra.is_closed(2)
        finally:
            extra.close()
        clients.pop().close()
        time.sleep(0.1)
        again = ControlClient(p.control_path)
        try:
            assert again.call("version")
        finally:
            again.close()
    finally:
        for c in clients:
            c.close()
    ping(p)


def test_client_vanishing_mid_request(ctlnet):
    p, c = ctlnet()
    for _ in range(20):
        s = socket.socket(socket.AF_UNIX)
        s.connect(p.control_path)
        s.sendall(b'{"execute": "info-usernet"}\n{"execute": "sta')
        s.close()                               # reply goes to a closed socket
    assert c.call("version")
    ping(p)


# ---------------------------------------------------------------------------------------
# the socket itself

def test_socket_is_private_and_removed_at_exit(ctlnet):
    p, c = ctlnet()
    mode = stat.S_IMODE(os.stat(p.control_path).st_mode)
    assert mode == 0o600, oct(mode)
    assert stat.S_ISSOCK(os.stat(p.control_path).st_mode)
    c.close()
    assert p.close() == 0
    assert not os.path.exists(p.control_path)


def test_helper_exits_cleanly_with_clients_connected(ctlnet):
    p, c = ctlnet()
    c.call("version")
    assert p.close() == 0
    assert c.is_closed(2)


def test_stale_socket_replaced_live_one_refused(direct, control_socket):
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(control_socket)
    stale.close()                               # file left behind, nobody listening
    p = direct("control=" + control_socket)
    with ControlClient(control_socket) as c:
        assert c.call("version")
    second = direct("control=" + control_socket, expect_ok=False)
    assert second.ok is False
    assert "in use" in second.error and control_socket in second.error, second.error
    with ControlClient(control_socket) as c:    # the first one is untouched
        assert c.call("version")
    p.close()


def test_path_that_is_not_a_socket(direct, control_socket):
    with open(control_socket, "w") as f:
        f.write("precious")
    d = direct("control=" + control_socket, expect_ok=False)
    assert d.ok is False and "not a socket" in d.error, d.error
    with open(control_socket) as f:
        assert f.read() == "precious"


@pytest.mark.parametrize("options,words", [
    ("control=/nonexistent/dir/ctl.sock", ["control", "/nonexistent/dir"]),
    ("control=/tmp/" + "s" * 120, ["control", "too long"]),
])
def test_bad_control_option(plugin, direct, options, words):
    pl = plugin("slirp," + options, expect_ok=False)
    assert pl.init_rc == -1 and all(w in pl.error for w in words), pl.error
    d = direct(options, expect_ok=False)
    assert d.ok is False and all(w in d.error for w in words), d.error


def test_control_through_the_plugin(plugin, control_socket, tmp_path):
    p = plugin("slirp,control=%s,ipv6=off" % control_socket)
    with ControlClient(control_socket) as c:
        port = free_port()
        c.call("hostfwd-add", rule="tcp:127.0.0.1:%d-:8080" % port)
        hostfwd_exchange(p, port, 8080)
        path = str(tmp_path / "plugin.pcap")
        c.call("capture-start", file=path)
        ping(p)
        assert c.call("capture-stop")["frames"] == 2
        assert c.call("stats")["from_guest_frames"] > 0
    CaptureFile(path).assert_decodes(expect=("icmp",), count=2)
    p.close()
    assert not os.path.exists(control_socket)


def test_control_from_the_command_line(direct, control_socket):
    p = direct("", args=["--control", control_socket])
    with ControlClient(control_socket) as c:
        assert c.call("version")
    p.close()


# ---------------------------------------------------------------------------------------
# slirpnet-ctl

def ctl(ctl_path, sock, *args, ok=True):
    r = subprocess.run([ctl_path, "-s", sock] + list(args), capture_output=True, text=True,
                       timeout=10)
    if ok is not None:
        assert (r.returncode == 0) == ok, (args, r.returncode, r.stdout, r.stderr)
    return r


def test_ctl_every_command(ctlnet, ctl_path, tmp_path, tcp_echo):
    p, _ = ctlnet("ipv6=off")
    sock = p.control_path
    assert ctl(ctl_path, sock, "version").stdout.startswith("slirpnet ")
    port = free_port()
    out = ctl(ctl_path, sock, "hostfwd-add", "tcp:127.0.0.1:%d-:8080" % port).stdout
    assert out.startswith("hostfwd 1 added: tcp:127.0.0.1:%d-10.0.2.15:8080" % port), out
    hostfwd_exchange(p, port, 8080)
    port2 = free_port()
    out = ctl(ctl_path, sock, "hostfwd-add", "proto=tcp", "host_addr=127.0.0.1",
              "host_port=%d" % port2, "guest_port=22").stdout
    assert "hostfwd 2 added" in out
    out = ctl(ctl_path, sock, "hostfwd-list").stdout.splitlines()
    assert out[0].split() == ["ID", "PROTO", "HOST", "GUEST", "ORIGIN"]
    assert out[1].split() == ["1", "tcp", "127.0.0.1:%d" % port, "10.0.2.15:8080", "runtime"]
    assert len(out) == 3
    conn = TcpConn.connect(p, GW_IP, tcp_echo.port)
    out = ctl(ctl_path, sock, "info-usernet").stdout
    assert "Protocol[State]" in out and "TCP[ESTABLISHED]" in out and "TCP[HOST_FORWARD]" in out
    out = ctl(ctl_path, sock, "stats").stdout
    st = json.loads(ctl(ctl_path, sock, "--json", "stats").stdout)["return"]
    assert st["from_guest_frames"] > 0 and st["to_guest_frames"] > 0, st
    # the human form shows the real counts (both directions) and the drops
    assert "%d frames" % st["from_guest_frames"] in out, (out, st)
    assert "%d frames" % st["to_guest_frames"] in out, (out, st)
    assert "oversize 0" in out and "hostfwd: 2 rules" in out, out
    path = str(tmp_path / "ctl.pcap")
    out = ctl(ctl_path, sock, "capture-start", path, "filter=tcp", "snaplen=96").stdout
    assert out.strip() == "capturing to %s (snaplen 96, filter tcp)" % path
    conn.send(b"hello")
    conn.close()
    out = ctl(ctl_path, sock, "capture-stop").stdout
    assert out.startswith("capture %s stopped:" % path)
    CaptureFile(path).assert_decodes(expect=("tcp",))
    assert "removed" in ctl(ctl_path, sock, "hostfwd-remove", "tcp:127.0.0.1:%d" % port).stdout
    assert "removed" in ctl(ctl_path, sock, "hostfwd-remove", "id=2").stdout
    assert refused(port) and refused(port2)
    out = ctl(ctl_path, sock, "query-commands").stdout
    assert "capture-start" in out and "snaplen" in out


def test_ctl_json_and_errors(ctlnet, ctl_path):
    p, _ = ctlnet()
    sock = p.control_path
    r = json.loads(ctl(ctl_path, sock, "--json", "stats").stdout)
    assert set(STATS_COUNTERS) <= set(r["return"]), r
    r = json.loads(ctl(ctl_path, sock, "--json", "hostfwd-list").stdout)
    assert r == {"return": []}
    r = json.loads(ctl(ctl_path, sock, "--json", "info-usernet").stdout)
    assert "connections" in r["return"]
    # an error reply: exit 1, class and text on stderr (or the reply with --json)
    e = ctl(ctl_path, sock, "hostfwd-remove", "id=99", ok=False)
    assert e.returncode == 1 and "GenericError" in e.stderr and "99" in e.stderr
    e = ctl(ctl_path, sock, "--json", "frobnicate", ok=False)
    assert e.returncode == 1 and json.loads(e.stdout)["error"]["class"] == "CommandNotFound"
    e = ctl(ctl_path, sock, "hostfwd-add", "tcp::99999-:22", ok=False)
    assert e.returncode == 1 and "InvalidArgument" in e.stderr and "99999" in e.stderr
    # KEY:=JSON passes any JSON value
    e = ctl(ctl_path, sock, "hostfwd-remove", "id:=\"7\"", ok=False)
    assert "must be an integer" in e.stderr
    # usage and connection errors: exit 2
    e = ctl(ctl_path, sock, "hostfwd-remove", "id=seven", ok=False)
    assert e.returncode == 2 and "number" in e.stderr
    e = ctl(ctl_path, sock + ".missing", "version", ok=False)
    assert e.returncode == 2 and "cannot connect" in e.stderr
    e = subprocess.run([ctl_path, "version"], capture_output=True, text=True,
                       env={k: v for k, v in os.environ.items() if k != "SLIRPNET_CONTROL"})
    assert e.returncode == 2 and "-s PATH" in e.stderr
    e = subprocess.run([ctl_path, "version"], capture_output=True, text=True,
                       env=dict(os.environ, SLIRPNET_CONTROL=sock))
    assert e.returncode == 0 and e.stdout.startswith("slirpnet ")
    assert subprocess.run([ctl_path, "--help"], capture_output=True, text=True).returncode == 0
