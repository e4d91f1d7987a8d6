"""One self-contained HTML leaderboard page: sortable tables and a quality-vs-cost plot per dataset.

No external assets (works offline and from a file:// URL); the plot is inline SVG drawn here.
"""

from __future__ import annotations

import html
import math
from typing import Any

from recbench.leaderboard.build import (
    PRIMARY,
    SAMPLED_NOTE,
    Group,
    agreement_table,
    columns,
    describe,
    reference_table,
    sampled_section,
    sampled_table,
    search_describe,
    search_table,
    short,
    table,
)

CSS = """
body{font-family:system-ui,sans-serif;margin:2rem;max-width:1400px;color:#222}
table{border-collapse:collapse;margin:0.5rem 0 1.5rem;font-size:0.85rem}
th,td{border:1px solid #ccc;padding:0.25rem 0.5rem;text-align:right}
th{background:#f3f3f3;cursor:pointer;user-select:none}
td:first-child,th:first-child{text-align:left}
th.sorted-asc::after{content:" ▲"} th.sorted-desc::after{content:" ▼"}
.note{color:#555;font-size:0.85rem;max-width:900px}
svg text{font-size:11px}
"""

# Click a header to sort by that column (numbers by value, "0.0412 ± 0.0010" by its mean).
JS = """
function cellValue(td){
  const t=td.textContent.trim();const n=parseFloat(t.replace(/,/g,''));return isNaN(n)?t:n;
}
document.querySelectorAll('table.sortable').forEach(function(table){
  table.querySelectorAll('th').forEach(function(th,i){
    th.addEventListener('click',function(){
      const body=table.tBodies[0];const rows=Array.from(body.rows);
      const asc=!th.classList.contains('sorted-asc');
      table.querySelectorAll('th').forEach(h=>h.classList.remove('sorted-asc','sorted-desc'));
      th.classList.add(asc?'sorted-asc':'sorted-desc');
      rows.sort(function(a,b){const x=cellValue(a.cells[i]),y=cellValue(b.cells[i]);
        return (x>y?1:x<y?-1:0)*(asc?1:-1);});
      rows.forEach(r=>body.appendChild(r));
    });
  });
});
"""


def html_table(header: list[str], body: list[list[str]], css_class: str = "sortable") -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>" for cells in body)
    return f'<table class="{css_class}"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'


def scatter(groups: list[Group], width: int = 560, height: int = 320) -> str:
    """Test PRIMARY (history not masked) against training seconds to the selected epoch (log scale)."""
    points = [
        (g.label, sum(r.cost.train_seconds_to_best for r in g.rows) / len(g.rows), g.mean(PRIMARY))
        for g in groups
        if math.isfinite(g.mean(PRIMARY))
    ]
    if not points:
        return ""
    pad = 50
    xs = [math.log10(max(p[1], 1e-3)) for p in points]
    ys = [p[2] for p in points]
    x0, x1 = min(xs) - 0.3, max(xs) + 0.3
    y0, y1 = 0.0, max(ys) * 1.2 or 1.0

    def px(x: float) -> float:
        return pad + (x - x0) / (x1 - x0) * (width - 2 * pad)

    def py(y: float) -> float:
        return height - pad - (y - y0) / (y1 - y0) * (height - 2 * pad)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        f'aria-label="test {PRIMARY} against training seconds">',
        f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="#444"/>',
        f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{height - pad}" stroke="#444"/>',
        f'<text x="{width / 2}" y="{height - 12}" text-anchor="middle">training seconds to the selected '
        "epoch (log scale)</text>",
        f'<text x="14" y="{height / 2}" transform="rotate(-90 14 {height / 2})" text-anchor="middle">'
        f"test {html.escape(PRIMARY)}</text>",
    ]
    for tick in range(math.ceil(x0), math.floor(x1) + 1):
        parts.append(
            f'<text x="{px(tick):.1f}" y="{height - pad + 15}" text-anchor="middle">{10**tick:g}</text>'
        )
    for i in range(5):
        y = y0 + (y1 - y0) * i / 4
        parts.append(f'<text x="{pad - 5}" y="{py(y) + 4:.1f}" text-anchor="end">{y:.3f}</text>')
    for (label, _, y), x in zip(points, xs, strict=True):
        parts.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="5" fill="#3366cc"/>')
        parts.append(f'<text x="{px(x) + 8:.1f}" y="{py(y) - 6:.1f}">{html.escape(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def render_html(pages: list[tuple[str, str, list[Group], list[dict[str, Any]]]]) -> str:
    sections = []
    for benchmark, dataset, groups, references in pages:
        if groups[0].rows[0].search is not None:
            sections.append(
                f'<section id="{html.escape(benchmark)}-{html.escape(dataset)}">'
                f"<h2>{html.escape(dataset)} <small>({html.escape(benchmark)})</small></h2>"
                f'<p class="note">{html.escape(search_describe(groups[0].rows[0]))}</p>'
                f"{html_table(*search_table(groups))}</section>"
            )
            continue
        cols = columns([r for g in groups for r in g.rows])
        parts = [
            f'<section id="{html.escape(benchmark)}-{html.escape(dataset)}">',
            f"<h2>{html.escape(dataset)} <small>({html.escape(benchmark)})</small></h2>",
            f'<p class="note">{html.escape(describe(groups[0].rows[0]))}</p>',
            "<h3>History not masked (headline protocol)</h3>",
            html_table(*table(groups, cols, masked=False)),
            "<h3>History items masked from the ranking</h3>",
            html_table(*table(groups, cols, masked=True)),
            f"<h3>Quality against training cost ({html.escape(short(PRIMARY))})</h3>",
            scatter(groups),
        ]
        if agreements := sampled_section(groups):
            parts += [
                "<h3>Sampled metrics (diagnostic)</h3>",
                f'<p class="note">{html.escape(SAMPLED_NOTE)}</p>',
            ]
            if max(len(a.entries) for a in agreements) < 2:
                parts.append(
                    '<p class="note">Fewer than 2 groups have sampled metrics: no order to compare.</p>'
                )
            else:
                parts += [
                    html_table(*agreement_table(agreements), css_class="sampled"),
                    html_table(*sampled_table(agreements)),
                ]
        if references:
            parts += [
                "<h3>Published reference numbers (not produced by recbench)</h3>",
                html_table(*reference_table(references, cols), css_class="references"),
            ]
        parts.append("</section>")
        sections.append("\n".join(parts))
    return (
        "<!DOCTYPE html>\n<!-- generated by `python -m recbench.leaderboard build`; do not edit -->\n"
        '<html lang="en"><head><meta charset="utf-8"><title>recbench leaderboards</title>'
        f"<style>{CSS}</style></head><body><h1>recbench leaderboards</h1>\n"
        + "\n".join(sections)
        + f"\n<script>{JS}</script></body></html>\n"
    )
