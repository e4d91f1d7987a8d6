"""A seeded synthetic dataset with learnable sequential structure, for fast tests and ``debug=`` runs.

Items sit on a ring; each user walks it with a personal step size (1, 2 or 3 items), jumping to a random
item with probability ``noise``. A sequential model can learn "next = previous + step" from the history
(the step is visible in the last two items), so trained models must beat popularity by a wide margin,
while a model that ignores order cannot.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from recbench.data.dataset import SequenceDataset


class SyntheticSource:
    def __init__(
        self,
        num_users: int = 300,
        num_items: int = 200,
        min_len: int = 5,
        max_len: int = 30,
        noise: float = 0.1,
        seed: int = 0,
    ) -> None:
        if num_items < 4 or min_len < 3 or max_len < min_len:
            raise ValueError("synthetic data needs num_items >= 4 and 3 <= min_len <= max_len")
        self.num_users, self.num_items = num_users, num_items
        self.min_len, self.max_len, self.noise, self.seed = min_len, max_len, noise, seed

    def files(self) -> dict[str, Path]:
        return {}  # generated: the cache key comes from the parameters through the fingerprint

    def read(self, name: str) -> SequenceDataset:
        rng = np.random.default_rng(self.seed)
        sequences = []
        for u in range(self.num_users):
            length = int(rng.integers(self.min_len, self.max_len + 1))
            step = int(rng.integers(1, 4))
            cur = int(rng.integers(self.num_items))
            seq = [cur]
            while len(seq) < length:
                cur = int(rng.integers(self.num_items)) if rng.random() < self.noise else (cur + step)
                cur %= self.num_items
                if cur in seq:  # keep sequences free of repeats, like the 5-core Amazon sets
                    cur = next(i for i in range(self.num_items) if i not in seq)
                seq.append(cur)
            sequences.append((f"u{u}", [f"i{i}" for i in seq]))
        text = pd.DataFrame(
            {"title": [f"item {i} on the ring" for i in range(self.num_items)]},
            index=[f"i{i}" for i in range(self.num_items)],
        )
        params = {
            k: getattr(self, k) for k in ("num_users", "num_items", "min_len", "max_len", "noise", "seed")
        }
        return SequenceDataset.from_sequences(name, sequences, item_text=text, meta={"params": params})
