"""Gradients of a token-mean loss computed over row chunks inside one jitted step.

On a CPU the activations of a whole batch (attention scores are B x H x T x T) can fall out of
the caches, so a step over 32 rows of a small model costs more than four steps over 8 (1.21x
on the ProntoQA CPU config, none for the larger benchmark model: BENCHMARKS.md). Splitting the rows inside the step keeps the optimiser step (and the learning-rate
schedule) of the full batch while each forward/backward works on a chunk.

The result equals the full-batch gradient exactly (up to float summation order): each chunk's
loss is a mean over its supervised tokens, so chunk c is weighted by tokens_c / sum(tokens).
Only losses of that form may use it (a single token mean: not the multi-mode or CODI losses,
whose terms are means over different token sets).

Chunk c takes rows c, c + n, c + 2n, ... so that rows split over a data-parallel mesh stay
evenly split in every chunk.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp


def chunked_value_and_grad(loss_fn: Callable, params, batch: dict, n_chunks: int, key: jax.Array | None = None):
    """((loss, metrics), grads) of `loss_fn(params, batch)`, with the rows split into n_chunks.

    `loss_fn` returns (token-mean loss, metrics) and metrics["tokens"] = supervised tokens.
    Scalar metrics are combined with the same token weights. With a (dropout) `key`, it is
    called as `loss_fn(params, rows, key)`, each chunk with its own key.
    """
    vg = jax.value_and_grad(loss_fn, has_aux=True)

    def value_and_grad(rows, c):
        return vg(params, rows) if key is None else vg(params, rows, jax.random.fold_in(key, c))

    if n_chunks == 1:
        return value_and_grad(batch, 0)
    B = jax.tree.leaves(batch)[0].shape[0]
    if B % n_chunks:
        raise ValueError(f"{B} rows cannot be split into {n_chunks} equal chunks")

    def split(x):
        return jnp.swapaxes(x.reshape(B // n_chunks, n_chunks, *x.shape[1:]), 0, 1)

    chunks = jax.tree.map(split, batch)

    def body(grad_sum, chunk_c):
        chunk, c = chunk_c
        (loss, metrics), grads = value_and_grad(chunk, c)
        w = metrics["tokens"]
        grad_sum = jax.tree.map(lambda s, g: s + w * g, grad_sum, grads)
        return grad_sum, ({**metrics, "loss": loss}, w)

    # Chunk metrics come out stacked (no accumulator to shape); gradients are summed in place.
    grad_sum, (per_chunk, weights) = jax.lax.scan(
        body, jax.tree.map(jnp.zeros_like, params), (chunks, jnp.arange(n_chunks))
    )
    total = jnp.maximum(weights.sum(), 1.0)
    metrics = jax.tree.map(lambda m: (weights * m).sum() / total, per_chunk)
    metrics["tokens"] = weights.sum()
    grads = jax.tree.map(lambda g: g / total, grad_sum)
    return (metrics["loss"], metrics), grads
