"""EASE (Steck, WWW 2019, "Embarrassingly Shallow Autoencoders for Sparse Data"): the item-item weight
matrix of a linear autoencoder with a zero diagonal, in closed form,

    P = (XᵀX + λI)⁻¹,    B = I − P·diag(1/diag(P))    (B_ij = −P_ij / P_jj, B_jj = 0),

where X is the binary training matrix. The Gram matrix is inverted in float64 through its Cholesky
factor (it is symmetric positive definite for λ > 0); B is kept in float32. A user's scores are the sum
of B's rows over the items in the history before the target (``test_history: train+valid``; repeats
count once). No epochs: fitted when constructed, ``fit_seconds`` goes into the row. λ is the one
hyper-parameter; choose it on validation (a multirun over ``model.net.l2``).
"""

from __future__ import annotations

import time

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from recbench.data.datamodule import EvalBatch
from recbench.lit.cf import fold_in


def ease_weights(matrix: sp.spmatrix, l2: float) -> torch.Tensor:
    """(I, I) float32 B of EASE for the binary (U, I) ``matrix`` and L2 weight ``l2`` > 0."""
    x = sp.csr_matrix(matrix, dtype=np.float64)
    gram = torch.from_numpy((x.T @ x).toarray())
    gram.diagonal().add_(l2)
    factor = torch.linalg.cholesky(gram)
    del gram
    p = torch.cholesky_inverse(factor)
    del factor
    p.div_(-p.diagonal().clone()[None, :])  # in place: B_ij = -P_ij / P_jj
    p.diagonal().zero_()
    # LAPACK leaves the inverse column-major; rows of B are read at scoring time: make them contiguous
    # (a column-major B made the Beauty test pass 6x slower).
    return p.float().contiguous()


class EASE(nn.Module):
    """Args:
    num_items: number of items.
    train_matrix: (U, I) binary CSR of the training interactions.
    l2: λ, the L2 weight on B (Steck: 500 on ML-20M; sparser data wants less).
    """

    test_history = "train+valid"
    max_history = 0  # the whole history before the target

    def __init__(self, num_items: int, train_matrix: sp.csr_matrix, l2: float = 500.0) -> None:
        super().__init__()
        if train_matrix.shape[1] != num_items:
            raise ValueError(f"train_matrix has {train_matrix.shape[1]} items, expected {num_items}")
        if not l2 > 0:
            raise ValueError(f"model.net.l2 must be > 0 (it makes the Gram matrix invertible), got {l2}")
        started = time.perf_counter()
        self.weights: torch.Tensor
        self.register_buffer("weights", ease_weights(train_matrix, l2))
        self.fit_seconds = time.perf_counter() - started

    def score(self, batch: EvalBatch) -> torch.Tensor:
        return fold_in(batch, self.weights)
