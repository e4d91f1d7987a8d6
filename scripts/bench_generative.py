"""Training and decoding cost of the two generative models over semantic IDs, at equal width, on
Beauty-shaped synthetic data: TIGER (encoder-decoder, one sample per prefix) and sid_gpt (decoder-only,
dense next-token supervision: one window covers every prefix of it).

    python scripts/bench_generative.py                 # d 128, 4 layers, history 20, Beauty's counts
    python scripts/bench_generative.py --steps 5 --decode-users 64 --threads 1   # a quick look
    python scripts/bench_generative.py --device cuda   # on a GPU (scripts/gpu_check.sh runs this)

Reports, per model: seconds per optimizer step (median of ``--steps`` after one warm-up), the steps one
epoch over Beauty's training data takes (TIGER: 131,413 prefixes / batch 256; sid_gpt: 22,363 windows /
batch 128, recbench's defaults), the projected seconds per epoch, decode users/s (beam 20, top 20), and
the step's GFLOP/s (torch's FLOP counter) as a share of the float32 matmul peak measured in the same run
(a 2048 x 2048 product).
Synthetic item codes (3 x 256 + de-duplication) and histories; no data needed. Results go to stdout and,
as JSON, to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from recbench.data.datamodule import TrainBatch
from recbench.data.prefixes import PrefixBatch
from recbench.lit.generative import GenerativeModule
from recbench.lit.sid_gpt import SemanticIdGPTModule
from recbench.losses.ce import FullSoftmaxCE
from recbench.metrics.ranking import build_metrics
from recbench.models.sid_gpt import SemanticIdGPT
from recbench.models.tiger import TIGER
from recbench.tokenizers.semantic import deduplicate
from recbench.utils.environment import device_name, synchronize
from recbench.utils.files import atomic_write_text

BEAUTY = {"items": 12101, "users": 22363, "prefixes": 131413}  # amazon_beauty, leave-one-out (counted)


def codes_for(items: int, rng: np.random.Generator) -> tuple[np.ndarray, list[int]]:
    codes = deduplicate(rng.integers(0, 256, size=(items, 3)))
    return codes, [256, 256, 256, int(codes[:, -1].max()) + 1]


def module(kind: str, codes: np.ndarray, sizes: list[int], d: int, layers: int, history: int) -> Any:
    common = dict(loss=FullSoftmaxCE(), optimizer=torch.optim.AdamW, metrics=build_metrics(["recall"], [10]),
                  item_codes=codes, semantic_levels=3, beam_size=20, top_k=20)  # fmt: skip
    if kind == "tiger":
        net = TIGER(len(codes), sizes, max_len=history, d_model=d, num_layers=layers, num_heads=6, d_kv=64,
                    d_ff=1024)  # fmt: skip
        return GenerativeModule(net=net, **common)  # type: ignore[arg-type]
    gpt = SemanticIdGPT(len(codes), sizes, max_len=history, hidden_size=d, num_layers=layers, num_heads=4,
                        ffn_size=4 * d)  # fmt: skip
    return SemanticIdGPTModule(net=gpt, **common)  # type: ignore[arg-type]


def time_steps(m: Any, make_batch: Any, steps: int, device: torch.device) -> float:
    opt = m.optimizer_factory(params=m.parameters())
    m.train()
    m.log = lambda *a, **k: None  # no trainer attached
    times = []
    for i in range(steps + 1):
        batch = make_batch()
        synchronize(device)
        t = time.perf_counter()
        loss = m.training_step(batch, 1)
        opt.zero_grad()
        loss.backward()
        opt.step()
        synchronize(device)
        if i:  # the first step warms up
            times.append(time.perf_counter() - t)
    return statistics.median(times)


def step_flops(m: Any, batch: Any) -> int:
    """Floating-point operations of one training step's forward and backward (torch's FLOP counter:
    matrix products and attention, which is where the time should go)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    m.train()
    with counter:
        m.training_step(batch, 1).backward()
    m.zero_grad(set_to_none=True)
    return int(counter.get_total_flops())


def matmul_peak(device: torch.device, n: int = 2048, repeats: int = 5) -> float:
    """GFLOP/s of a float32 n x n matrix product at the current thread count (best of ``repeats``)."""
    a, b = (torch.randn(n, n, device=device) for _ in range(2))
    a @ b  # warm-up
    best = float("inf")
    for _ in range(repeats):
        synchronize(device)
        t = time.perf_counter()
        a @ b
        synchronize(device)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--d", type=int, default=128)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--history", type=int, default=20)
    p.add_argument("--decode-users", type=int, default=256)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ...")
    p.add_argument("--out", type=Path, default=Path("outputs/bench") / "generative.json")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    codes, sizes = codes_for(BEAUTY["items"], rng)
    n = BEAUTY["items"]
    device = torch.device(args.device)
    report: dict[str, Any] = {
        "settings": vars(args) | {"out": str(args.out)},
        "threads": torch.get_num_threads(),
        "device": device_name(device),
    }

    def prefix_batch() -> PrefixBatch:  # TIGER: 256 prefixes of mixed lengths (Beauty's are short)
        lengths = rng.integers(1, args.history + 1, size=256)
        inputs = np.zeros((256, args.history), dtype=np.int64)
        for i, length in enumerate(lengths):
            inputs[i, args.history - length :] = rng.integers(1, n + 1, size=length)
        return PrefixBatch(
            torch.arange(256, device=device),
            torch.from_numpy(inputs).to(device),
            torch.from_numpy(rng.integers(0, n, 256)).to(device),
        )

    def window_batch() -> TrainBatch:  # sid_gpt: 128 windows of up to history items, left-padded
        lengths = rng.integers(3, args.history + 1, size=128)
        seqs = np.zeros((128, args.history + 1), dtype=np.int64)
        for i, length in enumerate(lengths):
            seqs[i, args.history + 1 - length :] = rng.integers(1, n + 1, size=length)
        return TrainBatch(torch.from_numpy(seqs[:, :-1]).to(device), torch.from_numpy(seqs[:, 1:]).to(device))

    plan = {
        "tiger": (prefix_batch, BEAUTY["prefixes"] / 256),
        "sid_gpt": (window_batch, BEAUTY["users"] / 128),
    }
    report["matmul_peak_gflop_per_second"] = peak = matmul_peak(device)
    print(f"float32 matmul peak: {peak:.1f} GFLOP/s at {torch.get_num_threads()} threads", flush=True)
    for kind, (make, steps_per_epoch) in plan.items():
        m = module(kind, codes, sizes, args.d, args.layers, args.history).to(device)
        step = time_steps(m, make, args.steps, device)
        flops = step_flops(m, make())
        m.eval()
        users = torch.arange(args.decode_users, device=device)
        inputs = torch.from_numpy(rng.integers(1, n + 1, size=(args.decode_users, args.history))).to(device)
        synchronize(device)
        t = time.perf_counter()
        with torch.no_grad():
            m.retrieve(users, inputs)
        synchronize(device)
        decode = args.decode_users / (time.perf_counter() - t)
        report[kind] = {"seconds_per_step": step, "steps_per_epoch": steps_per_epoch,
                        "seconds_per_epoch": step * steps_per_epoch, "decode_users_per_second": decode,
                        "params": sum(x.numel() for x in m.net.parameters()),
                        "gflop_per_step": flops / 1e9, "gflop_per_second": flops / step / 1e9,
                        "share_of_matmul_peak": flops / step / 1e9 / peak}  # fmt: skip
        r = report[kind]
        epoch, params = r["seconds_per_epoch"], r["params"]
        print(f"{kind}: {step:.3f} s/step, {steps_per_epoch:.0f} steps/epoch -> {epoch:.0f} s per Beauty "
              f"epoch; decode {decode:.0f} users/s; {params:,} parameters; {r['gflop_per_second']:.1f} "
              f"GFLOP/s = {r['share_of_matmul_peak']:.0%} of the matmul peak", flush=True)  # fmt: skip
    ratio = report["sid_gpt"]["seconds_per_epoch"] / report["tiger"]["seconds_per_epoch"]
    report["epoch_ratio_sid_gpt_over_tiger"] = ratio
    print(f"sid_gpt epoch / TIGER epoch: {ratio:.2f}")
    atomic_write_text(args.out, json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
