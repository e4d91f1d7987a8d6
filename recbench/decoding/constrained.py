"""Batched beam search constrained to valid item code tuples, with dense prefix tables.

Every item is a unique tuple of ``L`` codes. :class:`PrefixTables` numbers the distinct prefixes of each
length and stores, per level, a dense table ``children[l]`` of shape (prefixes of length l, codebook size
of level l): the id of the prefix extended by that code, the item index at the last level, or -1 where no
item continues that way. One gather per step then masks every invalid continuation of every beam of every
user at once — the trie of the TIGER paper, laid out for vectorised lookup (no Python per hypothesis, which
is what makes Hugging Face ``generate`` with ``prefix_allowed_tokens_fn`` slow). Tables take at most
``items x codebook size`` integers per level (Beauty: 12k x 256).

The search keeps the ``beam_size`` best prefixes per level (scores = summed log-probabilities, the
softmax taken over the whole vocabulary as in T5 and ``generate``); at the last level it returns the
``top_k`` best complete tuples, i.e. items, which therefore all exist and are distinct. With
``beam_size`` >= the number of items no prefix is ever pruned and the result is the exact top-K of
scoring every item. Deterministic: no sampling, ties broken by ``torch.topk``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch


class PrefixTables:
    """Dense successor tables of the prefixes of ``codes`` (I, L) (unique rows), per level."""

    def __init__(self, codes: np.ndarray, code_sizes: Sequence[int]) -> None:
        codes = np.asarray(codes, dtype=np.int64)
        n, levels = codes.shape
        if len(np.unique(codes, axis=0)) != n:
            raise ValueError("PrefixTables: item code tuples must be unique (de-duplicate them first)")
        if len(code_sizes) != levels or (codes.max(0) >= np.asarray(code_sizes)).any() or codes.min() < 0:
            raise ValueError(f"PrefixTables: codes do not fit code_sizes {list(code_sizes)}")
        self.code_sizes = [int(s) for s in code_sizes]
        self.children: list[torch.Tensor] = []
        prefix_id = np.zeros(n, dtype=np.int64)  # the empty prefix: one id, 0
        num_prefixes = 1
        for level in range(levels):
            if level == levels - 1:
                nxt, num_next = np.arange(n, dtype=np.int64), n  # the full tuple names the item
            else:
                _, nxt = np.unique(codes[:, : level + 1], axis=0, return_inverse=True)
                nxt = nxt.reshape(-1).astype(np.int64)
                num_next = int(nxt.max()) + 1
            table = np.full((num_prefixes, self.code_sizes[level]), -1, dtype=np.int64)
            table[prefix_id, codes[:, level]] = nxt
            self.children.append(torch.from_numpy(table))
            prefix_id, num_prefixes = nxt, num_next

    def to(self, device: torch.device | str) -> PrefixTables:
        self.children = [t.to(device) for t in self.children]
        return self


# step_fn(tokens, parents) -> next-token log-probabilities (B, W, V) of every beam: ``tokens`` (B, W, t)
# the tokens so far (start token first), ``parents`` (B, W) the beam of the previous call that each beam
# extends (None on the first call), so that a step function may keep a per-beam cache.
StepFn = Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]


@torch.no_grad()
def constrained_beam_search(
    step_fn: StepFn,
    tables: PrefixTables,
    level_offsets: Sequence[int],
    batch_size: int,
    beam_size: int,
    top_k: int,
    start_token: int = 0,
    device: torch.device | str = "cpu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-``top_k`` items (B, K) and their log-probability scores (B, K), best first.

    Where fewer than ``top_k`` items are reachable the tail is item -1 with score -inf.
    """
    levels = len(tables.children)
    b = batch_size
    scores = torch.zeros(b, 1, device=device)  # (B, W) summed log-probs of each beam
    prefix = torch.zeros(b, 1, dtype=torch.long, device=device)  # (B, W) prefix ids
    tokens = torch.full((b, 1, 1), start_token, dtype=torch.long, device=device)  # (B, W, t)
    parents: torch.Tensor | None = None
    for level in range(levels):
        w = scores.shape[1]
        logp = step_fn(tokens, parents)  # (B, W, V)
        size, off = tables.code_sizes[level], level_offsets[level]
        child = tables.children[level][prefix.clamp(min=0)]  # (B, W, K)
        cand = scores[..., None] + logp[..., off : off + size].float()
        cand = cand.masked_fill(child < 0, float("-inf")).reshape(b, w * size)
        keep = min(top_k if level == levels - 1 else beam_size, w * size)
        scores, flat = cand.topk(keep, dim=1)  # (B, keep)
        beam, code = flat // size, flat % size
        parents = beam
        prefix = child.reshape(b, w * size).gather(1, flat).masked_fill(scores == float("-inf"), -1)
        prev = tokens.gather(1, beam[..., None].expand(-1, -1, tokens.shape[2]))
        tokens = torch.cat([prev, (code + off)[..., None]], dim=2)
    if scores.shape[1] < top_k:  # fewer candidates than asked for: pad
        pad = top_k - scores.shape[1]
        scores = torch.cat([scores, scores.new_full((b, pad), float("-inf"))], dim=1)
        prefix = torch.cat([prefix, prefix.new_full((b, pad), -1)], dim=1)
    return prefix, scores
