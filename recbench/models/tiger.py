"""TIGER: generative retrieval with semantic IDs (Rajput et al., "Recommender Systems with Generative
Retrieval", NeurIPS 2023).

A T5-style encoder-decoder (Raffel et al., JMLR 2020; built from a ``transformers`` ``T5Config`` so the
weights are a stock ``T5ForConditionalGeneration`` and Hugging Face ``generate`` can run on them for
comparison). The encoder reads the user's history as the flattened code tuples of its last items, preceded
by one user token (user ids hashed into ``num_user_tokens`` buckets, as in the paper); the decoder emits
the code tuple of the next item, one level per step.

Vocabulary (one shared embedding table)::

    0 pad (also the decoder start token)   1 eos (never generated: tuples have a fixed length)
    2 …                                    level-0 codes, then level-1 codes, …, the last level's codes
    … + num_user_tokens                    user tokens

Paper sizes (defaults): 4 encoder + 4 decoder layers, d_model 128, 6 heads x 64, d_ff 1024, dropout 0.1,
2000 user tokens, 20 history items.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from transformers import T5Config, T5ForConditionalGeneration

PAD, EOS = 0, 1
FIRST_CODE = 2


class TIGER(nn.Module):
    """Args:
    num_items: items in the catalogue (recorded; the vocabulary comes from ``code_sizes``).
    code_sizes: codebook size of each level of the item tuples (from the tokenizer).
    max_len: history items the encoder sees. num_user_tokens: user-id hash buckets (0 = none).
    d_model, num_layers (each of encoder and decoder), num_heads, d_kv (per head), d_ff, dropout: T5 sizes.
    """

    def __init__(
        self,
        num_items: int,
        code_sizes: Sequence[int] | None = None,
        max_len: int = 20,
        num_user_tokens: int = 2000,
        d_model: int = 128,
        num_layers: int = 4,
        num_heads: int = 6,
        d_kv: int = 64,
        d_ff: int = 1024,
        dropout: float = 0.1,
        relative_attention_num_buckets: int = 32,
    ) -> None:
        super().__init__()
        if not code_sizes:
            raise ValueError(
                "TIGER needs code_sizes (codebook size per level): run.py passes them from the tokenizer"
            )
        self.num_items, self.max_len, self.num_user_tokens = num_items, max_len, num_user_tokens
        self.code_sizes = [int(s) for s in code_sizes]
        offsets = [FIRST_CODE]
        for size in self.code_sizes:
            offsets.append(offsets[-1] + size)
        self.level_offsets = offsets[:-1]  # first token of each level
        self.user_offset = offsets[-1]
        self.vocab_size = self.user_offset + num_user_tokens
        # T5Config takes the generation/tying settings through **kwargs, which its stubs do not declare
        self.config = T5Config(  # type: ignore[call-arg]
            vocab_size=self.vocab_size,
            d_model=d_model,
            d_kv=d_kv,
            d_ff=d_ff,
            num_layers=num_layers,
            num_decoder_layers=num_layers,
            num_heads=num_heads,
            dropout_rate=dropout,
            relative_attention_num_buckets=relative_attention_num_buckets,
            feed_forward_proj="relu",
            pad_token_id=PAD,
            eos_token_id=EOS,
            decoder_start_token_id=PAD,
            tie_word_embeddings=True,
        )
        self.t5 = T5ForConditionalGeneration(self.config)

    @property
    def scales_decoder_outputs(self) -> bool:
        """T5 multiplies decoder outputs by d_model^-0.5 before a tied output projection."""
        return bool(getattr(self.config, "scale_decoder_outputs", self.config.tie_word_embeddings))

    @property
    def num_levels(self) -> int:
        return len(self.code_sizes)

    def code_tokens(self, codes: torch.Tensor) -> torch.Tensor:
        """(..., levels) codes -> vocabulary tokens."""
        offsets = torch.tensor(self.level_offsets, device=codes.device)
        return codes + offsets

    def encoder_inputs(
        self, history_codes: torch.Tensor, history_mask: torch.Tensor, users: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder tokens and attention mask from left-padded history codes (B, L, levels) and the mask of
        real items (B, L). The user token sits right before the first real item, so that every real token's
        relative position does not depend on the padding."""
        b, length, levels = history_codes.shape
        tokens = self.code_tokens(history_codes).masked_fill(~history_mask[..., None], PAD).reshape(b, -1)
        real = history_mask[..., None].expand(b, length, levels).reshape(b, -1)
        if users is not None and self.num_user_tokens > 0:
            user_tok = (self.user_offset + users % self.num_user_tokens).to(tokens)[:, None]
            tokens = torch.cat([user_tok, tokens], dim=1)
            real = torch.cat([torch.ones_like(real[:, :1]), real], dim=1)
        # move every pad to the left, keeping the order of real tokens (stable sort on the mask)
        order = torch.argsort(real.to(torch.int8), dim=1, stable=True)
        return tokens.gather(1, order), real.gather(1, order).long()

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, S) -> encoder states (B, S, D)."""
        return self.t5.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    def decode_logits(
        self, encoder_states: torch.Tensor, attention_mask: torch.Tensor, decoder_input_ids: torch.Tensor
    ) -> torch.Tensor:
        """Logits (B, T, V) of the next token after each decoder position (no cache: T <= levels + 1)."""
        out = self.t5(
            encoder_outputs=(encoder_states,),
            attention_mask=attention_mask,
            decoder_input_ids=decoder_input_ids,
            use_cache=False,
        )
        return out.logits

    def output_embeddings(self) -> torch.Tensor:
        """(V, D) output projection (tied to the input embeddings, as in T5)."""
        return self.t5.lm_head.weight

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, target_codes: torch.Tensor
    ) -> torch.Tensor:
        """Teacher-forced decoder states (B, levels, D), one per level of the target tuple (B, levels):
        ``states @ output_embeddings().T`` are the T5 logits of each level's token."""
        targets = self.code_tokens(target_codes)
        start = torch.full_like(targets[:, :1], PAD)
        decoder_input_ids = torch.cat([start, targets[:, :-1]], dim=1)
        states = self.t5.decoder(
            input_ids=decoder_input_ids,
            encoder_hidden_states=self.encode(input_ids, attention_mask),
            encoder_attention_mask=attention_mask,
        ).last_hidden_state
        if self.scales_decoder_outputs:  # T5 scales before the tied output projection
            states = states * self.config.d_model**-0.5
        return states


class IncrementalDecoder:
    """Fast decoding for beam search with the T5 decoder's own weights (eval mode, no dropout).

    Two savings over running the stock decoder on ``batch x beams`` rows at every step:

    * cross-attention keys/values are computed once per *case* (B, H, S, d), not per beam and step; the
      beams of a case attend to them as extra query rows (B, H, W, S) — no (B x W, S, D) copy of the
      encoder states is ever made;
    * self-attention keys/values of earlier steps are cached (and reordered to follow the beams), so each
      step runs one new token per beam.

    Same arithmetic as ``T5Stack`` (RMS layer norm, unscaled dot-product attention, relative position bias
    of the first layer shared by all layers); ``tests/test_tiger.py`` checks it against the stock forward.
    """

    def __init__(self, net: TIGER, encoder_states: torch.Tensor, attention_mask: torch.Tensor) -> None:
        self.t5 = net.t5
        dec = net.t5.decoder
        self.blocks: list[Any] = list(dec.block)  # T5Block: layer[0] self-, [1] cross-attention, [2] FF
        self.h, self.dk = net.config.num_heads, net.config.d_kv
        self.scale_out = net.config.d_model**-0.5 if net.scales_decoder_outputs else 1.0
        # additive mask over encoder positions: (B, 1, 1, S)
        neg = torch.finfo(encoder_states.dtype).min
        self.enc_bias = ((1.0 - attention_mask[:, None, None, :].to(encoder_states.dtype)) * neg).contiguous()
        self.cross = []
        for block in self.blocks:
            att = block.layer[1].EncDecAttention
            self.cross.append((self._heads(att.k(encoder_states)), self._heads(att.v(encoder_states))))
        self.cache: list[tuple[torch.Tensor, torch.Tensor]] = []  # per layer (B, W, H, t, d)
        self.step = 0

    def _heads(self, x: torch.Tensor) -> torch.Tensor:  # (B, S, H*d) -> (B, H, S, d)
        return x.view(*x.shape[:-1], self.h, self.dk).transpose(-3, -2)

    @torch.no_grad()
    def __call__(self, tokens: torch.Tensor, parents: torch.Tensor | None) -> torch.Tensor:
        """Logits (B, W, V) of the next token; ``tokens`` (B, W, t) so far (only the last is new),
        ``parents`` (B, W): which beam of the previous call each beam extends (None on the first call)."""
        b, w = tokens.shape[:2]
        if parents is not None and self.cache:
            idx = parents[:, :, None, None, None]
            self.cache = [
                (k.gather(1, idx.expand(-1, -1, *k.shape[2:])), v.gather(1, idx.expand(-1, -1, *v.shape[2:])))
                for k, v in self.cache
            ]
        t = self.step
        x = self.t5.decoder.embed_tokens(tokens[:, :, -1])  # (B, W, D)
        first = self.blocks[0].layer[0].SelfAttention  # holds the relative position bias of all layers
        buckets = first._relative_position_bucket(
            torch.arange(t + 1, device=x.device) - t,  # key position - query position
            bidirectional=False,
            num_buckets=first.relative_attention_num_buckets,
            max_distance=first.relative_attention_max_distance,
        )
        pos_bias = first.relative_attention_bias(buckets).T[:, None, :]  # (H, 1, t+1), broadcast over (B, W)
        new_cache = []
        for i, block in enumerate(self.blocks):
            sa = block.layer[0]
            hn = sa.layer_norm(x)
            q = sa.SelfAttention.q(hn).view(b, w, self.h, 1, self.dk)  # (B, W, H, 1, d)
            k_new = sa.SelfAttention.k(hn).view(b, w, self.h, 1, self.dk)
            v_new = sa.SelfAttention.v(hn).view(b, w, self.h, 1, self.dk)
            if self.cache:
                k_all = torch.cat([self.cache[i][0], k_new], dim=3)
                v_all = torch.cat([self.cache[i][1], v_new], dim=3)
            else:
                k_all, v_all = k_new, v_new
            new_cache.append((k_all, v_all))
            att = torch.softmax(q @ k_all.transpose(-1, -2) + pos_bias, dim=-1) @ v_all  # (B, W, H, 1, d)
            x = x + sa.SelfAttention.o(att.reshape(b, w, self.h * self.dk))
            ca = block.layer[1]
            hn = ca.layer_norm(x)
            q = ca.EncDecAttention.q(hn).view(b, w, self.h, self.dk).transpose(1, 2)  # (B, H, W, d)
            k_enc, v_enc = self.cross[i]  # (B, H, S, d)
            att = torch.softmax(q @ k_enc.transpose(-1, -2) + self.enc_bias, dim=-1) @ v_enc  # (B, H, W, d)
            x = x + ca.EncDecAttention.o(att.transpose(1, 2).reshape(b, w, self.h * self.dk))
            ff = block.layer[2]
            x = x + ff.DenseReluDense(ff.layer_norm(x))
        self.cache = new_cache
        self.step += 1
        x = self.t5.decoder.final_layer_norm(x) * self.scale_out
        return self.t5.lm_head(x)  # (B, W, V)
