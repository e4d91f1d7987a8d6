"""BPR-MF (Rendle et al., UAI 2009): a user and an item embedding, score = dot product, trained with the
BPR loss on (user, training item, uniform negative) triples (``datamodule=interactions``, ``loss=bpr``).
RecBole's defaults: embedding 64, Xavier-normal initialisation, Adam at 1e-3, batches of 2048 pairs.

A user is its embedding, fitted on the training items only: at test the validation item is not part of
it (``test_history: train_only``).
"""

from __future__ import annotations

import torch
from torch import nn

from recbench.data.datamodule import EvalBatch
from recbench.data.pairs import PairBatch


class BPRMF(nn.Module):
    """Args:
    num_users, num_items: sizes of the two embedding tables.
    embedding_size: width of each.
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
        u = self.user_emb(batch.users)  # (B, D)
        pos, neg = self.item_emb(batch.items), self.item_emb(batch.negatives)  # (B, D), (B, K, D)
        return {
            "pos": (u * pos).sum(-1),
            "neg": torch.einsum("bd,bkd->bk", u, neg),
            "reg": [u, pos, neg],
        }

    def score(self, batch: EvalBatch) -> torch.Tensor:
        return self.user_emb(batch.users) @ self.item_emb.weight.T
