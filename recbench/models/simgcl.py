"""SimGCL (Yu et al., SIGIR 2022, "Are Graph Augmentations Necessary? Simple Graph Contrastive Learning
for Recommendation"): LightGCN plus a contrastive term between two views of the same graph encoder, each
made by adding a small random vector to every layer's embeddings,

    E⁽ᵏ⁺¹⁾ = Â E⁽ᵏ⁾ + Δ,    Δ = ε · sign(E⁽ᵏ⁺¹⁾) ⊙ normalize(U(0, 1)),

InfoNCE between the two views of the batch's users and of its items (``loss=bpr_cl``). As in the paper
the final embeddings average layers 1..K (layer 0 left out); scoring and the BPR term use the
unperturbed encoder. The authors' (SELFRec) settings: 2 layers, ε 0.1, temperature 0.2, contrastive
weight 0.5, L2 1e-4, 64 dimensions, batches of 2048. ``test_history: train_only`` as LightGCN.
"""

from __future__ import annotations

import scipy.sparse as sp
import torch
import torch.nn.functional as F

from recbench.data.pairs import PairBatch
from recbench.models.lightgcn import LightGCN, propagate_once


class SimGCL(LightGCN):
    """Args (besides LightGCN's): eps: size of the perturbation."""

    def __init__(
        self,
        num_users: int,
        num_items: int,
        train_matrix: sp.csr_matrix,
        embedding_size: int = 64,
        num_layers: int = 2,
        eps: float = 0.1,
    ) -> None:
        if num_layers < 1:
            raise ValueError(
                f"model.net.num_layers must be >= 1 (SimGCL perturbs each layer), got {num_layers}"
            )
        super().__init__(num_users, num_items, train_matrix, embedding_size, num_layers)
        self.eps = eps

    def propagate(self, perturb: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """(U, D) users and (I, D) items: the mean of layers 1..K, each perturbed when ``perturb``."""
        e = torch.cat([self.user_emb.weight, self.item_emb.weight])
        total = torch.zeros_like(e)
        for _ in range(self.num_layers):
            e = propagate_once(self.graph, e)
            if perturb:
                e = e + self.eps * torch.sign(e) * F.normalize(torch.rand_like(e), dim=-1)
            total = total + e
        total = total / self.num_layers
        return total[: self.num_users], total[self.num_users :]

    def training_terms(self, batch: PairBatch) -> dict[str, object]:
        terms = super().training_terms(batch)
        users, items = torch.unique(batch.users), torch.unique(batch.items)
        (u1, i1), (u2, i2) = self.propagate(perturb=True), self.propagate(perturb=True)
        return terms | {"views": [(u1[users], u2[users]), (i1[items], i2[items])]}
