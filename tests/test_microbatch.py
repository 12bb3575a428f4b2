"""Chunked gradients inside one step equal the whole batch's (rows with unequal token counts)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from lrm_jax.data.layout import Layout
from lrm_jax.training.microbatch import chunked_value_and_grad
from lrm_jax.training.objective import lm_loss


def test_chunked_gradients_equal_the_whole_batch(tiny_model):
    layout = Layout(max_question_len=5, max_latent_stage=0, c_thought=1, max_rest_len=6)
    B, T = 8, layout.length
    rng = np.random.RandomState(0)
    ids = rng.randint(0, 97, (B, T)).astype(np.int32)
    mask = np.ones((B, T), np.int32)
    loss_mask = np.zeros((B, T), np.float32)
    for r in range(B):  # 1..5 supervised targets per row: chunks get different token counts
        loss_mask[r, layout.n_prefix : layout.n_prefix + 1 + r % 5] = 1.0
    batch = {"ids": jnp.asarray(ids), "mask": jnp.asarray(mask), "loss_mask": jnp.asarray(loss_mask)}
    graphdef, params = nnx.split(tiny_model, nnx.Param)

    def loss_fn(p, rows):
        return lm_loss(nnx.merge(graphdef, p), rows, "cot", layout)

    run = jax.jit(chunked_value_and_grad, static_argnums=(0, 3))
    (loss1, m1), g1 = run(loss_fn, params, batch, 1)
    (loss4, m4), g4 = run(loss_fn, params, batch, 4)
    np.testing.assert_allclose(float(loss4), float(loss1), rtol=1e-5)
    np.testing.assert_allclose(float(m4["token_acc"]), float(m1["token_acc"]), atol=1e-6)
    assert float(m4["tokens"]) == float(m1["tokens"]) == loss_mask.sum()
    for a, b in zip(jax.tree.leaves(g1), jax.tree.leaves(g4)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6, rtol=1e-4)
    # An unweighted mean of the chunk gradients would differ: the weights matter here.
    (_, _), g_first = run(loss_fn, params, jax.tree.map(lambda x: x[0::4], batch), 1)
    assert max(float(jnp.abs(a - b).max()) for a, b in zip(jax.tree.leaves(g1), jax.tree.leaves(g_first))) > 1e-5
    with pytest.raises(ValueError, match="equal chunks"):
        chunked_value_and_grad(loss_fn, params, batch, 3)
