"""Sampled negatives for the sampled-metrics diagnostic (Krichene & Rendle, "On Sampled Metrics for Item
Recommendation", KDD 2020): each test case is also ranked against ``n`` drawn negatives instead of every
item, as many papers report, so that a row shows how far the sampled protocol moves its numbers, and the
leaderboard how far it reorders models. Never a headline number.

The negatives of a case are drawn without replacement among the items that are neither the target nor in
the user's history (everything before the target), as the common sampled protocol does, in two variants:

* ``uniform``: every eligible item equally likely;
* ``popularity``: probability proportional to the item's count in the training interactions (items never
  seen in training are never drawn).

Each case has its own generator, ``numpy.random.default_rng([SEED, variant, user, target position])``: the
same case gets the same negatives whatever the model, the run, the batch size or the batch it falls in.
Draws are sequential (each accepted item is drawn among those not yet taken, with probability
proportional to its weight), done by rejection on the whole catalogue when the eligible items hold most of
the weight and by ``Generator.choice`` over the eligible items otherwise. A case with at most ``n``
eligible items gets all of them, the rest of its row padded with ``-1`` (a tiny catalogue or a user who
has seen nearly everything): ranks then count only the real negatives.
"""

from __future__ import annotations

from typing import Any

import numpy as np

SEED = 20200  # the generators' first key: a constant, so negatives never depend on the run's seed
NEGATIVES = 100
VARIANTS = ("uniform", "popularity")  # the variant's position is the generators' second key
EXCLUDED = "the target and the items of the user's history (every interaction before the target)"
_REJECTION_MIN_MASS = 0.5  # below this eligible share of the weight, draw among the eligible items directly


def split_name(variant: str, n: int = NEGATIVES, stage: str = "test") -> str:
    """The metrics split a variant's numbers are stored under, e.g. ``test_sampled_uniform100``."""
    return f"{stage}_sampled_{variant}{n}"


class NegativeSampler:
    """Draws the negatives of evaluation cases.

    Args:
        num_items: catalogue size I.
        train_counts: (I,) count of each item in the training interactions (the popularity weights).
        n: negatives per case.
    """

    def __init__(self, num_items: int, train_counts: np.ndarray, n: int = NEGATIVES) -> None:
        counts = np.asarray(train_counts, dtype=np.float64)
        if counts.shape != (num_items,) or (counts < 0).any():
            raise ValueError(f"train_counts must be ({num_items},) non-negative counts, got {counts.shape}")
        if n < 1:
            raise ValueError(f"need at least one negative per case, got {n}")
        self.num_items, self.n = num_items, n
        self.weights = {"uniform": np.ones(num_items), "popularity": counts}
        self.cdf = {v: np.cumsum(w) for v, w in self.weights.items()}

    def draw(self, variant: str, user: int, target_pos: int, excluded: np.ndarray) -> np.ndarray:
        """(n,) int64 item indices for one case, ``-1``-padded when fewer items are eligible."""
        rng = np.random.default_rng([SEED, VARIANTS.index(variant), int(user), int(target_pos)])
        weights, cdf = self.weights[variant], self.cdf[variant]
        blocked = weights <= 0  # never drawn: zero weight, excluded, or (below) already taken
        blocked[np.asarray(excluded, dtype=np.int64)] = True
        out = np.full(self.n, -1, dtype=np.int64)
        eligible = np.flatnonzero(~blocked) if (~blocked).sum() <= self.n else None
        if eligible is not None:  # all of them
            out[: len(eligible)] = eligible
            return out
        total = float(cdf[-1])
        if weights[~blocked].sum() / total < _REJECTION_MIN_MASS:  # rejection would mostly reject
            eligible = np.flatnonzero(~blocked)
            p = weights[eligible] / weights[eligible].sum()
            out[:] = rng.choice(eligible, size=self.n, replace=False, p=p)
            return out
        taken = np.empty(0, dtype=np.int64)
        while len(taken) < self.n:
            need = self.n - len(taken)
            if variant == "uniform":
                cand = rng.integers(self.num_items, size=2 * need + 16)
            else:
                cand = np.searchsorted(cdf, rng.random(2 * need + 16) * total, side="right")
                cand = np.minimum(cand, self.num_items - 1)  # (a draw of exactly ``total``)
            cand = cand[~blocked[cand]]
            _, first = np.unique(cand, return_index=True)
            new = cand[np.sort(first)][:need]  # first occurrences, in the order drawn
            blocked[new] = True
            taken = np.concatenate([taken, new])
        out[:] = taken
        return out

    def describe(self) -> dict[str, Any]:
        return {
            "negatives": self.n,
            "variants": {
                "uniform": "every eligible item equally likely",
                "popularity": "proportional to the item's count in the training interactions",
            },
            "excluded": EXCLUDED,
            "replacement": False,
            "seed": SEED,
            "generator": "numpy default_rng([seed, variant index, user, target position]), one per case",
        }
