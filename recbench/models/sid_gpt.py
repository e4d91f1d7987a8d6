"""A decoder-only generative recommender over semantic IDs (the GPT-style alternative to TIGER's
encoder-decoder, as in GRID and RecBole3.0): one causal Transformer reads the flattened code tuples of the
history and emits the next item's codes, one level per step.

Sequence of a user with items ``i_1 … i_n`` and tuples of ``C`` codes::

    c(i_1)_1 … c(i_1)_C  c(i_2)_1 … c(i_2)_C  …  c(i_n)_1 … c(i_n)_C

Token ``t`` of item ``j`` gets a code embedding (one shared table over every level's codes, each level its
own range, as TIGER's vocabulary) + an item-position embedding (counted from the oldest real item, so a
prefix is encoded as at evaluation) + a level embedding. Every position predicts the next token, so one
forward pass supervises every item of the window after the first — dense supervision, where TIGER needs
one encoder pass per target. Scores are over the whole code vocabulary (tied output), as T5's.

Decoding (:meth:`SemanticIdGPT.decoder`): the history is encoded once per user and its keys/values kept;
each step of the constrained beam search then runs only the beams' newest token through the layers,
attending to the cached history and to the beam's own earlier tokens.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from recbench.models.sasrec import Block
from recbench.models.scoring import positions_from_start

PAD = 0
FIRST_CODE = 1


class SemanticIdGPT(nn.Module):
    """Args:
    num_items: items in the catalogue (recorded). code_sizes: codebook size of each level (tokenizer).
    max_len: history items read. hidden_size, num_layers, num_heads, ffn_size, dropout: Transformer sizes.
    """

    def __init__(
        self,
        num_items: int,
        code_sizes: Sequence[int] | None = None,
        max_len: int = 20,
        hidden_size: int = 128,
        num_layers: int = 4,
        num_heads: int = 4,
        ffn_size: int = 512,
        dropout: float = 0.1,
        init_std: float = 0.02,
    ) -> None:
        super().__init__()
        if not code_sizes:
            raise ValueError(
                "SemanticIdGPT needs code_sizes (per level): run.py passes them from the tokenizer"
            )
        self.num_items, self.max_len = num_items, max_len
        self.code_sizes = [int(s) for s in code_sizes]
        offsets = [FIRST_CODE]
        for size in self.code_sizes:
            offsets.append(offsets[-1] + size)
        self.level_offsets = offsets[:-1]
        self.vocab_size = offsets[-1]
        self.num_heads = num_heads
        self.tok_emb = nn.Embedding(self.vocab_size, hidden_size, padding_idx=PAD)
        self.pos_emb = nn.Embedding(max_len + 1, hidden_size)  # + 1: the item being generated
        self.level_emb = nn.Embedding(self.num_levels, hidden_size)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            Block(hidden_size, num_heads, ffn_size, dropout, dropout, "pre") for _ in range(num_layers)
        )
        self.ln_f = nn.LayerNorm(hidden_size)
        for m in self.modules():
            if isinstance(m, nn.Linear | nn.Embedding):
                nn.init.normal_(m.weight, std=init_std)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)
        with torch.no_grad():
            self.tok_emb.weight[PAD].zero_()

    def layers(self) -> list[Block]:
        return [b for b in self.blocks if isinstance(b, Block)]

    @property
    def num_levels(self) -> int:
        return len(self.code_sizes)

    def code_tokens(self, codes: torch.Tensor) -> torch.Tensor:
        """(..., levels) codes -> vocabulary tokens."""
        return codes + torch.tensor(self.level_offsets, device=codes.device)

    def output_embeddings(self) -> torch.Tensor:
        return self.tok_emb.weight  # (V, D), tied

    def flatten(self, item_codes: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(B, L, C) codes of left-padded items and their mask (B, L) -> tokens, item positions, levels and
        the real-token mask, each (B, L * C)."""
        b, length, c = item_codes.shape
        tokens = self.code_tokens(item_codes).masked_fill(~valid[..., None], PAD).reshape(b, length * c)
        pos = positions_from_start(valid)[..., None].expand(b, length, c).reshape(b, length * c)
        level = torch.arange(c, device=tokens.device).repeat(length)[None].expand(b, -1)
        real = valid[..., None].expand(b, length, c).reshape(b, length * c)
        return tokens, pos, level, real

    def embed(self, tokens: torch.Tensor, pos: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
        return self.drop(self.tok_emb(tokens) + self.pos_emb(pos) + self.level_emb(level))

    def forward(
        self, tokens: torch.Tensor, pos: torch.Tensor, level: torch.Tensor, real: torch.Tensor
    ) -> torch.Tensor:
        """Hidden states (B, S, D) of a flattened, left-padded token sequence (causal)."""
        s = tokens.shape[1]
        causal = torch.ones(s, s, dtype=torch.bool, device=tokens.device).tril()
        eye = torch.eye(s, dtype=torch.bool, device=tokens.device)
        allowed = ((causal & real[:, None, :]) | eye)[:, None]  # (B, 1, S, S)
        x = self.embed(tokens, pos, level)
        for block in self.blocks:
            x = block(x, allowed)
        return self.ln_f(x)

    # ---- incremental decoding ------------------------------------------------------------------
    def _attend(
        self, block: Block, x: torch.Tensor, past_k: torch.Tensor, past_v: torch.Tensor, past_ok: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One pre-LN block on new tokens x (N, 1, D) that attend to ``past`` keys/values (N, H, P, d)
        (``past_ok`` (N, P): which are real) and to themselves. Returns (output, k, v) of the new token."""
        attn = block.attn
        n, _, d = x.shape
        h = block.ln1(x)
        q, k, v = attn.qkv(h).split(d, dim=2)
        q, k, v = (t.view(n, 1, attn.num_heads, d // attn.num_heads).transpose(1, 2) for t in (q, k, v))
        keys, values = torch.cat([past_k, k], dim=2), torch.cat([past_v, v], dim=2)
        ok = torch.cat([past_ok, torch.ones_like(past_ok[:, :1])], dim=1)[:, None, None, :]  # (N, 1, 1, P+1)
        y = F.scaled_dot_product_attention(q, keys, values, attn_mask=ok)
        x = x + block.drop(attn.proj(y.transpose(1, 2).reshape(n, 1, d)))
        return x + block.ffn(block.ln2(x)), k, v

    def context(self, item_codes: torch.Tensor, valid: torch.Tensor) -> Context:
        """Encode histories once: each layer's keys/values, the real-token mask, the last hidden state."""
        tokens, pos, level, real = self.flatten(item_codes, valid)
        s = tokens.shape[1]
        causal = torch.ones(s, s, dtype=torch.bool, device=tokens.device).tril()
        eye = torch.eye(s, dtype=torch.bool, device=tokens.device)
        allowed = ((causal & real[:, None, :]) | eye)[:, None]
        x = self.embed(tokens, pos, level)
        keys, values = [], []
        for block in self.layers():
            h = block.ln1(x)
            b, _, d = h.shape
            _, k, v = block.attn.qkv(h).split(d, dim=2)
            heads = block.attn.num_heads
            keys.append(k.view(b, s, heads, d // heads).transpose(1, 2))
            values.append(v.view(b, s, heads, d // heads).transpose(1, 2))
            x = block(x, allowed)
        return Context(keys, values, real, self.ln_f(x[:, -1]), valid.sum(1))


class Context:
    """What decoding keeps of each user's encoded history."""

    def __init__(
        self,
        keys: list[torch.Tensor],
        values: list[torch.Tensor],
        real: torch.Tensor,
        last: torch.Tensor,
        items: torch.Tensor,
    ) -> None:
        self.keys, self.values, self.real, self.last, self.items = keys, values, real, last, items


class IncrementalDecoder:
    """``step(tokens, parents)`` for :func:`recbench.decoding.constrained.constrained_beam_search`: logits
    (B, W, V) of the next code of every beam. The first call (tokens = the start token only) reads the
    history's last hidden state; later calls run the newest token of each beam through every layer."""

    def __init__(self, net: SemanticIdGPT, ctx: Context) -> None:
        self.net, self.ctx = net, ctx
        self.beam_k: list[torch.Tensor] | None = None  # per layer (B, W, H, t, d): the beam's own tokens
        self.beam_v: list[torch.Tensor] | None = None

    def __call__(self, tokens: torch.Tensor, parents: torch.Tensor | None) -> torch.Tensor:
        net, ctx = self.net, self.ctx
        b, w, t = tokens.shape
        table = net.output_embeddings()
        if t == 1:  # the first level: from the history alone
            return (ctx.last @ table.T)[:, None].expand(b, w, -1)
        step = t - 2  # the level of the newest token (tokens[..., 0] is the start token)
        new = tokens[..., -1].reshape(b * w, 1)
        pos = ctx.items.clamp(max=net.max_len).repeat_interleave(w)[:, None]
        level = torch.full_like(new, step)
        x = net.embed(new, pos, level)
        if self.beam_k is not None and parents is not None:  # follow each beam's parent
            index = parents[:, :, None, None, None]
            self.beam_k = [k.gather(1, index.expand(-1, -1, *k.shape[2:])) for k in self.beam_k]
            self.beam_v = [v.gather(1, index.expand(-1, -1, *v.shape[2:])) for v in self.beam_v]  # type: ignore[union-attr]
        new_k, new_v = [], []
        for layer, block in enumerate(net.layers()):
            past_k = ctx.keys[layer].repeat_interleave(w, 0)  # (B W, H, S, d)
            past_v = ctx.values[layer].repeat_interleave(w, 0)
            past_ok = ctx.real.repeat_interleave(w, 0)
            if self.beam_k is not None:
                own_k = self.beam_k[layer].flatten(0, 1)  # (B W, H, t', d)
                own_v = self.beam_v[layer].flatten(0, 1)  # type: ignore[index]
                past_k, past_v = torch.cat([past_k, own_k], 2), torch.cat([past_v, own_v], 2)
                past_ok = torch.cat([past_ok, torch.ones(b * w, own_k.shape[2], dtype=torch.bool)], 1)
            x, k, v = net._attend(block, x, past_k, past_v, past_ok)
            new_k.append(k.view(b, w, *k.shape[1:]))
            new_v.append(v.view(b, w, *v.shape[1:]))
        if self.beam_k is None:
            self.beam_k, self.beam_v = new_k, new_v
        else:
            self.beam_k = [torch.cat([o, n], 3) for o, n in zip(self.beam_k, new_k, strict=True)]
            self.beam_v = [torch.cat([o, n], 3) for o, n in zip(self.beam_v, new_v, strict=True)]  # type: ignore[arg-type]
        return (net.ln_f(x[:, 0]) @ table.T).view(b, w, -1)
