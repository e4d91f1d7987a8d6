"""Generative retrieval recipe: train an encoder-decoder to emit the next item's code tuple, evaluate by
constrained beam search (TIGER, Rajput et al. 2023).

Training: cross-entropy on each level of the target item's tuple (teacher forcing), the injected loss
taking the decoder states, the target tokens and the output embedding table (``loss=ce``: full softmax over
the vocabulary, as T5 is trained). Evaluation: :func:`constrained_beam_search` returns the top-K *items*
(each a valid, distinct tuple); the metrics of ``recbench.metrics.ranking`` are computed from the rank of
the target in that list. **A target outside the returned top-K counts as a miss**: its rank is recorded as
``top_k + 1``, a lower bound of its true rank, so every metric with cut-off <= ``top_k`` is exact (cut-offs
above ``top_k`` are refused).

Diagnostics stored beside the headline numbers, for the same decoded lists:

* ``<split>_history_masked`` (or ``…_unmasked``): the user's past items removed from the returned list
  (a post-filter of the top-K, not a masked decode: it can only under-estimate masked metrics);
* ``<split>_tuple_level``: the lenient rule of several reimplementations — a hit when an item at rank r
  shares the target's *semantic* tuple (first ``semantic_levels`` codes; the de-duplication code ignored),
  so every item colliding with the target counts as correct. The gap to the item-level row is the inflation
  (docs/protocol.md, rule 2). Only present when the tokenizer has a de-duplication level.

No sampled-metrics diagnostic (``test_sampled_*``, see :mod:`recbench.data.sampled`): beam search yields
no score for items outside the decoded list, and scoring the sampled negatives' tuples would cost a
teacher-forced decoder pass per negative (:meth:`GenerativeModule.score_all_items`). The negatives that
test batches carry are ignored, and the row has no ``sampled_metrics``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from recbench.data.datamodule import EvalBatch
from recbench.data.prefixes import PrefixBatch
from recbench.decoding.constrained import PrefixTables, constrained_beam_search
from recbench.lit.next_item import RankingEvaluation
from recbench.metrics.ranking import RankMetric, compute
from recbench.models.tiger import PAD, TIGER, IncrementalDecoder
from recbench.utils.progress import Progress

log = logging.getLogger(__name__)


def ranks_in_list(top_items: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """1-based position of each target in its row of ``top_items`` (B, K); ``K + 1`` when absent."""
    hit = top_items == targets[:, None]
    k = top_items.shape[1]
    pos = torch.where(hit.any(1), hit.float().argmax(1) + 1, torch.full_like(targets, k + 1))
    return pos.long()


class GenerativeModule(RankingEvaluation):
    """Args:
    net: a :class:`TIGER` (encoder-decoder over code tokens). loss: ``(query (N, D), targets (N,),
    output_emb (V, D)) -> loss``. optimizer: partial optimizer. metrics: rank metrics (cut-offs <= top_k).
    mask_history: headline numbers with the user's past items filtered out of the list.
    item_codes: (I, levels) unique code tuple of each item (from the tokenizer). semantic_levels: levels
    before the de-duplication code. beam_size, top_k: decoding. warmup_steps: steps at the base learning
    rate before inverse-square-root decay (TIGER §4; 0 = constant). predictions_k: items saved per test user.
    """

    def __init__(
        self,
        net: TIGER,
        loss: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        metrics: Sequence[RankMetric],
        item_codes: np.ndarray,
        semantic_levels: int,
        mask_history: bool = False,
        beam_size: int = 20,
        top_k: int = 20,
        warmup_steps: int = 0,
        predictions_k: int = 20,
    ) -> None:
        super().__init__()
        self.net, self.loss, self.optimizer_factory = net, loss, optimizer
        self.metrics, self.mask_history = list(metrics), mask_history
        too_deep = [m.key for m in self.metrics if m.k > top_k]
        if too_deep:
            raise ValueError(
                f"metrics {too_deep} need ranks beyond the decoded top_k={top_k}; raise "
                "model.module.top_k (and beam_size) or drop those cut-offs"
            )
        codes = np.asarray(item_codes, dtype=np.int64)
        if codes.shape[1] != net.num_levels:
            raise ValueError(f"item codes have {codes.shape[1]} levels, the network {net.num_levels}")
        self.item_codes: torch.Tensor
        self.register_buffer("item_codes", torch.from_numpy(codes), persistent=False)
        self.tables = PrefixTables(codes, net.code_sizes)
        self.semantic_levels = semantic_levels
        self.beam_size, self.top_k, self.warmup_steps = beam_size, top_k, warmup_steps
        self.predictions_k = min(predictions_k, top_k)
        self.progress_every = 50
        self._progress: Progress | None = None  # the pass being decoded (set on its first batch)

    # ---- inputs ---------------------------------------------------------------------------------
    def encoder_inputs(self, users: torch.Tensor, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mask = inputs != PAD
        history_codes = self.item_codes[(inputs - 1).clamp(min=0)]  # (B, L, levels)
        return self.net.encoder_inputs(history_codes, mask, users)

    # ---- training -------------------------------------------------------------------------------
    def training_step(self, batch: PrefixBatch, batch_idx: int) -> torch.Tensor:
        input_ids, attention = self.encoder_inputs(batch.users, batch.inputs)
        target_codes = self.item_codes[batch.targets]  # (B, levels)
        states = self.net(input_ids, attention, target_codes)  # (B, levels, D)
        targets = self.net.code_tokens(target_codes)
        loss = self.loss(states.flatten(0, 1), targets.flatten(), self.net.output_embeddings())
        self.log("train/loss", loss, prog_bar=True, batch_size=len(targets))
        if batch_idx % self.progress_every == 0:  # long CPU epochs: a timestamped trace of progress
            total = self.trainer.num_training_batches if self._trainer is not None else None
            of = f"/{total}" if isinstance(total, int) else ""  # counted from 1, like every other line
            log.info("epoch %d, batch %d%s: loss %.4f", self.current_epoch + 1, batch_idx + 1, of,
                     float(loss.detach()))  # fmt: skip
        return loss

    def configure_optimizers(self) -> Any:
        opt = self.optimizer_factory(params=self.parameters())
        if not self.warmup_steps:
            return opt
        w = self.warmup_steps
        schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: min(1.0, math.sqrt(w / max(step, 1))))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    # ---- decoding -------------------------------------------------------------------------------
    def decoder(
        self, users: torch.Tensor, inputs: torch.Tensor
    ) -> Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]:
        """The next-code logits of every beam, ``(tokens (B, W, t), parents) -> (B, W, V)``, for these users:
        TIGER's encoder runs once, then its incremental decoder."""
        input_ids, attention = self.encoder_inputs(users, inputs)
        return IncrementalDecoder(self.net, self.net.encode(input_ids, attention), attention)

    @torch.no_grad()
    def retrieve(self, users: torch.Tensor, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-``top_k`` items (B, K) and log-probabilities (B, K) by constrained beam search."""
        decoder = self.decoder(users, inputs)

        def step(tokens: torch.Tensor, parents: torch.Tensor | None) -> torch.Tensor:
            return F.log_softmax(decoder(tokens, parents).float(), dim=-1)

        self.tables.to(inputs.device)
        return constrained_beam_search(
            step,
            self.tables,
            self.net.level_offsets,
            batch_size=len(users),
            beam_size=self.beam_size,
            top_k=self.top_k,
            start_token=PAD,
            device=inputs.device,
        )

    @torch.no_grad()
    def score_all_items(self, users: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        """(B, I) log-probability of every item's full tuple (teacher forcing): the brute-force reference
        that beam search must match when the beam holds every item. Costs B x I decoder passes."""
        input_ids, attention = self.encoder_inputs(users, inputs)
        states = self.net.encode(input_ids, attention)
        num_items = len(self.item_codes)
        out = torch.empty(len(users), num_items)
        tokens = self.net.code_tokens(self.item_codes)  # (I, levels)
        dec_in = torch.cat([torch.full_like(tokens[:, :1], PAD), tokens[:, :-1]], dim=1)
        for row in range(len(users)):
            logits = self.net.decode_logits(
                states[row : row + 1].expand(num_items, -1, -1),
                attention[row : row + 1].expand(num_items, -1),
                dec_in,
            )
            logp = F.log_softmax(logits.float(), dim=-1).gather(2, tokens[..., None])[..., 0]
            out[row] = logp.sum(1)
        return out

    # ---- evaluation -----------------------------------------------------------------------------
    def _decode_progress(self, stage: str) -> Progress | None:
        """Batches decoded out of the stage's total, with an ETA (decoding a catalogue takes minutes)."""
        try:
            counts = self.trainer.num_val_batches if stage == "val" else self.trainer.num_test_batches
            total = int(sum(counts))
        except (RuntimeError, AttributeError, TypeError):  # no trainer: a direct call (tests)
            return None
        return Progress(log, f"{stage} decoding", total=total, unit="batch", every_seconds=30)

    def _eval_step(self, batch: EvalBatch, stage: str, batch_idx: int = 0) -> None:
        if batch_idx == 0:
            self._progress = self._decode_progress(stage)
        top_items, top_scores = self.retrieve(batch.users, batch.inputs)  # (B, K)
        # history post-filter: past items leave the list, later items move up
        match = top_items[batch.history_rows] == batch.history_items[:, None]  # (H, K)
        hits = torch.zeros(top_items.shape, device=top_items.device)
        in_history = hits.index_add_(0, batch.history_rows, match.float()) > 0
        masked_items = top_items.masked_fill(in_history, -1)
        order = torch.argsort(in_history.to(torch.int8), dim=1, stable=True)
        masked_items = masked_items.gather(1, order)
        out = {
            "users": batch.users,
            "plain": ranks_in_list(top_items, batch.targets),
            "masked": ranks_in_list(masked_items, batch.targets),
        }
        if self.semantic_levels < self.net.num_levels:
            sem = self.item_codes[:, : self.semantic_levels]
            listed = sem[top_items.clamp(min=0)]  # (B, K, s)
            same = (listed == sem[batch.targets][:, None]).all(-1) & (top_items >= 0)
            k = top_items.shape[1]
            out["tuple"] = torch.where(same.any(1), same.float().argmax(1) + 1, k + 1).long()
        if stage == "test":
            head = masked_items if self.mask_history else top_items
            head_scores = top_scores.gather(1, order) if self.mask_history else top_scores
            head_scores = head_scores.masked_fill(head < 0, float("-inf"))
            kp = self.predictions_k
            out |= {"targets": batch.targets, "top_items": head[:, :kp], "top_scores": head_scores[:, :kp]}
        for key, value in out.items():
            self._outputs.setdefault(key, []).append(value)
        if self._progress is not None:
            self._progress.update()

    def _finish(self, stage: str) -> dict[str, np.ndarray]:
        arrays = super()._finish(stage)
        if "tuple" in arrays:  # lenient diagnostic, never the headline (docs/protocol.md, rule 2)
            self.results[f"{stage}_tuple_level"] = compute(self.metrics, arrays["tuple"])
        return arrays
