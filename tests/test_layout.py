"""Curriculum layout: COCONUT's stage rules, fixed columns, loss on the continuation only."""

import numpy as np
import pytest

from lrm_jax.data.generators import GENERATORS, ArithConfig
from lrm_jax.data.layout import (
    Layout, LayoutError, encode_example, make_batch, n_thoughts_and_skip, sequence_texts,
)
from lrm_jax.tokenizer import WordTokenizer

LAYOUT = Layout(max_question_len=40, max_latent_stage=3, c_thought=2, max_rest_len=40)


@pytest.fixture(scope="module")
def data():
    recs = GENERATORS["arithmetic"][1](ArithConfig(min_ops=2, max_ops=3, max_value=20, ops=("+", "-")), 16, 0)
    tok = WordTokenizer.build(t for r in recs for t in sequence_texts(r))
    return recs, tok


@pytest.mark.parametrize(
    "n_steps,stage,pad,expect",
    [
        (3, 0, True, (0, 0)),
        (3, 2, True, (4, 2)),
        (2, 3, True, (6, 2)),  # more stages than steps: thoughts are not capped (reference)
        (2, 4, True, (6, 2)),  # past the last stage: all steps dropped, padded to the max
        (2, 4, False, (4, 2)),
    ],
)
def test_stage_rules(n_steps, stage, pad, expect):
    assert n_thoughts_and_skip(n_steps, stage, LAYOUT, pad) == expect


def test_row_layout_and_loss(data):
    recs, tok = data
    rec = recs[0]
    P, Z = LAYOUT.n_prefix, LAYOUT.n_latent
    row, mask, loss, n = encode_example(rec, tok, LAYOUT, "coconut", stage=1)
    assert n == 2 and row.shape == (LAYOUT.length,)
    assert row[P - 1] == tok.ids["start_latent"] and row[P + Z] == tok.ids["end_latent"]
    assert mask[P : P + Z].tolist() == [1, 1, 0, 0, 0, 0]
    assert tok.decode(row[mask.astype(bool)][: P]).strip().startswith(rec.question.split()[0])
    # The loss covers exactly the tokens after the end marker: remaining steps, answer, <eos>.
    targets = row[1:][loss[:-1].astype(bool)]
    text = tok.decode(targets)
    assert text == " " + " ".join(rec.steps[1:]) + f" ### {rec.answer}<|endoftext|>"
    assert loss[: P + Z].sum() == 0


def test_methods_share_one_shape(data):
    recs, tok = data
    shapes = set()
    for method in ("coconut", "pause", "cot", "nocot"):
        for stage in range(5):
            b = make_batch(recs, tok, LAYOUT, method, stage)
            shapes.add(b.ids.shape)
    assert shapes == {(16, LAYOUT.length)}
    nocot = make_batch(recs, tok, LAYOUT, "nocot", 0)
    assert tok.decode(nocot.ids[0][nocot.loss_mask[0].astype(bool)]).startswith("<|end-latent|> ###")
    pause = make_batch(recs, tok, LAYOUT, "pause", 2)
    assert (pause.ids[:, LAYOUT.n_prefix] == tok.ids["pause"]).all()


def test_uniform_prob_is_seeded(data):
    recs, tok = data
    a = make_batch(recs, tok, LAYOUT, "coconut", 1, uniform_prob=0.5, rng=np.random.default_rng(0))
    b = make_batch(recs, tok, LAYOUT, "coconut", 1, uniform_prob=0.5, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(a.ids, b.ids)
    assert len(set(a.n_thoughts.tolist())) > 1


def test_too_long_is_a_clear_error(data):
    recs, tok = data
    with pytest.raises(LayoutError, match="record 0: question has .* > max_question_len 5"):
        make_batch(recs, tok, Layout(5, 3, 2, 40), "cot", 0)


def test_multimode_rows_select_the_mode_in_column_p_minus_1(data):
    from lrm_jax.data.layout import encode_multimode

    recs, tok = data
    ids, mask, loss = encode_multimode(recs[0], tok, LAYOUT, stage=1)
    P, Z = LAYOUT.n_prefix, LAYOUT.n_latent
    assert ids.shape == (3, LAYOUT.length)
    assert [tok.id_to_token(i) for i in ids[:, P - 1]] == ["<|start-latent|>", "<|bocot|>", "<|eocot|>"]
    assert mask[:, P : P + Z].sum(1).tolist() == [2, 0, 0]
    texts = [tok.decode(ids[m, 1:][loss[m, :-1].astype(bool)]) for m in range(3)]
    assert texts[1].startswith(" " + recs[0].steps[0]) and texts[2].startswith(" ###")
    assert texts[0].startswith(" " + recs[0].steps[1])  # stage 1: the first step became thoughts


@pytest.mark.parametrize("method,expect", [("coconut", [0, 1, 1, 2, 2]), ("pause", [0, 1, 1, 2, 2]),
                                           ("cot", [0] * 5), ("nocot", [0] * 5)])
def test_stage_of_epoch_counts_for_curriculum_methods_only(method, expect):
    # first_epoch shifts the curriculum; a CoT run's logs used to show stages that changed nothing.
    from lrm_jax.config import RunConfig, load
    from lrm_jax.training.loop import stage_of

    cfg = load(RunConfig, None, [f"method.name={method}", "method.epochs_per_stage=2", "method.first_epoch=1"])
    assert [stage_of(cfg, epoch) for epoch in range(5)] == expect
