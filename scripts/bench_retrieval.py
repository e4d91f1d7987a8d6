"""Speed of the text-embedding retrieval path: encoding throughput and exact vs HNSW search.

    python scripts/bench_retrieval.py                       # 100k and 1M vectors, d = 384
    python scripts/bench_retrieval.py --sizes 20000 --queries 200 --encode 500   # a quick check
    python scripts/bench_retrieval.py --sizes --encoders minilm mpnet --encode-threads 1   # encoders only

Reports, per corpus size: index build seconds, batch query throughput (queries/s), single-query
latency (median ms over --latency-queries one-query searches), and the recall@10 of HNSW against exact
search (IndexFlatIP) on the same queries. Also each text encoder's throughput (texts/s) on synthetic
product titles and the peak memory of a process that loaded it (conf/encoder/; one process each).
Vectors are synthetic (:class:`SyntheticEmbeddings`: clustered, intrinsic dimension
--latent, projected to --dim). Results go to stdout and, as JSON, to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from recbench.embeddings.index import IndexFactory, l2_normalize, recall_vs_exact
from recbench.utils.files import atomic_write_text

WORDS = [
    "red",
    "blue",
    "black",
    "white",
    "organic",
    "waterproof",
    "wireless",
    "stainless",
    "steel",
    "cotton",
    "leather",
    "kids",
    "mens",
    "womens",
    "lamp",
    "chair",
    "kettle",
    "backpack",
    "umbrella",
    "notebook",
    "blanket",
    "sneakers",
    "mug",
    "scarf",
    "charger",
    "cable",
    "case",
    "shampoo",
    "lipstick",
    "hose",
    "mower",
    "rake",
    "tent",
    "stove",
    "bottle",
    "jacket",
    "socks",
    "gloves",
    "watch",
    "speaker",
    "keyboard",
    "mouse",
    "pillow",
]


class SyntheticEmbeddings:
    """L2-normalised vectors with the low intrinsic dimension of real text embeddings: Gaussian clusters in
    a ``latent``-dimensional space, mapped to ``d`` dimensions by one fixed random projection, plus a
    little isotropic noise. (Isotropic high-dimensional noise would make every point nearly equidistant
    from every other, a worst case no real embedding set resembles.) Corpus and queries share centres
    and projection."""

    def __init__(self, d: int, clusters: int, latent: int, seed: int) -> None:
        rng = np.random.default_rng([seed, 12345])
        self.centres = rng.normal(size=(clusters, latent)).astype(np.float32)
        self.projection = (rng.normal(size=(latent, d)) / np.sqrt(latent)).astype(np.float32)
        self.d = d

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        out = np.empty((n, self.d), dtype=np.float32)
        latent = self.centres.shape[1]
        for s in range(0, n, 100_000):  # in blocks: bounded temporary memory
            m = min(100_000, n - s)
            z = self.centres[rng.integers(len(self.centres), size=m)] + rng.normal(
                scale=0.5, size=(m, latent)
            )
            out[s : s + m] = z.astype(np.float32) @ self.projection
            out[s : s + m] += rng.normal(scale=0.05, size=(m, self.d)).astype(np.float32)
        return l2_normalize(out)


def encode_throughput(
    encoder: str, n: int, batch_size: int, seed: int, threads: int | None
) -> dict[str, Any]:
    """Texts/s of one encoder on ``n`` synthetic product titles, and the peak memory of the process that
    loaded it: run in a fresh process per encoder (see :func:`encode_all`), so each peak is its own."""
    import torch

    from recbench.embeddings.text import load_encoder
    from recbench.utils.environment import peak_memory_mb

    if threads:
        torch.set_num_threads(threads)
    rng = np.random.default_rng(seed)
    texts = [" ".join(rng.choice(WORDS, size=int(rng.integers(4, 14)))) for _ in range(n)]
    t = time.perf_counter()
    model = load_encoder(encoder)
    load_seconds = time.perf_counter() - t
    model.encode(texts[:batch_size], role="symmetric", batch_size=batch_size, normalize=True)  # warm-up
    t = time.perf_counter()
    emb = model.encode(texts, role="symmetric", batch_size=batch_size, normalize=True)
    seconds = time.perf_counter() - t
    return {"encoder": encoder, "texts": n, "batch_size": batch_size, "dim": int(emb.shape[1]),
            "threads": torch.get_num_threads(), "n_params": model.n_params, "load_seconds": load_seconds,
            "seconds": seconds, "texts_per_second": n / seconds,
            "peak_memory_mb": peak_memory_mb()}  # fmt: skip


def encode_all(encoders: list[str], n: int, seed: int, threads: int | None) -> list[dict[str, Any]]:
    """:func:`encode_throughput` of each encoder in its own process; an encoder that is not installed is
    reported as skipped, with the reason."""
    import subprocess
    import sys

    out = []
    for key in encoders:
        cmd = [sys.executable, __file__, "--encode-one", key, "--encode", str(n), "--seed", str(seed)]
        if threads:
            cmd += ["--encode-threads", str(threads)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            why = (done.stderr.strip().splitlines() or ["failed"])[-1]
            out.append({"encoder": key, "skipped": why})
            print(f"encoding {key}: skipped ({why})", flush=True)
            continue
        entry = json.loads(done.stdout.strip().splitlines()[-1])
        out.append(entry)
        print(f"encoding {key}: {entry['texts_per_second']:.0f} texts/s, dim {entry['dim']}, "
              f"{entry['threads']} threads, peak {entry['peak_memory_mb']:.0f} MB", flush=True)  # fmt: skip
    return out


def search_stats(index: Any, queries: np.ndarray, k: int, latency_queries: int) -> dict[str, float]:
    t = time.perf_counter()
    _, ids = index.search(queries, k)
    batch_seconds = time.perf_counter() - t
    lat = []
    for q in queries[:latency_queries]:
        t = time.perf_counter()
        index.search(q[None, :], k)
        lat.append(time.perf_counter() - t)
    return {
        "batch_seconds": batch_seconds,
        "queries_per_second": len(queries) / batch_seconds,
        "latency_ms_median": 1000 * statistics.median(lat),
        "latency_ms_p95": 1000 * float(np.percentile(lat, 95)),
        "_ids": ids,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="*", default=[100_000, 1_000_000])
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--latency-queries", type=int, default=200)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--clusters", type=int, default=1000)
    p.add_argument("--latent", type=int, default=32, help="intrinsic dimension of the synthetic vectors")
    p.add_argument("--hnsw-m", type=int, default=32)
    p.add_argument("--ef-construction", type=int, default=80)
    p.add_argument("--ef-search", type=int, nargs="+", default=[64, 128])
    p.add_argument("--encode", type=int, default=2000, help="texts for the encoder throughput (0: skip)")
    p.add_argument("--encoders", nargs="+", default=None, help="conf/encoder keys (default: every one)")
    p.add_argument("--encode-threads", type=int, default=None, help="torch threads while encoding")
    p.add_argument("--encode-one", default=None, help=argparse.SUPPRESS)  # the per-encoder child process
    p.add_argument("--threads", type=int, default=None, help="faiss threads (default: faiss's)")
    p.add_argument("--seed", type=int, default=0)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    p.add_argument("--out", type=Path, default=Path("outputs/bench_retrieval") / f"{stamp}.json")
    args = p.parse_args()
    if args.encode_one:
        print(json.dumps(encode_throughput(args.encode_one, args.encode, 64, args.seed, args.encode_threads)))
        return

    import faiss

    from recbench.embeddings.encoders import registry

    if args.threads:
        faiss.omp_set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    report: dict[str, Any] = {
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "faiss": faiss.__version__,
                    "faiss_threads": faiss.omp_get_max_threads()},
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "corpora": [],
    }  # fmt: skip
    if args.encode:
        report["encoding"] = encode_all(args.encoders or sorted(registry()), args.encode, args.seed,
                                        args.encode_threads)  # fmt: skip
        atomic_write_text(args.out, json.dumps(report, indent=2) + "\n")
    for n in args.sizes:
        gen = SyntheticEmbeddings(args.dim, args.clusters, args.latent, args.seed)
        x = gen.sample(n, rng)
        q = gen.sample(args.queries, np.random.default_rng(args.seed + 1))
        entry: dict[str, Any] = {"vectors": n, "dim": args.dim}
        t = time.perf_counter()
        flat = IndexFactory(kind="flat").build(x)
        entry["flat_build_seconds"] = time.perf_counter() - t
        exact = search_stats(flat.index, q, args.k, args.latency_queries)
        exact_ids = exact.pop("_ids")
        entry["flat"] = exact
        qps, ms = exact["queries_per_second"], exact["latency_ms_median"]
        print(f"n={n:,} flat: {qps:.0f} q/s, {ms:.2f} ms", flush=True)
        del flat
        t = time.perf_counter()
        hnsw = IndexFactory(kind="hnsw", hnsw_m=args.hnsw_m, ef_construction=args.ef_construction).build(x)
        entry["hnsw_build_seconds"] = time.perf_counter() - t
        entry["hnsw"] = {}
        for ef in args.ef_search:
            hnsw.index.hnsw.efSearch = ef
            stats = search_stats(hnsw.index, q, args.k, args.latency_queries)
            stats["recall_at_k_vs_exact"] = recall_vs_exact(stats.pop("_ids"), exact_ids, args.k)
            entry["hnsw"][f"efSearch={ef}"] = stats
            print(
                f"n={n:,} hnsw(M={args.hnsw_m}, efC={args.ef_construction}, efS={ef}): "
                f"build {entry['hnsw_build_seconds']:.0f} s, {stats['queries_per_second']:.0f} q/s, "
                f"{stats['latency_ms_median']:.2f} ms, recall@{args.k} {stats['recall_at_k_vs_exact']:.4f}",
                flush=True,
            )
        del hnsw, x
        report["corpora"].append(entry)
        # after each corpus, so that a run cut short still leaves its figures
        atomic_write_text(args.out, json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
