"""GPT-2 in Flax NNX that runs on embeddings and exposes every layer's residual stream.

Conventions:
- The model API is three pure pieces: `embed(ids)` (token embedding only), `forward(x, positions,
  attention_mask, cache)` on input embeddings (it adds the position embedding), and
  `unembed(h)` = final LayerNorm then the tied token embedding. A latent loop feeds
  `final_norm(h)` back as the next input embedding, exactly as COCONUT does with HF's
  post-`ln_f` hidden state.
- Positions and attention masks are explicit. `attention_mask_BxS` marks which key slots may be
  attended (1) across the whole key range: the new tokens alone without a cache, or all S cache
  slots with one. Causality is by slot index, independent of the position ids, so a slot can be
  removed by masking it and shifting the later positions.
- Parameter names follow GPT-2 (`wte`, `wpe`, `h.{i}.attn.c_attn`, `ln_f`, ...) so Hugging Face
  import/export is a name table (`lrm_jax.model.hf_io`).
- The blocks and their optional pieces (rotary positions, CODI's projection `prj`, LoRA,
  `key_smear`, `token_conv`, dropout) are in `lrm_jax.model.blocks`.
- Dropout runs only when `forward` is given a `dropout_key`: the train step passes one,
  evaluation never does.
- Shape suffixes: B batch, T new tokens, S key slots, D model width, H heads, K head dim,
  L layers, V vocab.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from lrm_jax.config import ModelConfig
from lrm_jax.model.blocks import Block, Dropout, EarlierSlots, Projection, compute_dtype, earlier_slots, rope_angles
from lrm_jax.model.cache import KVCache


class ForwardOutput(NamedTuple):
    h: jax.Array  # BxTxD residual stream after the last block (before ln_f); T = keep_last if given
    layers: jax.Array | None  # (L+1)xBxTxD: embedding output, then after each block (same columns)
    cache: KVCache | None


class GPT2(nnx.Module):
    def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs):
        self.cfg = cfg
        init = nnx.initializers.normal(cfg.init_std)
        dt = compute_dtype(cfg)
        self.wte = nnx.Embed(cfg.vocab_size, cfg.n_embd, embedding_init=init, dtype=dt, rngs=rngs)
        # Rotary models have no position table; `wpe` stays None so their state has no such key.
        self.wpe = (
            nnx.Embed(cfg.n_positions, cfg.n_embd, embedding_init=init, dtype=dt, rngs=rngs)
            if cfg.position_embedding == "learned" else None
        )
        self.h = nnx.List([Block(cfg, rngs=rngs) for _ in range(cfg.n_layer)])
        self.ln_f = nnx.LayerNorm(cfg.n_embd, epsilon=cfg.layer_norm_epsilon, dtype=dt, rngs=rngs)
        self.prj = Projection(cfg, rngs=rngs) if cfg.projection_dim > 0 else None

    def embed(self, ids_BxT: jax.Array) -> jax.Array:
        """Token embeddings only; `forward` adds the position embedding."""
        return self.wte(ids_BxT)

    def forward(
        self,
        x_BxTxD: jax.Array,
        positions_BxT: jax.Array,
        attention_mask_BxS: jax.Array,
        cache: KVCache | None = None,
        *,
        prefix: KVCache | tuple[KVCache, ...] | None = None,
        return_layers: bool = False,
        dropout_key: jax.Array | None = None,
        keep_last: int | None = None,
    ) -> ForwardOutput:
        """Runs the blocks on input embeddings.

        Without a cache, S == T. With one, the T new tokens are written at slots
        [cache.index, cache.index + T) and attend to every earlier slot allowed by the mask.
        `prefix` is a read-only cache of keys/values that come before all of these slots (its
        slots are counted first in the mask), or a tuple of such caches, read in order; a loop
        can close over it instead of carrying it. A prefix made `for_reading` is read in the
        layout attention's products want, so no pass re-transposes it.
        `dropout_key` turns on the model's dropout (training only).

        `keep_last=n`: only the last n columns' outputs are wanted (a loss window, the next
        token). The last block still writes every column's key and value, which the kept
        columns attend to, but runs its attention output, MLP and residual for the kept columns
        only, so `h` and each entry of `layers` hold just those n columns. The outputs it
        skips reach nothing else, so the kept columns and every gradient are unchanged.
        """
        B, T, _ = x_BxTxD.shape
        if keep_last == T:
            keep_last = None
        if keep_last is not None and not 0 < keep_last <= T:
            raise ValueError(f"keep_last must be in [1, {T}] (the number of new tokens), got {keep_last}")
        prefixes = () if prefix is None else (prefix,) if isinstance(prefix, KVCache) else tuple(prefix)
        start = 0 if cache is None else cache.index
        start = start + sum(p.max_len for p in prefixes)
        query_slot_T = start + jnp.arange(T)
        S = attention_mask_BxS.shape[1]
        causal_TxS = jnp.arange(S)[None, :] <= query_slot_T[:, None]
        allowed_BxTxS = causal_TxS[None] & attention_mask_BxS[:, None, :].astype(bool)
        if self.wpe is not None:
            x, rope = x_BxTxD + self.wpe(positions_BxT), None
        else:
            x, rope = x_BxTxD, rope_angles(positions_BxT, self.cfg.head_dim, self.cfg.rope_base)
        earlier = None
        if self.cfg.key_smear or self.cfg.token_conv:
            # Only the new tokens are smeared and convolved: their rows of the earlier-slot table
            # (one table for both; each reads as many earlier slots as it has weights).
            table = earlier_slots(attention_mask_BxS, max(self.cfg.key_smear, self.cfg.token_conv))
            earlier = EarlierSlots(*(jax.lax.dynamic_slice_in_dim(a, start, T, axis=2) for a in table))
        drop = Dropout(self.cfg.dropout, dropout_key) if dropout_key is not None and self.cfg.dropout > 0 else None
        if drop is not None:
            x = drop(x, 0)
        layers = [x] if return_layers else None
        last = len(self.h) - 1
        for layer, block in enumerate(self.h):
            x, cache = block(
                x, allowed_BxTxS, layer, cache, prefixes, rope, earlier, drop, keep_last if layer == last else None
            )
            if return_layers:
                layers.append(x)
        if cache is not None:
            cache = cache.advance(T)
        if return_layers and keep_last is not None:
            layers = [a[:, -keep_last:] for a in layers]
        return ForwardOutput(x, jnp.stack(layers) if return_layers else None, cache)

    def final_norm(self, h: jax.Array) -> jax.Array:
        return self.ln_f(h)

    def thought_length(self) -> jax.Array | None:
        """The length every fed-back thought is rescaled to (`thought_norm: embedding`: the mean
        length of the token-embedding rows), else None. A constant of the step, not something to
        pull the table toward: no gradient flows through it."""
        if self.cfg.thought_norm != "embedding":
            return None
        table = self.wte.embedding[...].astype(jnp.float32)
        return jax.lax.stop_gradient(jnp.mean(jnp.linalg.norm(table, axis=-1)))

    def latent_feedback(self, h_BxD: jax.Array, length: jax.Array | None = None) -> jax.Array:
        """The next thought's input embedding from the last hidden state: the post-ln_f state
        (COCONUT), projected when the model has CODI's projection, rescaled to `length` (default
        `thought_length()`; pass it in to compute it once per forward) under `thought_norm`."""
        x = self.ln_f(h_BxD)
        x = self.prj(x) if self.prj is not None else x
        if self.cfg.thought_norm == "embedding":
            length = self.thought_length() if length is None else length
            x = x * (length / (jnp.linalg.norm(x, axis=-1, keepdims=True) + 1e-6)).astype(x.dtype)
        return x

    def unembed(self, h: jax.Array) -> jax.Array:
        """Final LayerNorm then the tied token embedding; logits in fp32."""
        return self.wte.attend(self.ln_f(h)).astype(jnp.float32)

    def new_cache(self, batch: int, max_len: int) -> KVCache:
        cfg = self.cfg
        return KVCache.zeros(
            cfg.n_layer, batch, max_len, cfg.n_head, cfg.head_dim, dtype=compute_dtype(cfg), inputs=cfg.token_conv > 0,
            smeared=cfg.key_smear > 0,
        )

    def __call__(self, ids_BxT, positions_BxT=None, attention_mask_BxT=None):
        """Convenience full-sequence LM call: ids -> logits."""
        B, T = ids_BxT.shape
        if attention_mask_BxT is None:
            attention_mask_BxT = jnp.ones((B, T), jnp.int32)
        if positions_BxT is None:
            positions_BxT = positions_from_mask(attention_mask_BxT)
        out = self.forward(self.embed(ids_BxT), positions_BxT, attention_mask_BxT)
        return self.unembed(out.h)


def positions_from_mask(mask_BxT: jax.Array) -> jax.Array:
    """Position ids that skip padding: real tokens get 0..n-1, pads get 0 (as in HF/COCONUT)."""
    return jnp.maximum(jnp.cumsum(mask_BxT.astype(jnp.int32), axis=1) - 1, 0)


def init_model(cfg: ModelConfig, seed: int = 0) -> GPT2:
    return GPT2(cfg, rngs=nnx.Rngs(seed))


def count_params(model: nnx.Module) -> int:
    return sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
