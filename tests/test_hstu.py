"""HSTU: shapes, causality, padding invariance, the attention against a loop-by-loop reference, cosine
scores, training, argument checks."""

from __future__ import annotations

import math

import pytest
import torch

from recbench.losses.sampled_softmax import SampledSoftmax
from recbench.models.hstu import HSTU


def small(**kw) -> HSTU:
    torch.manual_seed(0)
    sizes = dict(num_items=30, max_len=8, hidden_size=16, num_heads=2, attention_dim=4, linear_dim=6)
    return HSTU(**(sizes | kw)).eval()


def test_output_shape_and_tied_embeddings():
    net = small(similarity="dot", temperature=1.0)
    out = net(torch.tensor([[0, 0, 3, 4, 5]]))  # (B, L) -> (B, L, D)
    assert out.shape == (1, 5, 16)
    assert net.item_embeddings().shape == (30, 16)
    assert net.item_embeddings().data_ptr() == net.item_emb.weight[1:].data_ptr()


@pytest.mark.parametrize("similarity", ["dot", "cosine"])
def test_no_information_flows_from_the_future(similarity):
    net = small(similarity=similarity)
    a = net(torch.tensor([[1, 2, 3, 4, 5]]))
    b = net(torch.tensor([[1, 2, 3, 9, 5]]))  # the item at t = 3 differs
    assert torch.allclose(a[:, :3], b[:, :3], atol=1e-6)
    assert not torch.allclose(a[:, 3], b[:, 3])


@pytest.mark.parametrize("relative_bias", [True, False])
def test_extra_left_padding_does_not_change_real_positions(relative_bias):
    net = small(relative_bias=relative_bias, num_layers=3)
    short = net(torch.tensor([[5, 6, 7]]))
    padded = net(torch.tensor([[0, 0, 0, 5, 6, 7], [1, 2, 3, 4, 5, 6]]))
    assert torch.allclose(short[0], padded[0, 3:], atol=1e-5)
    assert torch.isfinite(padded).all(), "padding rows must not produce NaN"


def naive_hstu(net: HSTU, tokens: torch.Tensor) -> torch.Tensor:
    """The whole forward pass (eval mode) written with explicit loops over batch, head, query i and key j,
    from the paper's equations and the network's weights only."""

    def layer_norm(z: torch.Tensor) -> torch.Tensor:  # no affine parameters
        return (z - z.mean()) / torch.sqrt(z.var(unbiased=False) + 1e-6)

    batch, length = tokens.shape
    d = net.hidden_size
    out = torch.zeros(batch, length, d, dtype=torch.float64)
    for b in range(batch):
        real = [t for t in range(length) if tokens[b, t] != 0]
        x = {}
        for pos, t in enumerate(real):  # the oldest real item is at position 0
            x[t] = net.item_emb.weight[tokens[b, t]] * math.sqrt(d) + net.pos_emb.weight[pos]
        for layer in net.layers:
            h, dqk, dv = layer.num_heads, layer.attention_dim, layer.linear_dim
            parts = {t: torch.nn.functional.silu(layer.uvqk.weight @ layer_norm(x[t])) for t in real}
            u = {t: p[: h * dv] for t, p in parts.items()}
            v = {t: p[h * dv : 2 * h * dv] for t, p in parts.items()}
            q = {t: p[2 * h * dv : 2 * h * dv + h * dqk] for t, p in parts.items()}
            k = {t: p[2 * h * dv + h * dqk :] for t, p in parts.items()}
            new = {}
            for i in real:
                heads = []
                for head in range(h):
                    acc = torch.zeros(dv, dtype=torch.float64)
                    for j in real:
                        if j > i:
                            continue
                        qi, kj = q[i][head * dqk : (head + 1) * dqk], k[j][head * dqk : (head + 1) * dqk]
                        score = qi @ kj + (layer.rel_bias[i - j] if layer.rel_bias is not None else 0.0)
                        weight = score * torch.sigmoid(score) / net.max_len  # SiLU, fixed normaliser
                        acc = acc + weight * v[j][head * dv : (head + 1) * dv]
                    heads.append(acc)
                gated = layer_norm(torch.cat(heads)) * u[i]
                new[i] = x[i] + layer.out.weight @ gated + layer.out.bias
            x = new
        for t in real:
            y = x[t] / x[t].norm() if net.similarity == "cosine" else x[t]
            out[b, t] = y / net.temperature
    return out


@pytest.mark.parametrize("similarity", ["dot", "cosine"])
def test_attention_equals_a_loop_by_loop_reference(similarity):
    net = small(num_layers=2, similarity=similarity, temperature=0.5).double()
    with torch.no_grad():  # a bias large enough to matter
        for layer in net.layers:
            layer.rel_bias.normal_(std=1.0)
    tokens = torch.tensor([[0, 0, 3, 4, 5], [1, 2, 8, 4, 7]])
    expected = naive_hstu(net, tokens)
    got = net(tokens)
    valid = tokens != 0
    torch.testing.assert_close(got[valid], expected[valid], rtol=1e-9, atol=1e-9)


def test_cosine_scores_have_norm_one_over_temperature():
    net = small(similarity="cosine", temperature=0.05)
    hidden = net(torch.tensor([[0, 3, 4, 5], [1, 2, 3, 4]]))
    torch.testing.assert_close(hidden.norm(dim=-1), torch.full((2, 4), 20.0))
    torch.testing.assert_close(net.item_embeddings().norm(dim=-1), torch.ones(30))
    scores = hidden[:, -1] @ net.item_embeddings().T
    assert scores.abs().max() <= 1 / 0.05 + 1e-4


def test_loss_falls_with_sampled_softmax():
    net = small(dropout=0.0, linear_dropout=0.0).train()
    loss_fn = SampledSoftmax(num_negatives=8)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-2, betas=(0.9, 0.98), weight_decay=0.0)
    tokens = torch.tensor([[0, 1, 2, 3], [4, 5, 6, 7]])
    targets = torch.tensor([[0, 2, 3, 4], [5, 6, 7, 8]])
    losses = []
    for _ in range(30):
        hidden = net(tokens)
        valid = targets != 0
        loss = loss_fn(hidden[valid], targets[valid] - 1, net.item_embeddings())
        opt.zero_grad()
        loss.backward()
        assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) / 5 < 0.5 * sum(losses[:5]) / 5


@pytest.mark.parametrize(
    "kwargs,key",
    [
        ({"max_len": 0}, "max_len"),
        ({"hidden_size": 0}, "hidden_size"),
        ({"num_layers": 0}, "num_layers"),
        ({"num_heads": 0}, "num_heads"),
        ({"attention_dim": 2.5}, "attention_dim"),
        ({"linear_dim": -1}, "linear_dim"),
        ({"dropout": 1.0}, "dropout"),
        ({"linear_dropout": -0.1}, "linear_dropout"),
        ({"similarity": "l2"}, "similarity"),
        ({"temperature": 0}, "temperature"),
    ],
)
def test_bad_arguments_name_the_config_key(kwargs, key):
    with pytest.raises(ValueError, match=rf"model\.net\.{key} "):
        small(**kwargs)


def test_too_long_input_is_an_error():
    with pytest.raises(ValueError, match="exceeds max_len 8"):
        small()(torch.ones(1, 9, dtype=torch.long))
