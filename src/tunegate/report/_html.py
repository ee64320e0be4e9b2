"""A tiny toolkit for self-contained HTML reports: no scripts, no network, inline SVG.

Every piece of text goes through :func:`esc` (markupsafe's escaping); only the toolkit's own
markup is trusted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import markupsafe

__all__ = [
    "REPORT_BUDGET_BYTES",
    "Html",
    "Section",
    "badge",
    "esc",
    "fit_budget",
    "page",
    "table",
]

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;
max-width:1100px;color:#1f2328;line-height:1.45;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.2rem;margin-top:2rem;
border-bottom:1px solid #d0d7de;padding-bottom:.3rem}
.sub{color:#57606a;margin-top:0}
table{border-collapse:collapse;margin:.6rem 0;font-size:.9rem}
th,td{border:1px solid #d0d7de;padding:.25rem .55rem;text-align:right}
th{background:#f6f8fa}td:first-child,th:first-child,td.txt{text-align:left}
caption{caption-side:top;text-align:left;color:#57606a;padding-bottom:.3rem}
.badge{display:inline-block;border-radius:1rem;padding:.1rem .7rem;font-weight:600;color:#fff;
background:#57606a}
.pass{background:#1a7f37}.fail{background:#cf222e}.inconclusive{background:#9a6700}
.figs{display:flex;flex-wrap:wrap;gap:1.5rem}figure{margin:0}
figcaption{font-size:.85rem;color:#57606a}
.status{padding:.5rem .7rem;border-radius:6px;background:#ddf4ff}.status.bad{background:#ffebe9}
.fired{color:#cf222e;font-weight:600}
.banner{border:1px solid #d0d7de;border-left:6px solid #57606a;border-radius:6px;
padding:.2rem 1rem;background:#f6f8fa}
.banner.pass{border-left-color:#1a7f37;background:#dafbe1}
.banner.fail{border-left-color:#cf222e;background:#ffebe9}
.banner.inconclusive{border-left-color:#9a6700;background:#fff8c5}
.banner .headline{font-size:1.15rem;margin:.5rem 0}
"""


class Html(str):
    """Markup that is already safe (produced by this toolkit).

    A plain ``str`` subclass (concatenating it with a ``str`` does not escape anything), which
    markupsafe recognises as safe through ``__html__``.
    """

    __slots__ = ()

    def __html__(self) -> str:
        return str(self)


def esc(value: object) -> Html:
    """Escape any value for HTML text or attribute context (safe markup is kept as is)."""
    return Html(markupsafe.escape(value))


@dataclass(frozen=True)
class Section:
    """A titled block of a page; ``body`` is trusted markup (build it from this toolkit)."""

    title: str
    body: Html
    anchor: str = ""


def badge(outcome: str) -> Html:
    """A coloured pass / fail / inconclusive badge (grey for any other word)."""
    cls = outcome if outcome in ("pass", "fail", "inconclusive") else ""
    return Html(f'<span class="badge {cls}">{esc(outcome.upper())}</span>')


def _cell(value: object) -> str:
    # prose (a sentence, a text excerpt) reads left-aligned; numbers and short codes right
    prose = isinstance(value, str) and not isinstance(value, Html) and len(value) > 30
    return f'<td class="txt">{esc(value)}</td>' if prose else f"<td>{esc(value)}</td>"


def table(
    headers: Sequence[object], rows: Sequence[Sequence[object]], *, caption: str = ""
) -> Html:
    """An HTML table; cells that are :class:`Html` are kept, everything else escaped."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(_cell(c) for c in row) + "</tr>" for row in rows)
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    return Html(f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")


REPORT_BUDGET_BYTES = 1_000_000
"""The size budget of one HTML report (UTF-8 bytes). Reports are built to stay far below it
(top confusions instead of a matrix above 30 classes, the worst classes only in per-class
charts); :func:`page` enforces it as a backstop by leaving out the largest sections, with a
note, so no report grows to the megabytes a 150-class matrix once took."""


def _section_html(s: Section) -> str:
    anchor = f' id="{esc(s.anchor)}"' if s.anchor else ""
    return f"<section{anchor}><h2>{esc(s.title)}</h2>{s.body}</section>"


def fit_budget(sections: Sequence[Section], budget: int) -> list[Section]:
    """``sections`` with the largest ones (never the first: the summary or verdict) replaced
    by a one-line note until their HTML fits in ``budget`` UTF-8 bytes."""
    out = list(sections)
    sizes = [len(_section_html(s).encode()) for s in out]
    left_out: set[int] = set()
    while sum(sizes) > budget:
        candidates = [i for i in range(1, len(out)) if i not in left_out]
        if not candidates:
            break
        i = max(candidates, key=lambda k: sizes[k])
        note = Html(
            f'<p class="omitted">Left out to keep the report under its size budget of '
            f"{budget / 1000:,.0f} kB (this section: {sizes[i] / 1000:,.0f} kB).</p>"
        )
        out[i] = Section(out[i].title, note, out[i].anchor)
        sizes[i] = len(_section_html(out[i]).encode())
        left_out.add(i)
    return out


def page(
    title: str,
    sections: Sequence[Section],
    *,
    subtitle: str = "",
    budget: int = REPORT_BUDGET_BYTES,
) -> str:
    """A complete standalone HTML document (inline CSS, no scripts, no external resources),
    at most ``budget`` bytes when its first section fits (:func:`fit_budget`)."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
    ]
    if subtitle:
        parts.append(f'<p class="sub">{esc(subtitle)}</p>')
    frame = len("\n".join([*parts, "</body></html>"]).encode()) + len(sections) + 1
    parts.extend(_section_html(s) for s in fit_budget(sections, budget - frame))
    parts.append("</body></html>")
    return "\n".join(parts)
