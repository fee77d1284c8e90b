# SPDX-License-Identifier: BSD-2-Clause
"""report.py - medians, min/max and ratios to slirp4netns; the table as text, Markdown and JSON."""

import json
import statistics

from .backends import BASE_SUFFIX, REFERENCE

# (measure, metric key, label, unit, higher is better)
METRICS = [
    ("tcp", "gbps", "TCP throughput", "Gbit/s", True),
    ("tcp", "cpu_s_per_gb", "CPU per GB", "s/GB", False),
    ("rr", "p50_us", "TCP RR latency p50", "µs", False),
    ("rr", "p99_us", "TCP RR latency p99", "µs", False),
    ("crr", "conn_per_s", "TCP connect rate", "conn/s", True),
    ("udp", "kpps", "UDP 64 B", "kpps", True),
    ("churn", "churn_per_s", "Churn: connect rate, mean over the run", "conn/s", True),
    ("churn", "churn_last10", "Churn: connect rate, last 10 s", "conn/s", True),
    ("churn", "churn_min_s", "Churn: slowest second", "conn/s", True),
    ("churn", "churn_rss_mib", "Churn: peak RSS of the network process", "MiB", False),
    ("churn", "churn_fds", "Churn: peak fds of the network process", "fds", False),
    ("many", "many_seconds", "1000 verified connections at once: time", "s", False),
    ("xfer", "xfer_gbps", "1 GiB verified transfer beside churn", "Gbit/s", True),
]


def fmt(v):
    if v is None:
        return "—"
    if v >= 100:
        return "%.0f" % v
    if v >= 10:
        return "%.1f" % v
    return "%.2f" % v


class Results:
    """Every run's outcome; cells aggregate them per (backend, mtu, measure, metric, direction)."""

    def __init__(self):
        self.records = []  # one per client run: see add()

    def add(self, run, mtu, backend, measure, direction, values=None, extra=None, error=None):
        self.records.append({"run": run, "mtu": mtu, "backend": backend, "measure": measure,
                             "direction": direction, "values": values or {}, "extra": extra or {},
                             "error": error})

    def cells(self):
        cells = {}
        for r in self.records:
            for measure, key, _, _, _ in METRICS:
                if measure != r["measure"]:
                    continue
                if not r["error"] and r["values"].get(key) is None:
                    continue  # e.g. CPU of the kernel-only ceilings: not measured, not failed
                c = cells.setdefault((r["backend"], r["mtu"], key, r["direction"]),
                                     {"values": [], "errors": []})
                if r["error"]:
                    c["errors"].append(r["error"])
                else:
                    c["values"].append(r["values"][key])
        for (backend, mtu, key, direction), c in cells.items():
            v = c["values"]
            c["median"] = statistics.median(v) if v else None
            c["min"] = min(v) if v else None
            c["max"] = max(v) if v else None
        for (backend, mtu, key, direction), c in cells.items():
            ref = cells.get((REFERENCE, mtu, key, direction))
            ok = ref and ref["median"] and c["median"] is not None
            c["ratio"] = c["median"] / ref["median"] if ok else None
        return cells

    def failures(self):
        return [r for r in self.records if r["error"]]


def cell_text(c, show_ratio=True, num=fmt):
    """One cell: 'median [min–max] ×ratio (N failed)' (numbers by num; the ratio unless
    show_ratio is false), '—' when nothing ran, 'FAILED' when every run failed."""
    if not c or (not c["values"] and not c["errors"]):
        return "—"
    if not c["values"]:
        return "FAILED"
    t = num(c["median"])
    if len(c["values"]) > 1:
        t += " [%s–%s]" % (num(c["min"]), num(c["max"]))
    if c["ratio"] is not None and show_ratio:
        t += " ×%.2f" % c["ratio"]
    if c["errors"]:
        t += " (%d failed)" % len(c["errors"])
    return t


def _row_keys(mtus, directions, measures):
    """(metric key, higher is better, mtu, direction, row label) of every row, in table order."""
    for measure, key, label, unit, higher in METRICS:
        if measure in measures:
            for mtu in mtus:
                for d in directions:
                    yield key, higher, mtu, d, "%s %s, MTU %d, %s" % (label, unit, mtu, d)


def _rows(cells, backends, mtus, directions, measures):
    """(label, [cell text per backend]) rows of the one table."""
    return [(label, [cell_text(cells.get((b, mtu, key, d)), b != REFERENCE) for b in backends])
            for key, _, mtu, d, label in _row_keys(mtus, directions, measures)]


LEGEND = ("median [min–max] over the runs; ×r = median / slirp4netns's median in the same run "
          "(throughput, connect rate, UDP: higher is better; CPU per GB, latency: lower is better). "
          "g2h: guest client → server on host 127.0.0.1 via 10.0.2.2; h2g: host client → "
          "127.0.0.1 port forward → server in the guest. CPU: user+system seconds of the "
          "backend's processes (bridge included) per GB received.")


BASE_COLUMNS = (" NAME@base: the same backend with the --baseline build's helper, libslirpnet and "
                "tap bridge (the probes are the current build's).")


def text_rows(columns, rows):
    """rows [(label, [text per column])] as an aligned text table."""
    head = ["measure"] + columns
    widths = [max(len(head[0]), *(len(r[0]) for r in rows))] if rows else [len(head[0])]
    for i, b in enumerate(columns):
        widths.append(max(len(b), *(len(r[1][i]) for r in rows)) if rows else len(b))
    line = lambda cols: "  ".join(c.ljust(w) for c, w in zip(cols, widths)).rstrip()
    out = [line(head), line(["-" * w for w in widths])]
    out += [line([label] + texts) for label, texts in rows]
    return "\n".join(out)


def markdown_rows(columns, rows):
    out = ["| measure | " + " | ".join(columns) + " |",
           "|---|" + "---|" * len(columns)]
    out += ["| %s | %s |" % (label, " | ".join(texts)) for label, texts in rows]
    return "\n".join(out)


def text_table(cells, backends, mtus, directions, measures):
    return text_rows(backends, _rows(cells, backends, mtus, directions, measures))


def markdown_table(cells, backends, mtus, directions, measures):
    return markdown_rows(backends, _rows(cells, backends, mtus, directions, measures))


def baseline_pairs(backends):
    """[(current, current@base)] for the columns that have a baseline twin."""
    return [(b, b + BASE_SUFFIX) for b in backends if b + BASE_SUFFIX in backends]


BASELINE_LEGEND = ("×r = current median / baseline median, both measured in the same run(s); "
                   "[min–max] of the per-run ratios (each run pairs the two, one right after the "
                   "other); \"better\"/\"worse\" only when every run agrees (throughput, connect "
                   "rate, UDP: higher is better; CPU per GB, latency: lower is better).")


def baseline_table(results, pairs, mtus, directions, measures):
    """(columns, rows) of current/base ratios: one column per slirpnet backend with a twin."""
    cells = results.cells()
    per_run = {}  # (backend, mtu, key, direction) -> {run: value}
    for r in results.records:
        if r["error"]:
            continue
        for k, v in r["values"].items():
            if v is not None:
                per_run.setdefault((r["backend"], r["mtu"], k, r["direction"]), {})[r["run"]] = v
    rows = []
    for key, higher, mtu, d, label in _row_keys(mtus, directions, measures):
        texts = []
        for cur, base in pairs:
            c, b = cells.get((cur, mtu, key, d)), cells.get((base, mtu, key, d))
            if not c or not b or c["median"] is None or not b["median"]:
                texts.append("—")
                continue
            t = "×%.2f" % (c["median"] / b["median"])
            vc, vb = per_run.get((cur, mtu, key, d), {}), per_run.get((base, mtu, key, d), {})
            ratios = [vc[n] / vb[n] for n in sorted(vc) if vb.get(n)]
            if len(ratios) > 1:
                t += " [%.2f–%.2f]" % (min(ratios), max(ratios))
                if all(x > 1 for x in ratios) or all(x < 1 for x in ratios):
                    t += " better" if (ratios[0] > 1) == higher else " worse"
            texts.append(t)
        rows.append((label, texts))
    return [cur for cur, _ in pairs], rows


def targets(cells, mtus, directions):
    """The lead's targets for slirpnet vs slirp4netns: one line per check."""
    lines = []
    for b in ("slirpnet", "slirpnet-stream"):
        for mtu in mtus:
            for d in directions:
                checks = [("gbps", lambda r: r >= 1.5, "throughput ≥ 1.5×"),
                          ("cpu_s_per_gb", lambda r: r <= 1.0, "CPU/GB ≤ 1×"),
                          ("p50_us", lambda r: r <= 1.0, "RR p50 ≤ 1×")]
                parts = []
                for key, ok, what in checks:
                    c = cells.get((b, mtu, key, d))
                    if not c or c["ratio"] is None:
                        continue
                    parts.append("%s %s (×%.2f)" % (what, "met" if ok(c["ratio"]) else "NOT met",
                                                    c["ratio"]))
                if parts:
                    lines.append("%s MTU %d %s: %s" % (b, mtu, d, "; ".join(parts)))
    return lines


CHURN_TARGET = (4000, 64)  # conn/s every second, peak MiB: the lead's target for slirpnet


def churn_lines(results):
    """One summary line per churn run, and a per-second table (rate, RSS MiB, fds) per run."""
    recs = [r for r in results.records if r["measure"] == "churn" and not r["error"]]
    lines, tables = [], []
    for r in recs:
        v, x = r["values"], r["extra"]
        head = "run %d %s MTU %d %s" % (r["run"], r["backend"], r["mtu"], r["direction"])
        lines.append("%s: %s conn/s mean, first 10 s %s, last 10 s %s, per second %s–%s; peak RSS "
                     "%s MiB, peak fds %s; %d connections, %d failed" % (
                         head, fmt(v["churn_per_s"]), fmt(v["churn_first10"]), fmt(v["churn_last10"]),
                         fmt(v["churn_min_s"]), fmt(v["churn_max_s"]), fmt(v["churn_rss_mib"]),
                         fmt(v["churn_fds"]), x["connections"], x["failed"]))
        rows = []
        series, rss, fds = x["per_second"], x["rss_kib"], x["fds"]
        for i in range(max(len(series), len(rss))):
            rows.append(("%d" % (i + 1), [
                str(series[i]) if i < len(series) else "—",
                fmt(rss[i] / 1024) if i < len(rss) and rss[i] is not None else "—",
                str(fds[i]) if i < len(fds) and fds[i] is not None else "—"]))
        tables.append((head, rows))
    return lines, tables


def churn_targets(cells, mtus, directions):
    lines = []
    rate, mib = CHURN_TARGET
    for mtu in mtus:
        for d in directions:
            lo = cells.get(("slirpnet", mtu, "churn_min_s", d))
            peak = cells.get(("slirpnet", mtu, "churn_rss_mib", d))
            if lo and peak and lo["median"] is not None and peak["median"] is not None:
                lines.append("slirpnet MTU %d %s churn: every second ≥ %d conn/s %s (slowest %s); "
                             "RSS ≤ %d MiB %s (peak %s)" % (
                                 mtu, d, rate, "met" if lo["min"] >= rate else "NOT met", fmt(lo["min"]),
                                 mib, "met" if peak["max"] <= mib else "NOT met", fmt(peak["max"])))
    return lines


def to_json(results, cells, meta):
    pairs = baseline_pairs(sorted({b for b, _, _, _ in cells}))
    vs_base = []
    for cur, base in pairs:
        for (b, m, k, d), c in sorted(cells.items(), key=lambda kv: tuple(map(str, kv[0]))):
            ref = cells.get((base, m, k, d))
            if b == cur and ref and ref["median"] and c["median"] is not None:
                vs_base.append({"backend": cur, "mtu": m, "metric": k, "direction": d,
                                "ratio": c["median"] / ref["median"]})
    return json.dumps({
        "meta": meta,
        "vs_baseline": vs_base,
        "cells": [dict(backend=b, mtu=m, metric=k, direction=d, **c)
                  for (b, m, k, d), c in sorted(cells.items(), key=lambda kv: tuple(map(str, kv[0])))],
        "records": results.records,
    }, indent=1, ensure_ascii=False)
