"""DirectAU (Wang et al., KDD 2022, "Towards Representation Alignment and Uniformity in Collaborative
Filtering"): matrix-factorisation embeddings trained with no negatives, by the alignment of each observed
(user, item) pair's normalised embeddings and the uniformity of users and of items on the unit sphere
(``loss=directau``: ``align + γ (uniform(users) + uniform(items)) / 2``). Scores are the dot products of
the raw embeddings, as in the authors' code.

The paper's settings: embedding 64, batches of 256 pairs, Adam 1e-3 with L2 1e-6; γ is tuned per dataset
({0.2, 0.5, 1, 2, 5, 10}): choose it on validation (``loss.gamma``). A user is its embedding, fitted
without the validation item (``test_history: train_only``).
"""

from __future__ import annotations

import torch
from torch import nn

from recbench.data.datamodule import EvalBatch
from recbench.data.pairs import PairBatch


class DirectAU(nn.Module):
    """Args:
    num_users, num_items: sizes of the embedding tables.
    embedding_size: width.
    """

    test_history = "train_only"
    max_history = 0  # no history is read: the user embedding stands for it

    def __init__(self, num_users: int, num_items: int, embedding_size: int = 64) -> None:
        super().__init__()
        self.user_emb = nn.Embedding(num_users, embedding_size)
        self.item_emb = nn.Embedding(num_items, embedding_size)
        nn.init.xavier_normal_(self.user_emb.weight)
        nn.init.xavier_normal_(self.item_emb.weight)

    def training_terms(self, batch: PairBatch) -> dict[str, object]:
        return {"users": self.user_emb(batch.users), "items": self.item_emb(batch.items)}

    def score(self, batch: EvalBatch) -> torch.Tensor:
        return self.user_emb(batch.users) @ self.item_emb.weight.T
