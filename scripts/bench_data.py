"""Preprocessing speed and memory per dataset: ``make bench-data`` or ``python scripts/bench_data.py``.

Each dataset is preprocessed in a fresh subprocess (so its peak RSS is its own) with an empty cache:
*preprocess* = parse the source files + build the canonical form (``source.read``); *cache write* = the
parquet copy; *cached load* = reading that copy back, what every later run pays. Peak RSS covers the whole
child process, imports included (``baseline`` is the RSS right after imports).

ML-20M: the real ``ratings.csv`` is used when ``$RECBENCH_DATA_DIR/movielens_20m/ml-20m/`` has it;
otherwise a synthetic file of the same size and format is generated (20,000,263 rows, 138,493 users,
26,744 movies, header ``userId,movieId,rating,timestamp``, rows sorted by user then movie as in the
official file, so the reader has to sort by time itself). Target: under 60 s and 4 GB peak.

    python scripts/bench_data.py                   # every dataset found + ML-20M-sized synthetic input
    python scripts/bench_data.py --only ml_100k ml_1m
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATASETS = {  # config name -> folder under the data dir
    "amazon_beauty": "amazon_beauty",
    "amazon_sports": "amazon_sports",
    "amazon_toys": "amazon_toys",
    "ml_100k": "movielens_100k",
    "ml_1m": "movielens_1m",
    "ml_20m": "movielens_20m",
}
ML20M = {"rows": 20_000_263, "users": 138_493, "items": 26_744}


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def one(name: str, data_dir: str, overrides: list[str]) -> dict:
    """Runs in the child: compose the data config, preprocess with an empty cache, report."""
    from hydra import compose, initialize_config_dir

    from recbench.data.dataset import check_stats, read_saved_dataset, save_dataset
    from recbench.utils.instantiate import instantiate

    baseline = rss_mb()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=[f"data={name}", f"paths.data_dir={data_dir}", *overrides])
    source = instantiate(cfg.data.source)
    source.files()
    t0 = time.perf_counter()
    ds = source.read(name)
    t1 = time.perf_counter()
    fingerprint = ds.fingerprint()
    t2 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        save_dataset(ds, Path(tmp) / name)
        t3 = time.perf_counter()
        back = read_saved_dataset(Path(tmp) / name)
        t4 = time.perf_counter()
    if cfg.data.get("expected_stats"):
        check_stats(ds, dict(cfg.data.expected_stats))
    assert back.fingerprint() == fingerprint
    return {
        "dataset": name,
        "users": ds.num_users,
        "items": ds.num_items,
        "interactions": ds.num_interactions,
        "preprocess_s": round(t1 - t0, 2),
        "fingerprint_s": round(t2 - t1, 2),
        "cache_write_s": round(t3 - t2, 2),
        "cached_load_s": round(t4 - t3, 2),
        "peak_rss_mb": round(rss_mb()),
        "baseline_rss_mb": round(baseline),
    }


def synthetic_ml20m(folder: Path, scale: float = 1.0, seed: int = 0) -> None:
    """ratings.csv + movies.csv in the official ML-20M format, ML-20M-sized (times ``scale``), in chunks."""
    import polars as pl

    rng = np.random.default_rng(seed)
    n_users, n_items, n_rows = (int(ML20M[k] * scale) for k in ("users", "items", "rows"))
    # every user >= 20 ratings (as in ML-20M), heavy-tailed lengths summing exactly to n_rows
    extra = rng.lognormal(mean=4.0, sigma=1.2, size=n_users)
    lengths = 20 + np.floor(extra / extra.sum() * (n_rows - 20 * n_users)).astype(np.int64)
    lengths[: n_rows - lengths.sum()] += 1
    popularity = 1.0 / (np.arange(n_items) + 10.0) ** 0.9
    popularity /= popularity.sum()
    movie_ids = np.sort(rng.choice(131_262, size=n_items, replace=False)) + 1  # ML-20M ids reach 131262
    (folder / "ml-20m").mkdir(parents=True, exist_ok=True)
    path = folder / "ml-20m/ratings.csv"
    with open(path, "wb") as f:
        f.write(b"userId,movieId,rating,timestamp\n")
        starts = np.concatenate([[0], np.cumsum(lengths)])
        for lo in range(0, n_users, 20_000):
            hi = min(lo + 20_000, n_users)
            n = int(starts[hi] - starts[lo])
            users = np.repeat(np.arange(lo, hi) + 1, lengths[lo:hi])
            items = movie_ids[rng.choice(n_items, size=n, p=popularity)]
            if lo == 0:  # every movie rated at least once
                items[:n_items] = movie_ids[rng.permutation(n_items)]
            chunk = pl.DataFrame(
                {
                    "userId": users,
                    "movieId": items,
                    "rating": rng.integers(1, 11, size=n) / 2.0,
                    "timestamp": rng.integers(789_652_009, 1_427_784_002, size=n),
                }
            ).sort(["userId", "movieId"])
            chunk.write_csv(f, include_header=False, float_precision=1)
    pl.DataFrame(
        {
            "movieId": movie_ids,
            "title": [f"Synthetic movie {m} (2000)" for m in movie_ids],
            "genres": ["Drama|Comedy"] * n_items,
        }
    ).write_csv(folder / "ml-20m/movies.csv")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="*", help="datasets to run (default: all found + ml_20m)")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--generate", help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", default=os.environ.get("RECBENCH_DATA_DIR", ""))
    parser.add_argument("--override", action="append", default=[], help=argparse.SUPPRESS)
    parser.add_argument("--out", default="outputs/bench/bench_data.json")
    parser.add_argument(
        "--ml20m-scale", type=float, default=1.0, help="shrink the synthetic ML-20M (smoke tests)"
    )
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.data_dir, args.override)))
        return 0
    if args.generate:
        synthetic_ml20m(Path(args.generate) / "movielens_20m", scale=args.ml20m_scale)
        return 0

    rows = []
    with tempfile.TemporaryDirectory(prefix="recbench-bench-") as tmp:
        for name in args.only or list(DATASETS):
            data_dir, overrides, note = args.data_dir, [], ""
            if name == "ml_20m" and not (Path(data_dir) / "movielens_20m/ml-20m/ratings.csv").is_file():
                t = time.perf_counter()
                # in its own process: Linux carries a process's peak RSS across exec into its children
                gen = [sys.executable, __file__, "--generate", tmp, f"--ml20m-scale={args.ml20m_scale}"]
                subprocess.run(gen, check=True)
                print(
                    f"generated synthetic ML-20M-sized ratings.csv in {time.perf_counter() - t:.0f} s",
                    flush=True,
                )
                data_dir, overrides = tmp, ["~data.expected_stats"]
                note = f"synthetic, {args.ml20m_scale:g} x ML-20M size"
            elif not (Path(data_dir) / DATASETS[name]).is_dir():
                print(f"{name}: {Path(data_dir) / DATASETS[name]} absent, skipped", flush=True)
                continue
            cmd = [sys.executable, __file__, "--one", name, "--data-dir", data_dir]
            cmd += [f"--override={o}" for o in overrides]
            started = time.perf_counter()
            env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
            out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
            if out.returncode != 0:
                print(f"{name}: failed\n{out.stderr[-3000:]}", flush=True)
                continue
            row = json.loads(out.stdout.strip().splitlines()[-1])
            row["process_s"] = round(time.perf_counter() - started, 1)
            row["note"] = note
            rows.append(row)
            print(json.dumps(row), flush=True)

    cols = [
        "dataset",
        "interactions",
        "preprocess_s",
        "cache_write_s",
        "cached_load_s",
        "peak_rss_mb",
        "note",
    ]
    print("\n| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(f"{r[c]:,}" if isinstance(r[c], int) else str(r[c]) for c in cols) + " |")
    from recbench.utils.files import atomic_write_text  # here: the measured children import recbench alone

    atomic_write_text(args.out, json.dumps(rows, indent=2))
    print(f"\nwritten: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
