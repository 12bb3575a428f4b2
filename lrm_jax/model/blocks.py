"""The pieces of a GPT-2 block (attention, MLP, their options) for `lrm_jax.model.gpt2`.

Conventions (shape suffixes as in gpt2.py: B batch, T new tokens, S key slots, D width, H heads,
K head dim):
- `position_embedding="rope"` replaces the learned table by rotary embeddings of the same
  explicit position ids (applied to queries and keys; keys are cached rotated).
- Optional pieces, both off by default: `Projection`, CODI's projection of a thought before it
  is fed back (`GPT2.latent_feedback`), and LoRA adapters on c_attn / c_proj / c_fc (Flax's
  `nnx.LoRA`, scaled by alpha / rank as in PEFT; their parameters are `nnx.LoRAParam`).
- `key_smear=n` adds to each attention key a learned per-channel mix of the keys of the n
  previous *unmasked* slots of the row (`h.{i}.attn.key_smear`, nxD, zero at init). Earlier
  slots are found through the attention mask, so a masked slot is skipped exactly as if it had
  been removed, the same invariant positions keep. A key is smeared once, when its token is
  written, under the mask in force then (the cache keeps it raw too, for later tokens' smears):
  masking a cached slot afterwards hides it from new tokens but not from the smears of cached
  slots after it, so callers mask only trailing cached slots (as the truncation sweep does).
- `token_conv=n` adds to each block's attention input (ln_1 output) a learned per-channel
  causal convolution over the n previous unmasked slots (`h.{i}.token_conv`, nxD, zero at
  init), masked slots skipped in the same way; the cache then also keeps those inputs.
- Dropout (GPT-2's embedding, attention-probability and residual dropout at `dropout`) is a
  `Dropout(rate, key)` value passed down, never module state; each call site folds in a salt.
- `keep_last=n` (the last block only): every column's key and value is written, but the
  attention output, MLP and residual run for the last n columns only.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from lrm_jax.config import ModelConfig
from lrm_jax.model.cache import KVCache


def compute_dtype(cfg: ModelConfig):
    return jnp.bfloat16 if cfg.dtype == "bfloat16" else jnp.float32


class ScaledLoRALinear(nnx.LoRALinear):
    """`nnx.LoRALinear` with PEFT's scaling: y = x W + b + (alpha / r) x A B."""

    def __init__(self, *args, lora_scale: float, **kwargs):
        super().__init__(*args, **kwargs)
        self.lora_scale = lora_scale

    def __call__(self, x):
        return nnx.Linear.__call__(self, x) + self.lora_scale * self.lora(x)


def linear(cfg: ModelConfig, n_in: int, n_out: int, init, rngs: nnx.Rngs):
    dt = compute_dtype(cfg)
    if cfg.lora_rank > 0:
        return ScaledLoRALinear(
            n_in, n_out, lora_rank=cfg.lora_rank, lora_scale=cfg.lora_alpha / cfg.lora_rank,
            kernel_init=init, dtype=dt, lora_dtype=dt, rngs=rngs,
        )
    return nnx.Linear(n_in, n_out, kernel_init=init, dtype=dt, rngs=rngs)


class Projection(nnx.Module):
    """CODI's thought projection: Linear, GELU, Linear, then LayerNorm (optional)."""

    def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs):
        dt = compute_dtype(cfg)
        self.fc_in = nnx.Linear(cfg.n_embd, cfg.projection_dim, dtype=dt, rngs=rngs)
        self.fc_out = nnx.Linear(cfg.projection_dim, cfg.n_embd, dtype=dt, rngs=rngs)
        self.ln = (
            nnx.LayerNorm(cfg.n_embd, epsilon=cfg.layer_norm_epsilon, dtype=dt, rngs=rngs)
            if cfg.projection_ln else None
        )

    def __call__(self, x):
        # The reference uses torch's exact (erf) GELU here, unlike GPT-2's blocks.
        x = self.fc_out(jax.nn.gelu(self.fc_in(x), approximate=False))
        return self.ln(x) if self.ln is not None else x


def rope_angles(positions_BxT: jax.Array, head_dim: int, base: float) -> tuple[jax.Array, jax.Array]:
    """cos and sin (BxTx1x(K/2)) of rotary position embeddings at explicit positions."""
    inv_freq = base ** (-jnp.arange(0, head_dim // 2, dtype=jnp.float32) * 2 / head_dim)
    angle_BxTxF = positions_BxT.astype(jnp.float32)[..., None] * inv_freq
    return jnp.cos(angle_BxTxF)[:, :, None], jnp.sin(angle_BxTxF)[:, :, None]


def _rotate(x_BxTxHxK: jax.Array, rope: tuple[jax.Array, jax.Array]) -> jax.Array:
    # Half-split pairing (GPT-NeoX / Llama convention): dims i and i + K/2 rotate together.
    cos, sin = rope
    x1, x2 = jnp.split(x_BxTxHxK.astype(jnp.float32), 2, axis=-1)
    out = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
    return out.astype(x_BxTxHxK.dtype)


class Dropout(NamedTuple):
    """Dropout at `rate` drawn from `key`; each call site folds in its own salt."""

    rate: float
    key: jax.Array

    def __call__(self, x: jax.Array, salt: int) -> jax.Array:
        keep = jax.random.bernoulli(jax.random.fold_in(self.key, salt), 1.0 - self.rate, x.shape)
        return jnp.where(keep, x / (1.0 - self.rate), 0.0).astype(x.dtype)


class EarlierSlots(NamedTuple):
    """For each key slot (or, sliced, each new token's slot), the slots of the n previous
    unmasked keys in its row."""

    slot_NxBxS: jax.Array  # int32
    valid_NxBxS: jax.Array  # bool: False where the row has fewer earlier unmasked slots


def earlier_slots(attention_mask_BxS: jax.Array, n: int) -> EarlierSlots:
    S = attention_mask_BxS.shape[1]
    allowed_BxS = attention_mask_BxS.astype(bool)
    rank_BxS = jnp.cumsum(allowed_BxS, axis=1) - 1  # masked slots share their predecessor's rank
    # Unmasked slots in order first: `order[b, r]` is the slot of row b's r-th unmasked key.
    order_BxS = jnp.argsort(jnp.where(allowed_BxS, jnp.arange(S), S + jnp.arange(S)), axis=1)
    back_NxBxS = rank_BxS[None] - jnp.arange(1, n + 1)[:, None, None]
    slot_NxBxS = jax.vmap(lambda r: jnp.take_along_axis(order_BxS, jnp.maximum(r, 0), axis=1))(back_NxBxS)
    return EarlierSlots(slot_NxBxS.astype(jnp.int32), back_NxBxS >= 0)


def add_earlier(base, source_BxSx_, earlier: EarlierSlots, w_Nx_):
    """base + sum_j w_j * (source at each row's j-th earlier unmasked slot; zero where none).

    `earlier` indexes the slots of `base` (its rows may be a slice of the full table); the
    trailing dims of `source` and `w_j` broadcast.
    """
    trailing = (None,) * (source_BxSx_.ndim - 2)
    out = base
    for j in range(w_Nx_.shape[0]):
        prev = jnp.take_along_axis(source_BxSx_, earlier.slot_NxBxS[j][(...,) + trailing], axis=1)
        out = out + jnp.where(earlier.valid_NxBxS[j][(...,) + trailing], prev, 0) * w_Nx_[j]
    return out


class Attention(nnx.Module):
    def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs):
        init = nnx.initializers.normal(cfg.init_std)
        proj_init = nnx.initializers.normal(cfg.init_std / math.sqrt(2 * cfg.n_layer))
        self.n_head = cfg.n_head
        self.c_attn = linear(cfg, cfg.n_embd, 3 * cfg.n_embd, init, rngs)
        self.c_proj = linear(cfg, cfg.n_embd, cfg.n_embd, proj_init, rngs)
        self.key_smear = nnx.Param(jnp.zeros((cfg.key_smear, cfg.n_embd))) if cfg.key_smear else None

    def __call__(
        self, x_BxTxD, allowed_BxTxS, layer: int, cache: KVCache | None, prefixes: tuple[KVCache, ...],
        rope=None, earlier: EarlierSlots | None = None, drop: Dropout | None = None,
        keep_last: int | None = None,
    ):
        B, T, D = x_BxTxD.shape
        K = D // self.n_head
        qkv = self.c_attn(x_BxTxD).reshape(B, T, 3, self.n_head, K)
        q_BxTxHxK, k_BxTxHxK, v_BxTxHxK = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
        if rope is not None:
            # Keys are cached already rotated: a slot's position never changes once written.
            q_BxTxHxK, k_BxTxHxK = _rotate(q_BxTxHxK, rope), _rotate(k_BxTxHxK, rope)
        if cache is not None:
            cache = cache.write(layer, k_BxTxHxK, v_BxTxHxK)
            k_BxSxHxK, v_BxSxHxK = cache.k[layer], cache.v[layer]
        else:
            k_BxSxHxK, v_BxSxHxK = k_BxTxHxK, v_BxTxHxK
        if self.key_smear is not None:
            # Only the new keys are smeared (from the raw keys of their earlier slots, prefixes
            # included); cached keys were smeared when written, so a thought or decoded token
            # costs one row of gathers, not the whole key range again.
            raw = jnp.concatenate([p.k[layer] for p in prefixes] + [k_BxSxHxK], axis=1) if prefixes else k_BxSxHxK
            w_NxHxK = self.key_smear[...].reshape(-1, self.n_head, K).astype(raw.dtype)
            smeared_BxTxHxK = add_earlier(k_BxTxHxK, raw, earlier, w_NxHxK)
            if cache is not None:
                cache = cache.write_smeared(layer, smeared_BxTxHxK)
                k_BxSxHxK = cache.ks[layer]
            else:
                k_BxSxHxK = smeared_BxTxHxK
        if keep_last is not None:
            # Every column's key and value is written above; only the kept columns query.
            q_BxTxHxK, allowed_BxTxS, T = q_BxTxHxK[:, -keep_last:], allowed_BxTxS[:, -keep_last:], keep_last
        # Scores and softmax in fp32 whatever the compute dtype. Prefix keys and values are used
        # where they are: only the (small) score tensors are concatenated.
        key_parts = [_key_part(p, layer) for p in prefixes]
        key_parts.append((k_BxSxHxK, v_BxSxHxK, "bshk"))
        scores_BxHxTxS = jnp.concatenate(
            [
                jnp.einsum(f"bthk,{layout}->bhts", q_BxTxHxK, k.astype(q_BxTxHxK.dtype), preferred_element_type=jnp.float32)
                for k, _, layout in key_parts
            ],
            axis=-1,
        ) / math.sqrt(K)
        scores_BxHxTxS = jnp.where(allowed_BxTxS[:, None], scores_BxHxTxS, -1e30)
        probs_BxHxTxS = jax.nn.softmax(scores_BxHxTxS, axis=-1).astype(v_BxSxHxK.dtype)
        if drop is not None:
            probs_BxHxTxS = drop(probs_BxHxTxS, 3 * layer + 1)
        out_BxTxHxK = 0
        offset = 0
        for k, v, layout in key_parts:
            n = k.shape[layout.index("s")]
            out_BxTxHxK = out_BxTxHxK + jnp.einsum(
                f"bhts,{layout}->bthk", probs_BxHxTxS[..., offset : offset + n], v.astype(probs_BxHxTxS.dtype)
            )
            offset += n
        return self.c_proj(out_BxTxHxK.reshape(B, T, D)), cache


def _key_part(prefix: KVCache, layer: int):
    """(keys, values, einsum layout) of one read-only prefix cache: the keys attention reads
    (smeared ones for key_smear models), in the HxKxS layout when the cache was made
    `for_reading`, as stored (SxHxK) otherwise."""
    if prefix.kt is not None:
        return prefix.kt[layer], prefix.vt[layer], "bhks"
    return (prefix.k if prefix.ks is None else prefix.ks)[layer], prefix.v[layer], "bshk"


class MLP(nnx.Module):
    def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs):
        init = nnx.initializers.normal(cfg.init_std)
        proj_init = nnx.initializers.normal(cfg.init_std / math.sqrt(2 * cfg.n_layer))
        self.c_fc = linear(cfg, cfg.n_embd, 4 * cfg.n_embd, init, rngs)
        self.c_proj = linear(cfg, 4 * cfg.n_embd, cfg.n_embd, proj_init, rngs)

    def __call__(self, x):
        # GPT-2 uses the tanh approximation ("gelu_new").
        return self.c_proj(jax.nn.gelu(self.c_fc(x), approximate=True))


class Block(nnx.Module):
    def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs):
        dt = compute_dtype(cfg)
        self.ln_1 = nnx.LayerNorm(cfg.n_embd, epsilon=cfg.layer_norm_epsilon, dtype=dt, rngs=rngs)
        self.token_conv = nnx.Param(jnp.zeros((cfg.token_conv, cfg.n_embd))) if cfg.token_conv else None
        self.attn = Attention(cfg, rngs=rngs)
        self.ln_2 = nnx.LayerNorm(cfg.n_embd, epsilon=cfg.layer_norm_epsilon, dtype=dt, rngs=rngs)
        self.mlp = MLP(cfg, rngs=rngs)

    def __call__(
        self, x, allowed_BxTxS, layer: int, cache: KVCache | None, prefixes: tuple[KVCache, ...], rope=None,
        earlier: EarlierSlots | None = None, drop: Dropout | None = None, keep_last: int | None = None,
    ):
        y = self.ln_1(x)
        if self.token_conv is not None:
            y, cache = self._convolve(y, layer, cache, prefixes, earlier)
        a, cache = self.attn(y, allowed_BxTxS, layer, cache, prefixes, rope, earlier, drop, keep_last)
        if drop is not None:
            a = drop(a, 3 * layer + 2)
        if keep_last is not None:
            x = x[:, -keep_last:]
        x = x + a
        m = self.mlp(self.ln_2(x))
        if drop is not None:
            m = drop(m, 3 * layer + 3)
        return x + m, cache

    def _convolve(self, y_BxTxD, layer, cache, prefixes, earlier: EarlierSlots):
        # The inputs are cached before the convolution: a later token's convolution reads them.
        if cache is not None:
            cache = cache.write_inputs(layer, y_BxTxD)
        parts = [p.x[layer] for p in prefixes] + [cache.x[layer] if cache is not None else y_BxTxD]
        source_BxSxD = jnp.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]
        return add_earlier(y_BxTxD, source_BxSxD, earlier, self.token_conv[...].astype(y_BxTxD.dtype)), cache
