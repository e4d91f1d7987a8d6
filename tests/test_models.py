"""SASRec and the losses: causality, padding invariance, gradients."""

import pytest
import torch

from recbench.losses.bce import SampledBCE
from recbench.losses.ce import FullSoftmaxCE
from recbench.models.sasrec import SASRec


def small(**kw) -> SASRec:
    torch.manual_seed(0)
    return SASRec(num_items=30, max_len=8, hidden_size=16, num_heads=2, ffn_size=32, **kw).eval()


def test_output_shape_and_tied_embeddings():
    net = small()
    out = net(torch.tensor([[0, 0, 3, 4, 5]]))  # (B, L) -> (B, L, D)
    assert out.shape == (1, 5, 16)
    assert net.item_embeddings().shape == (30, 16)
    assert net.item_embeddings().data_ptr() == net.item_emb.weight[1:].data_ptr()


@pytest.mark.parametrize("norm", ["pre", "post"])
def test_no_information_flows_from_the_future(norm):
    net = small(norm=norm)
    a = net(torch.tensor([[1, 2, 3, 4]]))
    b = net(torch.tensor([[1, 2, 3, 9]]))  # only the last item differs
    assert torch.allclose(a[:, :3], b[:, :3], atol=1e-6)
    assert not torch.allclose(a[:, 3], b[:, 3])


@pytest.mark.parametrize("positions", ["from_end", "from_start"])
@pytest.mark.parametrize("norm", ["pre", "post"])
def test_extra_left_padding_does_not_change_real_positions(positions, norm):
    net = small(positions=positions, norm=norm)
    short = net(torch.tensor([[5, 6, 7]]))
    padded = net(torch.tensor([[0, 0, 0, 5, 6, 7]]))
    assert torch.allclose(short, padded[:, 3:], atol=1e-5)
    assert torch.isfinite(padded).all(), "padding rows must not produce NaN"


def test_from_start_encodes_a_prefix_as_in_training():
    """Dense supervision with from_start positions computes, at each step, what the prefix alone gives."""
    net = small(positions="from_start")
    seq = torch.tensor([[0, 0, 3, 4, 5, 6]])  # a left-padded batch row
    whole = net(seq)
    for t in range(3, 6):
        prefix = net(seq[:, 2 : t + 1])  # the history as evaluation would see it
        assert torch.allclose(whole[:, t], prefix[:, -1], atol=1e-5)
    # from_end does not: the latest item of a prefix sits at another position than in the whole window
    end = small(positions="from_end")
    assert not torch.allclose(end(seq)[:, 4], end(seq[:, 2:5])[:, -1], atol=1e-3)


def test_unknown_positions_or_norm_is_an_error():
    with pytest.raises(ValueError, match="from_end' or 'from_start"):
        small(positions="middle")
    with pytest.raises(ValueError, match="'pre' or 'post'"):
        small(norm="sandwich")


def test_cosine_scores_are_cosines_over_temperature():
    """similarity=cosine: score = cos(hidden, item embedding) / temperature, by hand; dot is unchanged."""
    dot, cos = small(), small(similarity="cosine", temperature=0.05)  # same seed: same weights
    seq = torch.tensor([[0, 3, 4, 5]])
    h = dot(seq)[0, -1]
    e = dot.item_embeddings()
    expected = torch.stack([h @ e[i] / (h.norm() * e[i].norm()) / 0.05 for i in range(len(e))])
    got = cos(seq)[0, -1] @ cos.item_embeddings().T
    assert torch.allclose(got, expected, atol=1e-4)
    assert got.abs().max() <= 1 / 0.05 + 1e-4
    assert torch.allclose(small(temperature=2.0)(seq)[0, -1], h / 2.0)


def test_unknown_similarity_or_bad_temperature_is_an_error():
    with pytest.raises(ValueError, match="'dot' or 'cosine'"):
        small(similarity="l2")
    with pytest.raises(ValueError, match="temperature must be > 0"):
        small(similarity="cosine", temperature=0)


def test_too_long_input_is_an_error():
    with pytest.raises(ValueError, match="exceeds max_len 8"):
        small()(torch.ones(1, 9, dtype=torch.long))


@pytest.mark.parametrize("loss", [FullSoftmaxCE(), SampledBCE(num_negatives=2)])
def test_losses_give_finite_gradients(loss):
    net = small().train()
    hidden = net(torch.tensor([[0, 1, 2, 3], [4, 5, 6, 7]]))[:, -1]
    value = loss(hidden, torch.tensor([3, 9]), net.item_embeddings())
    value.backward()
    assert torch.isfinite(value) and all(
        torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None
    )


def test_ce_matches_the_definition():
    q, e = torch.randn(4, 8), torch.randn(10, 8)
    t = torch.tensor([1, 2, 3, 9])
    logits = q @ e.T
    manual = (torch.logsumexp(logits, 1) - logits[torch.arange(4), t]).mean()
    assert torch.allclose(FullSoftmaxCE()(q, t, e), manual)


@pytest.mark.parametrize("spread", [1.0, 300.0])  # 300: logits far beyond exp's float32 range
def test_fused_ce_equals_pytorchs_loss_and_gradients(spread):
    """The fused loss (one exponential pass) gives F.cross_entropy's value and gradients up to rounding,
    and its backward is exact in float64 (gradcheck)."""
    torch.manual_seed(0)
    q, e = torch.randn(7, 8) * spread**0.5, torch.randn(50, 8) * spread**0.5
    t = torch.tensor([0, 3, 3, 49, 10, 7, 1])
    grads = []
    for fused in (False, True):
        qq, ee = q.clone().requires_grad_(), e.clone().requires_grad_()
        value = FullSoftmaxCE(fused=fused)(qq, t, ee)
        value.backward()
        grads.append((value.detach(), qq.grad, ee.grad))
    for plain, fused_ in zip(*grads, strict=True):
        assert torch.allclose(plain, fused_, rtol=1e-5, atol=1e-6 * spread)
    from recbench.losses.ce import _SoftmaxCrossEntropy

    logits = torch.randn(5, 6, dtype=torch.float64, requires_grad=True)
    targets = torch.tensor([0, 5, 2, 2, 1])
    (ours,) = torch.autograd.grad(_SoftmaxCrossEntropy.apply(logits, targets) * 3.0, logits)
    (theirs,) = torch.autograd.grad(torch.nn.functional.cross_entropy(logits, targets) * 3.0, logits)
    assert torch.allclose(ours, theirs, rtol=0, atol=1e-15)  # float64: exact but for the last bits
    value = _SoftmaxCrossEntropy.apply(logits, targets)
    value.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="one backward per forward"):
        value.backward()  # its buffer became the gradient
    with torch.no_grad():  # evaluation: PyTorch's own
        assert torch.allclose(FullSoftmaxCE(fused=True)(q, t, e), FullSoftmaxCE()(q, t, e))


def test_bce_negatives_never_equal_the_positive():
    torch.manual_seed(0)
    e = torch.zeros(3, 2)
    e[1] = torch.tensor([100.0, 0.0])  # only the positive scores high
    q = torch.tensor([[1.0, 0.0]]).repeat(500, 1)
    loss = SampledBCE(num_negatives=4)(q, torch.ones(500, dtype=torch.long), e)
    # the negative term is log(2) per negative only if no negative hit item 1 (which would cost 100)
    assert loss.item() < 1.0


def test_prefix_step_equals_the_padded_batch_loss():
    """Length-sorted micro-batches give the loss of the whole left-padded prefix batch (no dropout)."""
    from recbench.data.prefixes import PrefixBatch
    from recbench.lit.next_item import NextItemModule

    torch.manual_seed(0)
    net = SASRec(num_items=30, max_len=8, dropout=0.0, attn_dropout=0.0, positions="from_start", norm="post")
    module = NextItemModule(net, FullSoftmaxCE(), torch.optim.Adam, metrics=[], micro_batch=3)
    module.log = lambda *a, **k: None  # type: ignore[method-assign]
    lengths = torch.tensor([1, 8, 3, 5, 2, 8, 4])
    inputs = torch.zeros(7, 8, dtype=torch.long)
    for row, n in enumerate(lengths.tolist()):
        inputs[row, 8 - n :] = torch.randint(1, 31, (n,))
    targets = torch.randint(0, 30, (7,))
    batch = PrefixBatch(users=torch.arange(7), inputs=inputs, targets=targets)
    padded = FullSoftmaxCE()(net(inputs)[:, -1], targets, net.item_embeddings())
    torch.testing.assert_close(module.training_step(batch, 0), padded)


def text_sasrec(monkeypatch, mode: str, **kw):
    import numpy as np
    import pandas as pd

    import recbench.models.sasrec_text as module

    def fake_encode(texts, *args, **kwargs):  # deterministic 12-dim "embeddings": no encoder needed
        return np.random.default_rng(0).normal(size=(len(texts), 12)).astype(np.float32)

    monkeypatch.setattr(module, "item_text_embeddings", fake_encode)
    titles = pd.DataFrame({"title": [f"item {i}" for i in range(30)]})
    torch.manual_seed(0)
    net = module.TextSASRec(30, titles, mode=mode, max_len=8, hidden_size=16, num_heads=2, ffn_size=32, **kw)
    return net.eval()


def test_text_fused_sasrec_with_the_projection_zeroed_is_sasrec(monkeypatch):
    fused = text_sasrec(monkeypatch, "fused")
    plain = small()
    plain.load_state_dict({k: v for k, v in fused.state_dict().items() if not k.startswith("text_proj")})
    tokens = torch.tensor([[0, 0, 3, 4, 5], [1, 2, 3, 4, 5]])
    with torch.no_grad():
        fused.text_proj.weight.zero_()
    assert torch.equal(fused(tokens), plain(tokens))
    assert torch.equal(fused.item_embeddings(), plain.item_embeddings())
    with torch.no_grad():
        fused.text_proj.weight.normal_()
    assert not torch.allclose(fused.item_embeddings(), plain.item_embeddings())


def test_text_only_sasrec_has_no_id_embeddings_and_learns_through_the_text(monkeypatch):
    net = text_sasrec(monkeypatch, "text_only").train()
    assert not hasattr(net, "item_emb") and net.item_table()[0].abs().sum() == 0  # padding stays zero
    assert net.item_embeddings().shape == (30, 16)
    loss = FullSoftmaxCE()(net(torch.tensor([[1, 2, 3]]))[:, -1], torch.tensor([7]), net.item_embeddings())
    loss.backward()
    assert net.text_proj.weight.grad is not None and net.text_proj.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match=r"model\.net\.mode must be one of"):
        text_sasrec(monkeypatch, "ids")


def test_item_table_built_once_per_weights_while_evaluating(monkeypatch):
    """Evaluation reuses the table built from the text; an optimizer step or an in-place change of a weight
    rebuilds it, and training never reads the cache."""
    net = text_sasrec(monkeypatch, "fused", adaptor="moe", experts=3)
    built = []
    item_table = type(net).item_table
    monkeypatch.setattr(type(net), "item_table", lambda self: built.append(1) or item_table(self))
    tokens = torch.tensor([[0, 1, 2, 3], [4, 5, 6, 7]])
    with torch.no_grad():
        first = net(tokens)[:, -1] @ net.item_embeddings().T
        again = net(tokens)[:, -1] @ net.item_embeddings().T
    assert len(built) == 1 and torch.equal(first, again)
    optimizer = torch.optim.Adam(net.parameters(), lr=0.1)
    net.train()
    FullSoftmaxCE()(net(tokens)[:, -1], torch.tensor([8, 9]), net.item_embeddings()).backward()
    optimizer.step()
    assert len(built) == 3  # training: input and output tables built afresh
    net.eval()
    with torch.no_grad():
        stepped = net(tokens)[:, -1] @ net.item_embeddings().T
        net.text_proj.shift.add_(1.0)  # an in-place change outside the optimizer
        shifted = net(tokens)[:, -1] @ net.item_embeddings().T
    assert len(built) == 5 and not torch.equal(first, stepped) and not torch.equal(stepped, shifted)
    with torch.no_grad():
        assert torch.equal(shifted, net(tokens)[:, -1] @ item_table(net)[1:].T)  # as built without cache


def test_whitening_moe_adaptor_shapes_gate_and_uniform_start():
    from recbench.models.sasrec_text import WhiteningMoE

    torch.manual_seed(0)
    moe = WhiteningMoE(12, 16, experts=4, dropout=0.0).eval()
    x = torch.randn(5, 12)
    out = moe(x)
    assert out.shape == (5, 16)
    # the gate starts at zero: every expert weighs 1/k, so the output is the mean of the experts' maps
    experts = torch.stack([(x - moe.shift[i]) @ moe.weight[i] for i in range(4)])
    assert torch.allclose(out, experts.mean(0), atol=1e-6)
    with torch.no_grad():
        moe.gate[:, 0] = 100.0 * x[0]  # a gate that picks expert 0 for x[0]
    assert torch.allclose(moe(x[:1]), experts[0, :1], atol=1e-4)


@pytest.mark.parametrize("mode", ["text_only", "fused"])
def test_unisrec_style_net_scores_every_item(monkeypatch, mode):
    net = text_sasrec(monkeypatch, mode, adaptor="moe", experts=3, similarity="cosine", temperature=0.07)
    assert net.item_table()[0].abs().sum() == 0 and net.item_embeddings().shape == (30, 16)
    hidden = net(torch.tensor([[0, 1, 2, 3]]))
    assert torch.isfinite(hidden @ net.item_embeddings().T).all()


def test_semantic_id_item_vectors_are_hand_sums_of_their_pieces():
    import numpy as np

    from recbench.models.sasrec_sid import SemanticIdSASRec, piece_ids

    codes = np.array([[0, 1, 0], [0, 1, 1], [2, 0, 0], [0, 2, 0]])  # 2 semantic levels + de-duplication
    ids, sizes = piece_ids(codes, "prefix", semantic_levels=2)
    # prefixes: (0) (2) | (0,1) (0,2) (2,0) | four full tuples
    assert sizes == [2, 3, 4] and ids[:, 0].tolist() == [0, 0, 1, 0] and len(set(ids[:, 2])) == 4
    assert piece_ids(codes, "semantic_prefix", 2)[1] == [2, 3]
    torch.manual_seed(0)
    kw = dict(max_len=6, hidden_size=8, num_heads=2, ffn_size=16)
    for pieces in ("unigram", "prefix", "semantic_prefix"):
        net = SemanticIdSASRec(4, codes, semantic_levels=2, pieces=pieces, **kw).eval()
        rows, sizes = piece_ids(codes, pieces, 2)
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        table = net.piece_emb.weight.detach()
        by_hand = torch.stack(
            [sum(table[int(r + o)] for r, o in zip(rows[i], offsets, strict=True)) for i in range(4)]
        )
        assert torch.allclose(net.item_embeddings(), by_hand, atol=1e-6)
        assert not hasattr(net, "item_emb") and net.item_table()[0].abs().sum() == 0
    shared = SemanticIdSASRec(4, codes, semantic_levels=2, pieces="semantic_prefix", **kw)
    assert torch.equal(shared.item_embeddings()[0], shared.item_embeddings()[1])  # same semantic tuple
    with_id = SemanticIdSASRec(4, codes, semantic_levels=2, with_id=True, **kw)
    assert not torch.equal(with_id.item_embeddings()[0], with_id.item_embeddings()[1])
    assert with_id(torch.tensor([[1, 2, 3]])).shape == (1, 3, 8)
    with pytest.raises(ValueError, match=r"model\.net\.pieces must be one of"):
        SemanticIdSASRec(4, codes, pieces="bigram", **kw)


@pytest.mark.parametrize("norm", ["pre", "post"])
def test_sasrec_last_position_alone_equals_the_full_forward(norm):
    """Evaluation's forward computes the final block at the latest position only: the same vector."""
    from recbench.models.sasrec import SASRec

    torch.manual_seed(0)
    net = SASRec(num_items=30, max_len=12, num_layers=3, norm=norm).eval()
    tokens = torch.randint(1, 31, (5, 12))
    tokens[0, :9] = 0  # left padding
    tokens[1, :11] = 0  # one item
    full = net(tokens)[:, -1]
    last = net(tokens, last_only=True)
    assert last.shape == (5, 1, full.shape[-1])
    assert torch.allclose(last[:, -1], full, atol=1e-5)


def test_bert4rec_mask_position_alone_equals_the_full_forward():
    """BERT4Rec's evaluation reads the appended mask's state with the final block and head at that
    position only: the same vector as the full forward (bidirectional: every position still feeds it)."""
    from recbench.models.bert4rec import BERT4Rec

    torch.manual_seed(0)
    net = BERT4Rec(num_items=30, max_len=12, num_layers=3).eval()
    tokens = torch.randint(1, 31, (5, 13))
    tokens[:, -1] = net.mask_token
    tokens[0, :9] = 0  # left padding
    tokens[1, :11] = 0  # one item before the mask
    full = net(tokens)[:, -1]
    last = net(tokens, last_only=True)
    assert last.shape == (5, 1, full.shape[-1])
    assert torch.allclose(last[:, -1], full, atol=1e-5)
    tokens[2, 3] = (
        tokens[2, 3] % 30 + 1
    )  # another earlier item changes the mask's state: attention still runs over every position
    assert not torch.allclose(net(tokens, last_only=True)[2, -1], full[2])
