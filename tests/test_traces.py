"""Trace checkers accept every real gold trace and reject corrupted ones; the CLI reports."""

import json
import dataclasses

import pytest

from analysis import check_traces
from lrm_jax.data.loaders import load_records
from lrm_jax.traces import check_record
from lrm_jax.traces.arith import question_numbers
from tests.conftest import shared_file


@pytest.fixture(scope="module", params=["prosqa_valid.json", "prontoqa_valid.json"])
def logic(request):
    return load_records(shared_file(request.param)).records


def test_all_real_logic_gold_traces_verify(logic):
    bad = [(i, check_record(r)) for i, r in enumerate(logic) if not check_record(r).ok]
    assert bad == []


def test_swapped_steps_are_rejected(logic):
    for r in logic[:40]:
        steps = list(r.steps)
        # Steps 1 and 2 each need the step before them (step 0 restates a question fact).
        steps[1], steps[2] = steps[2], steps[1]
        res = check_record(dataclasses.replace(r, steps=tuple(steps)))
        assert not res.ok and res.reason in ("unsupported_fact", "rule_not_applicable")


def test_invented_edge_is_rejected(logic):
    for r in logic[:40]:
        first = r.steps[0].split(". ")[0] if "True or false" in r.question else r.steps[0]
        subject = first.split()[0]
        forged = f"{subject} is a zzzpus." if "True or false" not in r.question else None
        steps = list(r.steps)
        if forged:  # ProsQA: claim a membership the question never gives
            steps.insert(1, forged)
            expect = {"unsupported_fact"}
        else:  # ProntoQA: a rule not in the question
            steps[1] = steps[1].split(". ")[0] + ". Every zzzpus is a qqqpus."
            expect = {"rule_not_in_question", "rule_not_applicable"}
        res = check_record(dataclasses.replace(r, steps=tuple(steps)))
        assert not res.ok and res.reason in expect, res


def test_wrong_answer_is_rejected(logic):
    for r in logic[:40]:
        if r.answer in ("True", "False"):
            wrong = "False" if r.answer == "True" else "True"
        else:
            wrong = r.answer.replace(r.graph.idx_to_symbol[r.graph.target], r.graph.idx_to_symbol[r.graph.neg_target])
        assert not check_record(dataclasses.replace(r, answer=wrong)).ok


def test_concept_paths_of_the_cpu_variants_verify_and_broken_ones_do_not():
    from lrm_jax.data.generators.prontoqa import ProntoQAConfig, generate_prontoqa
    from lrm_jax.data.generators.prosqa import ProsQAConfig, generate_prosqa

    pros = generate_prosqa(ProsQAConfig(min_nodes=8, max_nodes=12, mean_parents=0.8, min_path=3, max_path=4, cot="concepts"), 40, seed=0)
    pronto = generate_prontoqa(ProntoQAConfig(min_hops=2, max_hops=3, n_distractor_properties=0, templates="every",
                                              cot="concepts"), 40, seed=0)
    for cot in ("nodes", "concepts_only"):
        other = generate_prosqa(ProsQAConfig(min_nodes=8, max_nodes=12, mean_parents=0.8, min_path=3, max_path=4, cot=cot), 10, seed=0)
        assert all(check_record(rec).ok for rec in other), cot
    for rec in pros + pronto:
        assert check_record(rec).ok, (rec, check_record(rec))
        skipped = dataclasses.replace(rec, steps=(rec.steps[0], *rec.steps[2:]))
        assert check_record(skipped).reason == "rule_not_in_question"
    rec = pros[0]
    entity = rec.steps[0].split()[0]
    foreign = next(c for c in rec.graph.idx_to_symbol if f"{entity} is a {c}." not in rec.question and c != entity)
    assert check_record(dataclasses.replace(rec, steps=(f"{entity} {foreign}", *rec.steps[1:]))).reason == "unsupported_fact"
    assert check_record(dataclasses.replace(rec, answer=other_answer(rec))).reason in ("answer_not_reached",)
    flipped = dataclasses.replace(pronto[0], answer="False" if pronto[0].answer == "True" else "True")
    assert check_record(flipped).reason == "answer_mismatch"


def test_generated_chains_are_split_and_checked():
    from lrm_jax.data.records import Graph, Record
    from lrm_jax.traces import check_generated

    graph = Graph(("Max", "yerpus", "lorpus", "vumpus", "dumpus", "gorpus"), ((0, 1), (1, 2), (0, 4), (4, 5)), 0, 2, 3)
    q = "Max is a yerpus. Max is a dumpus. Every yerpus is a lorpus. Every dumpus is a gorpus. Is Max a lorpus or vumpus?"
    rec = Record(q, ("Max yerpus", "lorpus"), "Max is a lorpus.", graph)
    verdict = {text: check_generated(rec, text).reason for text in (
        " Max yerpus lorpus ### Max is a lorpus.",  # valid
        " Max dumpus lorpus ### Max is a lorpus.",  # right answer through an invented edge
        " Max dumpus gorpus ### Max is a gorpus.",  # valid edges to a dead end
        " Max dumpus dumpus",
    )}
    assert list(verdict.values()) == [None, "rule_not_in_question", "answer_not_an_option", "no_answer"]
    pq = "Every wumpus is a tumpus. Every tumpus is not hot. Sally is a wumpus. True or false: Sally is not hot."
    pronto = Record(pq, ("wumpus", "tumpus", "not hot"), "True")
    assert check_generated(pronto, " wumpus tumpus not hot ### True").ok
    assert check_generated(pronto, " wumpus tumpus hot ### False").reason == "rule_not_in_question"


def other_answer(rec):
    g = rec.graph
    return rec.answer.replace(g.idx_to_symbol[g.target], g.idx_to_symbol[g.neg_target])


def test_gsm8k_checker_accepts_and_rejects():
    q = "Janet has 16 eggs. She eats three and bakes with 4. She sells half of the rest at $2 each."
    good = ("<<16-3-4=9>>", "<<9*2=18>>")
    from lrm_jax.data.records import Record

    rec = Record(q, good, "18")
    assert check_record(rec).ok
    assert check_record(dataclasses.replace(rec, steps=("<<16-3-4=8>>", "<<8*2=16>>"))).reason == "wrong_result"
    assert check_record(dataclasses.replace(rec, steps=("<<17-3-4=10>>", "<<10*2=20>>"), answer="20")).reason == "operand_not_found"
    assert check_record(dataclasses.replace(rec, steps=good[::-1])).reason == "operand_not_found"
    assert check_record(dataclasses.replace(rec, answer="19")).reason == "answer_mismatch"
    assert check_record(dataclasses.replace(rec, steps=("16 minus 7",))).reason == "unparseable_step"


def test_question_numbers_understand_words_and_percent():
    from fractions import Fraction

    nums = question_numbers("A dozen eggs cost $1,200.50; two-thirds of them, twice, at 30% off.")
    for v in (12, Fraction(120050, 100), 2, 3, Fraction(2, 3), 30, Fraction(3, 10), 100):
        assert Fraction(v) in nums


def run_cli(capsys, path):
    assert check_traces.main(["--data", str(path)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    return lines, json.loads(lines[-1])


def test_cli_reports_every_real_file(capsys):
    for name in ("prosqa_valid.json", "prontoqa_valid.json"):
        _, s = run_cli(capsys, shared_file(name))
        assert s["verified"] == s["records"] == s["parsed"] and s["failed"] == 0
    lines, s = run_cli(capsys, shared_file("gsm8k_valid.json"))
    assert s["records"] == 500 and s["parsed"] == 494
    assert s["verified"] + s["failed"] == 500 and s["failures"]["load: steps[0]"] == 6
    assert sum(s["failures"].values()) == s["failed"]
    assert any(line.startswith("record 89: load") for line in lines)


def test_cli_on_unreadable_file(capsys, tmp_path):
    assert check_traces.main(["--data", str(tmp_path / "none.json")]) == 2
    assert "file not found" in capsys.readouterr().err
