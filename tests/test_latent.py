"""Continuous-thought forward: equals the slow n+1-pass algorithm, in outputs and gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from lrm_jax.model.gpt2 import positions_from_mask
from lrm_jax.model.latent import latent_forward


def slow_unrolled(model, ids, mask, P, Z, feedback=None):
    """COCONUT's reference algorithm: a full forward pass per thought, then one more."""
    feedback = feedback or model.final_norm
    mask = mask.astype(jnp.int32)
    pos = positions_from_mask(mask)
    x = model.embed(ids)
    for z in range(Z):
        h = model.forward(x, pos, mask).h
        x = x.at[:, P + z].set(feedback(h[:, P + z - 1]))
    return model.forward(x, pos, mask).h


@pytest.fixture(scope="module")
def batch():
    rng = np.random.RandomState(0)
    B, T, P, Z = 3, 14, 6, 3
    ids = rng.randint(0, 97, (B, T))
    mask = np.ones((B, T), np.int32)
    mask[1, :2] = 0  # left padding
    mask[2, P + 2] = 0  # row 2 uses 2 of the 3 thoughts
    mask[0, -2:] = 0  # right padding
    return jnp.asarray(ids), jnp.asarray(mask), P, Z


@pytest.mark.parametrize(
    "variant", [{}, {"position_embedding": "rope"}, {"key_smear": 2}, {"token_conv": 2}, {"latent_unroll": True}],
    ids=["learned", "rope", "key_smear", "token_conv", "thoughts_unrolled"],
)
def test_latent_forward_equals_unrolled(tiny_model, variant_model, batch, variant):
    model = variant_model(**variant) if variant else tiny_model
    ids, mask, P, Z = batch
    fast = latent_forward(model, ids, mask, n_prefix=P, n_latent=Z)
    slow = slow_unrolled(model, ids, mask, P, Z)
    real = np.asarray(mask).astype(bool)
    np.testing.assert_allclose(np.asarray(fast.h)[real], np.asarray(slow)[real], atol=1e-5)


def test_thought_norm_embedding_feeds_thoughts_at_the_embedding_length(variant_model, batch):
    model = variant_model(thought_norm="embedding")
    ids, mask, P, Z = batch
    target = float(np.linalg.norm(np.asarray(model.wte.embedding[...]), axis=-1).mean())

    def rescaled(h):  # written out here rather than calling the model's own feedback
        x = model.final_norm(h)
        return x * target / jnp.linalg.norm(x, axis=-1, keepdims=True)

    fast = latent_forward(model, ids, mask, n_prefix=P, n_latent=Z)
    slow = slow_unrolled(model, ids, mask, P, Z, feedback=rescaled)
    real = np.asarray(mask).astype(bool)
    np.testing.assert_allclose(np.asarray(fast.h)[real], np.asarray(slow)[real], atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(np.asarray(fast.thoughts), axis=-1), target, rtol=1e-4)
    assert np.linalg.norm(np.asarray(model.final_norm(fast.h[:, P])), axis=-1).min() > 5 * target  # it does rescale


def test_latent_gradients_equal_unrolled(tiny_model, batch):
    ids, mask, P, Z = batch
    real = mask.astype(jnp.float32)
    variants = {
        "fast": lambda m: latent_forward(m, ids, mask, n_prefix=P, n_latent=Z).h,
        "slow": lambda m: slow_unrolled(m, ids, mask, P, Z),
        # Thoughts computed but their gradient cut: must differ, or nothing flows through them.
        "cut": lambda m: latent_forward(
            m, ids, mask, n_prefix=P, n_latent=Z,
            feedback=lambda h: jax.lax.stop_gradient(m.final_norm(h)),
        ).h,
    }

    @nnx.jit(static_argnames="which")
    def grads(model, which):
        def loss(model):
            return jnp.sum(jnp.tanh(model.unembed(variants[which](model))).mean(-1) * real)

        return nnx.grad(loss)(model)

    fast, slow, cut = (jax.tree.leaves(grads(tiny_model, which=k)) for k in variants)
    for a, b in zip(fast, slow):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5)
    assert max(float(jnp.abs(a - b).max()) for a, b in zip(fast, cut)) > 1e-6


def test_unused_thought_slot_equals_shorter_sequence(tiny_model, batch):
    ids, mask, P, Z = batch
    out = np.asarray(latent_forward(tiny_model, ids, mask, n_prefix=P, n_latent=Z).h)
    # Row 2 with slot P+2 masked == the same row with 2 latent slots only.
    keep = [i for i in range(ids.shape[1]) if i != P + 2]
    short = latent_forward(tiny_model, ids[2:3, keep], mask[2:3, keep], n_prefix=P, n_latent=2)
    np.testing.assert_allclose(out[2, keep], np.asarray(short.h)[0], atol=1e-5)


def test_layers_and_intervention(tiny_model, batch, tiny_cfg):
    ids, mask, P, Z = batch
    out = latent_forward(tiny_model, ids, mask, n_prefix=P, n_latent=Z, return_layers=True)
    assert out.layers.shape == (tiny_cfg.n_layer + 1, 3, ids.shape[1], tiny_cfg.n_embd)
    np.testing.assert_allclose(np.asarray(out.layers[-1]), np.asarray(out.h), atol=1e-6)
    zeroed = latent_forward(tiny_model, ids, mask, n_prefix=P, n_latent=Z, intervene=lambda z, x: jnp.zeros_like(x))
    assert float(jnp.abs(zeroed.thoughts).max()) == 0.0
    np.testing.assert_allclose(np.asarray(zeroed.h[:, :P]), np.asarray(out.h[:, :P]), atol=1e-6)
    assert float(jnp.abs(zeroed.h[:, P:] - out.h[:, P:]).max()) > 1e-4


def test_latent_generate_equals_unrolled_greedy(tiny_model, batch):
    """Greedy decoding after the thoughts == the slow algorithm re-run for every new token."""
    from lrm_jax.model.latent import latent_generate

    ids, mask, P, Z = batch
    T0 = P + Z + 1  # prompt ends with the column after the thoughts (the end marker)
    ids, mask = ids[:, :T0], mask[:, :T0]
    gen = latent_generate(tiny_model, ids, mask, n_prefix=P, n_latent=Z, max_new_tokens=4, eos_id=-1, pad_id=0)
    cur_ids, cur_mask = ids, mask
    for i in range(4):
        h = slow_unrolled(tiny_model, cur_ids, cur_mask, P, Z)
        tok = jnp.argmax(tiny_model.unembed(h[:, -1]), -1).astype(jnp.int32)
        np.testing.assert_array_equal(np.asarray(gen.tokens[:, i]), np.asarray(tok))
        cur_ids = jnp.concatenate([cur_ids, tok[:, None]], 1)
        cur_mask = jnp.concatenate([cur_mask, jnp.ones((3, 1), jnp.int32)], 1)


def test_latent_forward_dropout_is_keyed(tiny_cfg):
    import dataclasses

    from lrm_jax.model.gpt2 import init_model

    model = init_model(dataclasses.replace(tiny_cfg, dropout=0.2), seed=0)
    ids = jnp.asarray(np.random.RandomState(5).randint(2, 97, (2, 10)))
    mask = jnp.ones_like(ids)

    @jax.jit
    def h(key):
        return latent_forward(model, ids, mask, n_prefix=4, n_latent=3, dropout_key=key).h

    key = jax.random.key(7)
    dropped = np.asarray(h(key))
    np.testing.assert_array_equal(dropped, np.asarray(h(key)))
    # Every pass draws: the thoughts' columns and the rest differ from the evaluation run.
    evaluated = np.asarray(latent_forward(model, ids, mask, n_prefix=4, n_latent=3).h)
    diff = np.abs(dropped - evaluated).max(axis=(0, 2))
    assert (diff[4:] > 1e-3).all()


@pytest.mark.parametrize("h_from", [3, 7, 9, 11], ids=["in_question", "in_thoughts", "first_rest", "in_rest"])
def test_h_from_keeps_exactly_the_full_run_columns(tiny_model, batch, h_from):
    """The last block skipping the columns before h_from changes no kept output, layer or cache."""
    ids, mask, P, Z = batch
    full = latent_forward(tiny_model, ids, mask, n_prefix=P, n_latent=Z, return_layers=True)
    part = latent_forward(tiny_model, ids, mask, n_prefix=P, n_latent=Z, return_layers=True, h_from=h_from)
    assert part.h.shape[1] == ids.shape[1] - h_from and part.layers.shape[2] == ids.shape[1] - h_from
    np.testing.assert_allclose(np.asarray(part.h), np.asarray(full.h[:, h_from:]), atol=1e-6)
    np.testing.assert_allclose(np.asarray(part.layers), np.asarray(full.layers[:, :, h_from:]), atol=1e-6)
    np.testing.assert_allclose(np.asarray(part.cache.v), np.asarray(full.cache.v), atol=1e-6)
    np.testing.assert_allclose(np.asarray(part.thoughts), np.asarray(full.thoughts), atol=1e-6)


@pytest.mark.parametrize("variant", [{"key_smear": 2}, {"token_conv": 2, "position_embedding": "rope"}],
                         ids=["key_smear", "token_conv_rope"])
def test_h_from_gradients_equal_the_full_run(variant_model, batch, variant):
    """Training's case: a loss on the rest columns, every parameter's gradient as with all columns."""
    model = variant_model(**variant)
    ids, mask, P, Z = batch
    start = P + Z
    weights = mask[:, start:].astype(jnp.float32)

    @nnx.jit(static_argnames="h_from")
    def grads(model, h_from):
        def loss(model):
            h = latent_forward(model, ids, mask, n_prefix=P, n_latent=Z, h_from=h_from).h[:, start - h_from :]
            return jnp.sum(jnp.tanh(model.unembed(h)).mean(-1) * weights)

        return nnx.value_and_grad(loss)(model)

    (v_full, g_full), (v_part, g_part) = grads(model, h_from=0), grads(model, h_from=start)
    np.testing.assert_allclose(float(v_part), float(v_full), rtol=1e-5, atol=1e-7)
    for a, b in zip(jax.tree.leaves(g_part), jax.tree.leaves(g_full)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6)
    # The block whose work is cut gets a gradient at all (else the comparison above is vacuous).
    assert float(jnp.abs(g_part["h"][len(model.h) - 1]["mlp"]["c_fc"]["kernel"][...]).max()) > 1e-6


def test_h_from_out_of_range_is_a_clear_error(tiny_model, batch):
    ids, mask, P, Z = batch
    with pytest.raises(ValueError, match="h_from"):
        latent_forward(tiny_model, ids, mask, n_prefix=P, n_latent=Z, h_from=ids.shape[1])
