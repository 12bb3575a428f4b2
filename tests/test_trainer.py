"""Trainer reliability: resume after a kill, sharding, SIGTERM, NaN, config errors."""

import dataclasses
import os
import shutil
import signal

import jax
import numpy as np
import pytest

from lrm_jax.config import ConfigError, RunConfig, load
from lrm_jax.training.checkpoint import Checkpointer, load_params, read_run_files
from lrm_jax.training.loop import run
from lrm_jax.training.setup import resolve

# 16 records, batch 8 -> 2 steps per epoch; 3 epochs cross two stage changes (0 -> 1 -> 2).
# Dropout on, so resume and sharding are also checked for its draws (keyed by seed and step).
TINY = [
    "model.n_layer=1", "model.n_embd=32", "model.n_head=2", "model.n_positions=96", "model.dropout=0.1",
    "data.task=arithmetic", "data.n_train=16", "data.n_valid=8",
    "data.generator={min_ops: 2, max_ops: 2, max_value: 10, ops: ['+']}",
    "data.max_question_len=24", "data.max_rest_len=24",
    "method.name=coconut", "method.max_latent_stage=2", "method.epochs_per_stage=1",
    "train.batch_size=8", "train.num_epochs=3", "train.lr=1e-2", "train.eval_limit=8",
    "train.eval_batch_size=8", "train.max_new_tokens=16", "train.log_every=1",
]


@pytest.fixture(scope="module")
def cfg():
    return load(RunConfig, None, TINY)


@pytest.fixture(scope="module")
def inputs(cfg):
    return resolve(cfg)


def params_of(workdir):
    from flax import nnx

    return jax.tree.leaves(nnx.state(load_params(workdir), nnx.Param))


@pytest.fixture(scope="module")
def straight(cfg, inputs, tmp_path_factory):
    d = tmp_path_factory.mktemp("straight")
    result = run(cfg, d, progress=False, inputs=inputs)
    return d, result


def test_straight_run_compiles_once_across_stages(straight):
    d, result = straight
    assert result.stopped == "finished" and result.step == 6 and result.epoch == 3
    assert result.compiles == 1  # stages 0, 1, 2 share one static layout
    assert result.val_acc is not None
    cfg, tok = read_run_files(d)
    assert cfg.method.name == "coconut" and tok.vocab_size == cfg.model.vocab_size


def test_kill_and_resume_gives_identical_parameters(cfg, inputs, straight, tmp_path):
    # Checkpoint every 3 steps, stop at 4, then lose step 4 as a kill would: resume from 3.
    c = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, checkpoint_every_steps=3, max_steps=4))
    first = run(c, tmp_path, progress=False, inputs=inputs)
    assert first.stopped == "max_steps"
    shutil.rmtree(tmp_path / "checkpoints" / "4")
    c2 = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, checkpoint_every_steps=3))
    second = run(c2, tmp_path, progress=False, inputs=inputs)
    assert second.step == 6
    for a, b in zip(params_of(straight[0]), params_of(tmp_path)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_sigterm_saves_a_restorable_checkpoint(cfg, inputs, tmp_path):
    stopped_at = []

    def on_step(step):
        if step == 3:
            stopped_at.append(step)
            os.kill(os.getpid(), signal.SIGTERM)

    result = run(cfg, tmp_path, progress=False, inputs=inputs, on_step=on_step)
    assert result.stopped == "sigterm" and result.step == 3
    assert Checkpointer(tmp_path).latest_step() == 3
    assert len(params_of(tmp_path)) > 0
    # And the run picks up from there.
    assert run(cfg, tmp_path, progress=False, inputs=inputs).step == 6


def test_time_limit_saves_and_scores_the_state_it_stops_with(cfg, inputs, tmp_path):
    import json

    c = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, time_limit_minutes=1e-9))
    result = run(c, tmp_path, progress=False, inputs=inputs)
    assert result.stopped == "time_limit" and result.step == 1
    assert Checkpointer(tmp_path).latest_step() == 1
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    valid = [x for x in lines if x["split"] == "valid"]
    assert [x["step"] for x in valid] == [1] and valid[0]["accuracy"] == result.val_acc


def test_nan_loss_stops_with_clear_error_and_keeps_last_checkpoint(cfg, inputs, tmp_path):
    c = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, lr=1e30, checkpoint_every_steps=1))
    with pytest.raises(FloatingPointError, match="last checkpoint is intact"):
        run(c, tmp_path, progress=False, inputs=inputs)
    latest = Checkpointer(tmp_path).latest_step()
    assert latest is not None
    assert len(params_of(tmp_path)) > 0


def test_data_parallel_matches_one_device(cfg, inputs):
    """One train step on 8 simulated devices equals the same step on one device."""
    import optax
    from flax import nnx

    from lrm_jax.config import MeshConfig
    from lrm_jax.data.layout import make_batch
    from lrm_jax.model.gpt2 import init_model
    from lrm_jax.sharding import batch_sharding, make_mesh, param_sharding
    from lrm_jax.training.loop import make_train_step
    from lrm_jax.training.state import init_state

    assert len(jax.devices()) == 8
    batch = make_batch(inputs.train[:8], inputs.tokenizer, inputs.layout, "coconut", 1)
    batch = {"ids": batch.ids, "mask": batch.mask, "loss_mask": batch.loss_mask}
    outs = []
    variants = ((jax.devices()[:1], MeshConfig(), 1), (jax.devices(), MeshConfig(), 1),
                (jax.devices(), MeshConfig(data=4, fsdp=2), 1), (jax.devices()[:2], MeshConfig(), 4))
    for devices, mesh_cfg, micro in variants:  # the last splits the rows into 4 chunks in the step
        mesh = make_mesh(mesh_cfg, devices)
        graphdef, params = nnx.split(init_model(inputs.cfg.model, 0), nnx.Param)
        tx = optax.sgd(1.0)  # the update is exactly -gradient: compares gradients, not Adam noise
        abstract = jax.eval_shape(lambda p: init_state(p, tx), params)
        shard = param_sharding(abstract, mesh)
        state = jax.device_put(init_state(params, tx), shard)
        step = make_train_step(graphdef, tx, inputs.cfg.method, inputs.layout, shard, batch_sharding(mesh), [0], micro)
        data = jax.device_put(batch, batch_sharding(mesh))
        state, metrics = step(state, data)
        outs.append((float(metrics["loss"]), float(metrics["grad_norm"]), jax.tree.leaves(state.params)))
    for loss, gnorm, leaves in outs[1:]:
        assert abs(loss - outs[0][0]) < 1e-5 and abs(gnorm - outs[0][1]) < 1e-4
        for a, b in zip(leaves, outs[0][2]):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5)


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["method.max_latent_stage=5"], "exceeds the longest chain"),
        (["train.batch_size=12"], "not divisible by the 8 data-parallel devices"),
        (["model.n_positions=40"], "model.n_positions=40"),
        (["data.max_question_len=10"], "question has"),
        (["train.micro_batches=3"], "not divisible by train.micro_batches"),
        (["train.micro_batches=2"], "rows per chunk is not divisible by the 8"),
        (["train.micro_batches=2", "method.name=multimode"], "needs a single token-mean loss"),
    ],
)
def test_bad_config_values_are_clear_errors(overrides, message, tmp_path):
    from lrm_jax.data.layout import LayoutError

    with pytest.raises((ConfigError, LayoutError), match=message):  # at load time or at start
        run(load(RunConfig, None, TINY + overrides), tmp_path, progress=False)


def test_multimode_loss_is_the_weighted_sum_of_mode_losses(inputs):
    """a*L_latent + b*L_verbal + c*L_direct, each a token mean within its mode."""
    import jax.numpy as jnp

    from lrm_jax.data.layout import encode_multimode, make_batch
    from lrm_jax.model.gpt2 import init_model
    from lrm_jax.training.objective import lm_loss

    model = init_model(inputs.cfg.model, 0)
    recs, tok, layout = inputs.train[:4], inputs.tokenizer, inputs.layout
    rows = [encode_multimode(r, tok, layout, 1) for r in recs]
    mm = {k: jnp.asarray(np.stack([r[i] for r in rows])) for i, k in enumerate(("ids", "mask", "loss_mask"))}
    loss, metrics = lm_loss(model, mm, "multimode", layout, (0.5, 2.0, 3.0))
    single = []
    for method in ("coconut", "cot", "nocot"):
        b = make_batch(recs, tok, layout, method, 1)
        start_role = {"coconut": "start_latent", "cot": "bocot", "nocot": "eocot"}[method]
        ids = b.ids.copy()
        ids[:, layout.n_prefix - 1] = tok.ids[start_role]
        sb = {"ids": jnp.asarray(ids), "mask": jnp.asarray(b.mask), "loss_mask": jnp.asarray(b.loss_mask)}
        single.append(float(lm_loss(model, sb, "coconut", layout)[0]))
    expected = 0.5 * single[0] + 2.0 * single[1] + 3.0 * single[2]
    assert abs(float(loss) - expected) < 1e-4
    assert abs(float(metrics["loss_verbal"]) - single[1]) < 1e-5


@pytest.fixture(scope="module")
def multimode_run(cfg, inputs, tmp_path_factory):
    d = tmp_path_factory.mktemp("multimode")
    c = dataclasses.replace(cfg, method=dataclasses.replace(cfg.method, name="multimode"),
                            train=dataclasses.replace(cfg.train, num_epochs=1))
    return d, run(c, d, progress=False, inputs=inputs)


def test_multimode_run_reports_accuracy_per_mode(multimode_run):
    import json

    d, result = multimode_run
    assert result.compiles == 1
    rows = [json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines()]
    valid = [r for r in rows if r["split"] == "valid"][-1]
    assert {"accuracy_latent", "accuracy_verbal", "accuracy_direct"} <= set(valid)
    train = [r for r in rows if r["split"] == "train"][-1]
    assert {"loss_latent", "loss_verbal", "loss_direct"} <= set(train)


def test_modes_analysis_scores_each_mode_with_its_own_prompt(multimode_run, straight, inputs, tmp_path, capsys):
    """Records whose gold answer is what one mode generated: each mode must score its own share.
    The latent mode wrote the first rows' gold, the direct mode the next ones', the verbal mode
    the last one's, so a mode prompted wrongly (or the thoughts miscounted) scores differently.
    The tiny run's modes all write the same token, so its weights get noise to tell them apart."""
    import json

    from analysis import modes
    from lrm_jax.training.evaluate import generate_texts, modes_of, parse_answer

    d, _ = multimode_run
    (run, _), records = modes.load_multimode(str(d)), list(inputs.valid[:6])
    leaves, treedef = jax.tree.flatten(run.params)
    keys = jax.random.split(jax.random.key(0), len(leaves))
    run.params = jax.tree.unflatten(treedef, [x + 0.5 * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys)])
    texts = {m.name: generate_texts(run.graphdef, run.params, records, run.tokenizer, run.layout, m, run.n_thoughts,
                                    batch_size=8, max_new_tokens=16) for m in modes_of("multimode")}
    owner = ["latent", "latent", "latent", "direct", "direct", "verbal"]
    gold = [dataclasses.replace(r, answer=parse_answer(texts[o][i]) or "none") for i, (r, o) in enumerate(zip(records, owner))]
    expected = {m: sum(parse_answer(texts[m][i]) == g.answer for i, g in enumerate(gold)) / 6 for m in texts}
    assert len(set(expected.values())) > 1, "the modes generate the same texts: the test cannot tell them apart"
    summary = modes.score_modes(run, gold, batch_size=8)
    assert summary["accuracy"] == pytest.approx(expected) and summary["thoughts"] == run.n_thoughts
    assert summary["accuracy"]["latent"] >= 0.5 and summary["accuracy"]["direct"] >= 2 / 6
    # The command line: its files, and a single-mode run refused with the reason.
    assert modes.main(["--ckpt", str(d), "--limit", "4", "--batch-size", "8", "--out", str(tmp_path / "out")]) == 0
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["runs"][0]["n"] == 4
    assert (tmp_path / "out" / "dumbbell.png").stat().st_size > 0
    assert "| multimode |" in (tmp_path / "out" / "summary.md").read_text()
    assert modes.main(["--ckpt", str(straight[0]), "--out", str(tmp_path / "x")]) == 2
    assert "has one mode" in capsys.readouterr().err


def test_codi_multimode_run_from_a_coconut_run(straight, tmp_path):
    """CODI reuses the trainer: one compile, every loss term and mode logged; started from
    another run, the parameters it lacks (the projection) are reported as new."""
    import json

    c = load(RunConfig, None, TINY + [
        "method.name=codi_multimode", "method.num_latent=2", "model.projection_dim=32",
        "train.num_epochs=1", f"train.init_from={straight[0]}",
    ])
    result = run(c, tmp_path, progress=False)
    assert result.compiles == 1 and result.stopped == "finished"
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    notes = " ".join(r.get("note", "") for r in rows if r["split"] == "info")
    assert "newly initialised: prj" in notes
    train = [r for r in rows if r["split"] == "train"][-1]
    assert {"loss_student", "loss_teacher", "loss_distill", "loss_direct"} <= set(train)
    assert train["loss_distill"] > 0
    valid = [r for r in rows if r["split"] == "valid"][-1]
    assert {"accuracy_latent", "accuracy_verbal", "accuracy_direct"} <= set(valid) and valid["thoughts"] == 2
    cfg, _ = read_run_files(tmp_path)
    assert cfg.method.name == "codi_multimode" and load_params(tmp_path).prj is not None


def test_run_from_another_run_keeps_its_word_vocabulary(straight):
    """A word vocabulary rebuilt from other records could number tokens differently; a run
    started from another run must use that run's tokenizer (or fail if it lacks tokens)."""
    _, source_tok = read_run_files(straight[0])
    c = load(RunConfig, None, TINY + ["data.n_train=4", "data.n_valid=2", f"train.init_from={straight[0]}"])
    inputs = resolve(c)
    assert inputs.tokenizer.vocab == source_tok.vocab and inputs.cfg.model.vocab_size == len(source_tok.vocab)
    bigger = load(RunConfig, None, TINY + ["data.generator={min_ops: 2, max_ops: 3, max_value: 10, ops: ['+']}",
                                           f"train.init_from={straight[0]}"])
    with pytest.raises(ConfigError, match="vocabulary lacks"):
        resolve(bigger)
