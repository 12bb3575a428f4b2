"""Gold-trace search on a top-k projection grid (paper section 3.2), and its logic-task analogue.

A grid gives, per position, the ranks of the values it shows: `{value key: best rank}`
(see `value_key`). Positions 0..R-1 are the reasoning positions; the final result must be in
the top-k at the answer position. The search runs backwards from the final step:

- a leaf operand (not produced by an earlier step) may sit at any reasoning position, or, with
  `question_numbers`, come from the question (position -1, rank 0);
- an intermediate operand (the result of an earlier step) must sit at some position p, and its
  own operands strictly before p, recursively.

Counting and choosing the best tree is a dynamic programme over (step, latest position), so no
combination cap is needed (the paper falls back to a greedy choice above 10,000 combinations).
The best tree minimises (question-sourced nodes, sum of 10 * position + rank).
"""

from __future__ import annotations

import dataclasses
import functools
import random
import re
from fractions import Fraction
from typing import Iterable, Sequence

from lrm_jax.traces.arith import ArithParseError, parse_step


@dataclasses.dataclass(frozen=True)
class Step:
    operands: tuple[str, ...]
    result: str


@dataclasses.dataclass
class SearchResult:
    found: bool
    n_trees: int
    best: list[tuple[str, int, int]]  # (value, position, rank); position -1 = the question
    impossible: str | None = None  # why the trace cannot be projected at all ("VP-impossible")


def value_key(value: str | Fraction) -> str | None:
    """The single-token stand-in of a number: its first non-zero digits ("0.5" -> "5",
    "16.00" -> "16"); None for fractions and non-numbers (never projectable)."""
    if isinstance(value, Fraction):
        if value.denominator != 1:
            s = str(float(value))
        else:
            s = str(value.numerator)
    else:
        s = str(value).strip().replace(",", "").replace("$", "")
    if not re.fullmatch(r"-?\d+(\.\d+)?", s):
        return None
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    s = s.replace("-", "").replace(".", "").lstrip("0")
    return s or "0"


def token_key(token: str) -> str:
    return token.strip().lower()


def rank_table(tokens_per_position: Sequence[Sequence[str]]) -> list[dict[str, int]]:
    """Top-k token strings per position -> {key: best rank} per position."""
    table = []
    for row in tokens_per_position:
        ranks: dict[str, int] = {}
        for r, t in enumerate(row):
            key = token_key(t)
            if key and key not in ranks:
                ranks[key] = r
        table.append(ranks)
    return table


def parse_trace(steps: Iterable[str]) -> list[Step] | None:
    """Calculator steps `<<a*b=c>>` -> Steps (value keys); None if a step does not parse."""
    out = []
    for s in steps:
        try:
            _, operands, result = parse_step(s)
        except ArithParseError:
            return None
        keys = [value_key(o) for o in operands]
        out.append(Step(tuple(k if k is not None else "?" for k in keys), value_key(result) or "?"))
    return out


def impossible_reason(trace: Sequence[Step]) -> str | None:
    bad = [s.result for s in trace if s.result == "?"]
    return "a step result is a fraction or not a number" if bad else None


def search(
    table: Sequence[dict[str, int]],
    n_reasoning: int,
    answer_position: int,
    trace: Sequence[Step],
    question_numbers: set[str] | None = None,
    require_answer: bool = True,
) -> SearchResult:
    """Backtracking search for `trace` in the grid (see module docstring)."""
    why = impossible_reason(trace)
    if why or not trace:
        return SearchResult(False, 0, [], why or "empty trace")
    producer: dict[str, int] = {}
    for j, s in enumerate(trace[:-1]):
        producer[s.result] = j  # the latest earlier step producing a value

    def rank(value, pos):
        return table[pos].get(value)

    @functools.lru_cache(maxsize=None)
    def leaf(value: str, before: int):
        """(count, best score, best nodes) for a leaf operand anywhere in [0, before)."""
        count, best = 0, None
        for p in range(before):
            r = rank(value, p)
            if r is not None:
                count += 1
                cand = ((0, 10 * p + r), [(value, p, r)])
                best = cand if best is None or cand[0] < best[0] else best
        if question_numbers is not None and value in question_numbers:
            count += 1
            cand = ((1, -10), [(value, -1, 0)])
            best = cand if best is None or cand[0] < best[0] else best
        return count, best

    @functools.lru_cache(maxsize=None)
    def placed(j: int, before: int):
        """Step j's result at some p < before, with its operands strictly before p."""
        count, best = 0, None
        for p in range(min(before, n_reasoning)):
            r = rank(trace[j].result, p)
            if r is None:
                continue
            c, nodes, score = 1, [(trace[j].result, p, r)], (0, 10 * p + r)
            for o in trace[j].operands:
                oc, ob = _operand_before(o, p, j)
                c *= oc
                if not oc:
                    break
                nodes += ob[1]
                score = (score[0] + ob[0][0], score[1] + ob[0][1])
            if c:
                count += c
                if best is None or score < best[0]:
                    best = (score, nodes)
        return count, best

    def _operand_before(value, p, user):
        j = producer.get(value)
        if j is not None and j < user:
            return placed(j, p)
        return leaf(value, p)

    final = trace[-1]
    root_score, root_nodes = (0, 0), []
    if require_answer:
        r = rank(final.result, answer_position)
        if r is None:
            return SearchResult(False, 0, [])
        root_score, root_nodes = (0, 10 * answer_position + r), [(final.result, answer_position, r)]
    count = 1
    for o in final.operands:
        j = producer.get(o)
        oc, ob = placed(j, n_reasoning) if j is not None else leaf(o, n_reasoning)
        count *= oc
        if not oc:
            return SearchResult(False, 0, [])
        root_nodes += ob[1]
        root_score = (root_score[0] + ob[0][0], root_score[1] + ob[0][1])
    return SearchResult(True, count, root_nodes)


def random_traces(own: Sequence[Sequence[Step]], pool: Sequence[Sequence[Step]], n: int = 5,
                  rng: random.Random | None = None) -> list[list[Step]]:
    """Up to n traces of other instances with as many steps as the primary gold trace and at
    least one result outside every gold trace of this instance (the paper's null, seed 42)."""
    rng = rng or random.Random(42)
    results = {s.result for t in own for s in t}
    length = len(own[0])
    candidates = [list(t) for t in pool if len(t) == length and any(s.result not in results for s in t)]
    rng.shuffle(candidates)
    return candidates[:n]


def path_search(table: Sequence[dict[str, int]], n_reasoning: int, answer_position: int,
                entities: Sequence[str], answer: str, require_answer: bool = True) -> SearchResult:
    """Logic tasks: the gold path's entities at non-decreasing reasoning positions, in order,
    and the answer at the answer position. Counts the placements; the best minimises 10p + r."""
    ents = [token_key(e) for e in entities]
    # ways[i][p]: (count, best) for entities[i:] placed at positions >= p
    ways = [[(0, None)] * (n_reasoning + 1) for _ in range(len(ents) + 1)]
    ways[len(ents)] = [(1, (0, []))] * (n_reasoning + 1)
    for i in range(len(ents) - 1, -1, -1):
        for p in range(n_reasoning - 1, -1, -1):
            count, best = ways[i][p + 1]
            r = table[p].get(ents[i])
            if r is not None and ways[i + 1][p][0]:
                c2, b2 = ways[i + 1][p]
                cand = (10 * p + r + b2[0], [(ents[i], p, r)] + b2[1])
                count += c2
                best = cand if best is None or cand[0] < best[0] else best
            ways[i][p] = (count, best)
    count, best = ways[0][0]
    nodes = best[1] if best else []
    if require_answer:
        r = table[answer_position].get(token_key(answer))
        if r is None:
            return SearchResult(False, 0, [])
        nodes = nodes + [(token_key(answer), answer_position, r)]
    return SearchResult(count > 0, count, nodes)
