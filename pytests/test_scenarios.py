# SPDX-License-Identifier: BSD-2-Clause
"""scripts/capture: every built-in scenario yields a pcap (the helper's own) that tshark decodes."""

import os
import re
import subprocess
import sys

import pytest

from harness import CaptureFile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CAPTURE = os.path.join(ROOT, "scripts", "capture")

# scenario -> protocols tshark must find in its capture
EXPECTED = {
    "arp": ["arp"],
    "dhcp": ["dhcp", "udp"],
    "ping": ["icmp"],
    "udp": ["udp", "data"],
    "tcp": ["tcp", "data"],
    "hostfwd": ["tcp"],
    "restrict": ["tcp", "udp", "icmp", "dhcp"],
}
# Where guest traffic may go: the gateway (the host's loopback) and DHCP broadcasts.
ALLOWED_DESTINATIONS = {"10.0.2.2", "255.255.255.255"}


def run_capture(helper, *args):
    return subprocess.run([sys.executable, CAPTURE, "--helper", helper] + list(args),
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def all_scenarios(tmp_path_factory, helper_path):
    out = tmp_path_factory.mktemp("captures")
    r = run_capture(helper_path, "-o", str(out))
    return out, r


def test_runner_succeeds(all_scenarios):
    out, r = all_scenarios
    assert r.returncode == 0, r.stdout + r.stderr
    lines = (out / "summary.txt").read_text().splitlines()
    assert [line.split()[0] for line in lines] == sorted(EXPECTED)
    assert all(line.split()[1] == "ok" for line in lines), lines


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_scenario_capture_decodes(all_scenarios, name):
    out, _ = all_scenarios
    cap = CaptureFile(str(out / (name + ".pcap")))
    mix = cap.assert_decodes(expect=EXPECTED[name])
    text = (out / (name + ".txt")).read_text()
    n = int(re.search(r"^frames:\s+(\d+)", text, re.M).group(1))
    assert n == len(cap.records()) == mix["eth"]
    assert "protocols (tshark" in text and "result:   ok" in text
    dst = re.search(r"^guest IPv4 destinations: (.*)$", text, re.M).group(1)
    used = set(re.findall(r"(\d+\.\d+\.\d+\.\d+) \(", dst))
    assert used <= ALLOWED_DESTINATIONS, "%s: guest traffic to %s" % (name, used)


def test_restrict_scenario_blocked_traffic(all_scenarios):
    out, _ = all_scenarios
    from harness import Ether, TCP
    frames = [Ether(d) for d in CaptureFile(str(out / "restrict.pcap")).frames()]
    assert not any(TCP in f and str(f[TCP].flags) == "SA" for f in frames)


def test_user_scenarios_and_failures(helper_path, tmp_path):
    d = tmp_path / "mine"
    d.mkdir()
    (d / "twopings.py").write_text(
        '"""twopings: two echo requests (a user scenario)."""\n'
        "from harness import icmp_echo, icmp_echo_reply_from\n"
        'OPTIONS = "ipv6=off,restrict=on"\n'
        "def run(peer, ctx):\n"
        "    for seq in (1, 2):\n"
        "        peer.send(icmp_echo(peer, seq=seq))\n"
        "        peer.expect(icmp_echo_reply_from(peer, seq=seq))\n")
    (d / "broken.py").write_text(
        '"""broken: expects a reply that never comes."""\n'
        "from harness import icmp_echo\n"
        'OPTIONS = "restrict=on"\n'
        "def run(peer, ctx):\n"
        "    peer.send(icmp_echo(peer, seq=1))\n"
        "    peer.expect(lambda p: False, timeout=0.3, desc='nothing')\n")
    listing = run_capture(helper_path, "--scenarios", str(d), "--list")
    assert "twopings: two echo requests" in listing.stdout and "ping" in listing.stdout
    out = tmp_path / "out"
    r = run_capture(helper_path, "--scenarios", str(d), "-o", str(out), "twopings", "broken")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "expected frame did not arrive" in r.stderr
    CaptureFile(str(out / "twopings.pcap")).assert_decodes(expect=("icmp",))
    assert "result:   FAILED" in (out / "broken.txt").read_text()
    CaptureFile(str(out / "broken.pcap")).assert_decodes(expect=("icmp",))   # kept anyway
    r = run_capture(helper_path, "-o", str(out), "nosuch")
    assert r.returncode == 2 and "unknown scenario" in r.stderr
