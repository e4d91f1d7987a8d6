"""Dataset cards from the command line.

    python -m recbench.data stats data=ml_1m            # a human-readable card
    python -m recbench.data stats data=ml_1m --json     # the same as JSON
    python -m recbench.data stats data=amazon_toys paths.data_dir=/elsewhere
    python -m recbench.data stats data=esci_us_150      # search datasets: queries, products, labels
    python -m recbench.data fetch data=amazon_beauty    # download what is absent (checksum-verified), build

Takes the same Hydra overrides as ``recbench.run``; loads the dataset through its cache (so the first
call preprocesses and checks the published statistics, later calls are instant).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np
from hydra import compose, initialize_config_dir

from recbench.data.dataset import SequenceDataset, text_coverage
from recbench.data.esci import LABELS, SearchDataset
from recbench.utils.entry import user_errors
from recbench.utils.instantiate import instantiate

CONF_DIR = str(Path(__file__).resolve().parents[2] / "conf")


# meta keys a card shows when the dataset has them
_META = ("source", "preprocessing_version", "cache_key", "source_sha256", "log", "official_split")


def card(ds: SequenceDataset | SearchDataset) -> dict[str, Any]:
    if isinstance(ds, SearchDataset):
        return search_card(ds)
    stats = ds.stats()
    out: dict[str, Any] = {"name": ds.name, **stats, "fingerprint": ds.fingerprint()}
    if ds.timestamps is not None and len(ds.timestamps):
        out["time_range"] = [int(ds.timestamps.min()), int(ds.timestamps.max())]
    return {**out, **{k: ds.meta[k] for k in _META if k in ds.meta}}


def search_card(ds: SearchDataset) -> dict[str, Any]:
    judged = np.diff(ds.offsets)
    fields = [c for c in ds.product_text.columns if (ds.product_text[c].astype(str).str.len() > 0).any()]
    out: dict[str, Any] = {
        "name": ds.name,
        "task": "product search",
        **ds.stats(),
        "judgements_per_query": {
            "mean": float(judged.mean()) if len(judged) else 0.0,
            "min": int(judged.min()) if len(judged) else 0,
            "max": int(judged.max()) if len(judged) else 0,
        },
        "judged_products": len(np.unique(ds.judged_products)),
        "product_text_fields": fields,
        "product_text_coverage": text_coverage(ds.product_text) or 0.0,
        "fingerprint": ds.fingerprint(),
    }
    return {**out, **{k: ds.meta[k] for k in _META if k in ds.meta}}


def format_card(c: dict[str, Any]) -> str:
    if c.get("task") == "product search":
        return _format_search_card(c)
    lines = [
        f"dataset        {c['name']}",
        f"users          {c['users']:,}",
        f"items          {c['items']:,}",
        f"interactions   {c['interactions']:,}",
        f"sparsity       {c['sparsity']:.4%}",
        f"sequence len   mean {c['mean_seq_len']:.2f} · median {c['median_seq_len']:g} · "
        f"min {c['min_seq_len']} · max {c['max_seq_len']}",
        f"item text      {c['item_text_coverage']:.2%} of items have text"
        + (
            f" (fields: {', '.join(c['item_text_fields'])})" if c["item_text_fields"] else " (no text fields)"
        ),
        f"timestamps     {'yes' if c['has_timestamps'] else 'no (order only)'}",
    ]
    if "time_range" in c:
        from datetime import UTC, datetime

        lo, hi = (datetime.fromtimestamp(t, UTC).date().isoformat() for t in c["time_range"])
        lines.append(f"time range     {lo} .. {hi}")
    lines += [
        f"source         {c.get('source', '?')} (preprocessing v{c.get('preprocessing_version', '?')})",
        f"fingerprint    {c['fingerprint']}",
    ]
    return "\n".join(lines)


def _format_search_card(c: dict[str, Any]) -> str:
    n, per = c["judgements"], c["judgements_per_query"]
    labels = " · ".join(
        f"{lab} {c['labels'][lab]:,} ({c['labels'][lab] / n if n else 0:.1%})" for lab in LABELS
    )
    return "\n".join(
        [
            f"dataset        {c['name']}",
            f"task           {c['task']}",
            f"queries        {c['queries']:,}",
            f"products       {c['products']:,} in the corpus, {c['judged_products']:,} judged",
            f"judgements     {n:,} (per query: mean {per['mean']:.1f} · min {per['min']} · max {per['max']})",
            f"labels         {labels}",
            f"product text   {c['product_text_coverage']:.2%} of products have text"
            + (f" (fields: {', '.join(c['product_text_fields'])})" if c["product_text_fields"] else ""),
            f"source         {c.get('source', '?')} (preprocessing v{c.get('preprocessing_version', '?')})",
            f"fingerprint    {c['fingerprint']}",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recbench.data", description=__doc__.split("\n")[0])
    parser.add_argument(
        "command",
        choices=["stats", "fetch"],
        help="stats: print the dataset card; fetch: the same, after downloading any absent source files",
    )
    parser.add_argument("--json", action="store_true", help="print the card as JSON")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. data=ml_1m")
    args = parser.parse_intermixed_args(argv)
    # what is downloaded or preprocessed, where, with progress; on stderr, so --json stays clean
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("config", overrides=[*args.overrides, "paths.output_dir=."])
    with user_errors():
        ds = instantiate(cfg.data)
    c = card(ds)
    print(json.dumps(c, indent=2, default=str) if args.json else format_card(c))
    return 0


if __name__ == "__main__":
    sys.exit(main())
