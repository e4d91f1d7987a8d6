"""Fit one tokenizer on one dataset and write its health record (no model is trained).

    python -m recbench.tokenizers.report data=amazon_beauty tokenizer=rqkmeans
    python -m recbench.tokenizers.report data=amazon_toys tokenizer=rqvae --add   # into leaderboards/

Any Hydra override of the main config applies (``tokenizer.codebook_size=…``, ``seed=…``). The record holds
the tokenizer's own report (utilization, perplexity, collisions per level) and
:func:`recbench.tokenizers.health.tokenizer_health` (semantic and collaborative coherence, cold-item
spread), with the command, commit and dataset fingerprint. ``--add`` writes it to
``leaderboards/tokenizers/<dataset>/<label>.json``, from which ``python -m recbench.leaderboard build``
generates ``leaderboards/tokenizers.md``. The codes land in the cache ``python -m recbench.run`` reads.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from recbench.embeddings.text import DEFAULT_ENCODER
from recbench.utils.files import atomic_write_text

CONF_DIR = str(Path(__file__).resolve().parents[2] / "conf")
REFERENCE = {"encoder": DEFAULT_ENCODER, "template": "{title}"}  # semantic coherence is measured in it
log = logging.getLogger(__name__)


class TokenizerRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["tokenizer_health"] = "tokenizer_health"
    version: Literal["1"] = "1"
    created_at: datetime
    label: str
    dataset: dict[str, Any]  # name, fingerprint, items
    tokenizer: dict[str, Any]  # its describe(): name, parameters, encoder, code health
    config: dict[str, Any]  # the resolved tokenizer config
    health: dict[str, Any]  # tokenizer_health()
    reference: dict[str, str] | None  # the embedding semantic coherence is measured in
    fit_seconds: float
    git: dict[str, Any]
    command: str


def read_record(path: Path) -> TokenizerRecord:
    try:
        return TokenizerRecord.model_validate(json.loads(Path(path).read_text()))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON (line {e.lineno}: {e.msg})") from None
    except Exception as e:
        raise ValueError(f"{path}: not a valid tokenizer health record:\n{e}") from None


def build_record(overrides: list[str], label: str | None = None) -> TokenizerRecord:
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from recbench.embeddings.text import encode_texts, render_texts
    from recbench.inputs import RunContext, train_item_counts
    from recbench.tokenizers.health import tokenizer_health
    from recbench.utils.environment import git_state
    from recbench.utils.instantiate import instantiate

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("config", overrides=["paths.output_dir=.", *overrides])
    dataset = instantiate(cfg.data)
    split = instantiate(cfg.protocol).split(dataset)
    started = time.perf_counter()
    tokenizer = instantiate(cfg.tokenizer).fit(dataset, split)
    seconds = time.perf_counter() - started
    reference = None
    embeddings = None
    if "title" in dataset.item_text.columns:
        reference = dict(REFERENCE)
        texts = render_texts(dataset.item_text.loc[np.arange(dataset.num_items)], REFERENCE["template"])
        embeddings = encode_texts(
            texts, REFERENCE["encoder"], cache_dir=Path(cfg.paths.cache_dir) / "embeddings"
        )
    context = RunContext(dataset, split, tokenizer)
    starts, ends = dataset.offsets[:-1], np.asarray(split.train_end)  # items[starts[u]:ends[u]]: training
    sequences = [dataset.items[a:b] for a, b in zip(starts, ends, strict=True)]
    health = _finite(
        tokenizer_health(
            tokenizer.codes(), tokenizer.semantic_levels, embeddings, sequences, train_item_counts(context)
        )
    )
    config = OmegaConf.to_container(cfg.tokenizer, resolve=True)
    assert isinstance(config, dict)
    config.pop("cache_dir", None)
    return TokenizerRecord(
        created_at=datetime.now(UTC),
        label=label or tokenizer.name,
        dataset={"name": dataset.name, "fingerprint": dataset.fingerprint(), "items": dataset.num_items},
        tokenizer=tokenizer.describe(),
        config={str(k): v for k, v in config.items()},
        health=health,
        reference=reference,
        fit_seconds=seconds,
        git=git_state(),
        command=" ".join(["python -m recbench.tokenizers.report", *overrides]),
    )


def _finite(obj: Any) -> Any:
    """NaN (a measure with nothing to measure, e.g. no two items share a prefix) as None: strict JSON."""
    if isinstance(obj, float):
        return None if obj != obj else obj
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj


def record_path(root: Path, record: TokenizerRecord) -> Path:
    return root / "tokenizers" / record.dataset["name"] / f"{record.label}.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recbench.tokenizers.report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--add", action="store_true", help="write the record into the leaderboard folder")
    parser.add_argument("--root", type=Path, default=Path("leaderboards"), help="leaderboard folder")
    parser.add_argument("--label", default=None, help="the record's name (default: the tokenizer's)")
    parser.add_argument("--allow-dirty", action="store_true", help="accept a record from uncommitted code")
    args, overrides = parser.parse_known_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    record = build_record(overrides, args.label)
    text = json.dumps(record.model_dump(mode="json"), indent=2, default=str) + "\n"
    print(text)
    if args.add:
        if record.git.get("dirty") and not args.allow_dirty:
            print("error: made from uncommitted code; commit first or pass --allow-dirty", file=sys.stderr)
            return 1
        path = record_path(args.root, record)
        atomic_write_text(path, text)
        print(f"added {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
