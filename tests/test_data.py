"""Loaders (real files, malformed input) and generators (determinism, knobs, valid traces)."""

import json
import re

import pytest

from lrm_jax.data.generators import GENERATORS, ArithConfig, ProntoQAConfig, ProsQAConfig
from lrm_jax.data.generators.arithmetic import render
from lrm_jax.data.loaders import DataError, load_records, save_records
from lrm_jax.traces import check_record
from tests.conftest import shared_file


@pytest.mark.parametrize("name,n", [("prosqa_valid.json", 300), ("prontoqa_valid.json", 200)])
def test_loaders_read_every_logic_record(name, n):
    res = load_records(shared_file(name))
    assert len(res.records) == n and not res.skipped
    assert all(r.graph is not None for r in res.records)
    g = res.records[0].graph
    # ProsQA names its target in the answer; ProntoQA's target ends the gold chain.
    assert g.idx_to_symbol[g.target] in res.records[0].answer + res.records[0].steps[-2]


@pytest.mark.parametrize("name", ["gsm8k_valid.json", "gsm8k_aug_valid.txt"])
def test_gsm8k_files_strict_stops_lenient_reports(name):
    path = shared_file(name)
    with pytest.raises(DataError) as err:
        load_records(path)
    assert err.value.index == 89 and err.value.field.startswith("steps")
    assert name in str(err.value)
    res = load_records(path, lenient=True)
    assert res.total == 500 and len(res.records) == 494
    assert sorted(e.index for e in res.skipped) == [89, 186, 327, 411, 445, 468]
    assert "skipped 6" in res.summary()


def test_icot_and_json_gsm8k_agree():
    a = load_records(shared_file("gsm8k_valid.json"), lenient=True).records
    b = load_records(shared_file("gsm8k_aug_valid.txt"), lenient=True).records
    assert [r.steps for r in a] == [r.steps for r in b]
    assert [r.answer for r in a] == [r.answer for r in b]


GOOD = {"question": "Tom is a wumpus. Is Tom a wumpus or yumpus?", "steps": ["Tom is a wumpus."],
        "answer": "Tom is a wumpus."}


@pytest.mark.parametrize(
    "record,field,reason",
    [
        ({k: v for k, v in GOOD.items() if k != "answer"}, "answer", "missing"),
        ({**GOOD, "steps": "Tom is a wumpus."}, "steps", "expected a list"),
        ({**GOOD, "steps": []}, "steps", "empty"),
        ({**GOOD, "steps": ["ok.", 3]}, "steps[1]", "expected a string"),
        ({**GOOD, "answer": 7}, "answer", "expected a string"),
        ({**GOOD, "idx_to_symbol": ["Tom"], "edges": [[0, 5]], "root": 0, "target": 0,
          "neg_target": 0}, "edges[0]", "expected [i, j]"),
        ({**GOOD, "edges": []}, "idx_to_symbol", "missing"),
    ],
)
def test_malformed_records_name_file_record_and_field(tmp_path, record, field, reason):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps([GOOD, record]))
    with pytest.raises(DataError, match=re.escape(reason)) as err:
        load_records(path)
    assert (err.value.index, err.value.field) == (1, field)
    assert "bad.json, record 1" in str(err.value)
    res = load_records(path, lenient=True)
    assert len(res.records) == 1 and len(res.skipped) == 1


def test_bad_json_and_bad_lines(tmp_path):
    p = tmp_path / "broken.json"
    p.write_text('[{"question": "x",')
    with pytest.raises(DataError, match=r"broken.json: invalid JSON at line 1"):
        load_records(p)
    t = tmp_path / "broken.txt"
    t.write_text("Q one?||<<1+1=2>> #### 2\nno separator here\n")
    with pytest.raises(DataError, match=r"broken.txt, record 1"):
        load_records(t)
    with pytest.raises(DataError, match="file not found"):
        load_records(tmp_path / "missing.json")


@pytest.mark.parametrize("task", sorted(GENERATORS))
def test_generators_are_deterministic_and_traces_verify(task, tmp_path):
    cls, gen = GENERATORS[task]
    a, b, c = gen(cls(), 40, seed=1), gen(cls(), 40, seed=1), gen(cls(), 40, seed=2)
    assert a == b and a != c
    for rec in a:
        res = check_record(rec)
        assert res.ok, (rec, res)
    path = save_records(a, tmp_path / f"{task}.json")
    assert load_records(path).records == a


def test_generator_knobs():
    small = GENERATORS["prontoqa"][1](ProntoQAConfig(min_hops=2, max_hops=3, n_distractor_properties=2), 30, 0)
    assert {len(r.steps) for r in small} == {3, 4}
    assert sum(r.answer == "True" for r in small) == 15
    pros = GENERATORS["prosqa"][1](ProsQAConfig(min_nodes=8, max_nodes=12, min_path=2, max_path=4), 30, 0)
    assert all(8 <= len(r.graph.idx_to_symbol) <= 12 and 2 <= len(r.steps) <= 4 for r in pros)
    arith = GENERATORS["arithmetic"][1](ArithConfig(max_value=20, ops=("+", "-"), min_ops=2, max_ops=3), 50, 0)
    for r in arith:
        assert 2 <= len(r.steps) <= 3 and "*" not in r.question
        nums = [int(x) for s in r.steps for x in s.strip("<>").replace("=", " ").replace("+", " ").replace("-", " ").split()]
        assert all(0 <= x < 20 for x in nums)


def test_arithmetic_template_counterfactual():
    rec = GENERATORS["arithmetic"][1](ArithConfig(max_value=20, ops=("+",), min_ops=2, max_ops=2), 1, 3)[0]
    values = dict(rec.template["values"])
    assert render(rec.template) == rec
    values["VAR_1"] += 1
    edited = render(rec.template, values)
    assert int(edited.answer) == int(rec.answer) + 1
    assert check_record(edited).ok


def test_prontoqa_branching_and_templates_knobs():
    """branching=False: every concept has at most one parent (the chain up from the subject is
    unique); the default branches off the chain as the real files do. templates="every" writes
    every rule in the singular "Every X is ..." form."""
    from lrm_jax.traces.logic import parse_question

    for templates in ("all", "every"):
        cfg = ProntoQAConfig(min_hops=2, max_hops=4, n_distractor_isa=4, templates=templates, branching=False)
        branchy = ProntoQAConfig(min_hops=2, max_hops=4, n_distractor_isa=4, templates=templates)
        assert any(_max_parents(r) > 1 for r in GENERATORS["prontoqa"][1](branchy, 40, 1))
        for r in GENERATORS["prontoqa"][1](cfg, 40, 1):
            q = parse_question(r.question)
            parents = {}
            for rule in q.rules:
                if rule.pred.name in q.concepts:
                    parents.setdefault(rule.concept, []).append(rule.pred.name)
            assert all(len(p) == 1 for p in parents.values()), r.question
            if templates == "every":
                assert " are " not in r.question and "Each " not in r.question
    with pytest.raises(ValueError, match="templates"):
        ProntoQAConfig(templates="some")


def test_prontoqa_concepts_cot():
    """cot="concepts" writes the same chain as the sentence steps, one concept per step, then
    the derived "[not] P"; the question and answer do not change."""
    kw = dict(min_hops=1, max_hops=3, n_distractor_isa=2, templates="every", branching=False)
    gen = GENERATORS["prontoqa"][1]
    for sent, comp in zip(gen(ProntoQAConfig(**kw), 40, 2), gen(ProntoQAConfig(**kw, cot="concepts"), 40, 2)):
        assert (comp.question, comp.answer) == (sent.question, sent.answer)
        assert list(comp.steps[:-1]) == [step.split(".")[0].split()[-1] for step in sent.steps[:-1]]
        assert sent.steps[-1].split(" ", 2)[2] == comp.steps[-1] + "."
        assert check_record(sent).ok
    with pytest.raises(ValueError, match="templates='every'"):
        ProntoQAConfig(cot="concepts")
    with pytest.raises(ValueError, match="cot must be"):
        ProntoQAConfig(templates="every", cot="words")


def test_prosqa_concepts_cot():
    """cot="concepts" names the same path's nodes (root first) as the sentence steps."""
    kw = dict(min_nodes=8, max_nodes=12, min_path=1, max_path=4)
    gen = GENERATORS["prosqa"][1]
    for sent, comp in zip(gen(ProsQAConfig(**kw), 30, 4), gen(ProsQAConfig(**kw, cot="concepts"), 30, 4)):
        assert (comp.question, comp.answer, comp.graph) == (sent.question, sent.answer, sent.graph)
        names = comp.graph.idx_to_symbol
        nodes = " ".join(comp.steps).split()
        assert nodes[0] == names[comp.graph.root] and nodes[-1] == names[comp.graph.target]
        assert [s.split()[-1].rstrip(".") for s in sent.steps] == nodes[1:]
        assert all((names.index(a), names.index(b)) in comp.graph.edges for a, b in zip(nodes, nodes[1:]))
    # "nodes": the same tokens, the root a step of its own (a CoT model serves both curricula);
    # "concepts_only": the same without the root
    comps, node_recs, onlys = (gen(ProsQAConfig(**kw, cot=cot), 30, 4) for cot in ("concepts", "nodes", "concepts_only"))
    for comp, node, only in zip(comps, node_recs, onlys):
        assert (node.question, node.answer, node.graph) == (comp.question, comp.answer, comp.graph)
        assert node.steps == tuple(" ".join(comp.steps).split()) and len(node.steps) == len(comp.steps) + 1
        assert only.steps == node.steps[1:] and only.question == node.question
    with pytest.raises(ValueError, match="cot must be"):
        ProsQAConfig(cot="path")


def _max_parents(record) -> int:
    from lrm_jax.traces.logic import parse_question

    q = parse_question(record.question)
    parents = {}
    for rule in q.rules:
        if rule.pred.name in q.concepts:
            parents.setdefault(rule.concept, set()).add(rule.pred.name)
    return max((len(p) for p in parents.values()), default=0)


def test_prosqa_weighted_sample_is_numpys_draw():
    """The generator's plain-Python parent draw must equal numpy's `choice` draw for draw (so the
    records, and every result recorded on them, did not change) and leave the stream where numpy
    leaves it."""
    import numpy as np

    from lrm_jax.data.generators.prosqa import _weighted_sample

    meta = np.random.default_rng(0)
    for _ in range(500):
        n = int(meta.integers(1, 12))
        pool = sorted(int(v) for v in meta.choice(30, n, replace=False))
        weights = [1.5 * int(d) + 1 for d in meta.integers(0, 6, n)]
        k = int(meta.integers(1, n + 1))
        seed = int(meta.integers(1 << 30))
        ours, numpys = np.random.default_rng(seed), np.random.default_rng(seed)
        w = np.array(weights)
        expected = [int(v) for v in numpys.choice(pool, size=k, replace=False, p=w / w.sum())]
        assert _weighted_sample(ours, pool, weights, k) == expected
        assert ours.random() == numpys.random()
