"""The analysis studies on tiny untrained runs: truncation semantics, batched == per-instance,
ignored thoughts, CLI outputs and errors, the HTML viewer in headless Chromium, AUROC."""

import dataclasses
import json
import shutil
import subprocess

import numpy as np
import pytest
from flax import nnx

from lrm_jax.config import RunConfig, load
from lrm_jax.data.layout import prompt_batch
from lrm_jax.model.gpt2 import init_model
from lrm_jax.model.latent import latent_forward
from lrm_jax.studies.auroc import auroc, auroc_ci
from lrm_jax.studies.bundle import load_run
from lrm_jax.studies.necessity import append_tokens, split_steps, summarize, sweep, sweep_loop
from lrm_jax.training.checkpoint import Checkpointer, write_run_files
from lrm_jax.training.setup import resolve
from lrm_jax.training.state import init_state, make_optimizer, trainable_labels

TINY = [
    "model.n_layer=1", "model.n_embd=32", "model.n_head=2", "model.n_positions=96",
    "data.task=arithmetic", "data.n_train=16", "data.n_valid=6",
    "data.generator={min_ops: 2, max_ops: 2, max_value: 10, ops: ['+']}",
    "data.max_question_len=24", "data.max_rest_len=24",
    "method.max_latent_stage=2", "train.max_new_tokens=8",
]


def make_run(path, method, extra=(), transform=None):
    """A run directory with an untrained checkpoint (what analysis reads), no training."""
    cfg = load(RunConfig, None, TINY + [f"method.name={method}", *extra])
    inputs = resolve(cfg)
    model = init_model(inputs.cfg.model, 0)
    if transform is not None:
        transform(model)
    graphdef, params = nnx.split(model, nnx.Param)
    tx = make_optimizer(inputs.cfg.train, trainable=trainable_labels(params, inputs.cfg.model))
    write_run_files(path, inputs.cfg, inputs.tokenizer)
    ckpt = Checkpointer(path)
    ckpt.save(0, init_state(params, tx), {"epoch": 0, "iterator": None, "stage": 0, "method": method})
    ckpt.close()
    return path


@pytest.fixture(scope="module")
def coconut_dir(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("coconut"), "coconut")


@pytest.fixture(scope="module")
def coconut(coconut_dir):
    run = load_run(coconut_dir)
    from lrm_jax.training.setup import load_data

    return run, load_data(run.cfg)[1][:4]


def test_truncation_by_masking_equals_the_shorter_prompt(coconut):
    run, records = coconut
    tok, layout = run.tokenizer, run.layout
    model = nnx.merge(run.graphdef, run.params)
    prefix = tok.encode(" ###")
    k = 1  # of Z = 2 slots
    ids, mask = append_tokens(*prompt_batch(records, tok, layout, "coconut", k), prefix)
    short_layout = dataclasses.replace(layout, max_latent_stage=k)
    sids, smask = append_tokens(*prompt_batch(records, tok, short_layout, "coconut", k), prefix)
    P = layout.n_prefix
    long_h = latent_forward(model, ids, mask, n_prefix=P, n_latent=layout.n_latent).h
    short_h = latent_forward(model, sids, smask, n_prefix=P, n_latent=k).h
    keep = [c for c in range(ids.shape[1]) if not P + k <= c < P + layout.n_latent]  # drop the masked slot
    real = np.asarray(smask).astype(bool)
    np.testing.assert_allclose(np.asarray(long_h)[:, keep][real], np.asarray(short_h)[real], atol=1e-5)


def test_batched_sweep_equals_per_instance_loop(coconut):
    run, records = coconut
    results, extra = sweep(run, records, batch_size=8, answer_tokens=4, kinds=("none", "zero"), progress=False,
                           keep_unparseable=True)  # an untrained model rarely writes "#"
    assert len(results) == len(records)
    fulls, loop = sweep_loop(run, [records[r["index"]] for r in results], answer_tokens=4)
    assert [r["answers"]["none"] for r in results] == loop
    assert [r["full_text"] for r in results] == fulls
    # Zeroed thoughts at k = 0 are no thoughts at all: identical to the plain k = 0 answer.
    assert all(r["answers"]["zero"][0] == r["answers"]["none"][0] for r in results)


def test_ignored_thoughts_need_zero_percent(tmp_path):
    """No attention output and no position embedding: every position's output depends only on
    its own token, so the answer cannot depend on the thoughts."""

    def blind(model):
        for block in model.h:
            block.attn.c_proj.kernel[...] = 0.0
            block.attn.c_proj.bias[...] = 0.0
        model.wpe.embedding[...] = 0.0

    run = load_run(make_run(tmp_path / "blind", "coconut", transform=blind))
    from lrm_jax.training.setup import load_data

    records = load_data(run.cfg)[1]
    # Its free-running "full" answers do not matter: compare with the forced-prefix answers.
    results, extra = sweep(run, records, batch_size=8, answer_tokens=3, kinds=("none", "mean", "swap"), progress=False,
                           full_tokens=8, keep_unparseable=True)
    s = summarize(results, extra)
    for kind in extra["kinds"]:
        answers = [r["answers"][kind] for r in results]
        assert all(len(set(a)) == 1 for a in answers)  # identical at every k and under interventions
    assert all(r["first_match"] in (0, None) for r in results)
    matched = [r for r in results if r["first_match"] is not None]
    assert all(r["stable_match"] == 0 for r in matched)
    if len(matched) == len(results):
        assert s["first_match_pct_mean"] == 0.0 and s["stable_match_pct_mean"] == 0.0


def test_cli_outputs_and_viewer_renders_in_chromium(coconut_dir, tmp_path):
    from analysis import decode, necessity

    assert necessity.main(["--ckpt", str(coconut_dir), "--out", str(tmp_path / "nec"), "--limit", "4",
                           "--answer-tokens", "3", "--no-progress", "--keep-unparseable"]) == 0
    summary = json.loads((tmp_path / "nec" / "summary.json").read_text())
    assert summary["n"] == 4 and set(summary["per_k"]) == {"none", "zero", "mean", "noise", "swap"}
    assert len(summary["per_k"]["none"]["accuracy"]) == 3  # k = 0, 1, 2
    assert (tmp_path / "nec" / "figure2.png").stat().st_size > 0
    assert decode.main(["--ckpt", str(coconut_dir), "--out", str(tmp_path / "dec"), "--limit", "4", "--top-k", "5",
                        "--max-new-tokens", "6", "--no-progress"]) == 0
    rows = [json.loads(line) for line in (tmp_path / "dec" / "instances.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and all(len(r["topk"]) == len(r["labels"]) for r in rows)
    for name in ("summary.md", "figure5.png", "per_layer.png", "viewer.html"):
        assert (tmp_path / "dec" / name).stat().st_size > 0
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium not installed (.ci/run installs Debian's chromium)")
    # A page with a known trace: the script must count exactly its highlighted cells.
    from analysis import html_view

    page = html_view.render("t", "q", ["a", "b", "c"], [["1", "2"], ["3", "4"], ["5", "6"]],
                            [[-0.1, -2.0]] * 3, [("1", 0, 0), ("4", 1, 1), ("9", -1, 0)])
    (tmp_path / "view.html").write_text(page)
    for html_file, expect in ((tmp_path / "view.html", "2"), (tmp_path / "dec" / "viewer.html", None)):
        dom = subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
             "--dump-dom", f"file://{html_file}"],
            capture_output=True, text=True, timeout=120,
        ).stdout
        assert 'id="status"' in dom and "rendering..." not in dom  # the script ran
        if expect is not None:
            assert f'data-trace-cells="{expect}"' in dom and "2 highlighted trace cell(s)" in dom


def test_bad_inputs_are_clear_errors(coconut_dir, tmp_path, capsys):
    from analysis import decode, necessity, search

    assert necessity.main(["--ckpt", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert "no such directory" in capsys.readouterr().err
    cot = make_run(tmp_path / "cot", "cot")
    assert decode.main(["--ckpt", str(cot), "--out", str(tmp_path / "o")]) == 2
    assert "needs a latent reasoning model" in capsys.readouterr().err
    no_steps = tmp_path / "nosteps.json"
    no_steps.write_text(json.dumps([{"question": "a = 1 . what is a ?", "steps": [], "answer": "1"}]))
    assert decode.main(["--ckpt", str(coconut_dir), "--data", str(no_steps), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "nosteps.json" in err and "steps" in err
    untemplated = tmp_path / "untemplated.json"
    untemplated.write_text(json.dumps([{"question": "what is half of one ?", "steps": ["<<1/2=0.5>>"], "answer": "0.5"}]))
    assert search.main(["--ckpt", str(coconut_dir), "--data", str(untemplated), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "untemplated.json" in err and "no record has a template" in err and "number words kept fixed" in err


def test_accuracy_cli_lists_the_misses(coconut_dir, capsys):
    from analysis import accuracy

    assert accuracy.main(["--ckpt", str(coconut_dir), "--limit", "4", "--thoughts", "1", "--show-wrong", "2",
                          "--by-steps"]) == 0
    out = capsys.readouterr().out
    result = json.loads(out.strip().splitlines()[-1])
    n_miss = round((1 - result["thoughts"]["1"]) * 4)
    assert f"  {n_miss} misses, " in out
    assert out.count("  gold ") == min(n_miss, 2)
    split = result["by_steps"]["1"].values()  # the per-length rows add up to the whole
    assert sum(n for n, _ in split) == 4
    assert abs(sum(n * a for n, a in split) / 4 - result["thoughts"]["1"]) < 1e-9
    assert accuracy.main(["--ckpt", str(coconut_dir), "--thoughts", "9"]) == 2
    assert accuracy.main(["--ckpt", str(coconut_dir), "--check-traces"]) == 2
    assert "ProsQA/ProntoQA-style chains; these records are gsm8k-style" in capsys.readouterr().err


def test_accuracy_by_steps_groups_records_by_their_gold_chain_length():
    from analysis.accuracy import accuracy_by_steps
    from lrm_jax.data.records import Record

    two = Record("q", ("a", "b"), "x")
    three = Record("q", ("a", "b", "c"), "y")
    texts = [" a b ### x", " a b ### z", " a b c ### y", " ### x"]
    assert accuracy_by_steps([two, two, three, three], texts) == {2: (2, 0.5), 3: (2, 0.5)}
    assert accuracy_by_steps([three, two, two, two], texts) == {2: (3, 1 / 3), 3: (1, 0.0)}


def test_misses_are_sorted_into_the_other_option_and_neither(capsys):
    from analysis.accuracy import print_misses
    from lrm_jax.data.records import Graph, Record

    graph = Graph(("Max", "yerpus", "lorpus", "vumpus", "dumpus"), ((0, 1), (1, 2), (0, 4)), 0, 2, 3)
    rec = Record("Is Max a lorpus or vumpus?", ("Max yerpus", "lorpus"), "Max is a lorpus.", graph)
    texts = [" Max yerpus lorpus ### Max is a lorpus.", " Max dumpus ### Max is a vumpus.",
             " Max dumpus ### Max is a dumpus.", " Max dumpus dumpus dumpus"]
    print_misses([rec] * 4, texts, limit=1)
    out = capsys.readouterr().out
    assert "3 misses, 1 of them without a '###' answer" in out
    assert "1 name the other option, 1 neither option" in out
    assert out.count("  gold ") == 1


def test_logic_blind_search_cli_on_a_prontoqa_run(tmp_path):
    """The real projections and renamed-question batch on a tiny untrained ProntoQA COCONUT: every
    instance gets the three r levels; a found path always passed the checker, with 3 renames per
    concept; verified implies found."""
    from analysis import search

    pq = make_run(tmp_path / "pq", "coconut", [
        "data.task=prontoqa", "data.max_question_len=48", "data.max_rest_len=40", "model.n_positions=128",
        "data.generator={min_hops: 1, max_hops: 1, n_distractor_properties: 0, n_distractor_isa: 0, "
        "extra_subject_fact: false, templates: every}"])
    assert search.main(["--ckpt", str(pq), "--out", str(tmp_path / "s"), "--limit", "4", "--top-k", "60",
                        "--no-progress"]) == 0
    summary = json.loads((tmp_path / "s" / "summary.json").read_text())
    assert summary["n"] == 4 and summary["correct"]["n"] + summary["incorrect"]["n"] == 4
    assert "renam" in summary["templates"] and summary["offset"] is None
    rows = [json.loads(line) for line in (tmp_path / "s" / "instances.jsonl").read_text().splitlines()]
    for r in rows:
        for q in (1, 2, 3):
            assert not r[f"r{q}"]["verified"] or r[f"r{q}"]["found"]
        if r["r1"]["found"]:
            assert r["checker"] == "valid" and r["n_edits"] == 3 * len(r["r1"]["steps"])
    assert (tmp_path / "s" / "figure6.png").stat().st_size > 0


def test_chains_are_cut_into_the_steps_their_format_writes():
    """Equations and sentences end a step; a concept chain (no periods) is a step a word."""
    assert split_steps("<<3+4=7>> <<7-2=5>> ") == ["<<3+4=7>>", "<<7-2=5>>"]
    assert split_steps("Tom is a rompus. Every rompus is a kerpus.") == ["Tom is a rompus.", "Every rompus is a kerpus."]
    assert split_steps(" Tom rompus kerpus ") == ["Tom", "rompus", "kerpus"]
    assert split_steps("") == []


def test_auroc_matches_pair_counting():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 4, 60).astype(float)  # many ties
    labels = rng.random(60) < 0.5
    pos, neg = scores[labels], scores[~labels]
    pairs = np.mean([(p > n) + 0.5 * (p == n) for p in pos for n in neg])
    assert abs(auroc(scores, labels) - pairs) < 1e-12
    ci = auroc_ci(scores, labels, n_boot=200)
    assert ci["ci_low"] <= ci["auroc"] <= ci["ci_high"]
    assert auroc([1, 2, 3, 4], [0, 0, 1, 1]) == 1.0


def test_text_templates_turn_digit_numbers_and_number_words_into_variables():
    from tests.conftest import shared_file

    from lrm_jax.data.loaders import load_records
    from lrm_jax.studies import templates

    t, notes = templates.extract("A set of 7 spoons costs $1,200. It grows .5 inches, 10% more, twice.")
    assert t["values"] == {"VAR_0": 7, "VAR_1": 1200}
    assert templates.render(t, {"VAR_0": 9, "VAR_1": 30}) == "A set of 9 spoons costs $30. It grows .5 inches, 10% more, twice."
    assert set(notes) == {"decimal or percentage kept fixed", "number words kept fixed (one, compounds, multipliers, fractions)"}
    # Cardinal words are variables too, written back as words (capitalised like the original)
    # when the new value has one, else in digits; "one" and multipliers stay fixed.
    t, notes = templates.extract("Three girls have forty pens and one has twice as many. Each buys 12 more.")
    assert t["values"] == {"VAR_0": 3, "VAR_1": 40, "VAR_2": 12}
    assert templates.render(t, {"VAR_0": 5, "VAR_1": 33, "VAR_2": 2}) == \
        "Five girls have 33 pens and one has twice as many. Each buys 2 more."
    assert notes == ["number words kept fixed (one, compounds, multipliers, fractions)"]
    t, notes = templates.extract("She has twenty-five cards and six pens.")
    assert t["values"] == {"VAR_0": 6} and notes == ["number words kept fixed (one, compounds, multipliers, fractions)"]
    records = load_records(shared_file("gsm8k_valid.json"), lenient=True).records
    kept, report = templates.attach(records)
    assert 0.9 * len(records) < len(kept) <= len(records) and report.startswith(f"templated {len(kept)} of {len(records)}")
    for r in kept[:50]:  # rendering the original values gives the question back
        assert templates.render(r.template, r.template["values"]) == r.question
