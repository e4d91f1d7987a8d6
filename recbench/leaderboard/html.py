"""One self-contained HTML leaderboard page (no external assets: works offline and from a file:// URL).

A navigation bar per dataset and protocol; per dataset, the headline metrics first (published reference
numbers inline, marked), every other metric, cost and provenance on demand (``<details>``); a model
family column and a family filter; a quality-against-cost plot whose points are numbered, placed so that
no two labels overlap, and explained by a legend (rows that train nothing get their own lane). Tables
sort by a click on a header. Narrow screens keep the model and the two headline metrics.
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
    fmt_p,
    mean_std,
    sampled_section,
    sampled_table,
    search_describe,
    search_table,
    short,
    table,
    test_history,
)

HEADLINE = ("recall@10", "ndcg@10", "recall@20", "ndcg@20")
FAMILIES = {  # model name -> family shown and filtered on
    **dict.fromkeys(["pop", "gru4rec", "caser", "sasrec", "bert4rec", "hstu", "sasrec_sid"], "ID"),
    **dict.fromkeys(["itemknn", "ease", "bprmf", "lightgcn", "simgcl", "multvae", "buir", "directau"], "CF"),
    **dict.fromkeys(["tiger", "sid_gpt"], "generative"),
    **dict.fromkeys(["text_zeroshot", "sasrec_text", "unisrec", "alpharec"], "text"),
    **dict.fromkeys(["bm25", "dense", "hybrid"], "search"),
}
COLORS = {"ID": "#3366cc", "CF": "#dc3912", "generative": "#ff9900", "text": "#109618", "search": "#990099",
          "published": "#777777", "other": "#444444"}  # fmt: skip

CSS = """
body{font-family:system-ui,sans-serif;margin:0;color:#222;background:#fff}
nav{position:sticky;top:0;z-index:2;background:#1f2937;padding:0.5rem 1rem;display:flex;flex-wrap:wrap;
  gap:0.25rem 1rem;align-items:center}
nav a{color:#f3f4f6;text-decoration:none;font-size:0.9rem;white-space:nowrap}
nav strong{color:#fff;margin-right:0.5rem}
main{padding:0 1rem 2rem;max-width:1400px;margin:0 auto}
.filters{margin:1rem 0;font-size:0.9rem;display:flex;flex-wrap:wrap;gap:0.25rem 1rem}
.filters label{white-space:nowrap}
.swatch{display:inline-block;width:0.7rem;height:0.7rem;border-radius:50%;margin-right:0.25rem}
section{border-top:1px solid #ddd;padding-top:0.5rem;scroll-margin-top:3rem}
table{border-collapse:collapse;margin:0.5rem 0 1rem;font-size:0.85rem}
th,td{border:1px solid #ddd;padding:0.2rem 0.45rem;text-align:right;white-space:nowrap;vertical-align:top}
th{background:#f3f4f6;cursor:pointer;user-select:none}
td:first-child,th:first-child{text-align:left;white-space:normal;overflow-wrap:anywhere;min-width:8rem;
  max-width:24rem}
td .s{display:block;font-size:0.75em;color:#666}
tr.ref td{font-style:italic;color:#555;background:#fafafa}
th.sorted-asc::after{content:" ▲"} th.sorted-desc::after{content:" ▼"}
.note{color:#555;font-size:0.85rem;max-width:60rem}
details{margin:0.25rem 0 1rem} summary{cursor:pointer;font-weight:600;font-size:0.9rem}
.scroll{overflow-x:auto;max-width:100%}
figure{margin:0.5rem 0 1rem;max-width:720px} svg{width:100%;height:auto} svg text{font-size:11px}
ol.legend{font-size:0.8rem;columns:2 16rem;margin:0.25rem 0;padding-left:1.5rem}
@media (max-width:700px){.wide{display:none} main{padding:0 0.5rem 1rem} table{font-size:0.8rem}
  td:first-child,th:first-child{min-width:7rem;max-width:45vw}}
"""

# Sort by a header click (numbers by value, "0.0412 ± 0.0010" by its mean); hide rows of unticked families.
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
document.querySelectorAll('.filters input').forEach(function(box){
  box.addEventListener('change',function(){
    document.querySelectorAll('[data-family="'+box.value+'"]').forEach(function(el){
      el.style.display=box.checked?'':'none';
    });
  });
});
"""


def family(model_name: str) -> str:
    return FAMILIES.get(model_name, "other")


def cell(text: str) -> str:
    """A table cell; "mean ± std" as the mean with the std on a second, smaller line."""
    if " ± " in text:
        mean, std = text.split(" ± ", 1)
        return f'<td>{html.escape(mean)}<span class="s">± {html.escape(std)}</span></td>'
    return f"<td>{html.escape(text)}</td>"


def html_table(
    header: list[str],
    body: list[list[str]],
    css_class: str = "sortable",
    families: list[str] | None = None,
    wide: set[int] | None = None,
    refs: set[int] | None = None,
) -> str:
    """``families``: one per body row (``data-family``, for the filter); ``wide``: column indices hidden on
    narrow screens; ``refs``: body rows that are published numbers, not recbench rows."""
    wide, refs = wide or set(), refs or set()

    def klass(i: int) -> str:
        return ' class="wide"' if i in wide else ""

    head = "".join(f"<th{klass(i)}>{html.escape(h)}</th>" for i, h in enumerate(header))
    rows = []
    for n, cells in enumerate(body):
        attrs = f' data-family="{html.escape(families[n])}"' if families else ""
        attrs += ' class="ref"' if n in refs else ""
        tds = "".join(cell(c).replace("<td>", f"<td{klass(i)}>", 1) for i, c in enumerate(cells))
        rows.append(f"<tr{attrs}>{tds}</tr>")
    return f'<table class="{css_class}"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def headline_table(groups: list[Group], references: list[dict[str, Any]], masked: bool) -> str:
    """Model, family, seeds, test history, the headline metrics and p; published numbers inline."""
    cols = [c for c in HEADLINE if any(c in m for g in groups for m in g.metrics(masked))]
    header = ["model", "family", "seeds", "test history", *[short(c) for c in cols], f"p ({short(PRIMARY)})"]
    body, families = [], []
    for g in groups:
        ms = g.metrics(masked)
        cells = [g.label, family(g.rows[0].model.name), str(len(g.rows)), test_history(g.rows)]
        cells += [mean_std([m[c] for m in ms if c in m]) for c in cols]
        cells.append("best" if masked not in g.p_value else fmt_p(g.p_value[masked]))
        body.append(cells)
        families.append(cells[1])
    refs = set()
    for ref in references:
        if "mask_history" in ref and bool(ref["mask_history"]) != masked:
            continue
        stated = ("history masked" if masked else "history not masked") if "mask_history" in ref else (
            "masking not stated")  # fmt: skip
        m = ref.get("metrics", {})
        refs.add(len(body))
        body.append([f"{ref['model']} — {ref['source']}", "published", "–", stated,
                     *[f"{m[c]:.4f}" if c in m else "–" for c in cols], "–"])  # fmt: skip
        families.append("published")
    wide = {1, 2, 3, *(4 + i for i, c in enumerate(cols) if c.endswith("@20")), len(header) - 1}
    return html_table(header, body, families=families, wide=wide, refs=refs)


def place_labels(
    points: list[tuple[float, float]], width: float, height: float
) -> list[tuple[float, float, str, bool]]:
    """For each point, where its number goes (x, y, text-anchor, leader): the first of a few spots around
    it whose box overlaps no label placed before and no point, inside the plot; in a crowd, the nearest
    free spot further out on a spiral, joined to its point by a leader line (``leader`` true). Only when
    the whole plot is full does a number sit on its point."""
    boxes: list[tuple[float, float, float, float]] = [(x - 5, y - 5, x + 5, y + 5) for x, y in points]
    spots = [(7, -5, "start"), (7, 12, "start"), (-7, -5, "end"), (-7, 12, "end"), (0, -9, "middle"),
             (0, 19, "middle"), (14, 3, "start"), (-14, 3, "end")]  # fmt: skip
    near = [(dx * (1 + ring), dy * (1 + ring * 0.8), anchor) for ring in range(2) for dx, dy, anchor in spots]
    far = [(r * 6 * math.cos(a * math.pi / 8), r * 6 * math.sin(a * math.pi / 8), "middle")
           for r in range(3, 60) for a in range(16)]  # fmt: skip
    placed = []
    for i, (x, y) in enumerate(points):
        w = 7.0 * len(str(i + 1)) + 2
        choice = None
        for k, (dx, dy, anchor) in enumerate(near + far):
            tx, ty = x + dx, y + dy
            left = tx if anchor == "start" else tx - w if anchor == "end" else tx - w / 2
            box = (left - 1, ty - 11, left + w + 1, ty + 3)  # a pixel of margin all round
            inside = box[0] >= 0 and box[2] <= width and box[1] >= 0 and box[3] <= height
            if inside and not any(_overlap(box, b) for b in boxes):
                choice = (tx, ty, anchor, k >= len(near), box)
                break
        if choice is None:  # the plot is full: on the point itself, drawn last
            choice = (x, y + 4, "middle", False, (x - w / 2, y - 6, x + w / 2, y + 4))
        boxes.append(choice[4])
        placed.append(choice[:4])
    return placed


def _overlap(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def scatter(points: list[tuple[str, str, float, float]], x_label: str, y_label: str) -> str:
    """``points``: (name, family, cost seconds, quality). Log cost axis; cost 0 (nothing trained or timed)
    goes to its own lane at the left. Numbered points and a legend."""
    points = [p for p in points if math.isfinite(p[3])]
    if not points:
        return ""
    points.sort(key=lambda p: (-p[3], p[0]))
    width, height, left, right, top, bottom = 680, 340, 72, 20, 16, 46
    lane = 48  # the "no training" lane
    timed = [math.log10(p[2]) for p in points if p[2] > 0]
    x0, x1 = (min(timed) - 0.2, max(timed) + 0.2) if timed else (0.0, 1.0)
    if x1 - x0 < 1:
        x0, x1 = x0 - 0.5, x1 + 0.5
    y1 = max(p[3] for p in points) * 1.15 or 1.0
    plot_left = left + (lane if any(p[2] <= 0 for p in points) else 0)

    def px(seconds: float) -> float:
        if seconds <= 0:
            return left + lane / 2
        return plot_left + (math.log10(seconds) - x0) / (x1 - x0) * (width - right - plot_left)

    def py(y: float) -> float:
        return height - bottom - y / y1 * (height - top - bottom)

    xy = [(px(p[2]), py(p[3])) for p in points]
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{html.escape(y_label)} against {html.escape(x_label)}">',
        f'<line x1="{left}" y1="{height - bottom}" x2="{width - right}" y2="{height - bottom}" '
        'stroke="#444"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{height - bottom}" stroke="#444"/>',
        f'<text x="{(plot_left + width - right) / 2:.0f}" y="{height - 8}" text-anchor="middle">'
        f"{html.escape(x_label)}</text>",
        f'<text x="14" y="{(top + height - bottom) / 2:.0f}" transform="rotate(-90 14 '
        f'{(top + height - bottom) / 2:.0f})" text-anchor="middle">{html.escape(y_label)}</text>',
    ]
    if plot_left > left:
        parts.append(f'<line x1="{plot_left - 4}" y1="{top}" x2="{plot_left - 4}" y2="{height - bottom}" '
                     'stroke="#bbb" stroke-dasharray="3,3"/>')  # fmt: skip
        parts.append(
            f'<text x="{left + lane / 2}" y="{height - bottom + 15}" text-anchor="middle">none</text>'
        )
    for tick in range(math.ceil(x0), math.floor(x1) + 1):
        parts.append(f'<text x="{px(10.0**tick):.1f}" y="{height - bottom + 15}" text-anchor="middle">'
                     f"{10**tick:g}</text>")  # fmt: skip
    for i in range(5):
        y = y1 * i / 4
        parts.append(f'<text x="{left - 6}" y="{py(y) + 4:.1f}" text-anchor="end">{y:.3f}</text>')
    for (name, fam, _, _), (x, y) in zip(points, xy, strict=True):
        color = COLORS.get(fam, COLORS["other"])
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4.5" fill="{color}" data-family="{fam}">'
                     f"<title>{html.escape(name)}</title></circle>")  # fmt: skip
    for i, (tx, ty, anchor, leader) in enumerate(place_labels(xy, width, height)):
        if leader:  # a number moved out of a crowd points back at its dot
            x, y = xy[i]
            parts.append(f'<line x1="{x:.1f}" y1="{y:.1f}" x2="{tx:.1f}" y2="{ty - 4:.1f}" stroke="#999" '
                         'stroke-width="0.7"/>')  # fmt: skip
        parts.append(f'<text class="label" x="{tx:.1f}" y="{ty:.1f}" text-anchor="{anchor}">{i + 1}</text>')
    parts.append("</svg>")
    legend = "".join(
        f'<li data-family="{fam}"><span class="swatch" style="background:{COLORS.get(fam, COLORS["other"])}">'
        f"</span>{html.escape(name)} ({value:.4f})</li>"
        for name, fam, _, value in points
    )
    return f'<figure>{"".join(parts)}<ol class="legend">{legend}</ol></figure>'


def section_nav(pages: list[tuple[str, str, list[Group], list[dict[str, Any]]]]) -> str:
    links = "".join(
        f'<a href="#{html.escape(b)}-{html.escape(d)}">{html.escape(d)}'
        f"{'' if b == 'seqrec-loo-full' else f' ({html.escape(b)})'}</a>"
        for b, d, _, _ in pages
    )
    return f"<nav><strong>recbench leaderboards</strong>{links}</nav>"


def family_filter(pages: list[tuple[str, str, list[Group], list[dict[str, Any]]]]) -> str:
    present = {family(r.model.name) for _, _, groups, _ in pages for g in groups for r in g.rows}
    if any(refs for *_, refs in pages):
        present.add("published")
    boxes = "".join(
        f'<label><input type="checkbox" value="{f}" checked><span class="swatch" '
        f'style="background:{COLORS[f]}"></span>{f}</label>'
        for f in COLORS
        if f in present
    )
    return f'<div class="filters"><span>Model family:</span>{boxes}</div>'


def next_item_section(
    benchmark: str, dataset: str, groups: list[Group], references: list[dict[str, Any]]
) -> str:
    cols = columns([r for g in groups for r in g.rows])
    points = [
        (g.label, family(g.rows[0].model.name),
         sum(r.cost.train_seconds_to_best for r in g.rows) / len(g.rows), g.mean(PRIMARY))
        for g in groups
    ]  # fmt: skip
    parts = [
        f'<section id="{html.escape(benchmark)}-{html.escape(dataset)}">',
        f"<h2>{html.escape(dataset)} <small>({html.escape(benchmark)})</small></h2>",
        f'<p class="note">{html.escape(describe(groups[0].rows[0]))}</p>',
        "<h3>History not masked (headline protocol)</h3>",
        headline_table(groups, references, masked=False),
        "<details><summary>History items masked from the ranking</summary>",
        headline_table(groups, references, masked=True),
        "</details>",
        "<details><summary>Every metric, cost and provenance (history not masked)</summary>",
        f'<div class="scroll">{html_table(*table(groups, cols, masked=False))}</div>',
        "</details>",
        "<details><summary>Every metric, cost and provenance (history masked)</summary>",
        f'<div class="scroll">{html_table(*table(groups, cols, masked=True))}</div>',
        "</details>",
        f"<h3>Quality against training cost ({html.escape(short(PRIMARY))})</h3>",
        scatter(points, "training seconds to the selected epoch (log scale)", f"test {PRIMARY}"),
    ]
    if agreements := sampled_section(groups):
        parts += [
            "<details><summary>Sampled metrics (diagnostic)</summary>",
            f'<p class="note">{html.escape(SAMPLED_NOTE)}</p>',
        ]
        if max(len(a.entries) for a in agreements) < 2:
            parts.append('<p class="note">Fewer than 2 groups have sampled metrics: no order to compare.</p>')
        else:
            parts += [
                f'<div class="scroll">{html_table(*agreement_table(agreements), css_class="sampled")}</div>',
                f'<div class="scroll">{html_table(*sampled_table(agreements))}</div>',
            ]
        parts.append("</details>")
    parts.append("</section>")
    return "\n".join(parts)


def search_section(benchmark: str, dataset: str, groups: list[Group]) -> str:
    points = [
        (g.label, family(g.rows[0].model.name),
         sum(r.search.query_seconds for r in g.rows if r.search) / len(g.rows),
         sum(r.metrics["test"].get("ndcg@10", math.nan) for r in g.rows) / len(g.rows))
        for g in groups
    ]  # fmt: skip
    families = [family(g.rows[0].model.name) for g in groups]
    header, body = search_table(groups)
    wide = {i for i, h in enumerate(header) if h not in ("model", "N@10", "R@10")}
    return (
        f'<section id="{html.escape(benchmark)}-{html.escape(dataset)}">'
        f"<h2>{html.escape(dataset)} <small>({html.escape(benchmark)})</small></h2>"
        f'<p class="note">{html.escape(search_describe(groups[0].rows[0]))}</p>'
        f'<div class="scroll">{html_table(header, body, families=families, wide=wide)}</div>'
        "<h3>Quality against query time (ndcg@10)</h3>"
        f"{scatter(points, 'seconds to rank every query (log scale)', 'test ndcg@10')}</section>"
    )


def encoder_section(table: tuple[list[str], list[list[str]], list[str]]) -> str:
    header, body, notes = table
    body = [[c.replace("**", "") for c in line] for line in body]  # markdown's bold: the page sorts instead
    short = {"amazon_": "", "esci_us_150 ": "ESCI ", "encoder params": "params"}
    for old, new in short.items():  # compact headers: the page is read on phones too
        header = [h.replace(old, new) for h in header]
    # on a narrow screen: the encoder, its PCA width and the first N@10
    first_n10 = next((i for i, h in enumerate(header) if "N@10" in h), -1)
    wide = {i for i in range(len(header)) if i > 1 and i != first_n10}
    note = (
        "Zero-shot recommendation (test, history not masked) and dense search (ESCI 150 queries, exact "
        "index) per text encoder and PCA width; nothing is trained."
    )
    extra = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    return (
        '<section id="text-encoders"><h2>Text encoders</h2>'
        f'<p class="note">{html.escape(note)}</p>'
        f'<div class="scroll">{html_table(header, body, wide=wide)}</div>'
        + (f"<ul>{extra}</ul>" if extra else "")
        + "</section>"
    )


def models_section(table: tuple[list[str], list[list[str]]]) -> str:
    """Every model on every next-item board (``leaderboard/models.py``), history not masked."""
    header, body = table
    body = [[c.replace("**", "") for c in line] for line in body]  # markdown's bold: the page sorts instead
    # compact headers (the note says the metric): the page is read on phones too
    header = [
        h.replace("amazon_", "").replace(" N@10", "").replace("mean share of the best", "share")
        for h in header
    ]
    families = [line[1] for line in body]
    wide = set(range(1, len(header) - 1)) - {2}  # on a narrow screen: the model, the first board, share
    note = (
        "Per model and next-item board, the setting with the most seeds and then the best validation "
        "N@10 (never test): its test N@10, history not masked; † scored from a user embedding fitted "
        "without the validation item. Share: the cell over the board's best, averaged over the boards the "
        "model is on. models.md lists the row behind every cell chosen among several settings."
    )
    return (
        '<section id="models"><h2>Every model on every board</h2>'
        f'<p class="note">{html.escape(note)}</p>'
        f'<div class="scroll">{html_table(header, body, families=families, wide=wide)}</div>'
        "</section>"
    )


def render_html(
    pages: list[tuple[str, str, list[Group], list[dict[str, Any]]]],
    encoders: tuple[list[str], list[list[str]], list[str]] | None = None,
    models: tuple[list[str], list[list[str]]] | None = None,
) -> str:
    # recommendation boards first, then search, then the text-encoder table
    pages = sorted(pages, key=lambda p: (p[2][0].rows[0].search is not None, p[0], p[1]))
    sections = [
        search_section(b, d, groups) if groups[0].rows[0].search is not None
        else next_item_section(b, d, groups, refs)
        for b, d, groups, refs in pages
    ]  # fmt: skip
    nav = section_nav(pages)
    if models is not None:  # the overview first
        sections.insert(0, models_section(models))
        nav = nav.replace("</strong>", '</strong><a href="#models">every model</a>', 1)
    if encoders is not None:
        sections.append(encoder_section(encoders))
        nav = nav.replace("</nav>", '<a href="#text-encoders">text encoders</a></nav>')
    return (
        "<!DOCTYPE html>\n<!-- generated by `python -m recbench.leaderboard build`; do not edit -->\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>recbench leaderboards</title><style>{CSS}</style></head><body>\n"
        f"{nav}\n<main>{family_filter(pages)}\n"
        + "\n".join(sections)
        + f"\n</main><script>{JS}</script></body></html>\n"
    )
