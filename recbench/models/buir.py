"""BUIR (Lee et al., SIGIR 2021, "Bootstrapping User and Item Representations for One-Class Collaborative
Filtering"), the ID encoder (BUIR-id): no negatives. An online encoder (user and item embeddings) with a
linear predictor learns to predict a slowly moving target encoder's representation of the other side of
each observed (user, item) pair; the target follows the online weights by a momentum update after every
step, ``ξ ← τ ξ + (1 − τ) θ``. Loss (``loss=buir``): ``2 − 2 cos(q(u_θ), i_ξ)`` plus the symmetric
term for the item. Score: ``q(u_θ)·i_θ + u_θ·q(i_θ)``, the paper's.

Settings of public reimplementations (ReChorus): embedding 64, τ 0.995, Adam 1e-3, L2 1e-6. A user is its
embedding, fitted without the validation item (``test_history: train_only``).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from recbench.data.datamodule import EvalBatch
from recbench.data.pairs import PairBatch


class BUIR(nn.Module):
    """Args:
    num_users, num_items: sizes of the embedding tables.
    embedding_size: width.
    momentum: τ of the target's update.
    """

    test_history = "train_only"
    max_history = 0  # no history is read: the user embedding stands for it

    def __init__(
        self, num_users: int, num_items: int, embedding_size: int = 64, momentum: float = 0.995
    ) -> None:
        super().__init__()
        if not 0 <= momentum < 1:
            raise ValueError(f"model.net.momentum must be in [0, 1), got {momentum}")
        self.momentum = momentum
        self.user_emb = nn.Embedding(num_users, embedding_size)
        self.item_emb = nn.Embedding(num_items, embedding_size)
        nn.init.xavier_normal_(self.user_emb.weight)
        nn.init.xavier_normal_(self.item_emb.weight)
        self.predictor = nn.Linear(embedding_size, embedding_size)
        # the target starts as a copy of the online encoder and is never trained by gradient
        self.target_user = copy.deepcopy(self.user_emb).requires_grad_(False)
        self.target_item = copy.deepcopy(self.item_emb).requires_grad_(False)

    def training_terms(self, batch: PairBatch) -> dict[str, object]:
        u, i = self.user_emb(batch.users), self.item_emb(batch.items)
        with torch.no_grad():
            u_target, i_target = self.target_user(batch.users), self.target_item(batch.items)
        return {"online": [self.predictor(u), self.predictor(i)], "target": [i_target, u_target]}

    @torch.no_grad()
    def after_step(self) -> None:
        for online, target in ((self.user_emb, self.target_user), (self.item_emb, self.target_item)):
            target.weight.mul_(self.momentum).add_(online.weight, alpha=1 - self.momentum)

    def score(self, batch: EvalBatch) -> torch.Tensor:
        u, items = self.user_emb(batch.users), self.item_emb.weight
        return self.predictor(u) @ items.T + u @ self.predictor(items).T
