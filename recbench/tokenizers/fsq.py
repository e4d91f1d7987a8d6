"""Finite scalar quantization semantic IDs (Mentzer et al., ICLR 2024, "Finite Scalar Quantization: VQ-VAE
Made Simple"; the item tokenizer of RecGPT): an MLP autoencoder whose bottleneck has one dimension per code
level, each bounded by tanh and rounded to one of ``codebook_size`` evenly spaced values, straight-through
in training. No codebook to learn or collapse: every value of every level exists by construction, and the
code of level l is simply the rounded value of bottleneck dimension l.

    z = encoder(x);  v = tanh(z);  q = round((v + 1) / 2 · (L - 1)) ∈ {0, …, L - 1};
    x̂ = decoder(2 q / (L - 1) - 1)   (gradients pass through the rounding unchanged)
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from recbench.tokenizers.rqvae import mlp
from recbench.tokenizers.semantic import SemanticIdTokenizer
from recbench.utils.progress import Progress

log = logging.getLogger(__name__)


def fsq_codes(v: torch.Tensor, levels: int) -> torch.Tensor:
    """Bounded values in [-1, 1] -> integer codes in 0 .. levels - 1."""
    return torch.round((v.clamp(-1, 1) + 1) / 2 * (levels - 1)).long()


def fsq_values(codes: torch.Tensor, levels: int) -> torch.Tensor:
    """Integer codes -> the values they stand for, evenly spaced in [-1, 1]."""
    return codes.float() * (2 / (levels - 1)) - 1


class FSQAutoencoder(nn.Module):
    def __init__(self, dim: int, hidden: Sequence[int], num_levels: int, levels: int) -> None:
        super().__init__()
        self.levels = levels
        self.encoder = mlp([dim, *hidden, num_levels])
        self.decoder = mlp([num_levels, *reversed(hidden), dim])

    def quantize(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(codes (N, num_levels), straight-through quantized values (N, num_levels))."""
        v = torch.tanh(self.encoder(x))
        codes = fsq_codes(v, self.levels)
        return codes, v + (fsq_values(codes, self.levels) - v).detach()

    def loss(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        codes, q = self.quantize(x)
        return F.mse_loss(self.decoder(q), x), codes


class FSQTokenizer(SemanticIdTokenizer):
    """Args (besides :class:`SemanticIdTokenizer`'s): ``hidden`` encoder widths (the decoder mirrors them),
    ``epochs``, ``batch_size``, ``lr`` (Adam). ``num_levels`` bottleneck dimensions, ``codebook_size``
    values each."""

    name = "fsq"

    def __init__(
        self,
        hidden: Sequence[int] = (512, 256, 128),
        epochs: int = 100,
        batch_size: int = 1024,
        lr: float = 1e-3,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.hidden = [int(h) for h in hidden]
        self.epochs, self.batch_size, self.lr = epochs, batch_size, lr

    def params(self) -> dict[str, Any]:
        return {"hidden": self.hidden, "epochs": self.epochs, "batch_size": self.batch_size, "lr": self.lr}

    def quantize(self, embeddings: np.ndarray, codebook_size: int) -> np.ndarray:
        with torch.random.fork_rng():  # a private stream: the model trained afterwards is seeded as before
            torch.manual_seed(self.seed)
            x = torch.from_numpy(embeddings)
            net = FSQAutoencoder(x.shape[1], self.hidden, self.num_levels, codebook_size)
            opt = torch.optim.Adam(net.parameters(), lr=self.lr)
            gen = torch.Generator().manual_seed(self.seed)
            progress = Progress(log, "fsq fit", total=self.epochs, unit="epoch")
            for _ in range(self.epochs):
                order = torch.randperm(len(x), generator=gen)
                total = 0.0
                for start in range(0, len(x), self.batch_size):
                    batch = x[order[start : start + self.batch_size]]
                    loss, _ = net.loss(batch)
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    total += float(loss.detach()) * len(batch)
                progress.update(note=f"loss {total / len(x):.5f}")
            net.eval()
            with torch.no_grad():
                codes, q = net.quantize(x)
                self.train_report = {"final_recon_mse": float(F.mse_loss(net.decoder(q), x))}
        return codes.numpy()

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), **getattr(self, "train_report", {})}
