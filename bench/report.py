"""Results: one JSON file, a markdown table (printed and written) and PNG plots."""

from __future__ import annotations

import json
import os
import platform
import shlex
import sys
from importlib import metadata
from pathlib import Path
from typing import Any


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kib = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_kib = int(line.split()[1])
    except OSError:
        pass
    versions: dict[str, str | None] = {}
    for package in ("granian", "chdb", "chdb-core", "httpx", "msgspec", "starlette", "zstandard"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu,
        "ram_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "versions": versions,
    }


def command() -> str:
    return " ".join(shlex.quote(a) for a in [Path(sys.executable).name, "-m", "bench", *sys.argv[1:]])


def _fmt(value: float | None) -> str:
    if value is None:
        return "–"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "| scenario | shape | metric | birdhouse (median) | reference | reference (median) | ratio (median) | "
        "ratios per run | note |",
        "|---|---|---|---:|---|---:|---:|---|---|",
    ]
    for c in result["comparisons"]:
        ratios = ", ".join(f"{r:.2f}" for r in c["ratios"])
        lines.append(
            f"| {c['scenario']} | {c['shape']} | {c['metric']} | {_fmt(c['birdhouse_median'])} | {c['reference']} | "
            f"{_fmt(c['reference_median'])} | **{_fmt(c['ratio_median'])}** | {ratios} | {c['note']} |"
        )
    lines += [
        "",
        "| scenario | shape | target | run | generator | rows/s | req/s | p50 ms | p99 ms | non-2xx | errors | "
        "target cores | generator cores | machine busy cores |",
        "|---|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for m in result["measurements"]:
        lat = m.get("latency_ms", {})
        lines.append(
            f"| {m['scenario']} | {m['shape']} | {m['target']} | {m['run']} | {m.get('generator', 'in-process')} | "
            f"{_fmt(m.get('rows_per_s'))} | {_fmt(m.get('requests_per_s'))} | {_fmt(lat.get('p50'))} | "
            f"{_fmt(lat.get('p99'))} | {m.get('non_2xx', 0)} | {m.get('errors', 0)} | "
            f"{_fmt(m.get('target_cores'))} | {_fmt(m.get('generator_cores'))} | {_fmt(m.get('machine_cores'))} |"
        )
    soak = result.get("soak") or {}
    if soak:
        rss = [s["rss_bytes"] for s in soak.get("samples", [])]
        wal = [s["wal_bytes"] for s in soak.get("samples", [])]
        p99 = [s["p99_ms"] for s in soak.get("series", [])]
        if rss and p99:
            lines += [
                "",
                f"Soak: RSS {min(rss) / 2**20:.0f}–{max(rss) / 2**20:.0f} MiB, WAL {min(wal) / 2**20:.1f}–"
                f"{max(wal) / 2**20:.1f} MiB, p99 {min(p99):.1f}–{max(p99):.1f} ms per window, "
                f"non-2xx {soak.get('non_2xx', 0)}, errors {soak.get('errors', 0)}.",
            ]
    for key, prof in (result.get("profiles") or {}).items():
        if prof.get("samples"):
            lines += ["", f"py-spy, {key} ({prof['samples']} samples): top self time", ""]
            lines += [f"- {share:.1f} % {frame}" for frame, share in prof["self"][:12]]
    if result.get("notes"):
        lines += ["", *[f"- {n}" for n in result["notes"]]]
    return "\n".join(lines) + "\n"


def plots(result: dict[str, Any], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written: list[Path] = []
    comps = [c for c in result["comparisons"] if c["ratio_median"] is not None]
    if comps:
        fig, ax = plt.subplots(figsize=(10, 0.45 * len(comps) + 1.5))
        labels = [f"{c['scenario']}/{c['shape']} {c['metric']}\nvs {c['reference']}" for c in comps]
        values = [c["ratio_median"] for c in comps]
        ax.barh(range(len(comps)), values, color=["tab:green" if v >= 1 else "tab:orange" for v in values])
        for i, c in enumerate(comps):
            if len(c["ratios"]) > 1:
                ax.plot(c["ratios"], [i] * len(c["ratios"]), "k.", markersize=4)
        ax.axvline(1.0, color="k", linewidth=0.8)
        ax.set_yticks(range(len(comps)), labels, fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel("birdhouse / reference (median; dots = runs)")
        ax.set_title("Throughput ratio per scenario")
        fig.tight_layout()
        written.append(out / "throughput_ratio.png")
        fig.savefig(written[-1], dpi=110)
        plt.close(fig)
    first_shape = result["config"]["shapes"][0]
    curves = [
        m
        for m in result["measurements"]
        if m.get("cdf_ms")
        and m["run"] == 0
        and m["shape"] == first_shape
        and m["scenario"] in ("wait", "small", "batched")
    ]
    if curves:
        fig, ax = plt.subplots(figsize=(8, 5))
        for m in curves:
            points, top = [], 0.0
            for pct, ms in m["cdf_ms"]:
                if ms >= top:  # keep the curve monotonic (older wrk results carry a bogus p100 of 0)
                    points.append((pct / 100, ms))
                    top = ms
            xs = [p[1] for p in points]
            ys = [p[0] for p in points]
            ax.plot(xs, ys, label=f"{m['scenario']}/{m['shape']} {m['target']}")
        ax.set_xscale("log")
        ax.set_xlabel("latency (ms, log)")
        ax.set_ylabel("fraction of requests")
        ax.set_title("Latency CDF (run 0)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        written.append(out / "latency_cdf.png")
        fig.savefig(written[-1], dpi=110)
        plt.close(fig)
    soak = result.get("soak") or {}
    if soak.get("samples"):
        fig, (a1, a2, a3) = plt.subplots(3, 1, figsize=(8, 7), sharex=True)
        a1.plot([s["t_s"] for s in soak["samples"]], [s["rss_bytes"] / 2**20 for s in soak["samples"]])
        a1.set_ylabel("RSS MiB")
        a2.plot([s["t_s"] for s in soak["samples"]], [s["wal_bytes"] / 2**20 for s in soak["samples"]])
        a2.set_ylabel("WAL MiB")
        a3.plot([s["t_s"] for s in soak["series"]], [s["p99_ms"] for s in soak["series"]])
        a3.set_ylabel("p99 ms")
        a3.set_xlabel("seconds")
        offered = soak.get("offered_rate_rps")
        rows = soak.get("rows", 0) / max(soak.get("ok", 1), 1)
        a1.set_title(f"Soak: {offered * rows:,.0f} rows/s offered" if offered else "Soak")
        fig.tight_layout()
        written.append(out / "soak.png")
        fig.savefig(written[-1], dpi=110)
        plt.close(fig)
    return written


def write(result: dict[str, Any], out: Path) -> tuple[Path, Path, list[Path]]:
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / "results.json"
    json_path.write_text(json.dumps(result, indent=1, default=str))
    md_path = out / "results.md"
    md_path.write_text(markdown(result))
    return json_path, md_path, plots(result, out)
