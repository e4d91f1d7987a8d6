"""The next-item recipe for zero-shot models: nothing is trained, items are ranked through the net's
own scorer (e.g. a faiss index in :class:`recbench.models.text_zeroshot.TextZeroShot`). Evaluation,
history masking, metrics and predictions are exactly :class:`NextItemModule`'s."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from recbench.data.datamodule import EvalBatch
from recbench.lit.next_item import NextItemModule
from recbench.metrics.ranking import RankMetric


class NoTraining(nn.Module):
    """Stands where a loss would be: a zero-shot recipe has none (rows say ``loss: NoTraining``)."""


class ZeroShotModule(NextItemModule):
    def __init__(
        self,
        net: Any,
        metrics: Sequence[RankMetric],
        mask_history: bool = False,
        predictions_k: int = 100,
        loss: nn.Module | None = None,
        optimizer: Any = None,
    ) -> None:
        # loss and optimizer are accepted (run.py passes them to every recipe) and ignored
        super().__init__(net, NoTraining(), optimizer, metrics, mask_history, predictions_k)

    def score(self, batch: EvalBatch) -> torch.Tensor:
        last = self.net(batch.inputs)[:, -1]  # (B, D) user vectors
        return self.net.score_items(last).float()  # type: ignore[attr-defined]

    def on_test_epoch_start(self) -> None:
        # the index's recall vs exact search is reported for the test users only
        if hasattr(self.net, "reset_index_stats"):
            self.net.reset_index_stats()
        super().on_test_epoch_start()

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        raise RuntimeError("a zero-shot model is not trained (model.zero_shot=true skips fit)")

    def configure_optimizers(self) -> Any:
        return None
