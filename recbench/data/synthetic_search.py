"""A seeded synthetic product-search set in the canonical :class:`SearchDataset` form, for fast tests
and ``debug`` runs of search models (the ESCI files are research-licensed and never in the repo).

Products are "<colour> <object>" with a brand; a query "<colour> <object>" judges a list of products:
the same colour and object are E(xact), the same object in another colour S(ubstitute), the same colour
on another object C(omplement), anything else I(rrelevant). Lexical and dense rankers must both beat a
random order on it by a wide margin.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from recbench.data.esci import SearchDataset

COLOURS = ["red", "blue", "green", "black", "white", "yellow", "purple", "orange"]
OBJECTS = [
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
]
BRANDS = ["Acme", "Globex", "Initech", "Umbrella Co", "Hooli"]


class SyntheticSearchSource:
    def __init__(
        self, num_queries: int = 20, products_per_pair: int = 1, list_size: int = 12, seed: int = 0
    ) -> None:
        if list_size < 4:
            raise ValueError("synthetic search data needs list_size >= 4")
        self.num_queries, self.products_per_pair = num_queries, products_per_pair
        self.list_size, self.seed = list_size, seed

    def files(self) -> dict[str, Path]:
        return {}

    def read(self, name: str) -> SearchDataset:
        rng = np.random.default_rng(self.seed)
        products: list[dict[str, str]] = []
        for c in COLOURS:
            for o in OBJECTS:
                for j in range(self.products_per_pair):
                    products.append(
                        {
                            "product_id": f"P{len(products):05d}",
                            "title": f"{c} {o} model {j}",
                            "brand": BRANDS[int(rng.integers(len(BRANDS)))],
                            "color": c,
                            "bullets": f"A {c} {o}.",
                            "description": "",
                            "_c": c,
                            "_o": o,
                        }
                    )
        frame = pd.DataFrame(products)
        rows = []
        pairs = [(c, o) for c in COLOURS for o in OBJECTS]
        for q, i in enumerate(rng.choice(len(pairs), size=self.num_queries, replace=False)):
            c, o = pairs[int(i)]
            label = np.where(
                (frame["_c"] == c) & (frame["_o"] == o),
                "E",
                np.where(frame["_o"] == o, "S", np.where(frame["_c"] == c, "C", "I")),
            )
            picked = []
            for lab, n in (("E", 2), ("S", 3), ("C", 2)):
                pool = np.flatnonzero(label == lab)
                picked += rng.choice(pool, size=min(n, len(pool)), replace=False).tolist()
            pool = np.flatnonzero(label == "I")
            picked += rng.choice(pool, size=self.list_size - len(picked), replace=False).tolist()
            for p in rng.permutation(picked):
                rows.append(
                    {
                        "query_id": q,
                        "query": f"{c} {o}",
                        "product_id": frame["product_id"][p],
                        "esci_label": label[p],
                    }
                )
        return SearchDataset.from_frames(
            name, pd.DataFrame(rows), frame.drop(columns=["_c", "_o"]), meta={"seed": self.seed}
        )
