# SPDX-License-Identifier: BSD-2-Clause
"""test_bench.py - CI smoke run of the benchmark rig (`scripts/bench/run --quick`): it must work; figures are not judged.

Registered by scripts/bench/meson.build (suite 'bench'). Every backend must come up and every
measure must produce a value, however slow; the run must leave no namespace or process behind.
"""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN = os.path.join(ROOT, "scripts", "bench", "run")


def _build_dir():
    build = os.environ.get("SLIRPNET_BUILD")
    if build:
        return build
    # SLIRPNET_HELPER is BUILD/plugin/slirpnet
    return os.path.dirname(os.path.dirname(os.environ["SLIRPNET_HELPER"]))


@pytest.mark.slow
@pytest.mark.timeout(560)
def test_bench_quick(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("the rig needs root (network namespaces, taps)")
    p = subprocess.Popen([sys.executable, RUN, "--quick", "--build", _build_dir(),
                          "--out", str(tmp_path)],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        out, err = p.communicate(timeout=540)
    except subprocess.TimeoutExpired:
        p.terminate()  # the rig cleans up on SIGTERM
        out, err = p.communicate(timeout=30)
        pytest.fail("run --quick took more than 540 s:\n" + err[-4000:])
    print(out)
    print(err[-6000:], file=sys.stderr)
    assert p.returncode == 0, "run --quick failed (exit %d); see the log above" % p.returncode

    with open(tmp_path / "results.json") as f:
        data = json.load(f)
    assert (tmp_path / "results.md").read_text().count("|") > 10
    cells = data["cells"]
    backends = {c["backend"] for c in cells}
    # slirpnet-stream joins when the helper has --socket; the rest must all have run.
    assert {"slirpnet", "slirp4netns", "passt", "pasta", "veth", "loopback"} <= backends, backends
    for c in cells:
        assert c["values"] and not c["errors"], c
        assert c["median"] is not None and c["median"] >= 0, c
    # Every measure in both directions, for every backend.
    seen = {(c["backend"], c["metric"], c["direction"]) for c in cells}
    for b in backends:
        for metric in ("gbps", "p50_us", "p99_us", "conn_per_s", "kpps"):
            for d in ("g2h", "h2g"):
                assert (b, metric, d) in seen, (b, metric, d)

    # Nothing left behind: namespaces and processes carry the rig's pid in their names.
    tag = "slnb%d-" % p.pid
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert tag not in netns, netns
    for pid in os.listdir("/proc"):
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        assert tag not in cmd, "left running: %s %s" % (pid, cmd)
