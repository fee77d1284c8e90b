# SPDX-License-Identifier: BSD-2-Clause
"""control.py - a client of the helper's JSON control socket (control=PATH), one request per line."""

import json
import select
import socket
import time

from .consts import POSITIVE_TIMEOUT, timeout_or

__all__ = ["ControlError", "ControlClient"]


class ControlError(AssertionError):
    def __init__(self, cls, desc, reply):
        super().__init__("%s: %s" % (cls, desc))
        self.cls, self.desc, self.reply = cls, desc, reply


class ControlClient:
    """One connection to a helper's control socket (line-delimited JSON)."""

    def __init__(self, path, timeout=None, connect_timeout=None):
        self.path = path
        self.timeout = timeout_or(timeout, POSITIVE_TIMEOUT)
        deadline = time.monotonic() + timeout_or(connect_timeout, POSITIVE_TIMEOUT)
        while True:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                self.sock.connect(path)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                self.sock.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        self.buf = b""

    def send_raw(self, data):
        self.sock.sendall(data)

    def read_line(self, timeout=None):
        """One reply line as bytes; b'' on EOF; AssertionError on timeout."""
        deadline = time.monotonic() + timeout_or(timeout, self.timeout)
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no reply line on %s within the timeout" % self.path)
            r, _, _ = select.select([self.sock], [], [], left)
            if not r:
                continue
            chunk = self.sock.recv(65536)
            if not chunk:
                out, self.buf = self.buf, b""
                return out
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line

    def read_reply(self, timeout=None):
        line = self.read_line(timeout)
        assert line, "connection closed without a reply"
        return json.loads(line)

    def request(self, req, timeout=None):
        """Send a request (dict, or str/bytes sent as they are plus '\\n'); return the reply."""
        if isinstance(req, dict):
            data = json.dumps(req).encode()
        elif isinstance(req, str):
            data = req.encode()
        else:
            data = bytes(req)
        self.send_raw(data + b"\n")
        return self.read_reply(timeout)

    def call(self, command, **arguments):
        """execute command; returns its "return" value or raises ControlError."""
        req = {"execute": command}
        if arguments:
            req["arguments"] = arguments
        reply = self.request(req)
        if "error" in reply:
            raise ControlError(reply["error"]["class"], reply["error"]["desc"], reply)
        assert set(reply) == {"return"}, reply
        return reply["return"]

    def is_closed(self, timeout=1.0):
        """True when the server closed the connection (EOF or reset) within timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r, _, _ = select.select([self.sock], [], [], 0.05)
            if r:
                try:
                    chunk = self.sock.recv(65536)
                except (ConnectionResetError, BrokenPipeError):
                    return True
                if not chunk:
                    return True
                self.buf += chunk
        return False

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
