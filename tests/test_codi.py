"""CODI: projection feedback, row layout, distillation position and loss, LoRA."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from lrm_jax.config import MethodConfig
from lrm_jax.data.codi_layout import encode_codi
from lrm_jax.data.generators import GENERATORS, ArithConfig
from lrm_jax.data.layout import Layout, sequence_texts
from lrm_jax.model.gpt2 import init_model, positions_from_mask
from lrm_jax.model.latent import latent_forward
from lrm_jax.tokenizer import WordTokenizer
from lrm_jax.training.distill import codi_loss, layer_distance
from lrm_jax.training.state import init_state, make_optimizer, trainable_labels
from lrm_jax.config import ConfigError, TrainConfig
from lrm_jax.training.setup import _copy_rows, _transplant

LAYOUT = Layout(max_question_len=30, max_latent_stage=1, c_thought=3, max_rest_len=30)


@pytest.fixture(scope="module")
def codi_model(tiny_cfg):
    return init_model(dataclasses.replace(tiny_cfg, projection_dim=48), seed=1)


@pytest.fixture(scope="module")
def data():
    recs = GENERATORS["arithmetic"][1](ArithConfig(min_ops=2, max_ops=3, max_value=20, ops=("+", "-")), 6, 0)
    tok = WordTokenizer.build(t for r in recs for t in sequence_texts(r))
    return recs, tok


def slow_codi(model, ids, mask, P, Z):
    """CODI's reference recursion, unrolled: a full pass per thought, prj(ln_f(h)) fed back."""
    pos = positions_from_mask(mask)
    x = model.embed(ids)
    for z in range(Z):
        h = model.forward(x, pos, mask).h
        x = x.at[:, P + z].set(model.prj(model.final_norm(h[:, P + z - 1])))
    return model.forward(x, pos, mask).h


def test_projection_feedback_equals_unrolled_outputs_and_gradients(codi_model):
    rng = np.random.RandomState(0)
    B, T, P, Z = 2, 12, 5, 3
    ids = jnp.asarray(rng.randint(0, 97, (B, T)))
    mask = np.ones((B, T), np.int32)
    mask[1, :2] = 0
    mask = jnp.asarray(mask)

    @nnx.jit(static_argnames="slow")
    def value_and_grads(model, slow):
        def loss(model):
            h = slow_codi(model, ids, mask, P, Z) if slow else latent_forward(model, ids, mask, n_prefix=P, n_latent=Z).h
            return jnp.sum(jnp.tanh(model.unembed(h)).mean(-1) * mask), h

        return nnx.value_and_grad(loss, has_aux=True)(model)

    (_, h_fast), g_fast = value_and_grads(codi_model, slow=False)
    (_, h_slow), g_slow = value_and_grads(codi_model, slow=True)
    real = np.asarray(mask).astype(bool)
    np.testing.assert_allclose(np.asarray(h_fast)[real], np.asarray(h_slow)[real], atol=1e-5)
    prj_grads = jax.tree.leaves(g_fast["prj"])
    assert max(float(jnp.abs(g).max()) for g in prj_grads) > 0  # the projection is trained
    for a, b in zip(jax.tree.leaves(g_fast), jax.tree.leaves(g_slow)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5)


@pytest.mark.parametrize("multimode", [False, True])
def test_rows_and_distillation_position(data, multimode):
    recs, tok = data
    rec = next(r for r in recs if len(r.steps) >= 2)
    ids, mask, loss, distill = encode_codi(rec, tok, LAYOUT, multimode=multimode, drop_last_step=True)
    assert ids.shape == (3 if multimode else 2, LAYOUT.length)
    hash_id = tok.encode(" ###")[-1]
    answer_id = tok.encode(" " + rec.answer)[0]
    for row, col in zip(ids[:2], distill):
        assert row[col] == hash_id and row[col + 1] == answer_id  # the token just before the answer
    # The teacher row is question || CoT without its last step || answer: no markers (plain CODI).
    q = tok.encode(rec.question)
    cot = [t for s in rec.steps[:-1] for t in tok.encode(" " + s)]
    expected = q + ([tok.ids["bocot"]] if multimode else []) + cot + tok.encode(f" ### {rec.answer}") + [tok.ids["eos"]]
    assert list(ids[1][mask[1] == 1]) == expected
    # Supervised targets: CoT and answer (question masked), as the reference's labels.
    targets = ids[1][1:][loss[1][:-1] == 1]
    assert list(targets) == expected[len(expected) - len(targets) :] and len(targets) == len(cot) + len(expected) - len(q) - len(cot) - (1 if multimode else 0)
    # Student: <bot>, every thought slot in use, <eot>, answer.
    P, Z = LAYOUT.n_prefix, LAYOUT.n_latent
    assert ids[0][P - 1] == tok.ids["bot"] and ids[0][P + Z] == tok.ids["eot"] and mask[0][P : P + Z].all()
    if multimode:
        assert list(ids[2][mask[2] == 1]) == q + [tok.ids["eocot"]] + tok.encode(f" ### {rec.answer}") + [tok.ids["eos"]]


def test_distance_matches_torch_smooth_l1_over_std():
    torch = pytest.importorskip("torch")
    rng = np.random.RandomState(0)
    s, t = rng.randn(3, 4, 8).astype(np.float32), 2 * rng.randn(3, 4, 8).astype(np.float32)
    ours = float(layer_distance(jnp.asarray(s), jnp.asarray(t), "smooth_l1", True))
    ref = np.mean([
        float(torch.nn.SmoothL1Loss()(torch.tensor(s[l]), torch.tensor(t[l])) / torch.tensor(t[l]).std())
        for l in range(3)
    ])
    np.testing.assert_allclose(ours, ref, rtol=1e-5)
    l2 = float(layer_distance(jnp.asarray(s), jnp.asarray(t), "l2", True))
    ref2 = np.mean([float(torch.nn.MSELoss()(torch.tensor(s[l]), torch.tensor(t[l])) / torch.tensor(t[l]).std() ** 2) for l in range(3)])
    np.testing.assert_allclose(l2, ref2, rtol=1e-5)


def test_no_gradient_reaches_the_teacher_targets(data, tiny_cfg):
    """With only the distillation term, the gradient equals that of a loss whose teacher pass
    runs on frozen parameters: the targets are constants."""
    recs, tok = data
    cfg = dataclasses.replace(tiny_cfg, vocab_size=tok.vocab_size, projection_dim=32)
    model = init_model(cfg, seed=2)
    rows = [encode_codi(r, tok, LAYOUT) for r in recs[:4]]
    batch = {k: jnp.asarray(np.stack(x)) for k, x in zip(("ids", "mask", "loss_mask", "distill"), zip(*rows))}
    mcfg = MethodConfig(name="codi", num_latent=3, mode_weights=(0.0, 0.0, 0.0))
    graphdef, params = nnx.split(model, nnx.Param)

    def ours(p):
        return codi_loss(nnx.merge(graphdef, p), batch, LAYOUT, mcfg)[0]

    def frozen_teacher(p):
        # The same computation with the teacher's parameters explicitly frozen.
        from lrm_jax.training import distill

        student = nnx.merge(graphdef, p)
        teacher = nnx.merge(graphdef, jax.lax.stop_gradient(p))
        ids, mask = batch["ids"], batch["mask"]
        s = latent_forward(student, ids[:, 0], mask[:, 0], n_prefix=LAYOUT.n_prefix, n_latent=3, return_layers=True)
        t = teacher.forward(teacher.embed(ids[:, 1]), positions_from_mask(mask[:, 1]), mask[:, 1], return_layers=True)
        return layer_distance(
            distill._hidden_at(student, s.layers, batch["distill"][:, 0]),
            distill._hidden_at(teacher, t.layers, batch["distill"][:, 1]), "smooth_l1", True,
        )

    v1, g1 = jax.jit(jax.value_and_grad(ours))(params)
    v2, g2 = jax.jit(jax.value_and_grad(frozen_teacher))(params)
    np.testing.assert_allclose(float(v1), float(v2), rtol=1e-6)
    assert float(v1) > 0
    for a, b in zip(jax.tree.leaves(g1), jax.tree.leaves(g2)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6)


def test_lora_starts_at_the_base_model_and_trains_only_adapters_and_projection(tiny_cfg):
    base = init_model(tiny_cfg, seed=0)
    lora = init_model(dataclasses.replace(tiny_cfg, lora_rank=4, lora_alpha=8.0, projection_dim=16), seed=0)
    fresh = _transplant(base, lora, tokenizer=None)  # how a run from a pretrained model starts
    assert fresh == ["lora adapters", "prj"]
    ids = jnp.arange(10)[None] % 97
    np.testing.assert_allclose(np.asarray(lora(ids)), np.asarray(base(ids)), atol=1e-6)  # B starts at 0
    graphdef, params = nnx.split(lora, nnx.Param)
    labels = trainable_labels(params, lora.cfg)
    tx = make_optimizer(TrainConfig(lr=1e-2), trainable=labels)
    state = init_state(params, tx)

    def loss(p):
        return jnp.mean(nnx.merge(graphdef, p)(ids) ** 2) + jnp.mean(nnx.merge(graphdef, p).latent_feedback(jnp.ones((1, 32))) ** 2)

    grad = jax.jit(jax.grad(loss))
    for _ in range(2):  # B is zero at first: A moves from the second step
        updates, opt = tx.update(grad(state.params), state.opt_state, state.params)
        state = dataclasses.replace(state, params=optax.apply_updates(state.params, updates), opt_state=opt)
    before = nnx.traversals.flatten_mapping(nnx.to_pure_dict(params))
    after = nnx.traversals.flatten_mapping(nnx.to_pure_dict(state.params))
    changed = {".".join(map(str, k)) for k in before if not np.allclose(before[k], after[k])}
    assert changed and all("lora" in n or n.startswith("prj") for n in changed), changed
    assert any("lora_a" in n for n in changed) and any(n.startswith("prj") for n in changed)


def test_init_copy_rows_starts_bot_as_another_tokens_embedding(tiny_cfg):
    tok = WordTokenizer.build(["a b c"])
    model = init_model(dataclasses.replace(tiny_cfg, vocab_size=tok.vocab_size), seed=0)
    before = np.asarray(model.wte.embedding[...]).copy()
    model.wte.embedding.set_value(before.copy())  # as after _transplant: a NumPy table
    note = _copy_rows(model, tok, ("bot=end_latent",))
    after = np.asarray(model.wte.embedding[...])
    bot, end = tok.ids["bot"], tok.ids["end_latent"]
    assert "bot=end_latent" in note and not np.allclose(before[bot], before[end])
    np.testing.assert_array_equal(after[bot], before[end])
    others = np.arange(len(before)) != bot
    np.testing.assert_array_equal(after[others], before[others])
    _copy_rows(model, tok, ("start_latent=end_latent", "end_latent=start_latent"))  # at once: a swap
    swapped = np.asarray(model.wte.embedding[...])
    start = tok.ids["start_latent"]
    np.testing.assert_array_equal(swapped[start], after[end])
    np.testing.assert_array_equal(swapped[end], after[start])
    with pytest.raises(ConfigError, match="sets a row twice"):
        TrainConfig(init_from="runs/cot", init_copy_rows=("bot=end_latent", "bot=start_latent"))
    with pytest.raises(ConfigError, match="unknown role.*'start'"):
        _copy_rows(model, tok, ("bot=start",))
    with pytest.raises(ConfigError, match="not 'dst=src'"):
        TrainConfig(init_from="runs/cot", init_copy_rows=("bot",))
    with pytest.raises(ConfigError, match="set train.init_from"):
        TrainConfig(init_copy_rows=("bot=end_latent",))
