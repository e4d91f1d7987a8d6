"""Decoding speed: our constrained beam search vs Hugging Face ``generate`` with ``prefix_allowed_tokens_fn``,
on the same TIGER weights, same inputs, same machine; checks both return the same items.

    python scripts/bench_decode.py                      # Beauty-sized: 12,101 items, 3 x 256 codes + dedup
    python scripts/bench_decode.py --users 64 --batch 32
    python scripts/bench_decode.py --out outputs/bench/decode.json   # make bench: the report too

Synthetic codes and a randomly initialised paper-sized TIGER (no data needed). The output embedding is
scaled up (``--logit-scale``) so that scores are spread out like a trained model's; with raw random weights
nearly every item ties and the two implementations would break ties by float noise, which says nothing.
Reports users/second (fastest of ``--repeats`` passes, each side) for top-10 and top-20 at beam 20,
agreement of item lists and scores, invalid or repeated items.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from recbench.lit.generative import GenerativeModule
from recbench.losses.ce import FullSoftmaxCE
from recbench.metrics.ranking import build_metrics
from recbench.models.tiger import PAD, TIGER
from recbench.tokenizers.semantic import deduplicate
from recbench.utils.files import atomic_write_text

# Beam scores (log-probabilities) closer than this are a tie: the two decoders sum the same terms in a
# different order, and their scores differ by up to ~2e-4 on the default model.
TIE_TOLERANCE = 1e-3


def same_up_to_ties(ours: np.ndarray, ours_scores: np.ndarray, theirs: np.ndarray) -> bool:
    """The same items, in the same order except where two items' scores are within ``TIE_TOLERANCE``:
    ``theirs`` must descend in our scores, allowing for that tolerance."""
    if set(ours.tolist()) != set(theirs.tolist()):
        return False
    score = dict(zip(ours.tolist(), ours_scores.tolist(), strict=True))
    in_their_order = np.array([score[i] for i in theirs.tolist()])
    return bool(np.all(np.diff(in_their_order) <= TIE_TOLERANCE))


def hf_retrieve(
    module: GenerativeModule, users: torch.Tensor, inputs: torch.Tensor, beam: int, k: int
) -> tuple[np.ndarray, np.ndarray, int, int]:
    """(items (B, k), scores (B, k), invalid, repeated) by ``generate`` constrained with a Python trie."""
    net = module.net
    tokens = net.code_tokens(module.item_codes).tolist()
    trie: dict[tuple[int, ...], list[int]] = {}
    item_of: dict[tuple[int, ...], int] = {}
    for item, tup in enumerate(tokens):
        for level in range(len(tup)):
            trie.setdefault(tuple(tup[:level]), []).append(tup[level])
        item_of[tuple(tup)] = item
    trie = {p: sorted(set(v)) for p, v in trie.items()}

    def allowed(batch_id: int, sent: torch.Tensor) -> list[int]:
        return trie.get(tuple(sent.tolist()[1:]), [PAD])  # [1:]: drop the decoder start token

    input_ids, attention = module.encoder_inputs(users, inputs)
    out = net.t5.generate(
        input_ids=input_ids,
        attention_mask=attention,
        num_beams=beam,
        num_return_sequences=k,
        max_new_tokens=net.num_levels,
        min_new_tokens=net.num_levels,
        prefix_allowed_tokens_fn=allowed,
        do_sample=False,
        length_penalty=0.0,  # raw summed log-probabilities, as ours
        early_stopping=True,
        output_scores=True,
        return_dict_in_generate=True,
        decoder_start_token_id=PAD,
    )
    seqs = out.sequences[:, 1:].tolist()
    items = np.array([item_of.get(tuple(s), -1) for s in seqs]).reshape(len(users), k)
    scores = out.sequences_scores.reshape(len(users), k).numpy()
    invalid = int((items < 0).sum())
    repeated = sum(k - len(set(r[r >= 0].tolist())) - int((r < 0).sum()) for r in items)
    return items, scores, invalid, repeated


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--items", type=int, default=12101)
    p.add_argument("--users", type=int, default=128, help="users decoded by both implementations")
    p.add_argument("--batch", type=int, default=64, help="users per batch (both implementations)")
    p.add_argument("--beam", type=int, default=20)
    p.add_argument("--logit-scale", type=float, default=20.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="time each side this many times and keep the fastest (one pass is under a second: one hiccup "
        "of the machine would move the ratio by 20%%)",
    )
    p.add_argument("--out", type=Path, help="also write the results there, as JSON")
    args = p.parse_args()
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    codes = deduplicate(rng.integers(0, 256, size=(args.items, 3)))
    sizes = [256, 256, 256, int(codes[:, -1].max()) + 1]
    net = TIGER(args.items, sizes)  # paper sizes
    with torch.no_grad():
        net.t5.shared.weight.mul_(args.logit_scale)
    results: dict[str, object] = {
        "items": args.items,
        "levels": len(sizes),
        "code_sizes": sizes,
        "users": args.users,
        "batch": args.batch,
        "beam": args.beam,
        "torch_threads": torch.get_num_threads(),
        "repeats": args.repeats,
        "timing": "fastest of the repeats, each side",
    }
    users = torch.arange(args.users)
    inputs = torch.from_numpy(rng.integers(1, args.items + 1, size=(args.users, 20)))
    for k in (10, 20):
        module = GenerativeModule(
            net,
            FullSoftmaxCE(),
            torch.optim.Adam,
            build_metrics(["recall"], [k]),
            codes,
            3,
            beam_size=args.beam,
            top_k=k,
        ).eval()
        ours_times, hf_times = [], []
        for _ in range(args.repeats):
            ours_items, ours_scores, hf_items, hf_scores = [], [], [], []
            invalid = repeated = 0
            t0 = time.perf_counter()
            for s in range(0, args.users, args.batch):
                it, sc = module.retrieve(users[s : s + args.batch], inputs[s : s + args.batch])
                ours_items.append(it.numpy())
                ours_scores.append(sc.numpy())
            ours_times.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            with torch.no_grad():
                for s in range(0, args.users, args.batch):
                    it, sc, bad, rep = hf_retrieve(
                        module, users[s : s + args.batch], inputs[s : s + args.batch], args.beam, k
                    )
                    hf_items.append(it)
                    hf_scores.append(sc)
                    invalid, repeated = invalid + bad, repeated + rep
            hf_times.append(time.perf_counter() - t0)
        ours_s, hf_s = min(ours_times), min(hf_times)
        oi, hi = np.concatenate(ours_items), np.concatenate(hf_items)
        os_, hs = np.concatenate(ours_scores), np.concatenate(hf_scores)
        ours_invalid = int((oi < 0).sum())
        results[f"top{k}"] = {
            "ours_users_per_s": args.users / ours_s,
            "hf_users_per_s": args.users / hf_s,
            "speedup": hf_s / ours_s,
            "ours_seconds_each_repeat": ours_times,
            "hf_seconds_each_repeat": hf_times,
            "identical_lists": float(np.mean([np.array_equal(a, b) for a, b in zip(oi, hi, strict=True)])),
            "identical_sets": float(np.mean([set(a) == set(b) for a, b in zip(oi, hi, strict=True)])),
            "identical_up_to_ties": float(
                np.mean([same_up_to_ties(*r) for r in zip(oi, os_, hi, strict=True)])
            ),
            "tie_tolerance": TIE_TOLERANCE,
            "max_abs_score_diff": float(np.abs(os_ - hs).max()),
            "ours_invalid_items": ours_invalid,
            "ours_repeated_items": int(sum(k - len(set(r.tolist())) for r in oi)),
            "hf_invalid_items": invalid,
            "hf_repeated_items": repeated,
        }
        print(json.dumps({f"top{k}": results[f"top{k}"]}), flush=True)
    print(json.dumps(results, indent=2))
    if args.out:
        atomic_write_text(args.out, json.dumps(results, indent=2) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
