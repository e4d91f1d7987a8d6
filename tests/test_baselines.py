"""Sequential baselines and their losses: shapes, causality, padding invariance, hand-computed losses."""

from __future__ import annotations

import math

import pytest
import torch

from recbench.losses.sampled_softmax import SampledSoftmax
from recbench.models.gru4rec import GRU4Rec


def outputs_and_grads(net: torch.nn.Module, tokens: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The network's outputs and its parameters' gradients of a fixed weighted sum of them."""
    net.zero_grad()
    out = net(tokens)
    (out * torch.arange(out.numel()).reshape(out.shape).sin()).sum().backward()
    return out.detach(), [p.grad.clone() for p in net.parameters()]


def gru(**kw) -> GRU4Rec:
    torch.manual_seed(0)
    return GRU4Rec(num_items=30, max_len=8, embedding_size=8, hidden_size=12, **kw).eval()


def test_gru4rec_shapes_and_tied_embeddings():
    net = gru()
    out = net(torch.tensor([[0, 0, 3, 4, 5]]))
    assert out.shape == (1, 5, 8)
    assert net.item_embeddings().shape == (30, 8)
    assert net.item_embeddings().data_ptr() == net.item_emb.weight[1:].data_ptr()


def test_gru4rec_cannot_see_the_future():
    net = gru()
    a = net(torch.tensor([[1, 2, 3, 4]]))
    b = net(torch.tensor([[1, 2, 3, 9]]))
    assert torch.allclose(a[:, :3], b[:, :3], atol=1e-6)
    assert not torch.allclose(a[:, 3], b[:, 3])


def test_gru4rec_ignores_left_padding():
    """A history encodes the same whatever padding surrounds it (the GRU reads real items only)."""
    net = gru(num_layers=2)
    short = net(torch.tensor([[5, 6, 7]]))
    batch = net(torch.tensor([[0, 0, 0, 5, 6, 7], [1, 2, 3, 4, 5, 6]]))
    assert torch.allclose(short[0], batch[0, 3:], atol=1e-6)
    assert (batch[0, :3] == 0).all()
    alone = net(torch.tensor([[1, 2, 3, 4, 5, 6]]))
    assert torch.allclose(alone[0], batch[1], atol=1e-6)


@pytest.mark.parametrize("packed", [False, True])
def test_gru4rec_padding_invariant_both_ways(packed):
    net = gru(num_layers=2, packed=packed)
    batch = net(torch.tensor([[0, 0, 0, 5, 6, 7], [1, 2, 3, 4, 5, 6]]))
    assert torch.allclose(net(torch.tensor([[5, 6, 7]]))[0], batch[0, 3:], atol=1e-6)
    assert (batch[0, :3] == 0).all()


def test_gru4rec_unpacked_equals_packed_with_gradients():
    """The rotated batch through the GRU as it is (the default) gives the packed GRU's outputs and
    gradients: the state after an item never depends on the padding behind it."""
    tokens = torch.tensor([[0, 0, 0, 5, 6, 7], [1, 2, 3, 4, 5, 6], [0, 0, 0, 0, 0, 9], [0] * 6])
    (a, ga), (b, gb) = (
        outputs_and_grads(gru(num_layers=2, packed=p, dropout=0.0), tokens) for p in (False, True)
    )
    assert torch.allclose(a, b, atol=1e-6)
    for x, y in zip(ga, gb, strict=True):
        assert torch.allclose(x, y, atol=1e-6)


def test_gru4rec_loss_falls():
    from recbench.losses.ce import FullSoftmaxCE

    net = gru(dropout=0.0).train()
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    tokens = torch.tensor([[0, 1, 2, 3], [4, 5, 6, 7]])
    targets = torch.tensor([[0, 2, 3, 4], [5, 6, 7, 8]])
    losses = []
    for _ in range(50):
        hidden = net(tokens)
        valid = targets != 0
        loss = FullSoftmaxCE()(hidden[valid], targets[valid] - 1, net.item_embeddings())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def softmax_nll(logits: list[float]) -> float:
    """-log softmax of class 0, by hand."""
    return -logits[0] + math.log(sum(math.exp(x) for x in logits))


def test_in_batch_sampled_softmax_equals_a_hand_computation():
    query = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    emb = torch.tensor([[1.0, 2.0], [3.0, -1.0], [0.5, 0.5], [2.0, 0.0]])
    targets = torch.tensor([0, 1, 0])  # row 2 shares row 0's item: an accidental hit for both
    got = SampledSoftmax(negatives="in_batch")(query, targets, emb)
    s = (query @ emb.T).tolist()  # s[n][i]
    # row 0: positive item 0; negatives are the batch's targets [0, 1, 0] less the hits on item 0
    expected = [
        softmax_nll([s[0][0], s[0][1]]),
        softmax_nll([s[1][1], s[1][0], s[1][0]]),
        softmax_nll([s[2][0], s[2][1]]),
    ]
    assert got.item() == pytest.approx(sum(expected) / 3, rel=1e-6)


def test_logq_correction_equals_a_hand_computation():
    query = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    emb = torch.tensor([[1.0, 2.0], [3.0, -1.0]])
    targets = torch.tensor([0, 1, 0])
    got = SampledSoftmax(negatives="in_batch", logq_correction=True)(query, targets, emb)
    s = (query @ emb.T).tolist()
    lq = [math.log(2 / 3), math.log(1 / 3)]  # item 0 is 2 of the 3 targets
    expected = [
        softmax_nll([s[0][0] - lq[0], s[0][1] - lq[1]]),
        softmax_nll([s[1][1] - lq[1], s[1][0] - lq[0], s[1][0] - lq[0]]),
        softmax_nll([s[2][0] - lq[0], s[2][1] - lq[1]]),
    ]
    assert got.item() == pytest.approx(sum(expected) / 3, rel=1e-6)


def test_uniform_sampled_softmax_equals_a_hand_computation():
    torch.manual_seed(3)
    query, emb = torch.randn(4, 3), torch.randn(10, 3)
    targets = torch.tensor([1, 2, 3, 4])
    torch.manual_seed(7)
    got = SampledSoftmax(num_negatives=5)(query, targets, emb)
    torch.manual_seed(7)
    negatives = torch.randint(10, (5,)).tolist()  # the same draw
    s = (query @ emb.T).tolist()
    expected = [
        softmax_nll([s[n][t]] + [s[n][j] for j in negatives if j != t])
        for n, t in enumerate(targets.tolist())
    ]
    assert got.item() == pytest.approx(sum(expected) / 4, rel=1e-5)


def test_per_query_sampled_softmax_equals_a_hand_computation():
    torch.manual_seed(3)
    query, emb = torch.randn(4, 3), torch.randn(10, 3)
    targets = torch.tensor([1, 2, 3, 4])
    torch.manual_seed(7)
    got = SampledSoftmax(num_negatives=2, negatives="uniform_per_query")(query, targets, emb)  # I > K x D
    torch.manual_seed(7)
    drawn = torch.randint(10, (4, 2)).tolist()  # the same draw: one row of negatives per query
    s = (query @ emb.T).tolist()
    expected = [
        softmax_nll([s[n][t]] + [s[n][j] for j in drawn[n] if j != t]) for n, t in enumerate(targets.tolist())
    ]
    assert got.item() == pytest.approx(sum(expected) / 4, rel=1e-5)
    wide = torch.randn(10, 8)  # I <= K x D: the scores of every item, then the draws' columns
    torch.manual_seed(7)
    a = SampledSoftmax(num_negatives=5, negatives="uniform_per_query")(torch.randn(4, 8), targets, wide)
    torch.manual_seed(7)
    q = torch.randn(4, 8)
    drawn = torch.randint(10, (4, 5)).tolist()
    s = (q @ wide.T).tolist()
    expected = [
        softmax_nll([s[n][t]] + [s[n][j] for j in drawn[n] if j != t]) for n, t in enumerate(targets.tolist())
    ]
    assert a.item() == pytest.approx(sum(expected) / 4, rel=1e-5)


def test_sampled_softmax_refuses_meaningless_settings():
    with pytest.raises(ValueError, match="in_batch"):
        SampledSoftmax(logq_correction=True)
    with pytest.raises(ValueError, match="negatives"):
        SampledSoftmax(negatives="popular")


@pytest.mark.parametrize(
    "overrides",
    [
        ["model=gru4rec", "loss=sampled_softmax", "loss.num_negatives=20"],
        ["model=gru4rec", "loss=bce"],
        ["model=sasrec", "loss=sampled_softmax", "loss.negatives=in_batch", "loss.logq_correction=true"],
    ],
)
def test_models_train_with_other_losses(overrides, tmp_path):
    from recbench.results.schema import read_row

    from .test_run import fast_run

    fast_run(tmp_path, *overrides)
    row = read_row(tmp_path / "result.json")
    assert row.model.loss == {"sampled_softmax": "SampledSoftmax", "bce": "SampledBCE"}[overrides[1][5:]]
    assert row.cost.epochs_trained >= 1 and row.metrics["test"]["ndcg@10"] >= 0


def test_pop_ranks_by_training_counts_by_hand(tmp_path):
    """Counts come from the training interactions only (never a validation or test target), and a tie
    counts against the target."""
    from recbench.data.dataset import SequenceDataset
    from recbench.data.protocol import LeaveOneOut
    from recbench.inputs import RunContext, train_item_counts
    from recbench.metrics.ranking import target_ranks
    from recbench.models.pop import Pop

    # u: a b a | c d (val c, test d) ; v: b a | d c ; w: b b | a e
    ds = SequenceDataset.from_sequences(
        "t", [("u", list("abacd")), ("v", list("badc")), ("w", list("bbae"))]
    )  # item index by first appearance: a0 b1 c2 d3 e4
    counts = train_item_counts(RunContext(ds, LeaveOneOut().split(ds), None))
    assert counts.tolist() == [3, 4, 0, 0, 0]  # a: u twice, v once; b: u, v, w twice
    pop = Pop(num_items=5, train_item_counts=counts)
    scores = pop.score_items(pop(torch.zeros(3, 2, dtype=torch.long))[:, -1])
    ranks = target_ranks(scores, torch.tensor([0, 1, 3]))
    assert ranks.tolist() == [2, 1, 5]  # a after b; b first; d ties with c and e at 0: last (pessimistic)


def bert(**kw):
    from recbench.models.bert4rec import BERT4Rec

    torch.manual_seed(0)
    return BERT4Rec(num_items=30, max_len=6, hidden_size=16, num_heads=2, ffn_size=32, **kw).eval()


def test_bert4rec_is_bidirectional_and_ignores_padding():
    net = bert()
    a = net(torch.tensor([[1, 2, 3, 31]]))  # 31 = the mask token
    b = net(torch.tensor([[1, 9, 3, 31]]))
    assert not torch.allclose(a[:, 0], b[:, 0])  # position 0 sees position 1: bidirectional
    padded = net(torch.tensor([[0, 0, 1, 2, 3, 31]]))
    assert torch.allclose(a, padded[:, 2:], atol=1e-5)
    assert net.item_embeddings().shape == (30, 17)  # embeddings + the bias column


def test_cloze_masks_at_the_rate_and_at_least_once():
    from recbench.lit.cloze import cloze_mask

    tokens = torch.randint(1, 30, (2000, 20))
    tokens[:, :5] = 0  # left padding is never masked
    g = torch.Generator().manual_seed(0)
    hide = cloze_mask(tokens, 0.2, g)
    assert not hide[:, :5].any()
    assert hide[:, 5:].float().mean().item() == pytest.approx(0.2, abs=0.01)
    short = torch.tensor([[0, 0, 4], [0, 5, 6]])
    for seed in range(20):
        assert cloze_mask(short, 0.01, torch.Generator().manual_seed(seed)).any(1).all()


def test_cloze_evaluation_appends_a_mask_after_the_history():
    from recbench.data.datamodule import EvalBatch
    from recbench.lit.cloze import ClozeModule
    from recbench.losses.ce import FullSoftmaxCE

    net = bert()
    module = ClozeModule(net=net, loss=FullSoftmaxCE(), optimizer=None, metrics=[])
    batch = EvalBatch(
        users=torch.tensor([0]),
        inputs=torch.tensor([[0, 1, 2, 3]]),
        targets=torch.tensor([4]),
        history_rows=torch.tensor([0]),
        history_items=torch.tensor([0]),
    )
    expected = net(torch.tensor([[0, 1, 2, 3, 31]]))[:, -1] @ net.item_embeddings().T
    assert torch.allclose(module.score(batch), expected, atol=1e-6)


def test_cloze_training_loss_falls():
    from recbench.data.datamodule import TrainBatch
    from recbench.lit.cloze import ClozeModule
    from recbench.losses.ce import FullSoftmaxCE

    net = bert(dropout=0.0, attn_dropout=0.0).train()
    module = ClozeModule(net=net, loss=FullSoftmaxCE(), optimizer=None, metrics=[], mask_prob=0.3)
    module.log = lambda *a, **k: None  # no trainer attached
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    batch = TrainBatch(
        inputs=torch.tensor([[1, 2, 3, 4, 5]] * 8), targets=torch.tensor([[2, 3, 4, 5, 6]] * 8)
    )
    torch.manual_seed(0)
    losses = []
    for _ in range(40):
        loss = module.training_step(batch, 0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) < 0.5 * sum(losses[:5])


def test_caser_is_causal_and_windowed():
    from recbench.models.caser import Caser

    torch.manual_seed(0)
    net = Caser(num_items=30, max_len=8, window=3, embedding_size=8, n_v=2, n_h=3, dropout=0.0).eval()
    a = net(torch.tensor([[1, 2, 3, 4, 5]]))
    assert a.shape == (1, 5, 8)
    b = net(torch.tensor([[1, 2, 3, 4, 9]]))  # the future does not leak backwards
    assert torch.allclose(a[:, :4], b[:, :4]) and not torch.allclose(a[:, 4], b[:, 4])
    c = net(torch.tensor([[7, 2, 3, 4, 5]]))  # item 1 is outside the window of positions >= 3
    assert torch.allclose(a[:, 3:], c[:, 3:]) and not torch.allclose(a[:, 0], c[:, 0])
    padded = net(torch.tensor([[0, 0, 1, 2, 3, 4, 5]]))
    assert torch.allclose(a, padded[:, 2:], atol=1e-6)


@pytest.mark.parametrize("window", [1, 3, 5])
def test_caser_shared_filters_equal_the_convolutions(window):
    """The default (each filter row applied once per position, windows combined by shifted sums and a
    sliding max) gives Conv2d's values and gradients on each position's image (``images=True``)."""
    from recbench.models.caser import Caser

    torch.manual_seed(0)
    net = Caser(num_items=30, max_len=9, window=window, embedding_size=8, n_v=2, n_h=3, dropout=0.0)
    tokens = torch.tensor([[0, 0, 0, 1, 2, 3, 4, 5, 6], [3, 1, 4, 1, 5, 9, 2, 6, 5], [0] * 8 + [7]])
    net.images = True
    a, ga = outputs_and_grads(net, tokens)
    net.images = False
    b, gb = outputs_and_grads(net, tokens)
    assert torch.allclose(a, b, atol=1e-6)
    for x, y in zip(ga, gb, strict=True):
        assert torch.allclose(x, y, atol=1e-5)
