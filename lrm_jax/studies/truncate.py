"""Every truncation of the thoughts from one latent pass: the necessity sweep's kernel.

Thought j depends only on the question and thoughts 0..j-1, so the run with k thoughts shares
its first k thoughts (and the question) with the full run. We therefore run the question and
all Z thoughts once per instance, then fold the Z + 2 conditions into the batch: rows
c = 0..Z attend to the question and the first c thoughts (the others masked, positions
shifted, which equals the shorter prompt), then read the end marker and the teacher-forced
answer prefix; row c = Z + 1 is the full run (end marker, free generation). One short pass
over those few tail tokens and one batched greedy decode follow. Per instance this costs one
question pass instead of Z + 2.
"""

from __future__ import annotations

from typing import Sequence

import jax.numpy as jnp

from lrm_jax.model.cache import KVCache
from lrm_jax.model.generate import decode_greedy
from lrm_jax.model.gpt2 import GPT2, positions_from_mask
from lrm_jax.model.latent import Intervene, latent_forward


def truncation_generate(
    model: GPT2,
    ids_BxT,
    mask_BxT,
    *,
    n_prefix: int,
    n_latent: int,
    forced: Sequence[int],
    end_id: int,
    max_new_tokens: int,
    eos_id: int,
    pad_id: int,
    intervene: Intervene | None = None,
):
    """`ids_BxT`: prompts with all Z slots in use, T = P + Z + 1 (end marker last).

    Returns (tokens BxCxN, lengths BxC, thoughts BxZxD) with C = Z + 2 conditions: c = k
    thoughts then the end marker and `forced`, and c = Z + 1 the full run's free answer.
    """
    B, T = ids_BxT.shape
    P, Z, F = n_prefix, n_latent, len(forced)
    C = Z + 2
    out = latent_forward(model, ids_BxT, mask_BxT, n_prefix=P, n_latent=Z, intervene=intervene, h_from=T - 1)
    # Rows condition-major: r = c * B + b. The full run's end-marker slot (T-1) is never used.
    before = out.cache.tile_batch(C)
    slots_CxZ = (jnp.arange(Z)[None, :] < jnp.arange(C)[:, None]).astype(jnp.int32)  # c = Z+1: all open
    before_mask = jnp.concatenate([
        jnp.tile(mask_BxT[:, :P].astype(jnp.int32), (C, 1)),
        jnp.repeat(slots_CxZ, B, axis=0),
        jnp.zeros((C * B, 1), jnp.int32),
    ], axis=1)
    forced_row = jnp.asarray([end_id, *forced], jnp.int32)
    full_row = jnp.asarray([pad_id] * F + [end_id], jnp.int32)  # pads left of the marker, masked
    tail_ids = jnp.concatenate([jnp.tile(forced_row, ((C - 1) * B, 1)), jnp.tile(full_row, (B, 1))])
    tail_mask = jnp.concatenate([
        jnp.ones(((C - 1) * B, F + 1), jnp.int32),
        jnp.tile(jnp.asarray([0] * F + [1], jnp.int32), (B, 1)),
    ])
    seen_mask = jnp.concatenate([before_mask, tail_mask], axis=1)
    positions = positions_from_mask(seen_mask)[:, T:]
    keys = jnp.concatenate([seen_mask, jnp.ones((C * B, max_new_tokens), jnp.int32)], axis=1)
    rest = model.forward(
        model.embed(tail_ids), positions, seen_mask, model.new_cache(C * B, F + 1), prefix=before, keep_last=1
    )
    cache = KVCache.concat([before, rest.cache], T + F + 1)
    gen = decode_greedy(
        model, cache, model.unembed(rest.h[:, -1]), positions[:, -1] + 1, keys,
        max_new_tokens=max_new_tokens, eos_id=eos_id, pad_id=pad_id,
    )
    tokens = gen.tokens.reshape(C, B, -1).transpose(1, 0, 2)
    lengths = gen.lengths.reshape(C, B).T
    return tokens, lengths, out.thoughts
