"""The collaborative-filtering recipe: a model fitted on the training matrix (user x item), evaluated by
the next-item recipe's full-ranking pass, so its rows share the board with the sequential models'.

What the recipe asks of a network:

* ``score(batch: EvalBatch) -> (B, I)``: every item's score for each evaluation case. Models that fold a
  user in from the history (ItemKNN, EASE, Mult-VAE) read ``batch.history_items``, everything before the
  target (at test: training items plus the validation item); models with a learned per-user embedding
  (BPR-MF, LightGCN, BUIR, DirectAU) read ``batch.users``, an embedding fitted without the validation
  item. Which of the two the model does is its ``test_history`` (``train+valid`` or ``train_only``),
  written into every row's protocol.
* for trained models, ``training_terms(batch) -> dict``: the tensors its loss takes (``loss(**terms)``,
  e.g. ``pos``/``neg`` scores for BPR), and optionally ``after_step()`` (a momentum update, BUIR).

Closed-form models (ItemKNN, EASE) are fitted when constructed and run with ``zero_shot: true`` (no
epochs); their ``fit_seconds`` goes into the row's cost.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from recbench.data.datamodule import EvalBatch
from recbench.lit.next_item import NextItemModule
from recbench.lit.zero_shot import NoTraining
from recbench.metrics.ranking import RankMetric

TEST_HISTORIES = ("train_only", "train+valid")


class CFModule(NextItemModule):
    def __init__(
        self,
        net: nn.Module,
        loss: nn.Module | None,
        optimizer: Callable[..., torch.optim.Optimizer] | None,
        metrics: Sequence[RankMetric],
        mask_history: bool = False,
        predictions_k: int = 100,
    ) -> None:
        super().__init__(net, loss or NoTraining(), optimizer, metrics, mask_history, predictions_k)  # type: ignore[arg-type]
        self.test_history = str(getattr(net, "test_history", ""))
        if self.test_history not in TEST_HISTORIES:
            raise ValueError(
                f"{type(net).__name__}.test_history is {self.test_history!r}; "
                f"expected one of {TEST_HISTORIES}"
            )

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        loss = self.loss(**self.net.training_terms(batch))  # type: ignore[attr-defined]
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch.users))
        return loss

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        if hasattr(self.net, "after_step"):
            self.net.after_step()

    def score(self, batch: EvalBatch) -> torch.Tensor:
        return self.net.score(batch).float()  # type: ignore[attr-defined]

    def configure_optimizers(self) -> Any:
        if self.optimizer_factory is None:
            return None  # closed form: nothing to optimise
        return self.optimizer_factory(params=self.parameters())


def history_pairs(batch: EvalBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """(rows, items) of each case's history with repeats removed: CF models see a set of items."""
    num = int(batch.history_items.max()) + 1 if len(batch.history_items) else 1
    keys = torch.unique(batch.history_rows * num + batch.history_items)
    return keys // num, keys % num
