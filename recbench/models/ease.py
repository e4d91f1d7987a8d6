"""EASE (Steck, WWW 2019, "Embarrassingly Shallow Autoencoders for Sparse Data"): the item-item weight
matrix of a linear autoencoder with a zero diagonal, in closed form,

    P = (XᵀX + λI)⁻¹,    B = I − P·diag(1/diag(P))    (B_ij = −P_ij / P_jj, B_jj = 0),

where X is the binary training matrix. The Gram matrix is inverted in float64 through its Cholesky
factor, in place (it is symmetric positive definite for λ > 0); B is kept in float32, row-major.
A user's scores are the sum of B's rows over the items in the history before the target
(``test_history: train+valid``; repeats count once). No epochs: fitted when constructed,
``fit_seconds`` goes into the row. λ is the one hyper-parameter; choose it on validation (a multirun
over ``model.net.l2``).
"""

from __future__ import annotations

import time

import numpy as np
import scipy.sparse as sp
import torch
from scipy.linalg import lapack
from threadpoolctl import threadpool_limits
from torch import nn

from recbench.data.datamodule import EvalBatch
from recbench.lit.cf import fold_in


def ease_weights(matrix: sp.spmatrix, l2: float, block: int = 2048) -> torch.Tensor:
    """(I, I) float32 B of EASE for the binary (U, I) ``matrix`` and L2 weight ``l2`` > 0.

    The Gram matrix is factored and inverted in place by LAPACK's dpotrf/dpotri (SciPy's OpenBLAS), one
    1.2 GB buffer on Beauty: measured on 2 cores, this is twice as fast as torch's MKL Cholesky and
    inverse, which also allocate a fresh matrix per step (page faults alone cost ~4 s per GB there).
    B is then written row block by row block (``block`` rows at a time) from the inverse's triangle.
    """
    x = sp.csr_matrix(matrix, dtype=np.float64)
    gram = (x.T @ x).toarray()
    gram.flat[:: gram.shape[0] + 1] += l2
    # Symmetric: the C-order array read in Fortran order is the same matrix, so LAPACK works in place.
    with threadpool_limits(limits=torch.get_num_threads(), user_api="blas"):
        factor, info = lapack.dpotrf(gram.T, lower=False, clean=False, overwrite_a=True)
        if info != 0:
            raise ValueError(f"EASE: the Gram matrix + l2*I is not positive definite (dpotrf info {info})")
        inverse, info = lapack.dpotri(factor, lower=False, overwrite_c=True)
        if info != 0:
            raise ValueError(f"EASE: inverting the Cholesky factor failed (dpotri info {info})")
    # dpotri leaves P in the Fortran upper triangle: the lower triangle of the C-order view.
    lower = torch.from_numpy(np.ascontiguousarray(inverse.T))
    del gram, factor, inverse
    return _zero_diagonal_weights(lower, block)


def _zero_diagonal_weights(lower: torch.Tensor, block: int) -> torch.Tensor:
    """Row-major float32 B_ij = -P_ij / P_jj, B_jj = 0, from the float64 P held in ``lower``'s lower
    triangle (entries above the diagonal are ignored)."""
    n = lower.shape[0]
    diagonal = lower.diagonal().clone()
    weights = torch.empty(n, n, dtype=torch.float32)
    rows = torch.empty(min(block, n), n, dtype=torch.float64)
    for start in range(0, n, block):
        stop = min(start + block, n)
        full = rows[: stop - start]
        full[:, :start] = lower[start:stop, :start]
        square = lower[start:stop, start:stop]
        full[:, start:stop] = square.tril() + square.tril(-1).mT
        full[:, stop:] = lower[stop:, start:stop].mT
        full.div_(-diagonal)  # B_ij = -P_ij / P_jj
        weights[start:stop] = full
    weights.diagonal().zero_()
    return weights


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
