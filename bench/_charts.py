"""Charts of the benchmarks' side-by-side results (PNG, matplotlib: a benchmark-only
dependency, ``pip install -e '.[bench]'``), drawn by the same commands that measure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["server_charts"]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def server_charts(results: dict[str, dict[str, dict[str, Any]]], directory: Path) -> list[Path]:
    """Requests/s per case and p50/p99 latency of the token endpoint, one bar per server."""
    plt = _pyplot()
    directory.mkdir(parents=True, exist_ok=True)
    servers = list(results)
    cases = list(next(iter(results.values())))
    written = []

    figure, axes = plt.subplots(1, len(cases), figsize=(4.2 * len(cases), 4.2))
    for axis, case in zip(axes, cases, strict=True):
        values = [results[s][case]["rps"] for s in servers]
        bars = axis.bar(range(len(servers)), values, color=_colors(len(servers)))
        axis.bar_label(bars, labels=[f"{v:,.0f}" for v in values], fontsize=8)
        axis.set_title(f"{case}: requests/s")
        axis.set_xticks(range(len(servers)), [_short(s) for s in servers], fontsize=7)
    figure.tight_layout()
    written.append(_save(plt, figure, directory / "server_throughput.png"))

    figure, axis = plt.subplots(figsize=(6.5, 4.2))
    width = 0.38
    for offset, (name, key) in enumerate((("p50", "p50_ms"), ("p99", "p99_ms"))):
        values = [results[s]["token"][key] or 0.0 for s in servers]
        positions = [i + (offset - 0.5) * width for i in range(len(servers))]
        bars = axis.bar(positions, values, width, label=name)
        axis.bar_label(bars, labels=[f"{v:.1f}" for v in values], fontsize=8)
    axis.set_title("POST /token latency (ms, lower is better)")
    axis.set_xticks(range(len(servers)), [_short(s) for s in servers], fontsize=7)
    axis.legend()
    figure.tight_layout()
    written.append(_save(plt, figure, directory / "server_token_latency.png"))
    return written


def _short(label: str) -> str:
    return label.replace(" (", "\n(")


def _colors(count: int) -> list[str]:
    palette = ["#7f7f7f", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd"]
    return (palette * (count // len(palette) + 1))[:count]


def _save(plt: Any, figure: Any, path: Path) -> Path:
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
