"""Collaborative-filtering baselines: closed forms against dense hand computations, graph propagation
against matrix powers, the BPR loss by hand, training that lowers the loss, and a training matrix that
cannot leak an evaluation target."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from recbench.data.datamodule import EvalBatch
from recbench.data.dataset import SequenceDataset
from recbench.data.pairs import InteractionDataModule, PairBatch, UserBatch, draw_negatives, sorted_keys
from recbench.data.protocol import LeaveOneOut
from recbench.inputs import RunContext, train_matrix
from recbench.lit.cf import CFModule, history_pairs
from recbench.losses.bpr import BPRLoss
from recbench.models.bprmf import BPRMF
from recbench.models.ease import EASE, ease_weights
from recbench.models.itemknn import ItemKNN, item_neighbours
from recbench.models.lightgcn import LightGCN, normalized_adjacency

X = np.array(  # 4 users x 5 items
    [
        [1, 1, 0, 0, 1],
        [0, 1, 1, 0, 0],
        [1, 0, 1, 1, 0],
        [0, 1, 0, 1, 1],
    ],
    dtype=np.float32,
)


def batch(histories: list[list[int]], users: list[int] | None = None) -> EvalBatch:
    rows = [r for r, h in enumerate(histories) for _ in h]
    return EvalBatch(
        users=torch.tensor(users if users is not None else list(range(len(histories)))),
        inputs=torch.zeros(len(histories), 1, dtype=torch.long),
        targets=torch.zeros(len(histories), dtype=torch.long),
        history_rows=torch.tensor(rows, dtype=torch.long),
        history_items=torch.tensor([i for h in histories for i in h], dtype=torch.long),
    )


@pytest.mark.parametrize("block", [2048, 2, 1])  # one block; row blocks that split the diagonal
def test_ease_equals_the_dense_closed_form(block):
    lam = 2.0
    g = X.T.astype(np.float64) @ X + lam * np.eye(5)
    p = np.linalg.inv(g)
    expected = np.eye(5) - p / np.diag(p)[None, :]  # B = I - P diag(1/diag P)
    got = ease_weights(sp.csr_matrix(X), lam, block=block).numpy()
    assert np.allclose(got, expected, atol=1e-6)
    assert np.all(np.diag(got) == 0)
    # B is also the minimiser of ||X - XB||^2 + lam ||B||^2 with diag(B) = 0: column j solved directly
    for j in range(5):
        others = [k for k in range(5) if k != j]
        a = X[:, others].astype(np.float64)
        col = np.linalg.solve(a.T @ a + lam * np.eye(4), a.T @ X[:, j])
        assert np.allclose(got[others, j], col, atol=1e-5)


def test_ease_scores_sum_the_history_rows_once():
    net = EASE(num_items=5, train_matrix=sp.csr_matrix(X), l2=1.0)
    scores = net.score(batch([[0, 2, 2], [4]]))  # item 2 twice: counted once
    b = net.weights
    assert torch.allclose(scores[0], b[0] + b[2]) and torch.allclose(scores[1], b[4])
    assert net.fit_seconds >= 0 and net.test_history == "train+valid"


def test_ease_weights_match_a_float64_inverse_on_a_larger_matrix():
    rng = np.random.default_rng(0)
    x = (rng.random((60, 37)) < 0.15).astype(np.float64)
    p = np.linalg.inv(x.T @ x + 3.0 * np.eye(37))
    expected = -p / np.diag(p)[None, :]
    np.fill_diagonal(expected, 0.0)
    got = ease_weights(sp.csr_matrix(x), 3.0, block=8).numpy()
    assert np.allclose(got, expected, rtol=1e-6, atol=1e-7) and got.flags["C_CONTIGUOUS"]


def test_ease_refuses_a_zero_lambda():
    with pytest.raises(ValueError, match="l2 must be > 0"):
        EASE(num_items=5, train_matrix=sp.csr_matrix(X), l2=0.0)


def test_itemknn_equals_a_hand_computation():
    nb, w = item_neighbours(sp.csr_matrix(X), k=2)
    counts = X.sum(0)
    co = X.T @ X
    for i in range(5):
        sims = {j: co[i, j] / math.sqrt(counts[i] * counts[j]) for j in range(5) if j != i}
        best = sorted(sims.values(), reverse=True)[:2]
        assert np.allclose(w[i], best, atol=1e-6)
        assert all(math.isclose(sims[j], s, abs_tol=1e-6) for j, s in zip(nb[i], w[i], strict=True))
    # item 0 (users 0, 2) and item 2 (users 1, 2) share user 2: 1 / sqrt(2 * 2)
    assert math.isclose(float(w[0][list(nb[0]).index(2)]) if 2 in nb[0] else 0.5, 0.5, abs_tol=1e-6)


def test_itemknn_scores_sum_neighbour_similarities():
    net = ItemKNN(num_items=5, train_matrix=sp.csr_matrix(X), k=4, shrink=1.0)
    counts, co = X.sum(0), X.T @ X
    sim = co / (np.sqrt(np.outer(counts, counts)) + 1.0)
    np.fill_diagonal(sim, 0)
    got = net.score(batch([[1, 3], [0, 0]]))
    assert np.allclose(got[0].numpy(), sim[1] + sim[3], atol=1e-6)
    assert np.allclose(got[1].numpy(), sim[0], atol=1e-6)  # a repeat counts once


def test_lightgcn_propagation_equals_dense_matrix_powers():
    torch.manual_seed(0)
    net = LightGCN(num_users=4, num_items=5, train_matrix=sp.csr_matrix(X), embedding_size=3, num_layers=2)
    a = np.block([[np.zeros((4, 4)), X], [X.T, np.zeros((5, 5))]])
    d = np.diag(a.sum(1) ** -0.5)
    norm = d @ a @ d
    assert np.allclose(normalized_adjacency(sp.csr_matrix(X)).to_dense().numpy(), norm, atol=1e-6)
    e0 = torch.cat([net.user_emb.weight, net.item_emb.weight]).detach().double().numpy()
    expected = (e0 + norm @ e0 + norm @ norm @ e0) / 3
    users, items = net.propagate()
    assert np.allclose(users.detach().numpy(), expected[:4], atol=1e-5)
    assert np.allclose(items.detach().numpy(), expected[4:], atol=1e-5)
    scores = net.score(batch([[], []], users=[1, 3]))
    assert np.allclose(scores.numpy(), expected[[1, 3]] @ expected[4:].T, atol=1e-5)
    # the gradient through the symmetric product equals autograd's through the dense matrix
    users, items = net.propagate()
    (users.sum() + items.pow(2).sum()).backward()
    e = torch.cat([net.user_emb.weight, net.item_emb.weight]).detach().double().requires_grad_(True)
    a_t = torch.from_numpy(norm)
    dense = (e + a_t @ e + a_t @ a_t @ e) / 3
    (dense[:4].sum() + dense[4:].pow(2).sum()).backward()
    got = torch.cat([net.user_emb.weight.grad, net.item_emb.weight.grad]).double()
    assert torch.allclose(got, e.grad, atol=1e-5)


def test_lightgcn_evaluation_cache_follows_the_weights():
    net = LightGCN(num_users=4, num_items=5, train_matrix=sp.csr_matrix(X), embedding_size=3, num_layers=1)
    before = net.score(batch([[]], users=[0]))
    with torch.no_grad():
        net.item_emb.weight.mul_(2.0)  # an optimizer step is an in-place update like these
        net.user_emb.weight.mul_(2.0)
    assert torch.allclose(net.score(batch([[]], users=[0])), 4 * before, atol=1e-6)


def test_bpr_loss_equals_a_hand_computation():
    pos = torch.tensor([2.0, 0.5])
    neg = torch.tensor([[1.0, 3.0], [0.0, 0.5]])
    pairs = [(2.0, 1.0), (2.0, 3.0), (0.5, 0.0), (0.5, 0.5)]
    terms = [math.log(1 + math.exp(-(p - n))) for p, n in pairs]
    assert math.isclose(BPRLoss()(pos, neg).item(), sum(terms) / 4, rel_tol=1e-6)
    v = torch.tensor([[1.0, 2.0], [0.0, 3.0]])  # ||v||^2 = 14
    got = BPRLoss(reg_weight=0.1)(pos, neg, [v]).item()
    assert math.isclose(got, sum(terms) / 4 + 0.1 * 14 / (2 * 2), rel_tol=1e-6)


def pair_batch(users, items, negatives) -> PairBatch:
    return PairBatch(torch.tensor(users), torch.tensor(items), torch.tensor(negatives))


@pytest.mark.parametrize("name", ["bprmf", "lightgcn"])
def test_cf_models_lower_their_loss(name):
    torch.manual_seed(0)
    m = sp.csr_matrix(X)
    net = BPRMF(4, 5, 8) if name == "bprmf" else LightGCN(4, 5, m, embedding_size=8, num_layers=2)
    keys = sorted_keys(m)
    users, items = m.nonzero()
    rng = np.random.default_rng(0)
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    loss_fn = BPRLoss(reg_weight=1e-4)
    losses = []
    for _ in range(40):
        neg = draw_negatives(keys, 5, users.astype(np.int64), 2, rng)
        loss = loss_fn(**net.training_terms(pair_batch(users.tolist(), items.tolist(), neg.tolist())))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_negatives_are_never_training_items_and_are_uniform_over_the_rest():
    m = sp.csr_matrix(X)
    users = np.repeat(np.arange(4), 2000)
    neg = draw_negatives(sorted_keys(m), 5, users, 3, np.random.default_rng(1))
    assert not X[users[:, None], neg].any()
    for u in range(4):  # each user's non-items are equally likely
        free = np.flatnonzero(X[u] == 0)
        freq = np.bincount(neg[users == u].ravel(), minlength=5)[free] / (2000 * 3)
        assert np.allclose(freq, 1 / len(free), atol=0.03)


def dataset() -> SequenceDataset:
    rng = np.random.default_rng(0)
    seqs = [
        (f"u{u}", [f"i{x}" for x in rng.choice(40, size=rng.integers(3, 12), replace=False)])
        for u in range(60)
    ]
    return SequenceDataset.from_sequences("t", seqs)


def test_the_training_matrix_never_holds_an_evaluation_target():
    """Fails if the split leaked: each user's validation and test targets are absent from its training
    row unless the same item also occurs earlier in that user's history."""
    ds = dataset()
    split = LeaveOneOut().split(ds)
    m = train_matrix(RunContext(ds, split, None)).toarray()
    for cases in (split.val, split.test):
        for u, pos in zip(cases.users, cases.target_pos, strict=True):
            target = ds.items[pos]
            assert m[u, target] == 0, f"user {u}'s target {target} is in its training row"
            assert m[u].sum() == len(set(ds.items[ds.offsets[u] : split.train_end[u]].tolist()))


def test_interaction_batches_are_seeded_and_resume_where_they_stopped():
    ds = dataset()
    split = LeaveOneOut().split(ds)

    def epochs(dm: InteractionDataModule, n: int) -> list[list[np.ndarray]]:
        loader = dm.train_dataloader()
        return [[b.negatives.numpy() for b in loader] for _ in range(n)]

    a = InteractionDataModule(ds, split, batch_size=16, seed=3, sampled_negatives=0)
    first = epochs(a, 3)
    assert sum(len(b) for b in first[0]) == a.num_train_targets
    b = InteractionDataModule(ds, split, batch_size=16, seed=3, sampled_negatives=0)
    b.train_dataloader()
    b._epochs.epoch = 2  # as restored from a checkpoint written after two passes
    resumed = [[x.negatives.numpy() for x in b._epochs]]
    assert all(np.array_equal(x, y) for x, y in zip(first[2], resumed[0], strict=True))
    users = InteractionDataModule(ds, split, sample="users", batch_size=8, sampled_negatives=0)
    rows = [x for x in users.train_dataloader()]
    assert isinstance(rows[0], UserBatch) and sum(len(x.users) for x in rows) == 60
    assert torch.equal(rows[0].rows, torch.from_numpy(users.matrix[rows[0].users.numpy()].toarray()))


def test_fold_in_models_read_the_validation_item_at_test_and_embedding_models_do_not():
    ds = dataset()
    split = LeaveOneOut().split(ds)
    dm = InteractionDataModule(ds, split, sampled_negatives=0)
    val = next(iter(dm.val_dataloader()))
    test = next(iter(dm.test_dataloader()))
    _, i_val = history_pairs(val)
    _, i_test = history_pairs(test)
    assert len(i_test) == len(i_val) + len(val.users)  # one more item per user: the validation target
    m = train_matrix(RunContext(ds, split, None))
    assert CFModule(EASE(40, m, 10.0), None, None, []).test_history == "train+valid"
    assert CFModule(BPRMF(60, 40), BPRLoss(), None, []).test_history == "train_only"


def test_multvae_loss_equals_a_hand_computation():
    from recbench.losses.multvae import MultVAELoss

    logits = torch.tensor([[1.0, 0.0, -1.0], [0.5, 0.5, 0.0]])
    rows = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    mu = torch.tensor([[0.5, -0.5], [0.0, 1.0]])
    logvar = torch.tensor([[0.0, math.log(2.0)], [0.0, 0.0]])

    def log_softmax(xs: list[float], k: int) -> float:
        return xs[k] - math.log(sum(math.exp(x) for x in xs))

    nll = -(log_softmax([1.0, 0.0, -1.0], 0) + log_softmax([1.0, 0.0, -1.0], 2)) - log_softmax(
        [0.5, 0.5, 0.0], 1
    )
    # KL(N(mu, s^2) || N(0, 1)) = (mu^2 + s^2 - 1 - log s^2) / 2 per dimension
    kl = ((0.25 + 1 - 1 - 0) + (0.25 + 2 - 1 - math.log(2.0)) + 0 + (1 + 1 - 1 - 0)) / 2
    got = MultVAELoss()(logits, *rows.nonzero(as_tuple=True), mu, logvar, beta=0.3).item()
    assert math.isclose(got, nll / 2 + 0.3 * kl / 2, rel_tol=1e-5)


def test_multvae_anneals_its_kl_weight_and_lowers_its_loss():
    from recbench.losses.multvae import MultVAELoss
    from recbench.models.multvae import MultVAE

    torch.manual_seed(0)
    net = MultVAE(num_items=5, hidden_sizes=[8], latent_size=4, dropout=0.0, anneal_cap=0.2, anneal_steps=10)
    opt = torch.optim.Adam(net.parameters(), lr=0.02)
    rows = torch.from_numpy(X)
    batch_ = UserBatch.from_rows(torch.arange(4), rows)
    betas, losses = [], []
    for _ in range(60):
        terms = net.training_terms(batch_)
        betas.append(terms["beta"])
        loss = MultVAELoss()(**terms)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert betas[:3] == [0.0, 0.1, 0.2] and betas[-1] == 0.2 and int(net.steps) == 60
    assert losses[-1] < losses[0]
    net.eval()
    scores = net.score(batch([[0, 1, 4]]))
    assert scores.shape == (1, 5)


def test_buir_loss_and_momentum_update():
    from recbench.losses.buir import BootstrapLoss
    from recbench.models.buir import BUIR

    p, t = torch.tensor([[1.0, 0.0], [1.0, 1.0]]), torch.tensor([[0.0, 2.0], [2.0, 2.0]])
    # cos = 0 and 1: (2 - 0 + 2 - 2) / 2 = 1 per direction
    assert math.isclose(BootstrapLoss()([p, p], [t, t]).item(), 2.0, rel_tol=1e-6)
    torch.manual_seed(0)
    net = BUIR(num_users=4, num_items=5, embedding_size=3, momentum=0.9)
    assert torch.equal(net.target_user.weight, net.user_emb.weight)
    with torch.no_grad():
        net.user_emb.weight.add_(1.0)
    before = net.target_user.weight.clone()
    net.after_step()
    assert torch.allclose(net.target_user.weight, 0.9 * before + 0.1 * net.user_emb.weight)
    terms = net.training_terms(pair_batch([0, 1], [2, 3], [[0], [0]]))
    assert all(not t.requires_grad for t in terms["target"])  # the target gets no gradient
    u, v = net.user_emb.weight[[1]], net.item_emb.weight
    expected = net.predictor(u) @ v.T + u @ net.predictor(v).T
    assert torch.allclose(net.score(batch([[]], users=[1])), expected)


def test_directau_loss_equals_a_hand_computation():
    from recbench.losses.directau import AlignUniform

    u = torch.tensor([[3.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    i = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 2.0]])

    def unit(v: list[float]) -> list[float]:
        n = math.hypot(*v)
        return [x / n for x in v]

    def sq(a: list[float], b: list[float]) -> float:
        return sum((x - y) ** 2 for x, y in zip(a, b, strict=True))

    us, is_ = [unit(v) for v in u.tolist()], [unit(v) for v in i.tolist()]
    align = sum(sq(a, b) for a, b in zip(us, is_, strict=True)) / 3

    def uniform(xs: list[list[float]]) -> float:
        pairs = [(a, b) for k, a in enumerate(xs) for b in xs[k + 1 :]]
        return math.log(sum(math.exp(-2 * sq(a, b)) for a, b in pairs) / len(pairs))

    got = AlignUniform(gamma=2.0)(u, i).item()
    assert math.isclose(got, align + 2.0 * (uniform(us) + uniform(is_)) / 2, rel_tol=1e-5)


@pytest.mark.parametrize("name", ["buir", "directau"])
def test_negative_free_models_lower_their_loss(name):
    from recbench.losses.buir import BootstrapLoss
    from recbench.losses.directau import AlignUniform
    from recbench.models.buir import BUIR
    from recbench.models.directau import DirectAU

    torch.manual_seed(0)
    net = BUIR(4, 5, 8, momentum=0.5) if name == "buir" else DirectAU(4, 5, 8)
    loss_fn = BootstrapLoss() if name == "buir" else AlignUniform(gamma=0.5)
    users, items = sp.csr_matrix(X).nonzero()
    opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=0.05)
    losses = []
    for _ in range(60):
        loss = loss_fn(**net.training_terms(pair_batch(users.tolist(), items.tolist(), [[0]] * len(users))))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if hasattr(net, "after_step"):
            net.after_step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.1


def test_simgcl_views_are_eps_away_and_its_infonce_equals_a_hand_computation():
    from recbench.losses.bpr_cl import info_nce
    from recbench.models.simgcl import SimGCL

    torch.manual_seed(0)
    net = SimGCL(
        num_users=4, num_items=5, train_matrix=sp.csr_matrix(X), embedding_size=3, num_layers=1, eps=0.1
    )
    clean_u, clean_i = net.propagate()
    noisy_u, noisy_i = net.propagate(perturb=True)
    gap = torch.cat([noisy_u - clean_u, noisy_i - clean_i]).norm(dim=1)
    assert torch.allclose(gap, torch.full_like(gap, 0.1), atol=1e-5)  # each node moved by exactly eps
    # layer 0 is left out of SimGCL's mean: one layer means the propagated embeddings themselves
    e0 = torch.cat([net.user_emb.weight, net.item_emb.weight])
    assert torch.allclose(torch.cat([clean_u, clean_i]), torch.sparse.mm(net.graph, e0), atol=1e-6)
    a, b = torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([[1.0, 1.0], [0.0, 2.0]])
    na, nb = F.normalize(a, dim=-1), F.normalize(b, dim=-1)
    s = (na @ nb.T / 0.5).tolist()
    expected = sum(-s[k][k] + math.log(sum(math.exp(x) for x in s[k])) for k in range(2)) / 2
    assert math.isclose(info_nce(a, b, 0.5).item(), expected, rel_tol=1e-6)
    terms = net.training_terms(pair_batch([0, 0, 1], [1, 4, 2], [[3], [3], [0]]))
    assert [v[0].shape[0] for v in terms["views"]] == [2, 3]  # unique users, unique items


def test_ease_weights_are_row_major():
    """Scoring reads rows of B; LAPACK's column-major inverse made the Beauty test pass 6x slower."""
    assert ease_weights(sp.csr_matrix(X), 1.0).is_contiguous()


def test_fold_in_models_can_leave_the_validation_item_out_at_test():
    ds = dataset()
    split = LeaveOneOut().split(ds)
    dm = InteractionDataModule(ds, split, sampled_negatives=0)
    m = train_matrix(RunContext(ds, split, None))
    val, test = next(iter(dm.val_dataloader())), next(iter(dm.test_dataloader()))
    module = CFModule(EASE(40, m, 10.0), None, None, [], fold_in_test="train_only")
    assert module.test_history == "train_only"
    module._stage = "test"
    assert torch.equal(module.score(test), module.net.score(val))  # the test case sees what validation saw
    module._stage = "val"
    assert torch.equal(module.score(val), module.net.score(val))
    with pytest.raises(ValueError, match="fold_in_test must be one of"):
        CFModule(EASE(40, m, 10.0), None, None, [], fold_in_test="valid")


def test_alpharec_propagation_equals_a_dense_hand_computation(monkeypatch):
    import pandas as pd

    import recbench.models.alpharec as alpharec

    lang_items = np.random.default_rng(0).normal(size=(5, 6)).astype(np.float32)
    monkeypatch.setattr(alpharec, "item_text_embeddings", lambda text, *a, **k: lang_items[: len(text)])
    text = pd.DataFrame({"title": [f"item {i}" for i in range(5)]})
    torch.manual_seed(0)
    net = alpharec.AlphaRec(4, 5, sp.csr_matrix(X), text, hidden_size=7, embedding_size=3, num_layers=2)
    # users' language: the mean of their training items'; then the MLP, LightGCN's layer mean, unit length
    users_lang = (X / X.sum(1, keepdims=True)) @ lang_items
    lang = torch.from_numpy(np.concatenate([users_lang, lang_items]).astype(np.float32))
    e0 = net.mlp(lang).detach().double().numpy()
    a = np.block([[np.zeros((4, 4)), X], [X.T, np.zeros((5, 5))]])
    d = np.diag(a.sum(1) ** -0.5)
    norm = d @ a @ d
    mean = (e0 + norm @ e0 + norm @ norm @ e0) / 3
    expected = mean / np.linalg.norm(mean, axis=1, keepdims=True)
    users, items = net.propagate()
    assert np.allclose(users.detach().numpy(), expected[:4], atol=1e-5)
    assert np.allclose(items.detach().numpy(), expected[4:], atol=1e-5)
    scores = net.score(batch([[], []], users=[0, 2]))
    assert np.allclose(scores.numpy(), expected[[0, 2]] @ expected[4:].T, atol=1e-5)
    assert [n for n, _ in net.named_parameters()] == [
        "mlp.0.weight",
        "mlp.0.bias",
        "mlp.2.weight",
        "mlp.2.bias",
    ]


def test_infonce_loss_equals_a_hand_computation():
    from recbench.losses.infonce import InfoNCE

    pos, neg = torch.tensor([0.5, -0.2]), torch.tensor([[0.1, 0.3], [0.0, -0.4]])
    t = 0.2
    by_hand = [
        -np.log(np.exp(p / t) / (np.exp(p / t) + np.exp(n / t).sum()))
        for p, n in zip(pos.numpy(), neg.numpy(), strict=True)
    ]
    assert InfoNCE(t)(pos, neg).item() == pytest.approx(np.mean(by_hand), rel=1e-5)
    with pytest.raises(ValueError, match=r"loss\.temperature must be > 0"):
        InfoNCE(0.0)


def test_multvae_sparse_first_layer_and_loss_equal_the_dense_ones():
    """The encoder reads (row, item) pairs and the log-likelihood is gathered at them: the same numbers as
    Linear(normalize(rows)) and the dense product with the rows (dropout off)."""
    import torch.nn.functional as F

    from recbench.losses.multvae import MultVAELoss
    from recbench.models.multvae import MultVAE

    torch.manual_seed(0)
    net = MultVAE(num_items=30, hidden_sizes=[16], latent_size=4, dropout=0.5).eval()
    rows = (torch.rand(6, 30) < 0.2).float()
    rows[2] = 0.0  # a user without items
    batch_ = UserBatch.from_rows(torch.arange(6), rows)
    assert torch.equal(batch_.rows, rows)
    mu, logvar = net.encode(batch_.row_index, batch_.item_index, 6)
    dense = net.encoder(F.normalize(rows, dim=1))
    assert torch.allclose(torch.cat([mu, logvar], 1), dense, atol=1e-6)
    logits = torch.randn(6, 30)
    loss = MultVAELoss()
    by_pairs = loss(logits, batch_.row_index, batch_.item_index, mu, logvar, 0.2)
    kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1).mean()
    dense = -(F.log_softmax(logits, dim=1) * rows).sum(1).mean() + 0.2 * kl
    assert torch.allclose(by_pairs, dense, atol=1e-6)


@pytest.mark.parametrize("model", ["lightgcn", "alpharec"])
def test_cached_propagation_follows_a_fused_optimizer_step(model, tmp_path, embedding_cache):
    """Adam's fused kernel updates weights without bumping their version counters: the propagation cached
    for evaluation must still be recomputed after a training step (a Toys LightGCN run validated the
    same N@10 for 11 epochs before this was caught)."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    from bench_eval import build

    module, dm = build(
        [
            f"model={model}",
            "data=synthetic",
            "model.optimizer.fused=true",
            f"paths.cache_dir={embedding_cache}",
        ]
    )
    dm.setup("fit")
    module.log = lambda *a, **k: None
    evaluation = next(iter(dm.val_dataloader()))
    before = module.score(evaluation).clone()
    opt = module.configure_optimizers()
    module.training_step(next(iter(dm.train_dataloader())), 0).backward()
    opt.step()
    assert not torch.equal(module.score(evaluation), before)
