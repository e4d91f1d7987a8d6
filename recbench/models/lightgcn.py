"""LightGCN (He et al., SIGIR 2020): user and item embeddings smoothed over the normalised user-item graph
of the training interactions, no feature transform or non-linearity,

    E⁽ᵏ⁺¹⁾ = D^-½ A D^-½ E⁽ᵏ⁾,    E = mean(E⁽⁰⁾ … E⁽ᴷ⁾),    score(u, i) = e_u · e_i,

with A the (U+I) x (U+I) bipartite adjacency of the binary training matrix. Trained with BPR on
(user, item, uniform negative) triples and the L2 penalty on the layer-0 embeddings of the batch
(``loss=bpr``, ``loss.reg_weight`` 1e-4 as in the paper). Paper settings: 64 dimensions, 3 layers, Adam
at 1e-3, batches of 2048 (RecBole's too).

A user is its (propagated) embedding, fitted on the training items only (``test_history: train_only``).
The graph is a sparse CSR tensor: one propagation costs 2·nnz·D per layer.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from recbench.data.datamodule import EvalBatch
from recbench.data.pairs import PairBatch


def normalized_adjacency(matrix: sp.spmatrix) -> torch.Tensor:
    """(U+I, U+I) sparse CSR float32 D^-½ A D^-½ of the bipartite graph of the binary (U, I) ``matrix``
    (users first, then items); an isolated node's row and column are zero."""
    x = sp.csr_matrix(matrix, dtype=np.float32)
    adj = sp.bmat([[None, x], [x.T, None]], format="csr")
    deg = np.asarray(adj.sum(1)).ravel()
    inv = np.zeros_like(deg)
    inv[deg > 0] = deg[deg > 0] ** -0.5
    norm = sp.diags(inv) @ adj @ sp.diags(inv)
    norm = sp.csr_matrix(norm, dtype=np.float32)
    return torch.sparse_csr_tensor(
        torch.from_numpy(norm.indptr.astype(np.int64)),
        torch.from_numpy(norm.indices.astype(np.int64)),
        torch.from_numpy(norm.data),
        size=norm.shape,
        check_invariants=True,
    )


class _SymmetricProduct(torch.autograd.Function):
    """``graph @ e`` for a symmetric sparse ``graph``, whose gradient is ``graph @ grad`` again: half the
    cost of autograd's, which transposes the CSR matrix on every backward pass (Beauty, 3 layers, 1
    thread: 0.12 s against 0.23 s per step, forward and backward)."""

    @staticmethod
    def forward(ctx: Any, graph: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        ctx.graph = graph
        return torch.sparse.mm(graph, e)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[None, torch.Tensor]:
        return None, torch.sparse.mm(ctx.graph, grad)


def propagate_once(graph: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
    """One layer, ``graph @ e``, for the symmetric normalised adjacency."""
    return _SymmetricProduct.apply(graph, e)


class LightGCN(nn.Module):
    """Args:
    num_users, num_items: graph sizes.
    train_matrix: (U, I) binary CSR of the training interactions (the graph).
    embedding_size: width of the layer-0 embeddings.
    num_layers: propagation layers K (0: matrix factorisation).
    """

    test_history = "train_only"
    max_history = 0  # no history is read: the user embedding stands for it

    def __init__(
        self,
        num_users: int,
        num_items: int,
        train_matrix: sp.csr_matrix,
        embedding_size: int = 64,
        num_layers: int = 3,
    ) -> None:
        super().__init__()
        if train_matrix.shape != (num_users, num_items):
            expected = (num_users, num_items)
            raise ValueError(f"train_matrix has shape {train_matrix.shape}, expected {expected}")
        if num_layers < 0:
            raise ValueError(f"model.net.num_layers must be >= 0, got {num_layers}")
        self.num_users, self.num_layers = num_users, num_layers
        self.user_emb = nn.Embedding(num_users, embedding_size)
        self.item_emb = nn.Embedding(num_items, embedding_size)
        nn.init.normal_(self.user_emb.weight, std=0.1)  # the paper's initialisation
        nn.init.normal_(self.item_emb.weight, std=0.1)
        self.graph: torch.Tensor
        self.register_buffer("graph", normalized_adjacency(train_matrix), persistent=False)
        self._cached: tuple[tuple[int, ...], tuple[torch.Tensor, torch.Tensor]] | None = None

    def propagate(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(U, D) user and (I, D) item embeddings averaged over layers 0..K."""
        e = torch.cat([self.user_emb.weight, self.item_emb.weight])
        total = e
        for _ in range(self.num_layers):
            e = propagate_once(self.graph, e)
            total = total + e
        total = total / (self.num_layers + 1)
        return total[: self.num_users], total[self.num_users :]

    def training_terms(self, batch: PairBatch) -> dict[str, object]:
        self._cached = None  # the step that follows changes the weights; a fused optimizer leaves their
        # version counters as they were, so the cache key alone would not see it
        users, items = self.propagate()
        u = users[batch.users]
        pos, neg = items[batch.items], items[batch.negatives]
        return {
            "pos": (u * pos).sum(-1),
            "neg": torch.einsum("bd,bkd->bk", u, neg),
            "reg": [self.user_emb(batch.users), self.item_emb(batch.items), self.item_emb(batch.negatives)],
        }

    def score(self, batch: EvalBatch) -> torch.Tensor:
        # One propagation per evaluation pass: reused while the weights are unchanged (dropped by every
        # training step; a checkpoint load bumps the weights' version counters).
        key = (self.user_emb.weight._version, self.item_emb.weight._version, self.user_emb.weight.data_ptr())
        if self._cached is None or self._cached[0] != key:
            with torch.no_grad():
                self._cached = (key, self.propagate())
        users, items = self._cached[1]
        return users[batch.users] @ items.T
