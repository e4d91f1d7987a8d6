"""RQ-VAE semantic IDs (Zeghidour et al., "SoundStream", 2021; as used by TIGER, Rajput et al. 2023 §3.1).

An MLP encoder maps an item's text embedding to a latent ``z``; level 0 picks the nearest code of its
codebook to ``z``, level 1 the nearest code to the residual ``z - e0``, and so on; an MLP decoder
reconstructs the embedding from ``e0 + e1 + …``. Loss = reconstruction MSE + Σ_levels
(‖sg[r] − e‖² + β‖r − sg[e]‖²), β = 0.25, gradients through the quantizer by the straight-through
estimator. Each codebook is initialised by k-means on the residuals of *all* items at that level (the
paper uses the first batch; with ~12k items all of them fit), which is what keeps codebooks from
collapsing; codes left unused for a whole epoch are optionally re-seeded from random residuals (a common
remedy, e.g. Dhariwal et al. "Jukebox" 2020), reported as ``dead_code_resets``.

Paper sizes: encoder 512-256-128, latent 32, 3 levels x 256 codes; the paper trains 20k epochs with
Adagrad (lr 0.4, batch 1024). Fewer epochs with Adam are the default here (CPU), recorded in the row.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from recbench.tokenizers.rqkmeans import kmeans
from recbench.tokenizers.semantic import SemanticIdTokenizer
from recbench.utils.progress import Progress

log = logging.getLogger(__name__)


def mlp(sizes: Sequence[int], dropout: float = 0.0) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers += [nn.ReLU(), nn.Dropout(dropout)]
    return nn.Sequential(*layers)


class RQVAE(nn.Module):
    """The network: encoder, ``num_levels`` codebooks (K, latent), decoder."""

    def __init__(
        self, input_dim: int, hidden: Sequence[int], latent_dim: int, num_levels: int, codebook_size: int
    ) -> None:
        super().__init__()
        self.encoder = mlp([input_dim, *hidden, latent_dim])
        self.decoder = mlp([latent_dim, *reversed(hidden), input_dim])
        self.codebooks = nn.Parameter(torch.randn(num_levels, codebook_size, latent_dim) * 0.01)

    def quantize(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """z (N, D) -> codes (N, levels), quantized sum (N, D), residual entering each level."""
        residual, quantized = z, torch.zeros_like(z)
        codes, residuals = [], []
        for codebook in self.codebooks:  # (K, D)
            residuals.append(residual)
            idx = torch.cdist(residual, codebook).argmin(dim=1)  # (N,)
            e = codebook[idx]
            codes.append(idx)
            quantized = quantized + e
            residual = residual - e
        return torch.stack(codes, dim=1), quantized, residuals

    def loss(self, x: torch.Tensor, beta: float) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        total, codes, residuals, _ = self.losses(x, beta)
        return total, codes, residuals

    def losses(
        self, x: torch.Tensor, beta: float
    ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor], torch.Tensor]:
        """(reconstruction + codebook + commitment loss, codes (N, levels), residual entering each level,
        the quantized latent (N, D)): the sum of the chosen codewords, whose gradient reaches both the
        codebooks and, straight through, the encoder."""
        z = self.encoder(x)
        residual, quantized = z, torch.zeros_like(z)
        vq, codes, residuals = x.new_zeros(()), [], []
        for codebook in self.codebooks:
            residuals.append(residual.detach())
            idx = torch.cdist(residual.detach(), codebook).argmin(dim=1)
            e = codebook[idx]
            vq = vq + F.mse_loss(e, residual.detach()) + beta * F.mse_loss(residual, e.detach())
            codes.append(idx)
            quantized = quantized + e
            residual = residual - e.detach()
        z_q = z + (quantized - z).detach()  # straight-through: decoder gradient flows to the encoder
        recon = F.mse_loss(self.decoder(z_q), x)
        return recon + vq, torch.stack(codes, dim=1), residuals, quantized + z - z.detach()


class RQVAETokenizer(SemanticIdTokenizer):
    """Args (besides :class:`SemanticIdTokenizer`'s):
    hidden: encoder widths (decoder mirrors them). latent_dim: code dimension. epochs, batch_size, lr:
    Adam training. beta: commitment weight (0.25). kmeans_init: k-means initialisation of each codebook.
    reset_dead_codes: re-seed codes unused for a whole epoch."""

    name = "rqvae"

    def __init__(
        self,
        hidden: Sequence[int] = (512, 256, 128),
        latent_dim: int = 32,
        epochs: int = 100,
        batch_size: int = 1024,
        lr: float = 1e-3,
        beta: float = 0.25,
        kmeans_init: bool = True,
        reset_dead_codes: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.hidden, self.latent_dim = [int(h) for h in hidden], latent_dim
        self.epochs, self.batch_size, self.lr, self.beta = epochs, batch_size, lr, beta
        self.kmeans_init, self.reset_dead_codes = kmeans_init, reset_dead_codes

    def params(self) -> dict[str, Any]:
        return {
            "hidden": self.hidden,
            "latent_dim": self.latent_dim,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "lr": self.lr,
            "beta": self.beta,
            "kmeans_init": self.kmeans_init,
            "reset_dead_codes": self.reset_dead_codes,
        }

    def prepare(self, net: RQVAE, x: torch.Tensor) -> None:
        """Called once before training, with the network and all items' embeddings (nothing here)."""

    @torch.no_grad()
    def _init_codebooks(self, net: RQVAE, x: torch.Tensor, size: int) -> None:
        residual = net.encoder(x)
        for level in range(self.num_levels):
            centroids, assign = kmeans(residual.numpy(), size, 25, self.seed + level)
            net.codebooks[level] = torch.from_numpy(centroids)
            residual = residual - net.codebooks[level][torch.from_numpy(assign)]

    def quantize(self, embeddings: np.ndarray, codebook_size: int) -> np.ndarray:
        # A private RNG stream: fitting (or reading the cache) must not shift the global one that
        # seeds the recommendation model afterwards.
        with torch.random.fork_rng():
            torch.manual_seed(self.seed)
            return self._train(torch.from_numpy(embeddings), codebook_size)

    def batch_loss(
        self, net: RQVAE, batch: torch.Tensor, items: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """The loss of one batch of items (their embeddings and indices): RQ-VAE's own. Variants that add
        terms (LETTER) override it."""
        return net.loss(batch, self.beta)

    def extra_parameters(self) -> list[nn.Parameter]:
        """Parameters trained beside the network's (none here)."""
        return []

    def _train(self, x: torch.Tensor, size: int) -> np.ndarray:
        net = RQVAE(x.shape[1], self.hidden, self.latent_dim, self.num_levels, size)
        self.prepare(net, x)
        if self.kmeans_init:
            self._init_codebooks(net, x, size)
        opt = torch.optim.Adam([*net.parameters(), *self.extra_parameters()], lr=self.lr)
        gen = torch.Generator().manual_seed(self.seed)
        resets = 0
        progress = Progress(log, "rqvae fit", total=self.epochs, unit="epoch")
        for epoch in range(self.epochs):
            used = torch.zeros(self.num_levels, size, dtype=torch.bool)
            order = torch.randperm(len(x), generator=gen)
            residuals: list[torch.Tensor] = []
            total = 0.0
            for start in range(0, len(x), self.batch_size):
                items = order[start : start + self.batch_size]
                loss, codes, residuals = self.batch_loss(net, x[items], items)
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(items)
                for level in range(self.num_levels):
                    used[level, codes[:, level]] = True
            if self.reset_dead_codes and epoch < self.epochs - 1:
                with torch.no_grad():
                    for level in range(self.num_levels):
                        dead = torch.nonzero(~used[level]).flatten()
                        if len(dead):
                            pick = torch.randint(len(residuals[level]), (len(dead),), generator=gen)
                            net.codebooks[level, dead] = residuals[level][pick]
                            resets += len(dead)
            progress.update(note=f"loss {total / len(x):.5f}, used codes {used.sum(1).tolist()}")
        net.eval()
        with torch.no_grad():
            z = net.encoder(x)
            codes, quantized, _ = net.quantize(z)
            recon = float(F.mse_loss(net.decoder(quantized), x))
        self.train_report = {"final_recon_mse": recon, "dead_code_resets": resets}
        log.info("rqvae: reconstruction MSE %.5f, %d dead-code resets", recon, resets)
        return codes.numpy()

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), **getattr(self, "train_report", {})}
