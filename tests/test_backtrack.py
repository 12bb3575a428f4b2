"""Gold-trace search on hand-built top-k grids: planted traces are found, others are not."""

from lrm_jax.studies.backtrack import Step, parse_trace, path_search, random_traces, rank_table, search, value_key

# Trace: 3 + 4 = 7, 7 * 2 = 14. Reasoning positions 0..3, answer position 4.
TRACE = parse_trace(["<<3+4=7>>", "<<7*2=14>>"])


def grid(rows):
    return rank_table([r + ["x"] * (3 - len(r)) for r in rows])


def test_value_keys_follow_the_paper():
    assert [value_key(v) for v in ("0.5", "16.00", "1,200", "7", "3/2", "125%")] == ["5", "16", "1200", "7", None, None]
    assert TRACE == [Step(("3", "4"), "7"), Step(("7", "2"), "14")]


def test_planted_trace_is_found_with_its_positions():
    table = grid([[" 3", " 4"], ["4"], [" 7"], [" 2"], [" 14", " 15"]])
    res = search(table, 4, 4, TRACE)
    assert res.found and res.n_trees == 2  # 4 at position 0 or 1, both before 7 at 2
    best = {v: (p, r) for v, p, r in res.best}
    assert best["7"] == (2, 0) and best["14"] == (4, 0) and best["3"] == (0, 0) and best["2"] == (3, 0)


def test_intermediate_operands_must_come_before_it():
    # 3 only after the 7: the intermediate has no operand before it.
    table = grid([["4"], ["7"], ["3"], ["2"], ["14"]])
    assert not search(table, 4, 4, TRACE).found
    # ...unless it may come from the question.
    res = search(table, 4, 4, TRACE, question_numbers={"3", "4", "2"})
    assert res.found and any(p == -1 and v == "3" for v, p, _ in res.best)


def test_answer_must_be_at_the_answer_position_unless_lenient():
    table = grid([["3", "4"], ["7"], ["2"], ["x"], ["13"]])
    assert not search(table, 4, 4, TRACE).found
    assert search(table, 4, 4, TRACE, require_answer=False).found


def test_missing_value_means_not_found_and_fractions_are_impossible():
    table = grid([["3"], ["7"], ["2"], ["x"], ["14"]])  # 4 never shows
    assert not search(table, 4, 4, TRACE).found
    frac = search(table, 4, 4, [Step(("3", "2"), "?")])
    assert not frac.found and frac.impossible


def test_random_baseline_draws_same_length_other_traces_seeded():
    pool = [parse_trace([f"<<{a}+1={a + 1}>>", f"<<{a + 1}*2={2 * a + 2}>>"]) for a in range(10)] + [parse_trace(["<<1+1=2>>"])]
    a = random_traces([TRACE], pool)
    b = random_traces([TRACE], pool)
    assert a == b and len(a) == 5 and all(len(t) == 2 for t in a)


def test_logic_path_search_needs_order():
    table = grid([["rex"], ["wumpus"], ["zumpus"], ["x"], ["true"]])
    assert path_search(table, 4, 4, ["wumpus", "zumpus"], "True").found
    assert not path_search(table, 4, 4, ["zumpus", "wumpus"], "True").found
    assert not path_search(table, 4, 4, ["wumpus", "zumpus"], "False").found


def test_gold_entities_keep_words_as_written_and_are_found_on_a_concept_grid():
    from analysis.decode import gold_entities

    assert gold_entities(["tumpus", "fompus", "not luminous"]) == ["tumpus", "fompus", "luminous"]
    assert gold_entities(["Stella is a tumpus.", "Every tumpus is a fompus."]) == ["tumpus", "fompus"]
    assert gold_entities(["Tumpuses are fompuses.", "Fompuses are not cold."]) == ["fompuses", "cold"]
    # top-k rows of a CODI model that writes the chain in its thoughts (<bot>, 3 thoughts, answer)
    table = rank_table([[" tumpus", " kerpus"], [" fompus", " welpus"], [" not", " luminous"], [" luminous"], [" True", " False"]])
    assert path_search(table, 4, 4, gold_entities(["tumpus", "fompus", "not luminous"]), "True").found
