"""Fit (or read from cache) one dataset's semantic IDs and print their health report as JSON.

    python scripts/fit_semantic_ids.py data=amazon_beauty tokenizer=rqvae

Any Hydra override of the main config applies (``tokenizer.epochs=…``, ``seed=…``). The codes land in the
same cache that ``python -m recbench.run model=tiger`` reads, so a later training run starts at once.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

from hydra import compose, initialize_config_dir

from recbench.utils.instantiate import instantiate

CONF_DIR = str(Path(__file__).resolve().parents[1] / "conf")


def main(overrides: list[str]) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("config", overrides=["paths.output_dir=.", *overrides])
    dataset = instantiate(cfg.data)
    split = instantiate(cfg.protocol).split(
        dataset
    )  # what a tokenizer that reads interactions may learn from
    started = time.perf_counter()
    tokenizer = instantiate(cfg.tokenizer).fit(dataset, split)
    report = {"dataset": dataset.name, "seconds": time.perf_counter() - started, **tokenizer.describe()}
    print(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main(sys.argv[1:])
