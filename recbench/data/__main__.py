"""Dataset cards from the command line.

    python -m recbench.data stats data=ml_1m            # a human-readable card
    python -m recbench.data stats data=ml_1m --json     # the same as JSON
    python -m recbench.data stats data=amazon_toys paths.data_dir=/elsewhere

Takes the same Hydra overrides as ``recbench.run``; loads the dataset through its cache (so the first
call preprocesses and checks the published statistics, later calls are instant).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir

from recbench.data.dataset import SequenceDataset
from recbench.utils.instantiate import instantiate

CONF_DIR = str(Path(__file__).resolve().parents[2] / "conf")


def card(ds: SequenceDataset) -> dict[str, Any]:
    stats = ds.stats()
    out: dict[str, Any] = {"name": ds.name, **stats, "fingerprint": ds.fingerprint()}
    if ds.timestamps is not None and len(ds.timestamps):
        out["time_range"] = [int(ds.timestamps.min()), int(ds.timestamps.max())]
    for key in ("source", "preprocessing_version", "cache_key", "source_sha256", "log", "official_split"):
        if key in ds.meta:
            out[key] = ds.meta[key]
    return out


def format_card(c: dict[str, Any]) -> str:
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recbench.data", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["stats"])
    parser.add_argument("--json", action="store_true", help="print the card as JSON")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. data=ml_1m")
    args = parser.parse_intermixed_args(argv)
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("config", overrides=[*args.overrides, "paths.output_dir=."])
    ds = instantiate(cfg.data)
    c = card(ds)
    print(json.dumps(c, indent=2, default=str) if args.json else format_card(c))
    return 0


if __name__ == "__main__":
    sys.exit(main())
