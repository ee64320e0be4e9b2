"""Inline SVG charts for the HTML reports: reliability diagram, bar chart, line chart,
confusion-matrix heatmap. Pure string building, escaped text, no scripts."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import TypeGuard

from tunegate.report._html import Html, esc

__all__ = [
    "PALETTE",
    "bar_chart",
    "confusion_heatmap",
    "line_chart",
    "reliability_diagram",
    "tick_indices",
]

PALETTE = ("#0969da", "#cf222e", "#1a7f37", "#9a6700", "#8250df", "#bf3989")
_FONT = 'font-family="system-ui,sans-serif" font-size="11"'
_CHAR_W = 6.5
"""Approximate width in pixels of one character at ``_FONT``'s size (for fitting labels)."""


def tick_indices(n: int, max_labels: int) -> list[int]:
    """Indices of at most ``max_labels`` of ``n`` ordered categories to label on an axis:
    evenly spaced, always the first and the last (all of them when they fit)."""
    if n <= 0:
        return []
    k = max(1, min(n, max_labels))
    if k == 1 or n == 1:
        return [0]
    return sorted({round(i * (n - 1) / (k - 1)) for i in range(k)})


def _fitting_ticks(n: int, max_labels: int, step_px: float, label_px: float) -> list[int]:
    """The most evenly spaced tick indices (at most ``max_labels``, first and last always)
    whose neighbours are at least ``label_px`` apart when points are ``step_px`` apart."""
    for k in range(max(2, min(n, max_labels)), 1, -1):
        idx = tick_indices(n, k)
        if all((b - a) * step_px >= label_px for a, b in itertools.pairwise(idx)):
            return idx
    return tick_indices(n, 1)


def _ok(v: float | None) -> TypeGuard[float]:
    return v is not None and not math.isnan(v)


def _svg(width: int, height: int, body: str, title: str) -> Html:
    return Html(
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{esc(title)}">'
        f"<title>{esc(title)}</title>{body}</svg>"
    )


def _legend(names: Sequence[str], x: float, y: float) -> str:
    out = []
    for i, name in enumerate(names):
        color = PALETTE[i % len(PALETTE)]
        out.append(
            f'<rect x="{x}" y="{y + i * 15}" width="10" height="10" fill="{color}"/>'
            f'<text x="{x + 14}" y="{y + i * 15 + 9}" {_FONT}>{esc(name)}</text>'
        )
    return "".join(out)


def reliability_diagram(
    curves: Mapping[str, tuple[Sequence[float | None], Sequence[float | None], Sequence[int]]],
    *,
    title: str = "Reliability diagram",
    size: int = 280,
) -> Html:
    """Accuracy vs confidence per bin for one or more models.

    ``curves``: name -> (mean confidence per bin, accuracy per bin, count per bin); empty bins
    (``None``/``nan``) are skipped. The diagonal is perfect calibration.
    """
    pad = 36
    inner = size - 2 * pad

    def px(v: float) -> float:
        return pad + v * inner

    def py(v: float) -> float:
        return size - pad - v * inner

    body = [
        f'<rect x="{pad}" y="{pad}" width="{inner}" height="{inner}" fill="#fff" '
        f'stroke="#d0d7de"/>',
        f'<line x1="{px(0)}" y1="{py(0)}" x2="{px(1)}" y2="{py(1)}" stroke="#8c959f" '
        f'stroke-dasharray="4 3"/>',
    ]
    for t in (0.0, 0.5, 1.0):
        body.append(
            f'<text x="{px(t)}" y="{size - pad + 14}" text-anchor="middle" {_FONT}>{t:.1f}</text>'
        )
        body.append(f'<text x="{pad - 4}" y="{py(t) + 4}" text-anchor="end" {_FONT}>{t:.1f}</text>')
    body.append(
        f'<text x="{size / 2}" y="{size - 6}" text-anchor="middle" {_FONT}>confidence</text>'
    )
    body.append(
        f'<text x="10" y="{size / 2}" transform="rotate(-90 10 {size / 2})" '
        f'text-anchor="middle" {_FONT}>accuracy</text>'
    )
    for i, (_name, (conf, acc, count)) in enumerate(curves.items()):
        color = PALETTE[i % len(PALETTE)]
        total = max(1, sum(count))
        pts = [
            (c, a, n)
            for c, a, n in zip(conf, acc, count, strict=True)
            if _ok(c) and _ok(a) and n > 0
        ]
        if pts:
            path = " ".join(f"{px(c):.1f},{py(a):.1f}" for c, a, _ in pts)  # type: ignore[arg-type]
            body.append(
                f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="1.5"/>'
            )
        for c, a, n in pts:
            r = 2 + 6 * math.sqrt(n / total)
            body.append(
                f'<circle cx="{px(c):.1f}" cy="{py(a):.1f}" r="{r:.1f}" '  # type: ignore[arg-type]
                f'fill="{color}" fill-opacity="0.6"><title>{esc(_name)}: conf '
                f"{c:.3f}, acc {a:.3f}, n={n}</title></circle>"
            )
    body.append(_legend(list(curves), pad + 6, pad + 6))
    return _svg(size, size, "".join(body), title)


def bar_chart(
    categories: Sequence[str],
    series: Mapping[str, Sequence[float | None]],
    *,
    title: str = "",
    errors: Mapping[str, Sequence[tuple[float | None, float | None]]] | None = None,
    max_value: float | None = None,
    width: int = 640,
) -> Html:
    """Horizontal grouped bars: one group per category, one bar per series (values >= 0).

    ``errors``: optional (low, high) interval per bar, drawn as a whisker.
    """
    names = list(series)
    bar_h, gap, left, right = 10, 8, 150, 60
    group_h = bar_h * len(names) + gap
    height = 30 + group_h * len(categories) + 15 * len(names)
    values = [v for vs in series.values() for v in vs if _ok(v)]
    highs = [h for es in (errors or {}).values() for _, h in es if _ok(h)]
    top = max_value if max_value is not None else max([*values, *highs, 1e-9])
    scale = (width - left - right) / top
    body = [f'<text x="{left}" y="14" {_FONT} font-weight="600">{esc(title)}</text>']
    for gi, cat in enumerate(categories):
        y0 = 24 + gi * group_h
        body.append(
            f'<text x="{left - 6}" y="{y0 + group_h / 2}" text-anchor="end" {_FONT}>'
            f"{esc(cat)}</text>"
        )
        for si, name in enumerate(names):
            v = series[name][gi]
            y = y0 + si * bar_h
            color = PALETTE[si % len(PALETTE)]
            if not _ok(v):
                body.append(f'<text x="{left + 2}" y="{y + 9}" {_FONT} fill="#8c959f">n/a</text>')
                continue
            w = max(0.0, v * scale)  # type: ignore[operator]
            body.append(
                f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar_h - 1}" '
                f'fill="{color}"><title>{esc(name)} {esc(cat)}: {v:.3f}</title></rect>'
            )
            if errors and name in errors:
                lo, hi = errors[name][gi]
                if _ok(lo) and _ok(hi):
                    body.append(
                        f'<line x1="{left + lo * scale:.1f}" x2="{left + hi * scale:.1f}" '  # type: ignore[operator]
                        f'y1="{y + bar_h / 2}" y2="{y + bar_h / 2}" stroke="#1f2328"/>'
                    )
            body.append(f'<text x="{left + w + 4:.1f}" y="{y + 9}" {_FONT}>{v:.3f}</text>')
    body.append(_legend(names, left, height - 15 * len(names)))
    return _svg(width, height, "".join(body), title or "bar chart")


def line_chart(
    x: Sequence[str],
    series: Mapping[str, Sequence[float | None]],
    *,
    title: str = "",
    threshold: float | None = None,
    percent: bool = False,
    width: int = 640,
    height: int = 240,
    max_ticks: int = 8,
) -> Html:
    """Lines over ordered categories ``x`` (e.g. weeks); ``None``/``nan`` points break a line.

    ``threshold`` draws a dashed horizontal line (inside the value range); ``percent`` labels
    the y axis in percent (values are shares in [0, 1]). At most ``max_ticks`` x labels are
    drawn (fewer when long labels would not fit side by side), evenly spaced, always the first
    and the last, so 52 weekly dates stay readable; every point keeps its label in its tooltip.
    """
    label_w = max((len(label) for label in x), default=1) * _CHAR_W
    # room for half a centred label at either end
    left, right, top, bottom = (
        max(50, math.ceil(label_w / 2) + 4),
        max(20, math.ceil(label_w / 2) + 4),
        24,
        40,
    )
    vals = [v for vs in series.values() for v in vs if _ok(v)]
    if threshold is not None:
        vals.append(threshold)
    lo, hi = (min(vals), max(vals)) if vals else (0.0, 1.0)
    if hi == lo:
        hi = lo + 1.0
    n = max(1, len(x) - 1)

    def px(i: int) -> float:
        return left + i * (width - left - right) / n

    def py(v: float) -> float:
        return height - bottom - (v - lo) / (hi - lo) * (height - top - bottom)

    body = [
        f'<text x="{left}" y="14" {_FONT} font-weight="600">{esc(title)}</text>',
        f'<line x1="{left}" y1="{height - bottom}" x2="{width - right}" '
        f'y2="{height - bottom}" stroke="#8c959f"/>',
    ]
    for v in (lo, hi):
        label = f"{v:.0%}" if percent else f"{v:.3g}"
        body.append(
            f'<text x="{left - 4}" y="{py(v) + 4}" text-anchor="end" {_FONT}>{label}</text>'
        )
    if threshold is not None:
        body.append(
            f'<line x1="{left}" y1="{py(threshold):.1f}" x2="{width - right}" '
            f'y2="{py(threshold):.1f}" stroke="#57606a" stroke-dasharray="4 3">'
            f"<title>threshold {threshold:.4g}</title></line>"
        )
    for i in _fitting_ticks(len(x), max_ticks, (width - left - right) / n, label_w + 12):
        body.append(
            f'<line x1="{px(i):.1f}" y1="{height - bottom}" x2="{px(i):.1f}" '
            f'y2="{height - bottom + 4}" stroke="#8c959f"/>'
            f'<text class="xtick" x="{px(i):.1f}" y="{height - bottom + 16}" '
            f'text-anchor="middle" {_FONT}>{esc(x[i])}</text>'
        )
    for si, (name, vs) in enumerate(series.items()):
        color = PALETTE[si % len(PALETTE)]
        segment: list[str] = []
        for i, point in enumerate(vs):
            if _ok(point):
                segment.append(f"{px(i):.1f},{py(point):.1f}")
                body.append(
                    f'<circle cx="{px(i):.1f}" cy="{py(point):.1f}" r="2.5" fill="{color}">'
                    f"<title>{esc(name)} {esc(x[i])}: {point:.4g}</title></circle>"
                )
            elif segment:
                body.append(
                    f'<polyline points="{" ".join(segment)}" fill="none" '
                    f'stroke="{color}" stroke-width="1.5"/>'
                )
                segment = []
        if segment:
            body.append(
                f'<polyline points="{" ".join(segment)}" fill="none" stroke="{color}" '
                f'stroke-width="1.5"/>'
            )
    body.append(_legend(list(series), width - right - 150, top))
    return _svg(width, height, "".join(body), title or "line chart")


def confusion_heatmap(
    matrix: Sequence[Sequence[int]],
    labels: Sequence[str],
    *,
    title: str = "Confusion matrix",
    cell: int = 26,
) -> Html:
    """Rows = true class, columns = predicted class; shade by share of the row."""
    k = len(labels)
    left, top = 140, 30 + 140
    size_w, size_h = left + k * cell + 10, top + k * cell + 10
    body = [
        f'<text x="4" y="14" {_FONT} font-weight="600">{esc(title)}</text>',
        (f'<text x="4" y="{top - 6}" {_FONT} fill="#57606a">true \u2193 / predicted \u2192</text>'),
    ]
    for j, name in enumerate(labels):
        x = left + j * cell + cell / 2
        body.append(
            f'<text x="{x}" y="{top - 6}" transform="rotate(-60 {x} {top - 6})" '
            f"{_FONT}>{esc(name)}</text>"
        )
    for i, name in enumerate(labels):
        row = matrix[i]
        total = max(1, sum(row))
        y = top + i * cell
        body.append(
            f'<text x="{left - 4}" y="{y + cell / 2 + 4}" text-anchor="end" {_FONT}>'
            f"{esc(name)}</text>"
        )
        for j, count in enumerate(row):
            share = count / total
            color = f"rgba(9,105,218,{share:.3f})" if i == j else f"rgba(207,34,46,{share:.3f})"
            body.append(
                f'<rect x="{left + j * cell}" y="{y}" width="{cell}" height="{cell}" '
                f'fill="{color}" stroke="#eaeef2"><title>true {esc(name)}, predicted '
                f"{esc(labels[j])}: {count}</title></rect>"
            )
            if count and cell >= 18:
                fill = "#fff" if share > 0.6 else "#1f2328"
                body.append(
                    f'<text x="{left + j * cell + cell / 2}" y="{y + cell / 2 + 4}" '
                    f'text-anchor="middle" {_FONT} fill="{fill}">{count}</text>'
                )
    return _svg(size_w, size_h, "".join(body), title)
