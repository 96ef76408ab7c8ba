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


def verifier_chart(breakdown: dict[str, dict[str, float]], directory: Path) -> Path:
    """Verifications per second per algorithm, one bar per library (log scale: cached
    verification is orders of magnitude above the rest)."""
    plt = _pyplot()
    directory.mkdir(parents=True, exist_ok=True)
    libraries = {
        "raw": "raw cryptography", "joserfc": "joserfc", "pyjwt": "PyJWT",
        "uncached": "authkestra (uncached)", "cached": "authkestra (cached)",
    }  # fmt: skip
    algs = list(breakdown)
    figure, axis = plt.subplots(figsize=(8, 4.2))
    width = 0.8 / len(libraries)
    for index, (key, label) in enumerate(libraries.items()):
        positions = [i + (index - (len(libraries) - 1) / 2) * width for i in range(len(algs))]
        axis.bar(positions, [breakdown[a][key] for a in algs], width, label=label)
    axis.set_yscale("log")
    axis.set_title("Access-token verifications per second, one thread (log scale)")
    axis.set_xticks(range(len(algs)), algs)
    axis.legend(fontsize=7)
    figure.tight_layout()
    return _save(plt, figure, directory / "verifier_throughput.png")


def table_charts(
    tables: list[tuple[str, list[str], list[list[Any]]]], directory: Path, prefix: str
) -> list[Path]:
    """One chart per printed table: a panel per measured column, a horizontal bar per row
    (labelled by the row's leading text columns), log-scaled where values span decades.
    A cell that is not a number (``2 before + 0 in the burst``) is drawn at 0, with its
    text, rather than dropping its column."""
    plt = _pyplot()
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for number, (title, headers, rows) in enumerate(tables, 1):
        if not rows:
            continue
        measured = [
            i
            for i in range(1, len(headers))
            if sum(_number(r[i]) is not None for r in rows) * 3 >= len(rows) * 2
            and not all(_number(r[i]) == _number(rows[0][i]) for r in rows)  # a constant
        ]
        if not measured:
            continue
        lead = [i for i in range(len(headers)) if i < measured[0]]
        labels = [" / ".join(str(r[i]) for i in lead)[:70] for r in rows]
        figure, axes = plt.subplots(
            1, len(measured), figsize=(5 + 3.2 * len(measured), 0.9 + 0.42 * len(rows)),
            sharey=True, squeeze=False,
        )  # fmt: skip
        for axis, column in zip(axes[0], measured, strict=True):
            values = [_number(r[column]) or 0.0 for r in rows]
            bars = axis.barh(range(len(rows)), values, color=_colors(len(rows)))
            axis.bar_label(bars, labels=[str(r[column]) for r in rows], fontsize=7, padding=2)
            if min(values) > 0 and max(values) / min(values) > 50:
                axis.set_xscale("log")  # decades apart, and no zero to lose
            axis.set_title(headers[column], fontsize=9)
            axis.margins(x=0.25)
        axes[0][0].set_yticks(range(len(rows)), labels, fontsize=7)
        axes[0][0].invert_yaxis()
        figure.suptitle(title, fontsize=10)
        figure.tight_layout()
        written.append(_save(plt, figure, directory / f"{prefix}_{number}.png"))
    return written


def _number(cell: Any) -> float | None:
    """A cell's number (``1,234``, ``56.7 %``, ``0.90x``, ``12 µs``), or None."""
    if isinstance(cell, (int, float)):
        return float(cell)
    text = str(cell).replace(",", "").strip()
    for suffix in (" %", "%", "x", " µs", " ms", " s"):
        text = text.removesuffix(suffix)
    try:
        return float(text)
    except ValueError:
        return None
