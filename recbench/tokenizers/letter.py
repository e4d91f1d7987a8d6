"""LETTER-style semantic IDs (Wang et al., CIKM 2024, "Learnable Item Tokenization for Generative
Recommendation"): RQ-VAE over the item text embeddings, trained with two more terms so that the codes
carry collaborative signal and spread over the codebooks.

* **Collaborative alignment**: the quantized latent of each item in a batch (the sum of its chosen
  codewords) is aligned, by in-batch InfoNCE at temperature ``cf_temperature``, with the item's
  collaborative embedding through a learned linear map: ``cf_weight * InfoNCE(W ẑ_i, h_i)``. The
  collaborative embeddings ``h`` come from ``cf_embeddings`` (an ``(I, d)`` ``.npy``, e.g. a trained
  SASRec's item table) or, by default, from a BPR matrix factorisation fitted here on the *training*
  interactions (``fit(dataset, split)``).
* **Diversity**: ``diversity_weight`` times the KL divergence between each level's mean soft code
  assignment over the batch (softmax of negative distances at temperature ``diversity_temperature``) and
  the uniform one, which discourages the few crowded codes RQ-VAE tends to produce. LETTER's own
  diversity term is a contrastive loss over k-means clusters of the codewords; ours aims at the same even
  code use more simply, and says so.

Everything else (widths, k-means initialisation, dead-code resets) is :class:`RQVAETokenizer`'s.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from recbench.data.dataset import SequenceDataset
from recbench.data.protocol import Split
from recbench.tokenizers.rqvae import RQVAE, RQVAETokenizer

log = logging.getLogger(__name__)


def bpr_item_embeddings(
    dataset: SequenceDataset, split: Split, dim: int = 64, epochs: int = 20, seed: int = 0
) -> np.ndarray:
    """(I, dim) item factors of a BPR matrix factorisation (Adam 1e-2, batches of 4096 pairs, one uniform
    negative each) fitted on the training interactions only."""
    from recbench.data.pairs import draw_negatives, sorted_keys
    from recbench.inputs import RunContext, train_matrix

    m = train_matrix(RunContext(dataset, split, None))
    users = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
    items, keys = m.indices.astype(np.int64), sorted_keys(m)
    rng = np.random.default_rng(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        u_emb = nn.Embedding(m.shape[0], dim)
        i_emb = nn.Embedding(m.shape[1], dim)
        nn.init.normal_(u_emb.weight, std=0.1)
        nn.init.normal_(i_emb.weight, std=0.1)
        opt = torch.optim.Adam([*u_emb.parameters(), *i_emb.parameters()], lr=1e-2)
        for _ in range(epochs):
            order = rng.permutation(len(users))
            for start in range(0, len(order), 4096):
                idx = order[start : start + 4096]
                neg = draw_negatives(keys, m.shape[1], users[idx], 1, rng)[:, 0]
                u = u_emb(torch.from_numpy(users[idx]))
                pos, ng = i_emb(torch.from_numpy(items[idx])), i_emb(torch.from_numpy(neg))
                loss = -F.logsigmoid((u * pos).sum(-1) - (u * ng).sum(-1)).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
        return i_emb.weight.detach().numpy().astype(np.float32)


class LetterTokenizer(RQVAETokenizer):
    """Args (besides :class:`RQVAETokenizer`'s): ``cf_embeddings`` (path of an ``(I, d)`` ``.npy``, or
    None: fit BPR-MF of ``cf_dim`` on the training interactions), ``cf_weight``, ``cf_temperature``,
    ``diversity_weight``, ``diversity_temperature``."""

    name = "letter"

    def __init__(
        self,
        cf_embeddings: str | None = None,
        cf_dim: int = 64,
        cf_weight: float = 0.02,
        cf_temperature: float = 0.1,
        diversity_weight: float = 0.01,
        diversity_temperature: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if cf_weight < 0 or diversity_weight < 0 or cf_temperature <= 0 or diversity_temperature <= 0:
            raise ValueError(
                "tokenizer: cf_weight and diversity_weight must be >= 0, the temperatures > 0; got "
                f"{cf_weight}, {diversity_weight}, {cf_temperature}, {diversity_temperature}"
            )
        self.cf_source, self.cf_dim = cf_embeddings, cf_dim
        self.cf_weight, self.cf_temperature = cf_weight, cf_temperature
        self.diversity_weight, self.diversity_temperature = diversity_weight, diversity_temperature
        self._cf: torch.Tensor | None = None
        self._cf_digest: str | None = None  # sha256 prefix of the collaborative embeddings (cache key)
        self._proj: nn.Linear | None = None

    def params(self) -> dict[str, Any]:
        return {
            **super().params(),
            "cf_embeddings": self.cf_source,
            "cf_dim": self.cf_dim,
            "cf_weight": self.cf_weight,
            "cf_temperature": self.cf_temperature,
            "diversity_weight": self.diversity_weight,
            "diversity_temperature": self.diversity_temperature,
            # the collaborative embeddings themselves enter the cache key through their digest
            "cf_digest": self._cf_digest,
        }

    def fit(self, dataset: SequenceDataset, split: Split | None = None) -> LetterTokenizer:
        if self.cf_source:
            cf = np.load(Path(self.cf_source).expanduser())
            if cf.shape[0] != dataset.num_items:
                raise ValueError(
                    f"tokenizer.cf_embeddings {self.cf_source}: {cf.shape[0]} rows, {dataset.num_items} items"
                )
        else:
            if split is None:
                raise ValueError(
                    "tokenizer=letter fits its collaborative embeddings on the training interactions: "
                    "fit(dataset, split) needs the protocol's split (or set tokenizer.cf_embeddings)"
                )
            cf = bpr_item_embeddings(dataset, split, self.cf_dim, seed=self.seed)
        self.set_cf_embeddings(cf)
        super().fit(dataset, split)
        return self

    def set_cf_embeddings(self, cf: np.ndarray) -> None:
        import hashlib

        cf = np.ascontiguousarray(cf, dtype=np.float32)
        self._cf = torch.from_numpy(cf)
        self._cf_digest = hashlib.sha256(cf.tobytes()).hexdigest()[:16]

    def prepare(self, net: RQVAE, x: torch.Tensor) -> None:
        if self._cf is None:
            raise ValueError("tokenizer=letter: no collaborative embeddings (call fit, or set_cf_embeddings)")
        if len(self._cf) != len(x):
            raise ValueError(f"tokenizer=letter: {len(self._cf)} collaborative embeddings for {len(x)} items")
        self._proj = nn.Linear(net.codebooks.shape[2], self._cf.shape[1], bias=False)

    def extra_parameters(self) -> list[nn.Parameter]:
        return list(self._proj.parameters()) if self._proj is not None else []

    def batch_loss(
        self, net: RQVAE, batch: torch.Tensor, items: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        assert self._cf is not None and self._proj is not None
        loss, codes, residuals, quantized = net.losses(batch, self.beta)
        if self.cf_weight:
            a = F.normalize(self._proj(quantized), dim=-1)
            h = F.normalize(self._cf[items], dim=-1)
            logits = a @ h.T / self.cf_temperature  # (B, B): the item's own CF embedding is the positive
            loss = loss + self.cf_weight * F.cross_entropy(logits, torch.arange(len(items)))
        if self.diversity_weight:
            size = net.codebooks.shape[1]
            for level, codebook in enumerate(net.codebooks):
                soft = torch.softmax(-torch.cdist(residuals[level], codebook) / self.diversity_temperature, 1)
                usage = soft.mean(0).clamp_min(1e-12)  # (K,)
                loss = loss + self.diversity_weight * (usage * (usage.log() + math.log(size))).sum()
        return loss, codes, residuals
