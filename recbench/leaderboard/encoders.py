"""The text-encoder table: the question of "Do We Really Need Specialization? Evaluating Generalist Text
Embeddings for Zero-Shot Recommendation and Search" (RecSys 2025), asked of our data. One line per
(encoder, PCA width); beside it, the zero-shot recommender's test metrics on each recommendation dataset
and dense search's on each ESCI task. Generated from the rows like every other table.

A row enters when its model is the zero-shot text recommender or the dense ranker with an exact index
(approximate indexes answer another question: the Beauty and ESCI boards show them). Where rows of one
(encoder, PCA, dataset) differ in another setting (template, recency decay), the cell shows the setting
with the best validation N@10 (recommendation) or the most common one across the column (search, which
has no validation split), and says how many settings it left out.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

from recbench.results.schema import ResultRow

# model name -> the config part holding the encoder and its settings
TEXT_MODELS = {"text_zeroshot": "net", "dense": "ranker"}
SETTINGS = ("template", "query_template", "decay", "max_len")  # what else a cell's rows may differ in
# (benchmark, metrics shown); recommendation benchmarks show N@10 and R@10
METRICS = {
    "esci-rerank": ("ndcg", "ndcg@10"),
    "esci-retrieve": ("recall@100", "ndcg@10"),
}
DEFAULT_METRICS = ("ndcg@10", "recall@10")
SHORT = {"ndcg": "nDCG", "ndcg@10": "N@10", "recall@10": "R@10", "recall@100": "R@100"}


@dataclass(frozen=True)
class TextSetting:
    encoder: str
    pca_dim: int | None
    other: str  # the remaining SETTINGS, as sorted JSON


def text_setting(row: ResultRow) -> TextSetting | None:
    """The encoder setting of a text row, or None for every other row."""
    model = row.config.get("model") or {}
    part = model.get(TEXT_MODELS.get(str(model.get("name")), ""), None)
    if not isinstance(part, dict) or "encoder" not in part:
        return None
    if (part.get("index") or {}).get("kind", "flat") != "flat":
        return None
    other = json.dumps({k: part[k] for k in SETTINGS if k in part}, sort_keys=True)
    pca = part.get("pca_dim")
    return TextSetting(str(part["encoder"]), int(pca) if pca else None, other)


def _order(encoder: str) -> tuple[int, str]:
    from recbench.embeddings.encoders import registry

    names = [s.name for s in registry().values()]
    shipped = ["all-MiniLM-L6-v2", "all-mpnet-base-v2", "multilingual-e5-small-q4"]
    known = [n for n in shipped if n in names] + sorted(set(names) - set(shipped))
    return (known.index(encoder), encoder) if encoder in known else (len(known), encoder)


def encoder_table(rows: list[ResultRow]) -> tuple[list[str], list[list[str]], list[str]] | None:
    """(header, body, notes), or None when no text row exists."""
    cells: dict[tuple[str, int | None], dict[tuple[str, str], dict[str, list[ResultRow]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(list))
    )
    columns: set[tuple[str, str]] = set()
    params: dict[str, int] = {}
    for r in rows:
        s = text_setting(r)
        if s is None:
            continue
        column = (r.benchmark.name, r.dataset.name)
        columns.add(column)
        cells[(s.encoder, s.pca_dim)][column][s.other].append(r)
        if r.search is not None:  # search rows count the frozen encoder's parameters
            params[s.encoder] = max(params.get(s.encoder, 0), r.model.n_params)
    if not cells:
        return None
    ordered = sorted(columns, key=lambda c: (c[0].startswith("esci"), c))
    common = {c: Counter(o for v in cells.values() for o in v.get(c, {})).most_common() for c in ordered}
    header = ["encoder", "PCA", "encoder params"]
    for bench, data in ordered:
        where = data if not bench.startswith("esci") else f"{data} {bench.removeprefix('esci-')}"
        header += [f"{where} {SHORT.get(m, m)}" for m in METRICS.get(bench, DEFAULT_METRICS)]
    body, notes = [], []
    values: list[list[float | None]] = []
    for (encoder, pca), by_column in sorted(
        cells.items(), key=lambda kv: (_order(kv[0][0]), kv[0][1] is not None, -(kv[0][1] or 0))
    ):
        line = [encoder, str(pca) if pca else "–", f"{params[encoder]:,}" if encoder in params else "–"]
        numbers: list[float | None] = []
        for column in ordered:
            settings = by_column.get(column, {})
            chosen = _choose(settings, [o for o, _ in common[column]])
            if len(settings) > 1:
                notes.append(
                    f"{encoder}, PCA {pca or '–'}, {column[1]} ({column[0]}): {len(settings) - 1} other "
                    f"setting(s) left out; shown: {chosen[0]}"
                )
            for m in METRICS.get(column[0], DEFAULT_METRICS):
                got = [r.metrics["test"][m] for r in chosen[1] if m in r.metrics["test"]]
                numbers.append(statistics.fmean(got) if got else None)
        values.append(numbers)
        body.append(line)
    for j in range(len(values[0])):
        present = [x for v in values if (x := v[j]) is not None]
        best = max(present) if present else None
        for i, v in enumerate(values):
            x = v[j]
            body[i].append("–" if x is None else (f"**{x:.4f}**" if x == best else f"{x:.4f}"))
    return header, body, notes


def _choose(settings: dict[str, list[ResultRow]], common: list[str]) -> tuple[str, list[ResultRow]]:
    if not settings:
        return "", []
    val = {o: [r.metrics.get("val", {}).get("ndcg@10") for r in rs] for o, rs in settings.items()}
    if all(v and None not in v for v in val.values()):
        best = max(settings, key=lambda o: statistics.fmean(x for x in val[o] if x is not None))
    else:
        best = min(settings, key=lambda o: common.index(o) if o in common else len(common))
    return best, settings[best]


def encoder_markdown(rows: list[ResultRow], markdown: Any) -> str | None:
    table = encoder_table(rows)
    if table is None:
        return None
    header, body, notes = table
    lines = [
        "# Text encoders — zero-shot recommendation and search",
        "",
        "<!-- generated by `python -m recbench.leaderboard build`; do not edit: edit result rows instead -->",
        "",
        'The question of "Do We Really Need Specialization? Evaluating Generalist Text Embeddings for '
        'Zero-Shot Recommendation and Search" (RecSys 2025) on our data: one line per text encoder and PCA '
        "width (PCA fitted on the catalogue's own embeddings, never on queries or test targets). "
        "Recommendation: the zero-shot recommender (user = recency-weighted mean of the history's item "
        "embeddings; leave-one-out, full ranking, history not masked; the cells `make repro-text` fills use "
        "recency decay 0.05 for every encoder, chosen on Beauty's validation with MiniLM), test metrics. "
        "Search: the dense "
        "bi-encoder on the ESCI 150-query set (a non-random subset), exact index. Nothing is trained; "
        "bold: the best of a column. Each cell's row, with the command that made it, is on that dataset's "
        "board. `make repro-text` reruns the table.",
        "",
        *markdown(header, body),
        "",
    ]
    if notes:
        lines += ["Cells chosen among several settings:", "", *[f"- {n}" for n in notes], ""]
    return "\n".join(lines)
