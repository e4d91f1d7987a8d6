"""Next-item recommendation recipe: train a sequence encoder to score the next item, evaluate by full
ranking over every item.

The network (any ``nn.Module`` mapping item tokens (B, L) to hidden states (B, L, D) and exposing
``item_embeddings()``), the loss, the metrics and the optimizer are all injected; this module only says
how they fit together.

Evaluation ranks the target among *all* items. Both the unmasked rank and the rank with the user's past
items removed are computed in the same pass; ``mask_history`` picks the headline one and the other is kept
as a diagnostic, so every row can show both numbers.

On test batches carrying sampled negatives (``EvalBatch.sampled``, drawn by the datamodule: see
:mod:`recbench.data.sampled`), the target is also ranked against each variant's negatives, from the same
score matrix (the target's unmasked score; the negatives are never history items, so masking does not
change theirs): ``test_sampled_uniform100`` and ``test_sampled_popularity100``, a diagnostic of the sampled
protocol (Krichene & Rendle, KDD 2020), never a headline number.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol, cast

import lightning as L
import numpy as np
import torch
from torch import nn

from recbench.data.datamodule import EvalBatch, TrainBatch
from recbench.data.prefixes import PrefixBatch
from recbench.data.sampled import split_name
from recbench.metrics.ranking import RankMetric, compute, masked_ranks, sampled_ranks, target_ranks


class SequenceEncoder(Protocol):
    """What the recipe needs from a network (an ``nn.Module``): hidden states and output embeddings."""

    def __call__(self, tokens: torch.Tensor) -> torch.Tensor: ...  # (B, L) -> (B, L, D)

    def item_embeddings(self) -> torch.Tensor: ...  # (I, D)

    def parameters(self) -> Any: ...


class RankingEvaluation(L.LightningModule):
    """The evaluation pass both recipes share: per-batch outputs collected by ``_eval_step(batch, stage,
    batch_idx)`` (defined by the recipe), closed by :func:`finish_evaluation`, timed per stage."""

    def __init__(self) -> None:
        super().__init__()
        self._outputs: dict[str, list[torch.Tensor]] = {}
        self.results: dict[str, dict[str, float]] = {}  # "val", "test", "test_history_masked", ...
        self.predictions: dict[str, np.ndarray] = {}
        self.eval_seconds: dict[str, float] = {}
        self.sampled_short: dict[str, int] = {}  # sampled split -> cases with fewer negatives than asked

    def _eval_step(self, batch: EvalBatch, stage: str, batch_idx: int) -> None:
        raise NotImplementedError

    def _start(self, stage: str) -> None:
        self._outputs = {}
        self.eval_seconds[stage] = time.perf_counter()

    def _finish(self, stage: str) -> dict[str, np.ndarray]:
        arrays = finish_evaluation(self, stage)
        if stage == "test":
            self.predictions = arrays
        self.eval_seconds[stage] = time.perf_counter() - self.eval_seconds[stage]
        return arrays

    def on_validation_epoch_start(self) -> None:
        self._start("val")

    def validation_step(self, batch: EvalBatch, batch_idx: int) -> None:
        self._eval_step(batch, "val", batch_idx)

    def on_validation_epoch_end(self) -> None:
        self._finish("val")

    def on_test_epoch_start(self) -> None:
        self._start("test")

    def test_step(self, batch: EvalBatch, batch_idx: int) -> None:
        self._eval_step(batch, "test", batch_idx)

    def on_test_epoch_end(self) -> None:
        self._finish("test")


class NextItemModule(RankingEvaluation):
    def __init__(
        self,
        net: SequenceEncoder,
        loss: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        metrics: Sequence[RankMetric],
        mask_history: bool = False,
        predictions_k: int = 100,
        micro_batch: int = 256,
    ) -> None:
        super().__init__()
        self.net, self.loss, self.optimizer_factory = net, loss, optimizer
        self.metrics, self.mask_history, self.predictions_k = list(metrics), mask_history, predictions_k
        self.micro_batch = micro_batch

    # ---- training -------------------------------------------------------------------------------
    def training_step(self, batch: TrainBatch | PrefixBatch, batch_idx: int) -> torch.Tensor:
        if isinstance(batch, PrefixBatch):
            return self._prefix_step(batch)
        hidden = self.net(batch.inputs)  # (B, L, D)
        valid = batch.targets != 0
        loss = self.loss(hidden[valid], batch.targets[valid] - 1, self.net.item_embeddings())
        self.log("train/loss", loss, prog_bar=True, batch_size=int(valid.sum()))
        return loss

    def _prefix_step(self, batch: PrefixBatch) -> torch.Tensor:
        """One sample per prefix (``datamodule=prefix``, RecBole's way): the loss of the whole batch, read at
        each prefix's latest position. The batch is run as length-sorted micro-batches, each cut to its own
        longest history: with causal attention and padding masked, a prefix's output does not depend on
        the padding around it, so this is the batch's loss at a fraction of the padded cost."""
        lengths = (batch.inputs != 0).sum(1)
        order = lengths.argsort(stable=True)
        total = batch.inputs.new_zeros((), dtype=torch.float32)
        for chunk in order.split(self.micro_batch):
            width = max(int(lengths[chunk].max()), 1)
            last = self.net(batch.inputs[chunk, -width:])[:, -1]  # (b, D)
            total = total + self.loss(last, batch.targets[chunk], self.net.item_embeddings()) * len(chunk)
        loss = total / len(order)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(order))
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return self.optimizer_factory(params=self.parameters())

    # ---- evaluation -----------------------------------------------------------------------------
    def user_vectors(self, batch: EvalBatch) -> torch.Tensor:
        """(B, D) each case's query: the hidden state at the latest position (computed there alone by a
        network that can, ``reads_last_only``)."""
        if getattr(self.net, "reads_last_only", False):
            return cast(Any, self.net)(batch.inputs, last_only=True)[:, -1]
        return self.net(batch.inputs)[:, -1]

    def score(self, batch: EvalBatch) -> torch.Tensor:
        """(B, I) score of every item for each case."""
        return (self.user_vectors(batch) @ self.net.item_embeddings().T).float()

    def _eval_step(self, batch: EvalBatch, stage: str, batch_idx: int = 0) -> None:
        scores = self.score(batch)  # (B, I)
        plain = target_ranks(scores, batch.targets)
        # The masked rank from the plain one (no copy of the score matrix, no second rank pass).
        masked = masked_ranks(scores, batch.targets, plain, batch.history_rows, batch.history_items)
        out = {"users": batch.users, "plain": plain, "masked": masked}
        if stage == "test":
            for variant, negatives in batch.sampled.items():  # on the unmasked scores
                n = negatives.shape[1]
                out[f"sampled:{variant}:{n}"] = sampled_ranks(scores, batch.targets, negatives)
                out[f"sampled_count:{variant}:{n}"] = (negatives >= 0).sum(1)
            if self.mask_history:  # the kept predictions follow the headline protocol
                scores = scores.clone()  # a model may hand out a view of its own buffer
                scores[batch.history_rows, batch.history_items] = float("-inf")
            top_scores, top_items = scores.topk(min(self.predictions_k, scores.shape[1]), dim=1)
            out |= {"targets": batch.targets, "top_items": top_items, "top_scores": top_scores}
        for key, value in out.items():
            self._outputs.setdefault(key, []).append(value)

    def describe(self) -> dict[str, Any]:
        return {"n_params": sum(p.numel() for p in self.net.parameters())}


def finish_evaluation(module: Any, stage: str) -> dict[str, np.ndarray]:
    """Close an evaluation pass of a recipe (next-item or generative): concatenate the per-batch outputs
    in ``module._outputs``, gather them across ranks keeping each user exactly once (distributed samplers
    pad with repeated cases), compute the headline metrics (``module.results[stage]``, logged) and the
    other history setting beside them, and the sampled-metrics diagnostic where the recipe ranked sampled
    negatives (``module.sampled_short``: per split, the cases that had fewer eligible negatives than
    asked). Returns the per-case arrays."""
    gathered = {k: torch.cat(v) for k, v in module._outputs.items()}
    module._outputs = {}
    if module.trainer.world_size > 1:
        gathered = {k: cast(torch.Tensor, module.all_gather(v)).flatten(0, 1) for k, v in gathered.items()}
    _, first = np.unique(gathered["users"].cpu().numpy(), return_index=True)
    arrays = {k: v.cpu().numpy()[first] for k, v in gathered.items()}
    head, alt = ("masked", "plain") if module.mask_history else ("plain", "masked")
    module.results[stage] = compute(module.metrics, arrays[head])
    module.results[f"{stage}_history_{'unmasked' if module.mask_history else 'masked'}"] = compute(
        module.metrics, arrays[alt]
    )
    for key in [k for k in arrays if k.startswith("sampled:")]:
        _, variant, n = key.split(":")
        name = split_name(variant, int(n), stage)
        module.results[name] = compute(module.metrics, arrays[key])
        module.sampled_short[name] = int((arrays[f"sampled_count:{variant}:{n}"] < int(n)).sum())
    module.log_dict({f"{stage}/{k}": v for k, v in module.results[stage].items()}, sync_dist=False)
    return arrays
