# SPDX-License-Identifier: BSD-2-Clause
"""Real-guest test rig for slirpnet: boot a tiny Linux guest under QEMU and
collect the results of its network checks.

Library use (e.g. from pytest)::

    import sys; sys.path.insert(0, "scripts/guest")
    import guestlib
    r = guestlib.run_guest(
        netdev="user,id=n0,hostfwd=tcp:127.0.0.1:{hostport}-:{guestport}",
        nic="e1000")
    assert r["ok"], guestlib.format_failure(r)

The netdev spec is passed verbatim to ``-netdev`` after ``str.format`` with
{hostport}, {guestport}, {httpport} (so a slirpnet transport such as
``stream,id=n0,server=off,addr.type=unix,addr.path=/tmp/x.sock`` or
``socket,id=n0,fd=5`` works unchanged); the NIC gets ``netdev=<id>``.  Inherited
fds go in ``pass_fds``.  If the forwarding is done outside QEMU (slirpnet's own
hostfwd), pass ``host_port`` explicitly.  ``vhost_user=PATH`` replaces the netdev with
QEMU's vhost-user netdev on that socket (shared guest memory added; see vhost_user_args()).

Network safety: the HTTP server binds 127.0.0.1 only, the host only connects to
127.0.0.1, and the guest refuses any target not in ``allow`` (default 10.0.2.2);
nothing uses DNS.
"""
import hashlib
import http.server
import os
import queue
import re
import secrets
import shlex
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD_IMAGE = os.path.join(HERE, "build-image")
DEFAULT_IMAGE_DIR = os.environ.get("SLIRPNET_GUEST_IMAGE", "/tmp/slirpnet-guest-image")
QEMU = os.environ.get("SLIRPNET_QEMU", "qemu-system-x86_64")
FIRMWARE_DIRS = ["/usr/share/seabios", "/usr/lib/ipxe/qemu", "/usr/share/qemu"]
ALL_CHECKS = ("lease", "ping", "download", "listen")
# Not in the default set: needs the image variant with iperf3 (build-image --with-iperf3) and an
# iperf3 server on the host's 127.0.0.1 (scripts/bench/guest-run).
OPTIONAL_CHECKS = ("iperf3",)
# Not in the default set either: between ping and download the guest waits for its link to go
# down and up again (the host restarts the backend meanwhile; EVENT relink_wait says when).
OPTIONAL_CHECKS += ("relink",)
# virtio-net-pci with every offload slirpnet could negotiate turned off (append to the NIC:
# nic="virtio-net-pci," + NIC_OFFLOADS_OFF).
NIC_OFFLOADS_OFF = "csum=off,guest_csum=off,host_tso4=off,host_tso6=off,guest_tso4=off,guest_tso6=off"


def vhost_nic(nic, accel="tcg"):
    """The NIC line for a vhost-user netdev: under TCG a virtio-net-pci gets vectors=0 (no
    MSI-X) unless it names vectors= itself. QEMU 7.2 with MSI-X segfaults in vhost_net_start
    (msix_set_vector_notifiers) under TCG, before the first ring is set up; with legacy
    INTx it runs."""
    if accel == "tcg" and nic and nic.split(",")[0] == "virtio-net-pci" \
            and not re.search(r"(?:^|,)vectors=", nic):
        return nic + ",vectors=0"
    return nic
GATEWAY = "10.0.2.2"
RESULT_RE = re.compile(r"SLIRPNET-(RESULT|EVENT) (\S+)(.*)")


# --------------------------------------------------------------------------- image
def ensure_image(image_dir=None, kver=None, quiet=True, with_iperf3=False):
    """Build the guest image if needed; return (vmlinuz, initrd).

    with_iperf3: the variant initrd-iperf3.gz (iperf3 and its libraries added)."""
    image_dir = image_dir or DEFAULT_IMAGE_DIR
    cmd = [sys.executable, BUILD_IMAGE, image_dir]
    if kver:
        cmd += ["--kver", kver]
    if quiet:
        cmd.append("--quiet")
    if with_iperf3:
        cmd.append("--with-iperf3")
    subprocess.run(cmd, check=True)
    return os.path.join(image_dir, "vmlinuz"), os.path.join(
        image_dir, "initrd-iperf3.gz" if with_iperf3 else "initrd.gz")


# --------------------------------------------------------------------------- helpers
def free_port(host="127.0.0.1"):
    """An ephemeral TCP port that is free right now on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def parse_fields(text):
    """'ok a=1 b=2' -> ('ok', {'a': '1', 'b': '2'}); first bare word is status."""
    status, fields = None, {}
    for w in text.split():
        if "=" in w:
            k, v = w.split("=", 1)
            fields[k] = v
        elif status is None:
            status = w
    return status, fields


def parse_serial(text):
    """Parse SLIRPNET-RESULT lines from serial output -> {check: {status, ...}}."""
    results, events = {}, []
    for line in text.splitlines():
        m = RESULT_RE.search(line.strip("\r"))
        if not m:
            continue
        kind, name, rest = m.groups()
        status, fields = parse_fields(rest)
        if kind == "RESULT":
            results[name] = dict(fields, status=status)
        else:
            events.append(dict(fields, event=name))
    return results, events


def hostfwd_ports(netdev):
    """First 'hostfwd=tcp:127.0.0.1:HP-[addr]:GP' in a -netdev user spec -> (HP, GP)."""
    m = re.search(r"hostfwd=(?:tcp)?:(?:127\.0\.0\.1)?:(\d+)-[0-9.]*:(\d+)", netdev or "")
    return (int(m.group(1)), int(m.group(2))) if m else (None, None)


class _FileServer:
    """HTTP server on 127.0.0.1:<ephemeral> serving one in-memory file."""

    def __init__(self, data, path="/slirpnet-test.bin"):
        self.data, self.path = data, path
        self.requests = []
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def do_GET(self):
                outer.requests.append({"path": self.path, "peer": self.client_address[0],
                                       "t": time.monotonic()})
                if self.path != outer.path:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(outer.data)))
                self.end_headers()
                try:
                    self.wfile.write(outer.data)
                    outer.requests[-1]["complete"] = True
                except OSError as e:
                    outer.requests[-1]["error"] = str(e)

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def connect_inbound(host_port, nonce, token, deadline, host="127.0.0.1"):
    """Connect to the forwarded port until the guest answers with token+nonce.

    Through a hostfwd the connect() itself succeeds at once (the forwarder
    accepts); if the guest's nc is not listening yet we just see EOF/reset, so
    retry until `deadline` (time.monotonic())."""
    assert host == "127.0.0.1", "host side only ever connects to 127.0.0.1"
    attempts, last_err, t0 = 0, None, time.monotonic()
    while time.monotonic() < deadline:
        attempts += 1
        try:
            with socket.create_connection((host, host_port), timeout=5) as s:
                s.settimeout(max(0.5, min(10.0, deadline - time.monotonic())))
                s.sendall(nonce.encode() + b"\n")
                buf = b""
                while b"\n" not in buf:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    buf += chunk
                reply = buf.decode(errors="replace").strip()
                if ("token=%s" % token) in reply and ("got=%s" % nonce) in reply:
                    return {"ok": True, "attempts": attempts, "reply": reply,
                            "secs": round(time.monotonic() - t0, 2)}
                last_err = "reply=%r" % reply if reply else "eof"
        except OSError as e:
            last_err = "%s: %s" % (type(e).__name__, e)
        time.sleep(0.3)
    return {"ok": False, "attempts": attempts, "error": last_err,
            "secs": round(time.monotonic() - t0, 2)}


def vhost_user_args(path, memory_mib, reconnect=None, netdev_id="n0", chardev_id="c0",
                    mem_id="slirpnet-mem"):
    """QEMU arguments for a vhost-user netdev on the UNIX socket path (QEMU is the client).

    vhost-user needs the guest memory shared with the back-end: a memfd backend as the only
    NUMA node, whose size must equal -m (memory_mib).  reconnect=N (seconds) lets QEMU
    reconnect to a restarted back-end (`-chardev socket,...,reconnect=N`).  The NIC
    attaches to netdev_id."""
    chardev = "socket,id=%s,path=%s" % (chardev_id, path)
    if reconnect:
        chardev += ",reconnect=%d" % reconnect
    return ["-object", "memory-backend-memfd,id=%s,size=%dM,share=on" % (mem_id, memory_mib),
            "-numa", "node,memdev=" + mem_id,
            "-chardev", chardev,
            "-netdev", "vhost-user,id=%s,chardev=%s" % (netdev_id, chardev_id)]


# --------------------------------------------------------------------------- main API
def build_qemu_cmd(vmlinuz, initrd, append, netdev, nic, netdev_id, mac="52:54:00:12:34:56",
                   memory=256, accel="tcg", extra_qemu_args=(), qemu=QEMU, smp=1, cmd_prefix=()):
    cmd = list(cmd_prefix) + [qemu]
    for d in FIRMWARE_DIRS:
        if os.path.isdir(d):
            cmd += ["-L", d]
    cmd += ["-M", "pc", "-accel", accel, "-m", str(memory), "-smp", str(smp),
            "-nodefaults", "-display", "none", "-monitor", "none", "-serial", "stdio",
            "-no-reboot", "-kernel", vmlinuz, "-initrd", initrd, "-append", append]
    if nic:
        cmd += ["-device", "%s,netdev=%s,mac=%s,romfile=" % (nic, netdev_id, mac)]
    if netdev:
        cmd += ["-netdev", netdev]
    cmd += list(extra_qemu_args)
    return cmd


def run_guest(netdev="user,id=n0,hostfwd=tcp:127.0.0.1:{hostport}-:{guestport}",
              nic="virtio-net-pci", checks=ALL_CHECKS, file_mib=4.0, host_port=None,
              guest_port=8080, listen_secs=90, timeout=240, image_dir=None, kver=None,
              extra_qemu_args=(), pass_fds=(), extra_append="", netdev_id=None,
              memory=256, accel="tcg", mac="52:54:00:12:34:56", allow=(GATEWAY,),
              gateway=GATEWAY, ping_target=None, serial_log=None, echo=None,
              qemu=QEMU, env=None, smp=1, cmd_prefix=(), mtu=None, iperf3_port=None,
              iperf3_secs=10, iperf3_dirs=("g2h", "h2g"), iperf3_args=(), vhost_user=None,
              reconnect=None, relink_secs=60, on_line=None):
    """Boot the guest, run the checks, return a result dict.

    netdev       -netdev spec (formatted with {hostport},{guestport},{httpport});
                 None = caller supplies its own -netdev in extra_qemu_args.
    nic          -device model (virtio-net-pci | e1000 | ...) with optional properties
                 ("virtio-net-pci," + NIC_OFFLOADS_OFF); None = no NIC added.
    vhost_user   a UNIX socket path: -netdev vhost-user on it (vhost_user_args() with this
                 memory); netdev must then be None.  reconnect=N: QEMU reconnects every N s.
                 Under TCG a virtio-net-pci NIC gets vectors=0 (see vhost_nic()).
    checks       subset of ALL_CHECKS ("nic" and "done" are always reported).
    host_port    127.0.0.1 port forwarded to guest_port (default: parsed from the
                 netdev's hostfwd, or a fresh free port if {hostport} is used).
    echo         callable(str) for each serial line as it arrives (e.g. print).
    mtu          guest interface MTU (slirpnet.mtu=), set before DHCP.
    iperf3_port  with checks including "iperf3": the guest runs iperf3 -c <gateway>:PORT
                 (a server on the host's 127.0.0.1) for iperf3_secs per direction
                 (g2h, h2g = -R); uses the image variant with iperf3.  iperf3_args: more
                 iperf3 options for every direction (e.g. ("-w", "16K")): letters, digits
                 and '-' only (the guest's /init refuses anything else).
    cmd_prefix   argv put before QEMU (e.g. ["ip", "netns", "exec", NS]).
    relink_secs  with checks including "relink": bound on each of the guest's waits for
                 its link to go down, then up.
    on_line      callable(kind, name, fields) for each SLIRPNET-RESULT/EVENT line, called
                 from run_guest's thread as the line arrives (kind "RESULT" or "EVENT");
                 e.g. restart the back-end on EVENT relink_wait.
    Returns {"ok", "reason", "results", "events", "host_listen", "http",
             "timings", "serial", "stderr", "cmd", "qemu_rc", ...}.
    """
    t_start = time.monotonic()
    checks = tuple(checks)
    unknown = set(checks) - set(ALL_CHECKS) - set(OPTIONAL_CHECKS)
    if unknown:
        raise ValueError("unknown checks: %s" % sorted(unknown))
    if "iperf3" in checks and not iperf3_port:
        raise ValueError("the iperf3 check needs iperf3_port")
    if vhost_user:
        if netdev:
            raise ValueError("vhost_user replaces netdev: pass netdev=None")
        netdev_id = netdev_id or "n0"
        extra_qemu_args = vhost_user_args(vhost_user, memory, reconnect, netdev_id) \
            + list(extra_qemu_args)
        nic = vhost_nic(nic, accel)
    vmlinuz, initrd = ensure_image(image_dir, kver, with_iperf3="iperf3" in checks)

    if netdev and "{hostport}" in netdev and host_port is None:
        host_port = free_port()
    server = None
    if "download" in checks:
        nbytes = int(file_mib * 1024 * 1024)
        data = os.urandom(nbytes)
        server = _FileServer(data)
        sha = hashlib.sha256(data).hexdigest()
    fmt = {"hostport": host_port, "guestport": guest_port,
           "httpport": server.port if server else 0}
    netdev_s = netdev.format(**fmt) if netdev else None
    if host_port is None and netdev_s:
        host_port = hostfwd_ports(netdev_s)[0]
    if "listen" in checks and host_port is None:
        raise ValueError("listen check needs host_port (or a hostfwd / {hostport} in netdev)")
    if netdev_id is None:
        m = re.search(r"(?:^|,)id=([^,]+)", netdev_s or "") or \
            re.search(r'"id"\s*:\s*"([^"]+)"', netdev_s or "")
        netdev_id = m.group(1) if m else "n0"

    token = "slirpnet-" + secrets.token_hex(4)
    nonce = "host-" + secrets.token_hex(8)
    params = ["slirpnet.checks=" + ",".join(checks),
              "slirpnet.allow=" + ",".join(allow),
              "slirpnet.ping=" + (ping_target or gateway)]
    if server:
        params += ["slirpnet.http=%s:%d%s" % (gateway, server.port, server.path),
                   "slirpnet.sha256=" + sha, "slirpnet.bytes=%d" % nbytes]
    if "listen" in checks:
        params += ["slirpnet.listen=%d" % guest_port, "slirpnet.listen_secs=%d" % listen_secs,
                   "slirpnet.listen_token=" + token]
    if mtu:
        params.append("slirpnet.mtu=%d" % mtu)
    if "relink" in checks:
        params.append("slirpnet.relink_secs=%d" % relink_secs)
    if "iperf3" in checks:
        params += ["slirpnet.iperf3=%s:%d" % (gateway, iperf3_port),
                   "slirpnet.iperf3_secs=%d" % iperf3_secs,
                   "slirpnet.iperf3_dirs=" + ",".join(iperf3_dirs)]
        if iperf3_args:
            bad = [a for a in iperf3_args if not re.fullmatch(r"[A-Za-z0-9-]+", a)]
            if bad:
                raise ValueError("iperf3_args: letters, digits and '-' only: %r" % bad)
            params.append("slirpnet.iperf3_args=" + ",".join(iperf3_args))
    append = " ".join(["console=ttyS0", "panic=-1", "quiet", "loglevel=1"] + params
                      + ([extra_append] if extra_append else []))
    cmd = build_qemu_cmd(vmlinuz, initrd, append, netdev_s, nic, netdev_id, mac, memory,
                         accel, extra_qemu_args, qemu, smp, cmd_prefix)

    out = {"ok": False, "reason": None, "cmd": cmd, "nic": nic,
           "netdev": netdev_s or ("vhost-user,path=%s" % vhost_user if vhost_user else None),
           "host_port": host_port, "guest_port": guest_port, "results": {}, "events": [],
           "host_listen": None, "http": None, "timings": {}, "serial": "", "stderr": "",
           "qemu_rc": None}
    serial_lines, lines_q = [], queue.Queue()
    stderr_f = tempfile.TemporaryFile()
    proc = None
    listen_thread, listen_box = None, {}
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=stderr_f, pass_fds=tuple(pass_fds), env=env)

        def reader():
            for raw in iter(proc.stdout.readline, b""):
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                serial_lines.append(line)
                if echo:
                    echo(line)
                lines_q.put(line)
            lines_q.put(None)

        rt = threading.Thread(target=reader, daemon=True)
        rt.start()
        deadline = t_start + timeout
        while True:
            try:
                line = lines_q.get(timeout=max(0.05, min(1.0, deadline - time.monotonic())))
            except queue.Empty:
                line = ""
            if line is None:
                break  # QEMU's stdout closed: it exited
            if time.monotonic() >= deadline:
                out["reason"] = "timeout after %ss" % timeout
                break
            m = RESULT_RE.search(line) if line else None
            if not m:
                continue
            kind, name, rest = m.groups()
            el = round(time.monotonic() - t_start, 2)
            if on_line:
                on_line(kind, name, parse_fields(rest)[1])
            if kind == "EVENT" and name == "listening" and listen_thread is None:
                out["timings"]["listening"] = el
                ldl = min(deadline, time.monotonic() + listen_secs)

                def do_listen(d=ldl):
                    listen_box.update(connect_inbound(host_port, nonce, token, d))

                listen_thread = threading.Thread(target=do_listen, daemon=True)
                listen_thread.start()
            elif kind == "RESULT":
                out["timings"][name] = el
        if proc.poll() is None:
            try:
                proc.wait(timeout=max(0.1, min(10, deadline - time.monotonic())))
            except subprocess.TimeoutExpired:
                if not out["reason"]:
                    out["reason"] = "timeout after %ss" % timeout
        if proc.poll() is None:
            proc.kill()  # only the QEMU we started
            proc.wait()
        out["qemu_rc"] = proc.returncode
        rt.join(timeout=5)
        if listen_thread:
            listen_thread.join(timeout=15)
            out["host_listen"] = dict(listen_box) or {"ok": False, "error": "unfinished"}
    finally:
        if proc and proc.poll() is None:
            proc.kill()
            proc.wait()
        if server:
            out["http"] = {"port": server.port, "path": server.path, "bytes": nbytes,
                           "sha256": sha, "requests": server.requests}
            server.close()
        try:
            stderr_f.seek(0)
            out["stderr"] = stderr_f.read().decode("utf-8", "replace")
            stderr_f.close()
        except (OSError, ValueError):
            pass

    out["serial"] = "\n".join(serial_lines)
    if serial_log:
        with open(serial_log, "w") as f:
            f.write(out["serial"] + "\n")
    out["results"], out["events"] = parse_serial(out["serial"])
    out["timings"]["total"] = round(time.monotonic() - t_start, 2)
    _judge(out, checks, sha if server else None, nonce)
    return out


def _judge(out, checks, sha, nonce):
    res = out["results"]
    problems = []
    for c in checks:
        r = res.get(c)
        if r is None:
            problems.append("%s: no result" % c)
        elif r.get("status") != "ok":
            problems.append("%s: %s" % (c, r.get("reason", r.get("status"))))
    if "download" in checks and res.get("download", {}).get("status") == "ok" \
            and res["download"].get("sha256") != sha:
        problems.append("download: sha256 differs from host file")
    if "listen" in checks:
        hl = out["host_listen"] or {}
        if not hl.get("ok"):
            problems.append("listen(host side): %s" % hl.get("error", "never connected"))
        if res.get("listen", {}).get("got") not in (None, nonce):
            problems.append("listen: guest got %r" % res["listen"].get("got"))
    if "done" not in res:
        problems.append("no done line")
    if out["qemu_rc"] not in (0, None) and not out["reason"]:
        problems.append("qemu exit %s" % out["qemu_rc"])
    if out["reason"]:
        problems.insert(0, out["reason"])
    out["problems"] = problems
    out["ok"] = not problems
    out["reason"] = "; ".join(problems) if problems else None


def summary(r):
    """One human-readable block summarising a run_guest() result."""
    lines = ["%s nic=%s netdev=%s total=%.1fs%s" % (
        "PASS" if r["ok"] else "FAIL", r["nic"], r["netdev"], r["timings"].get("total", 0),
        "" if r["ok"] else "  (%s)" % r["reason"])]
    for name, v in r["results"].items():
        rest = " ".join("%s=%s" % (k, x) for k, x in v.items() if k != "status")
        lines.append("  %-9s %-4s %s" % (name, v.get("status"), rest))
    if r["host_listen"] is not None:
        hl = r["host_listen"]
        lines.append("  host-connect %s attempts=%s secs=%s %s" % (
            "ok" if hl.get("ok") else "fail", hl.get("attempts"), hl.get("secs"),
            hl.get("reply") or hl.get("error", "")))
    t = r["timings"]
    lines.append("  host timings (s since start): " + " ".join(
        "%s=%s" % (k, t[k]) for k in t))
    return "\n".join(lines)


def format_failure(r):
    """Summary + command + QEMU stderr + the serial log, for assertion messages."""
    return "\n".join([summary(r), "--- qemu command:", " ".join(shlex.quote(c) for c in r["cmd"]),
                      "--- qemu stderr:", r["stderr"].rstrip(), "--- serial log:", r["serial"]])
