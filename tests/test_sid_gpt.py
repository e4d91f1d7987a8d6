"""The decoder-only semantic-ID model: causal, its incremental decoder equals the full forward, beam search
with every item in the beam is the brute-force top-K, and a training step supervises every window item."""

from __future__ import annotations

import torch

from recbench.data.datamodule import TrainBatch
from recbench.lit.sid_gpt import SemanticIdGPTModule
from recbench.models.sid_gpt import IncrementalDecoder, SemanticIdGPT

from .test_tiger import tiny_codes, tiny_recipe


def tiny(num_items: int = 40, beam: int = 5, top_k: int = 5) -> SemanticIdGPTModule:
    torch.manual_seed(0)
    codes, sizes = tiny_codes(num_items)
    net = SemanticIdGPT(num_items, sizes, max_len=5, hidden_size=32, num_layers=2, num_heads=2, ffn_size=64)
    return tiny_recipe(SemanticIdGPTModule, net, codes, beam, top_k)


def test_no_token_sees_the_future():
    m = tiny()
    a = m.net(*m.net.flatten(*m._codes(torch.tensor([[0, 3, 4, 5]]))))
    b = m.net(*m.net.flatten(*m._codes(torch.tensor([[0, 3, 4, 9]]))))  # only the last item differs
    c = m.item_codes.shape[1]
    assert torch.allclose(a[:, : 3 * c], b[:, : 3 * c], atol=1e-6)
    assert not torch.allclose(a[:, 3 * c :], b[:, 3 * c :])


def test_incremental_decoder_equals_the_full_forward():
    m = tiny()
    inputs = torch.tensor([[0, 0, 3, 4, 5], [1, 2, 3, 4, 5], [0, 0, 0, 0, 9]])
    cand = torch.tensor([3, 7, 11])  # one candidate item per user, teacher-forced
    window = torch.cat([inputs, (cand + 1)[:, None]], dim=1)
    tokens, pos, level, real = m.net.flatten(*m._codes(window))
    ref = m.net(tokens, pos, level, real) @ m.net.output_embeddings().T  # (B, S, V)
    c = m.item_codes.shape[1]
    dec = IncrementalDecoder(m.net, m.net.context(*m._codes(inputs)))
    steps = torch.cat([torch.zeros(3, 1, dtype=torch.long), tokens[:, -c:]], dim=1)  # start token first
    for t in range(c):
        out = dec(steps[:, None, : t + 1], None if t == 0 else torch.zeros(3, 1, dtype=torch.long))
        assert torch.allclose(out[:, 0], ref[:, -c - 1 + t], atol=1e-4)


def test_beam_search_with_every_item_in_the_beam_is_exact():
    m = tiny(40, beam=40, top_k=10)
    users = torch.arange(4)
    inputs = torch.tensor([[0, 1, 2, 3, 4], [5, 6, 7, 8, 9], [0, 0, 0, 0, 1], [0, 0, 2, 30, 31]])
    items, scores = m.retrieve(users, inputs)
    brute = m.score_all_items(users, inputs)  # (B, I)
    top_scores, top_items = brute.topk(10, dim=1)
    assert torch.allclose(scores, top_scores, atol=1e-4)
    assert torch.equal(items, top_items) or torch.allclose(brute.gather(1, items), top_scores, atol=1e-4)
    small, _ = tiny(40, beam=3, top_k=3).retrieve(users, inputs)
    assert ((small >= 0) & (small < 40)).all() and all(len(set(r.tolist())) == 3 for r in small)


def test_a_training_step_supervises_every_item_after_the_first():
    m = tiny().train()
    inputs = torch.tensor([[0, 0, 1, 2], [3, 4, 5, 6]])
    targets = torch.tensor([[0, 0, 2, 7], [4, 5, 6, 8]])  # next items; the last one extends the window
    loss = m.training_step(TrainBatch(inputs=inputs, targets=targets), 0)
    loss.backward()
    assert torch.isfinite(loss) and m.net.tok_emb.weight.grad is not None
    c = m.item_codes.shape[1]
    # row 0: items 1, 2, 7 (3 items): 3c - 1 targets; row 1: 5 items: 5c - 1 targets
    window = torch.cat([inputs, targets[:, -1:]], dim=1)
    _, _, _, real = m.net.flatten(*m._codes(window))
    assert int((real[:, 1:] & real[:, :-1]).sum()) == (3 * c - 1) + (5 * c - 1)
