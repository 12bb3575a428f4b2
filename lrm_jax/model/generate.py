"""Batched greedy decoding with a KV cache, in one `lax.while_loop`.

Prompts are left-padded (all rows end in the same column), so after the prefill every row
writes its next token to the same cache slot. Rows stop independently at EOS; finished rows
emit `pad_id` and the loop exits once every row is done or `max_new_tokens` is reached.

`decode_greedy` starts from any state (a cache, the logits of the last prompt position and the
next position id per row), so latent models reuse it after filling their thoughts. That cache
holds the prompt's slots only; the loop reads it as a fixed prefix (`KVCache.for_reading`:
transposed once, not at every token) and carries a cache of its own for the generated tokens.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from lrm_jax.model.cache import KVCache
from lrm_jax.model.gpt2 import GPT2, positions_from_mask


class Generation(NamedTuple):
    tokens: jax.Array  # BxN generated ids, pad_id after EOS
    lengths: jax.Array  # B: tokens generated up to and including EOS


def decode_greedy(
    model: GPT2,
    cache: KVCache,
    logits_BxV: jax.Array,
    next_position_B: jax.Array,
    key_mask_BxS: jax.Array,
    *,
    max_new_tokens: int,
    eos_id: int,
    pad_id: int,
) -> Generation:
    """Greedy continuation of the prompt held, every slot written, in `cache`. `key_mask_BxS`
    covers those slots (prompt pads masked) and then the `max_new_tokens` to come."""
    B = logits_BxV.shape[0]
    if key_mask_BxS.shape[1] != cache.max_len + max_new_tokens:
        raise ValueError(f"key mask of {key_mask_BxS.shape[1]} slots for a {cache.max_len}-slot prompt cache "
                         f"and {max_new_tokens} new tokens")
    prompt = cache.for_reading()

    def cond(state):
        i, _, _, _, done, _, _ = state
        return (i < max_new_tokens) & ~jnp.all(done)

    def body(state):
        i, cache, logits, pos, done, out, lengths = state
        token = jnp.argmax(logits, axis=-1).astype(jnp.int32)
        token = jnp.where(done, pad_id, token)
        out = out.at[:, i].set(token)
        lengths = lengths + (~done).astype(jnp.int32)
        done = done | (token == eos_id)
        res = model.forward(model.embed(token[:, None]), pos[:, None], key_mask_BxS, cache, prefix=prompt)
        logits = model.unembed(res.h[:, -1])
        return i + 1, res.cache, logits, pos + 1, done, out, lengths

    out = jnp.full((B, max_new_tokens), pad_id, jnp.int32)
    state = (
        jnp.zeros((), jnp.int32),
        model.new_cache(B, max_new_tokens),
        logits_BxV,
        next_position_B.astype(jnp.int32),
        jnp.zeros((B,), bool),
        out,
        jnp.zeros((B,), jnp.int32),
    )
    state = jax.lax.while_loop(cond, body, state)
    return Generation(state[5], state[6])


def prefill(model: GPT2, ids_BxT: jax.Array, mask_BxT: jax.Array, max_new_tokens: int):
    """Runs a prompt into a fresh cache of its T slots.

    Masked columns may sit anywhere (left pads, unused thought slots); positions skip them.

    Returns (cache, last logits, next position per row, key mask over the prompt's slots and the
    `max_new_tokens` to come).
    """
    B, T = ids_BxT.shape
    mask_BxT = mask_BxT.astype(jnp.int32)
    key_mask_BxS = jnp.concatenate([mask_BxT, jnp.ones((B, max_new_tokens), jnp.int32)], axis=1)
    positions_BxT = positions_from_mask(mask_BxT)
    res = model.forward(model.embed(ids_BxT), positions_BxT, mask_BxT, model.new_cache(B, T), keep_last=1)
    return res.cache, model.unembed(res.h[:, -1]), positions_BxT[:, -1] + 1, key_mask_BxS


@functools.partial(nnx.jit, static_argnames=("max_new_tokens", "eos_id", "pad_id"))
def generate(
    model: GPT2,
    ids_BxT: jax.Array,
    mask_BxT: jax.Array,
    *,
    max_new_tokens: int,
    eos_id: int,
    pad_id: int,
) -> Generation:
    """Greedy generation from left-padded prompts (mask 0 on the left pads)."""
    cache, logits, next_pos, key_mask = prefill(model, ids_BxT, mask_BxT, max_new_tokens)
    return decode_greedy(
        model, cache, logits, next_pos, key_mask,
        max_new_tokens=max_new_tokens, eos_id=eos_id, pad_id=pad_id,
    )
