"""Blind search on logic questions: planted concept paths are found and checked, others are not;
concept renames keep the question's logic."""

import pytest

from tests.conftest import shared_file
from lrm_jax.data.loaders import load_records
from lrm_jax.studies.backtrack import rank_table
from lrm_jax.studies.logic_search import Node, find_path, fresh_names, node_passes, rename
from lrm_jax.traces.logic import check_logic_trace, parse_question

# Subject in wumpus; wumpus -> zumpus -> not sour (answer False for "is sour"). Distractors:
# a child of zumpus (gorpus), and a dumpus chain carrying sour positively, unreachable.
PRONTO = ("Every wumpus is a zumpus. Zumpuses are not sour. Every gorpus is a zumpus. Each dumpus is sour. "
          "Every zumpus is small. Rex is a wumpus. True or false: Rex is sour.")
PROS = ("Every lempus is a scrompus. Every scrompus is a terpus. Every lempus is a brimpus. Tom is a lempus. "
        "Is Tom a terpus or brimpus?")


def grid(rows):
    return rank_table([r + ["x"] * (3 - len(r)) for r in rows])


def test_planted_prontoqa_path_is_found_and_passes_the_checker():
    q = parse_question(PRONTO)
    table = grid([[" wumpus"], [" gorpus", " zumpus"], [" sour"], ["x"]])
    path = find_path(PRONTO, q, table, 4, "False")
    assert path is not None and path.checker_ok, path
    assert [(n.concept, n.position, n.rank) for n in path.nodes] == [("wumpus", 0, 0), ("zumpus", 1, 1)]
    assert path.trace[-1] == "Rex is not sour."
    assert check_logic_trace(PRONTO, path.trace, "False").ok


def test_no_path_for_the_other_answer_or_out_of_order_concepts():
    q = parse_question(PRONTO)
    table = grid([[" wumpus"], [" zumpus"], ["x"], ["x"]])
    assert find_path(PRONTO, q, table, 4, "True") is None  # the chain derives "not sour"
    assert find_path(PRONTO, q, grid([[" zumpus"], [" wumpus"], ["x"], ["x"]]), 4, "False") is None
    assert find_path(PRONTO, q, grid([[" wumpus"], ["x"], ["x"], ["x"]]), 4, "False") is None
    assert find_path(PRONTO, q, table, 4, "maybe") is None


def test_prosqa_path_ends_at_the_predicted_option():
    q = parse_question(PROS)
    table = grid([[" lempus"], [" scrompus", " brimpus"], [" terpus"]])
    path = find_path(PROS, q, table, 3, "Tom is a terpus.")
    assert [n.concept for n in path.nodes] == ["lempus", "scrompus", "terpus"] and path.checker_ok
    short = find_path(PROS, q, table, 3, "Tom is a brimpus.")
    assert [n.concept for n in short.nodes] == ["lempus", "brimpus"] and short.checker_ok


def test_rename_changes_every_form_and_keeps_the_answer():
    out = rename(PRONTO, "zumpus", "tumpus")
    assert "zumpus" not in out.lower()
    assert "Every wumpus is a tumpus." in out and "Tumpuses are not sour." in out and "Every tumpus is small." in out
    q = parse_question(out)
    assert find_path(out, q, grid([[" wumpus"], [" tumpus"], ["x"]]), 3, "False").checker_ok


def test_fresh_names_and_passes():
    q = parse_question(PRONTO)
    names = fresh_names(q, "zumpus", ["zumpus", "impus", "tumpus", "lorpus", "kerpus"], 2, lambda n: n != "lorpus")
    assert names == ["tumpus", "kerpus"]  # used, vowel-initial and unusable names skipped
    node = Node("zumpus", 1, 0)
    tables = [grid([["x"], [" tumpus"]]), grid([["x"], ["x", " kerpus"]])]
    assert node_passes(node, names, tables, max_rank=1) == 1
    assert node_passes(node, names, tables, max_rank=2) == 2


@pytest.mark.parametrize("name", ["prontoqa_valid.json", "prosqa_valid.json"])
def test_gold_path_grid_is_found_on_the_real_validation_files(name):
    """A grid holding exactly the gold path's concepts, one per position, gives back that path,
    and its written trace passes the checker, on every record of the real files."""
    records = load_records(shared_file(name)).records
    for rec in records:
        q = parse_question(rec.question)
        gold = []
        for sent in " ".join(rec.steps).split("."):
            w = sent.split()
            if w and w[-1].lower() in q.concepts and w[-1].lower() not in gold:
                gold.append(w[-1].lower())
        table = [{c: 0} for c in gold] + [{}]
        path = find_path(rec.question, q, table, len(table), rec.answer)
        assert path is not None and path.checker_ok, (name, rec.question, path)
        assert [n.concept for n in path.nodes] == gold


class _Grid:
    def __init__(self, rows):
        self.rows, self.n_reasoning = rows, len(rows)

    def tokens(self, tokenizer, layer=-1):
        return self.rows


def test_analyse_logic_verifies_only_when_renames_move_the_thoughts(monkeypatch):
    """The glue of the CLI: planted gold paths are found; with renamed questions whose
    projections follow the rename every path is verified, with projections that ignore it none."""
    import types

    from analysis import search_logic
    from lrm_jax.data.generators import GENERATORS, ProntoQAConfig
    from lrm_jax.tokenizer import WordTokenizer
    from lrm_jax.data.generators.names import CONCEPTS

    records = GENERATORS["prontoqa"][1](ProntoQAConfig(min_hops=2, max_hops=2, templates="every"), 6, 3)
    tok = WordTokenizer.build([r.question for r in records] + [" ".join(r.steps) for r in records]
                              + [" " + c for c in CONCEPTS])
    run = types.SimpleNamespace(tokenizer=tok, layout=types.SimpleNamespace(n_prefix=8, n_latent=4))
    args = types.SimpleNamespace(top_k=3, batch_size=8, no_progress=True)

    def planted(run, recs, **kw):
        grids = [_Grid([[" " + c, "x", "y"] for c in r.extra["chain_concepts"]] + [["x"]] * 3) for r in recs]
        return grids, [r.answer for r in recs]

    original = {id(r.extra): parse_question(r.question).concepts for r in records}  # edited rows share `extra`

    def follow(run, rows, columns, **kw):  # the renamed concept's new name top-1 at every position
        new = [sorted(parse_question(r.question).concepts - original[id(r.extra)]) for r in rows]
        return [[[" " + n[0], "x"]] * len(columns) for n in new]

    def ignore(run, rows, columns, **kw):
        return [[["x"]] * len(columns) for _ in rows]

    monkeypatch.setattr(search_logic, "project", planted)
    for fake, expect in ((follow, True), (ignore, False)):
        monkeypatch.setattr(search_logic, "project_questions", fake)
        rows = search_logic.analyse_logic(run, records, args, None, required=(1, 2, 3))
        assert all(r["correct"] and r["r1"]["found"] and r["checker"] == "valid" for r in rows)
        assert all(r["n_edits"] == 3 * 2 for r in rows)  # 3 renames per concept of a 2-concept path
        assert all(r[f"r{q}"]["verified"] is expect for r in rows for q in (1, 2, 3))
