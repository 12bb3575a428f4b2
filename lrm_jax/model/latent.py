"""The continuous-thought loop (COCONUT, CODI) with static shapes, a KV cache and `lax.scan`.

Layout of a batch (every row, thanks to left padding):

    columns [0, P)       question ... <start-latent>     (left-padded; P = `n_prefix`)
    columns [P, P+Z)     Z latent slots                   (Z = `n_latent`, static)
    columns [P+Z, T)     <end-latent>, remaining steps, answer, right padding

One pass fills the prefix into the cache; a `lax.scan` then computes the Z latent slots one at a
time, each slot's input embedding being `feedback(h)` of the previous position's last hidden
state (COCONUT: the final LayerNorm, as HF's post-`ln_f` hidden state; CODI: LayerNorm then the
projection MLP; either optionally rescaled to the token-embedding length, `model.thought_norm`);
a last pass runs the rest of the sequence. Gradients flow through every thought. A row that
uses fewer than Z thoughts masks its unused slots (attention mask 0) and the position ids skip
them, which equals running that row's shorter sequence.

Interventions on thoughts are an explicit argument (`intervene(z, x_BxD) -> x_BxD`, applied to
the input of latent slot z), never state stored on the model.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from lrm_jax.model.cache import KVCache
from lrm_jax.model.generate import decode_greedy, Generation
from lrm_jax.model.gpt2 import GPT2, positions_from_mask

Feedback = Callable[[jax.Array], jax.Array]  # last hidden state BxD -> next input embedding BxD
Intervene = Callable[[jax.Array, jax.Array], jax.Array]  # (z, x_BxD) -> x_BxD


class LatentOutput(NamedTuple):
    h: jax.Array  # Bx(T-h_from)xD residual stream after the last block, columns [h_from, T)
    thoughts: jax.Array  # BxZxD the input embeddings fed into the latent slots
    layers: jax.Array | None  # (L+1)xBx(T-h_from)xD when asked, the same columns
    cache: KVCache  # exactly the T columns (what `decode_greedy` continues from)


def coconut_feedback(model: GPT2) -> Feedback:
    """The model's own feedback: post-ln_f (COCONUT), then the projection if it has one (CODI).
    The thought length (`model.thought_norm`) is computed here, once, not inside the thought scan."""
    length = model.thought_length()
    return lambda h_BxD: model.latent_feedback(h_BxD, length)


def latent_forward(
    model: GPT2,
    ids_BxT: jax.Array,
    mask_BxT: jax.Array,
    *,
    n_prefix: int,
    n_latent: int,
    feedback: Feedback | None = None,
    positions_BxT: jax.Array | None = None,
    intervene: Intervene | None = None,
    return_layers: bool = False,
    dropout_key: jax.Array | None = None,
    h_from: int = 0,
) -> LatentOutput:
    """Runs a batch whose columns [n_prefix, n_prefix + n_latent) are continuous thoughts.

    `ids_BxT` at the latent columns are ignored (their embeddings are replaced). `dropout_key`
    (training) gives each of the Z + 2 passes its own dropout draw. `h_from`: the first column
    whose outputs are wanted (training passes its loss window's first column); the passes skip
    the last block's work for the columns before it that nothing reads (`GPT2.forward`'s
    `keep_last`), and `h` / `layers` hold columns [h_from, T) only. The cache holds all T.
    """
    B, T = ids_BxT.shape
    P, Z = n_prefix, n_latent
    if not (0 < P and P + Z <= T):
        raise ValueError(f"latent layout needs 0 < n_prefix and n_prefix + n_latent <= T, got {P}, {Z}, {T}")
    if not 0 <= h_from < T:
        raise ValueError(f"h_from must be a column in [0, {T}), got {h_from}")
    # The prefix's last column always runs whole: its output is the first thought's input.
    pre_keep = max(P - h_from, 1)
    rest_keep = min(T - P - Z, T - h_from)
    feedback = coconut_feedback(model) if feedback is None else feedback
    mask_BxT = mask_BxT.astype(jnp.int32)
    if positions_BxT is None:
        positions_BxT = positions_from_mask(mask_BxT)
    x_BxTxD = model.embed(ids_BxT)
    keys_BxS = mask_BxT

    def pass_key(i):
        return None if dropout_key is None else jax.random.fold_in(dropout_key, i)

    # Three caches instead of one: the prefix's is read-only inside the scan (closed over, not
    # carried), so the backward pass does not store a copy of it per thought; its keys and values
    # are transposed once here (`for_reading`) into the layout the scan's products read.
    pre = model.forward(
        x_BxTxD[:, :P], positions_BxT[:, :P], keys_BxS[:, :P], model.new_cache(B, P),
        return_layers=return_layers, dropout_key=pass_key(0), keep_last=pre_keep,
    )
    reading = pre.cache.for_reading()

    def step(carry, z):
        cache, h_prev_BxD = carry
        x_BxD = feedback(h_prev_BxD)
        if intervene is not None:
            x_BxD = intervene(z, x_BxD)
        out = model.forward(
            x_BxD[:, None], jax.lax.dynamic_slice_in_dim(positions_BxT, P + z, 1, axis=1),
            keys_BxS[:, : P + Z], cache, prefix=reading, return_layers=return_layers,
            dropout_key=pass_key(1 + z),
        )
        h_BxD = out.h[:, 0]
        ys = (h_BxD, x_BxD, out.layers[:, :, 0] if return_layers else None)
        return (out.cache, h_BxD), ys

    if Z > 0:
        (latent_cache, _), (h_ZxBxD, x_ZxBxD, layers_Zx) = jax.lax.scan(
            step, (model.new_cache(B, Z), pre.h[:, -1]), jnp.arange(Z), unroll=model.cfg.latent_unroll
        )
        before = [pre.cache, latent_cache]
    else:  # no thought slots: nothing to scan (a zero-length scan would still trace a step)
        D = x_BxTxD.shape[-1]
        h_ZxBxD = x_ZxBxD = jnp.zeros((0, B, D), x_BxTxD.dtype)
        layers_Zx = jnp.zeros((0, model.cfg.n_layer + 1, B, D), x_BxTxD.dtype) if return_layers else None
        before = [pre.cache]
    # The rest reads the question's keys in the transposed layout already made for the scan, and
    # the thoughts' few slots as they are: no copy of the whole cache, no transpose per layer.
    rest = model.forward(
        x_BxTxD[:, P + Z :], positions_BxT[:, P + Z :], keys_BxS, model.new_cache(B, T - P - Z),
        prefix=(reading, *before[1:]), return_layers=return_layers, dropout_key=pass_key(Z + 1),
        keep_last=rest_keep,
    )
    cache = KVCache.concat([*before, rest.cache], T)

    if h_from >= P + Z:
        return LatentOutput(rest.h, x_ZxBxD.transpose(1, 0, 2), rest.layers, cache)
    skip = h_from - (P - pre_keep)  # pre.h starts at column P - pre_keep
    h = jnp.concatenate([pre.h, h_ZxBxD.transpose(1, 0, 2), rest.h], axis=1)[:, skip:]
    layers = None
    if return_layers:
        layers = jnp.concatenate([pre.layers, layers_Zx.transpose(1, 2, 0, 3), rest.layers], axis=2)[:, :, skip:]
    return LatentOutput(h, x_ZxBxD.transpose(1, 0, 2), layers, cache)


def key_mask(mask_BxT: jax.Array, cache_len: int) -> jax.Array:
    """The prompt mask extended with open slots for tokens decoded later."""
    B, T = mask_BxT.shape
    extra = jnp.ones((B, cache_len - T), jnp.int32)
    return jnp.concatenate([mask_BxT.astype(jnp.int32), extra], axis=1)


def latent_generate(
    model: GPT2,
    ids_BxT: jax.Array,
    mask_BxT: jax.Array,
    *,
    n_prefix: int,
    n_latent: int,
    max_new_tokens: int,
    eos_id: int,
    pad_id: int,
    feedback: Feedback | None = None,
    intervene: Intervene | None = None,
) -> Generation:
    """Greedy answers after a prompt whose last column follows the thoughts (the end marker)."""
    T = ids_BxT.shape[1]
    positions = positions_from_mask(mask_BxT)
    out = latent_forward(
        model, ids_BxT, mask_BxT, n_prefix=n_prefix, n_latent=n_latent, feedback=feedback,
        positions_BxT=positions, intervene=intervene, h_from=T - 1,
    )
    return decode_greedy(
        model, out.cache, model.unembed(out.h[:, -1]), positions[:, -1] + 1,
        key_mask(mask_BxT, T + max_new_tokens),
        max_new_tokens=max_new_tokens, eos_id=eos_id, pad_id=pad_id,
    )
