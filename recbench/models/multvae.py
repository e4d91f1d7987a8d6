"""Mult-VAE (Liang et al., WWW 2018, "Variational Autoencoders for Collaborative Filtering"): a user's
item set through an MLP encoder to a Gaussian latent, decoded to a softmax over all items; trained with
the multinomial log-likelihood and a KL term whose weight β rises linearly from 0 to ``anneal_cap`` over
``anneal_steps`` updates (``loss=multvae``, user rows: ``model.sample: users``).

The paper's settings: one hidden layer of 600, a 200-dim latent, tanh, dropout 0.5 on the L2-normalised
input, β capped at 0.2, batches of 500 users, Adam 1e-3. A user is folded in from the whole history
before the target at evaluation (``test_history: train+valid``): the score is the decoder's output at the
latent mean.
"""

from __future__ import annotations

import itertools
from typing import cast

import torch
from torch import nn

from recbench.data.datamodule import EvalBatch
from recbench.data.pairs import UserBatch
from recbench.lit.cf import history_pairs


def mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.Tanh())
    return nn.Sequential(*layers)


class MultVAE(nn.Module):
    """Args:
    num_items: input and output width.
    hidden_sizes: encoder hidden layers (the decoder mirrors them).
    latent_size: width of the latent Gaussian.
    dropout: on the normalised input.
    anneal_cap, anneal_steps: β = min(anneal_cap, step / anneal_steps).
    """

    test_history = "train+valid"
    max_history = 0  # the whole history before the target

    def __init__(
        self,
        num_items: int,
        hidden_sizes: list[int] | tuple[int, ...] = (600,),
        latent_size: int = 200,
        dropout: float = 0.5,
        anneal_cap: float = 0.2,
        anneal_steps: int = 200_000,
    ) -> None:
        super().__init__()
        if anneal_steps < 1 or anneal_cap < 0:
            raise ValueError(
                f"model.net.anneal_steps must be >= 1 and anneal_cap >= 0, got {anneal_steps}, {anneal_cap}"
            )
        sizes = [num_items, *hidden_sizes]
        self.num_items, self.latent_size = num_items, latent_size
        self.encoder = mlp([*sizes, 2 * latent_size])
        self.decoder = mlp([latent_size, *reversed(sizes)])
        self.dropout = nn.Dropout(dropout)
        self.anneal_cap, self.anneal_steps = anneal_cap, anneal_steps
        self.steps: torch.Tensor
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))  # updates so far (checkpointed)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_normal_(m.weight)
                nn.init.normal_(m.bias, std=0.001)

    def encode(
        self, row_index: torch.Tensor, item_index: torch.Tensor, batch_size: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance for ``batch_size`` users given as (row, item) pairs of distinct items.

        The first layer reads only the users' items: the L2-normalised binary row is 1/sqrt(n) at each of
        its n items, dropout acts on those values (dropping a zero changes nothing), and the product with
        the layer's weight is a sum of the n weight columns. The same numbers as the dense
        ``Linear(dropout(normalize(rows)))`` up to float rounding, without a (B, I) input: on Beauty a
        training step no longer multiplies 500 x 12,101 by 12,101 x 600."""
        first = cast(nn.Linear, self.encoder[0])
        counts = torch.bincount(row_index, minlength=batch_size).clamp(min=1)
        values = self.dropout(counts[row_index].to(first.weight.dtype).rsqrt())
        h = torch.zeros(batch_size, first.out_features, dtype=first.weight.dtype, device=first.weight.device)
        h = h.index_add(0, row_index, first.weight.t()[item_index] * values[:, None]) + first.bias
        h = self.encoder[1:](h)
        return h[:, : self.latent_size], h[:, self.latent_size :]  # mean, log-variance

    def training_terms(self, batch: UserBatch) -> dict[str, object]:
        mu, logvar = self.encode(batch.row_index, batch.item_index, len(batch.users))
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        beta = min(self.anneal_cap, float(self.steps) / self.anneal_steps)
        self.steps += 1
        return {"logits": self.decoder(z), "row_index": batch.row_index, "item_index": batch.item_index,
                "mu": mu, "logvar": logvar, "beta": beta}  # fmt: skip

    def score(self, batch: EvalBatch) -> torch.Tensor:
        rows, items = history_pairs(batch)
        device = self.steps.device
        return self.decoder(self.encode(rows.to(device), items.to(device), len(batch.users))[0])
