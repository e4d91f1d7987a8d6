"""TIGER: the fast incremental decoder equals the stock T5 forward; constrained beam search returns
existing, distinct items and, with a beam holding every item, exactly the brute-force top-K."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from recbench.data.prefixes import prefix_samples
from recbench.decoding.constrained import PrefixTables, constrained_beam_search
from recbench.lit.generative import GenerativeModule, ranks_in_list
from recbench.losses.ce import FullSoftmaxCE
from recbench.metrics.ranking import build_metrics
from recbench.models.tiger import TIGER, IncrementalDecoder
from recbench.tokenizers.semantic import deduplicate


def tiny_codes(num_items: int = 40, seed: int = 0) -> tuple[np.ndarray, list[int]]:
    rng = np.random.default_rng(seed)
    codes = deduplicate(rng.integers(0, 4, size=(num_items, 3)))  # many collisions on purpose
    return codes, [4, 4, 4, int(codes[:, -1].max()) + 1]


def tiny_recipe(recipe: type, net: torch.nn.Module, codes: np.ndarray, beam: int, top_k: int) -> Any:
    """A generative recipe (TIGER's or another) over ``net`` and tiny codes, in eval mode."""
    return recipe(
        net=net,
        loss=FullSoftmaxCE(),
        optimizer=torch.optim.Adam,
        metrics=build_metrics(["recall"], [1, min(5, top_k)]),
        item_codes=codes,
        semantic_levels=3,
        beam_size=beam,
        top_k=top_k,
    ).eval()


def tiny_module(num_items: int = 40, beam: int = 5, top_k: int = 5) -> GenerativeModule:
    torch.manual_seed(0)
    codes, sizes = tiny_codes(num_items)
    net = TIGER(
        num_items, sizes, max_len=5, num_user_tokens=7, d_model=32, num_layers=2, num_heads=2, d_kv=8, d_ff=64
    )
    return tiny_recipe(GenerativeModule, net, codes, beam, top_k)


def test_incremental_decoder_equals_stock_forward():
    m = tiny_module()
    users, inputs = torch.tensor([0, 1, 2]), torch.tensor([[0, 0, 3, 4, 5], [1, 2, 3, 4, 5], [0, 0, 0, 0, 9]])
    ids, att = m.encoder_inputs(users, inputs)
    enc = m.net.encode(ids, att)
    toks = m.net.code_tokens(m.item_codes[torch.tensor([3, 7, 11])])
    toks = torch.cat([torch.zeros(3, 1, dtype=torch.long), toks], dim=1)  # start token first
    ref = m.net.decode_logits(enc, att, toks)  # (B, T, V)
    dec = IncrementalDecoder(m.net, enc, att)
    for t in range(toks.shape[1]):
        out = dec(toks[:, None, : t + 1], None if t == 0 else torch.zeros(3, 1, dtype=torch.long))
        assert torch.allclose(out[:, 0], ref[:, t], atol=1e-4)


def test_decoder_states_give_the_t5_logits():
    m = tiny_module()
    ids, att = m.encoder_inputs(torch.tensor([0]), torch.tensor([[0, 1, 2, 3, 4]]))
    target = m.item_codes[torch.tensor([5])]
    states = m.net(ids, att, target)  # (1, levels, D)
    dec_in = torch.cat([torch.zeros(1, 1, dtype=torch.long), m.net.code_tokens(target)[:, :-1]], dim=1)
    logits = m.net.decode_logits(m.net.encode(ids, att), att, dec_in)
    assert torch.allclose(states @ m.net.output_embeddings().T, logits, atol=1e-4)


def test_user_token_sits_right_before_the_history():
    m = tiny_module()
    ids, att = m.encoder_inputs(torch.tensor([3]), torch.tensor([[0, 0, 0, 2, 5]]))
    real = ids[0][att[0].bool()]
    assert att[0].tolist() == [0] * (ids.shape[1] - 9) + [1] * 9  # pads left, then user + 2 items x 4
    assert real[0] == m.net.user_offset + 3
    assert real[1:].tolist() == m.net.code_tokens(m.item_codes[torch.tensor([1, 4])]).flatten().tolist()


@pytest.mark.parametrize("num_items", [40])
def test_beam_search_with_every_item_in_the_beam_is_exact(num_items):
    m = tiny_module(num_items, beam=num_items, top_k=10)
    users, inputs = (
        torch.tensor([0, 1, 2, 3]),
        torch.tensor([[0, 1, 2, 3, 4], [5, 6, 7, 8, 9], [0, 0, 0, 0, 1], [0, 0, 2, 30, 31]]),
    )
    items, scores = m.retrieve(users, inputs)
    brute = m.score_all_items(users, inputs)  # (B, I)
    top_scores, top_items = brute.topk(10, dim=1)
    assert torch.allclose(scores, top_scores, atol=1e-4)
    assert torch.equal(items, top_items) or torch.allclose(brute.gather(1, items), top_scores, atol=1e-4)


def test_small_beam_returns_existing_distinct_items_deterministically():
    m = tiny_module(40, beam=3, top_k=3)
    users, inputs = torch.arange(6), torch.randint(1, 41, (6, 5))
    a, sa = m.retrieve(users, inputs)
    b, sb = m.retrieve(users, inputs)
    assert torch.equal(a, b) and torch.equal(sa, sb)
    assert ((a >= 0) & (a < 40)).all()
    assert all(len(set(row.tolist())) == 3 for row in a)
    assert (sa[:, :-1] >= sa[:, 1:]).all()  # best first


def test_beam_search_pads_when_fewer_items_than_k():
    codes = np.array([[0, 0], [0, 1], [1, 0]])
    tables = PrefixTables(codes, [2, 2])

    def step(tokens, parents):
        return torch.zeros(*tokens.shape[:2], 6)  # uniform over a 6-token vocabulary

    items, scores = constrained_beam_search(step, tables, [2, 4], batch_size=2, beam_size=4, top_k=5)
    assert sorted(items[0, :3].tolist()) == [0, 1, 2] and items[0, 3:].tolist() == [-1, -1]
    assert torch.isinf(scores[:, 3:]).all()


def test_prefix_tables_refuse_colliding_tuples():
    with pytest.raises(ValueError, match="unique"):
        PrefixTables(np.array([[0, 1], [0, 1]]), [2, 2])


def test_ranks_beyond_the_list_are_misses():
    top = torch.tensor([[4, 2, 9], [1, 2, 3]])
    assert ranks_in_list(top, torch.tensor([9, 7])).tolist() == [3, 4]


def test_top_k_must_cover_the_metric_cut_offs():
    codes, sizes = tiny_codes()
    net = TIGER(40, sizes, d_model=16, num_layers=1, num_heads=2, d_kv=8, d_ff=32)
    with pytest.raises(ValueError, match="top_k=5"):
        GenerativeModule(
            net, FullSoftmaxCE(), torch.optim.Adam, build_metrics(["recall"], [10]), codes, 3, top_k=5
        )


def test_training_step_gives_finite_gradients():
    m = tiny_module().train()
    from recbench.data.prefixes import PrefixBatch

    batch = PrefixBatch(
        users=torch.tensor([0, 1]), inputs=torch.tensor([[0, 1, 2], [3, 4, 5]]), targets=torch.tensor([7, 8])
    )
    m.log = lambda *a, **k: None  # type: ignore[method-assign]  (no trainer attached)
    loss = m.training_step(batch, 0)
    loss.backward()
    assert torch.isfinite(loss) and all(
        torch.isfinite(p.grad).all() for p in m.parameters() if p.grad is not None
    )


def test_prefix_samples_never_target_validation_or_test():
    offsets = np.array([0, 5, 8])  # user 0: 5 items (train 0..2), user 1: 3 items (train 0)
    train_end = np.array([3, 6])
    users, pos, hist = prefix_samples(offsets, train_end, max_len=2)
    assert users.tolist() == [0, 0] and pos.tolist() == [1, 2] and hist.tolist() == [1, 2]


def test_training_trace_counts_epochs_and_batches_from_one(caplog):
    """The timestamped training trace numbers epochs and batches like the bar and checkpoints do."""
    from types import SimpleNamespace

    from recbench.data.prefixes import PrefixBatch

    m = tiny_module().train()
    m._trainer = SimpleNamespace(num_training_batches=514, current_epoch=0)  # what the trace reads
    m.log = lambda *a, **k: None
    batch = PrefixBatch(
        torch.tensor([0, 1]), torch.tensor([[0, 0, 3, 4, 5], [1, 2, 3, 4, 5]]), torch.tensor([6, 7])
    )
    with caplog.at_level("INFO", logger="recbench.lit.generative"):
        m.training_step(batch, 0)
    assert "epoch 1, batch 1/514: loss" in caplog.text
