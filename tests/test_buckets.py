"""Question-width buckets: batches of one width, the same loss as the full width, one compile per width."""

import dataclasses

import numpy as np
import pytest

from lrm_jax.config import ConfigError, RunConfig, load
from lrm_jax.data.generators import GENERATORS, ArithConfig
from lrm_jax.data.layout import Layout, LayoutError, make_batch, question_buckets, sequence_texts
from lrm_jax.data.pipeline import bucket_plan, bucketed_pipeline
from lrm_jax.tokenizer import WordTokenizer

LAYOUT = Layout(max_question_len=40, max_latent_stage=3, c_thought=1, max_rest_len=40)


@pytest.fixture(scope="module")
def data():
    recs = GENERATORS["arithmetic"][1](ArithConfig(min_ops=1, max_ops=3, max_value=20, ops=("+", "-")), 24, 0)
    tok = WordTokenizer.build(t for r in recs for t in sequence_texts(r))
    return recs, tok


def test_records_go_to_the_narrowest_width_that_holds_them(data):
    recs, tok = data
    lengths = np.array([len(tok.encode(r.question)) for r in recs])
    assert len(set(lengths)) > 1  # the test needs questions of several lengths
    widths = (int(np.median(lengths)), 40)
    bucket = question_buckets(recs, tok, widths)
    np.testing.assert_array_equal(bucket, np.where(lengths <= widths[0], 0, 1))
    with pytest.raises(LayoutError, match="widest bucket"):
        question_buckets(recs, tok, (int(lengths.min()),))


@pytest.mark.parametrize("variant", [{}, {"key_smear": 2}], ids=["plain", "key_smear"])
def test_a_narrow_width_gives_the_full_width_loss(data, variant_model, variant):
    """COCONUT rows padded to their bucket's width: same loss and gradient as at the full width
    (positions skip padding, so only the count of pad columns differs)."""
    import jax
    from flax import nnx

    from lrm_jax.training.objective import lm_loss

    recs, tok = data
    model = variant_model(**variant)
    assert tok.vocab_size <= model.cfg.vocab_size
    narrow = dataclasses.replace(LAYOUT, max_question_len=max(len(tok.encode(r.question)) for r in recs))
    assert LAYOUT.with_length(narrow.length) == narrow

    @nnx.jit(static_argnames="layout")  # eager op-by-op would take a minute on 2 cores
    def loss_and_grads(model, batch, layout):
        return nnx.value_and_grad(lambda m: lm_loss(m, batch, "coconut", layout), has_aux=True)(model)

    results = []
    for layout in (LAYOUT, narrow):
        b = make_batch(recs, tok, layout, "coconut", stage=2)
        batch = {"ids": b.ids, "mask": b.mask, "loss_mask": b.loss_mask}
        (loss, metrics), grads = loss_and_grads(model, batch, layout)
        results.append((float(loss), float(metrics["tokens"]), [np.asarray(g) for g in jax.tree.leaves(grads)]))
    (full, n_full, g_full), (cut, n_cut, g_cut) = results
    assert n_full == n_cut > 0
    np.testing.assert_allclose(cut, full, rtol=1e-5)
    for a, b in zip(g_cut, g_full):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_plan_batches_hold_one_bucket_and_no_record_twice():
    bucket_of = np.array([0] * 11 + [1] * 7 + [2] * 3)
    plan = bucket_plan(bucket_of, 4, seed=0)
    assert len(plan) == 11 // 4 + 7 // 4 + 3 // 4
    rows = np.concatenate([r for _, r in plan])
    assert len(set(rows.tolist())) == len(rows) == 4 * len(plan)
    assert all((bucket_of[r] == b).all() for b, r in plan)
    other = bucket_plan(bucket_of, 4, seed=1)  # another epoch: another order and remainder
    assert [r.tolist() for _, r in other] != [r.tolist() for _, r in plan]


def test_hosts_share_the_plan_and_split_each_batch():
    source = list(range(40))
    bucket_of = np.array([i % 3 for i in source])
    encode = lambda bucket, x: {"x": np.array([x]), "bucket": np.array(bucket)}  # noqa: E731
    per_host = [
        list(bucketed_pipeline(source, bucket_of, seed=2, batch_size=6, transform=encode, shard_index=h, shard_count=2))
        for h in range(2)
    ]
    assert len(per_host[0]) == len(per_host[1]) == 2 + 2 + 2  # buckets of 14, 13, 13 in batches of 6
    for a, b in zip(*per_host):
        assert a["x"].shape == b["x"].shape == (3, 1)
        assert set(a["bucket"]) == set(b["bucket"]) and len(set(a["bucket"])) == 1
        assert not set(a["x"].ravel()) & set(b["x"].ravel())
        assert all(bucket_of[x] == a["bucket"][0] for x in np.concatenate([a["x"], b["x"]]).ravel())


def test_bucketed_iterator_resumes_exactly():
    source = list(range(50))
    bucket_of = np.array([i % 2 for i in source])
    make = lambda: iter(bucketed_pipeline(source, bucket_of, seed=5, batch_size=4,  # noqa: E731
                                          transform=lambda b, x: {"x": np.array(x)}, shard_index=0, shard_count=1))
    it = make()
    for _ in range(3):
        next(it)
    state = it.get_state()
    expected = [next(it)["x"] for _ in range(5)]
    resumed = make()
    resumed.set_state(state)
    for want in expected:
        np.testing.assert_array_equal(next(resumed)["x"], want)


def test_buckets_are_validated():
    with pytest.raises(ConfigError, match="increasing"):
        load(RunConfig, None, ["data.max_question_len=64", "data.question_buckets=[32, 16]"])
    with pytest.raises(ConfigError, match="below data.max_question_len"):
        load(RunConfig, None, ["data.max_question_len=64", "data.question_buckets=[64]"])
    with pytest.raises(ConfigError, match="not supported"):
        load(RunConfig, None, ["method.name=codi", "data.question_buckets=[16]"])


def test_bucketed_run_compiles_once_per_width(tmp_path):
    from lrm_jax.training.loop import run
    from lrm_jax.training.setup import resolve

    overrides = [
        "model.n_layer=1", "model.n_embd=32", "model.n_head=2", "model.n_positions=96",
        "data.task=arithmetic", "data.n_train=64", "data.n_valid=8",
        "data.generator={min_ops: 1, max_ops: 3, max_value: 10, ops: ['+']}",
        "data.max_question_len=40", "data.max_rest_len=32",
        "method.name=coconut", "method.max_latent_stage=1",
        "train.batch_size=8", "train.num_epochs=1", "train.eval_limit=8", "train.eval_batch_size=8",
        "train.max_new_tokens=16",
    ]
    inputs = resolve(load(RunConfig, None, overrides))
    lengths = sorted(len(inputs.tokenizer.encode(r.question)) for r in inputs.train)
    widths = sorted(set(lengths))
    assert len(widths) >= 2
    cfg = load(RunConfig, None, overrides + [f"data.question_buckets=[{widths[0]}]"])
    counts = [sum(n <= widths[0] for n in lengths), sum(n > widths[0] for n in lengths)]
    result = run(cfg, tmp_path, progress=False, inputs=inputs)
    assert result.stopped == "finished"
    assert result.step == sum(n // 8 for n in counts)
    assert result.compiles == sum(n >= 8 for n in counts) == 2
