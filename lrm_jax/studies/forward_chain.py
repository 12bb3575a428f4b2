"""Study 3 (paper section 4): a verified reasoning trace without the gold trace.

Per instance, on the final-layer top-k grid at the chain positions (reasoning positions, then
the answer position):

1. Hypothesise steps. For result position j (from d on; d = 1 COCONUT, 2 CODI), the result
   is the top-1 integer there (skipped if it is a question number: a copy). Operands come from
   the integers in the top-k at i = j - d, top-1 integers of earlier positions, results of
   steps selected before, and question numbers; 2- and 3-operand operations (exact integer
   arithmetic, trivial identities excluded) that give the result are candidates, ordered by
   the worst operand source, then 2 before 3 operands, then mean operand rank.
2. Verify by counterfactual edits. Operands trace (through selected steps) to the question's
   template variables. n = 3 edits round-robin over those variables, each a new single-token
   value that changes the step's expected result; the edited question is re-run and the edit
   passes if the expected new result is the top-1 integer at the same position (max_rank 1).
   A step is verified with at least r passes (r in 1, 2, 3). The first candidate that verifies
   is selected; if none does, the highest-priority one is kept, unverified.
3. Assemble backwards from the predicted answer: the selected step whose result is the answer
   (at the answer position, else the earliest), plus, recursively, the steps that produced its
   operands. Found = such a trace exists; verified = found and all its steps verified.

Batching: every instance's edits are fixed before the search (the first `values_per_var` valid
values of each template variable), so all edited questions run in one batched projection;
the search itself is cheap Python over the precomputed grids. Differences from the paper's
code: no fallback combination of intermediates when no step gives the answer; candidates
per position are capped (`max_candidates`); edits come from our generator's templates (GSM8k
text would need a template extractor, not built).
"""

from __future__ import annotations

import dataclasses
import itertools
from fractions import Fraction
from typing import Sequence

SOURCE_RANK = {"verified_intermediate": 0, "topk_and_question": 1, "question": 2, "topk": 3,
               "unverified_intermediate": 4, "earlier_top1": 6}
TWO = ["x0+x1", "x0-x1", "x0*x1", "x0/x1"]
THREE = ["x0+x1+x2", "x0*x1*x2", "x0+x1-x2", "x0-x1-x2", "x0*x1/x2", "x0/x1/x2", "x0+x1*x2", "x0-x1*x2",
         "x0*x1+x2", "x0*x1-x2", "x0+x1/x2", "x0-x1/x2", "x0/x1+x2", "x0/x1-x2"]


@dataclasses.dataclass(frozen=True)
class Operand:
    value: int
    source: str
    position: int  # -1 = the question
    rank: int
    step: int | None = None  # index of the selected step that produced it


@dataclasses.dataclass
class Candidate:
    position: int  # chain index of the result
    formula: str
    operands: tuple[Operand, ...]
    result: int
    passes: int = 0
    n_edits: int = 0

    @property
    def priority(self):
        worst = max(SOURCE_RANK[o.source] for o in self.operands)
        return (worst, len(self.operands), sum(o.rank for o in self.operands) / len(self.operands))

    def text(self) -> str:
        expr = self.formula
        for k, o in enumerate(self.operands):
            expr = expr.replace(f"x{k}", str(o.value))
        return f"{expr}={self.result}"


def evaluate(formula: str, values: Sequence[int | Fraction]) -> Fraction | None:
    xs = [Fraction(v) for v in values]
    try:
        return eval(formula, {"__builtins__": {}}, {f"x{k}": x for k, x in enumerate(xs)})  # noqa: S307 (internal formulas)
    except ZeroDivisionError:
        return None


def _trivial(formula: str, vals: Sequence[int], result: int) -> bool:
    if len(vals) == 3 and all(v == result for v in vals):
        return True
    for k, v in enumerate(vals):
        name = f"x{k}"
        if v == 1 and (f"*{name}" in formula or f"{name}*" in formula or f"/{name}" in formula):
            return True
        if v == 0 and (f"+{name}" in formula or f"{name}+" in formula or f"-{name}" in formula):
            return True
    if len(vals) == 3 and formula in ("x0+x1-x2", "x0*x1/x2") and vals[2] in (vals[0], vals[1]):
        return True
    return False


def candidates_for(result: int, pool: Sequence[Operand], max_candidates: int) -> list[Candidate]:
    """Every 2-/3-operand operation over the pool giving `result`, best priority first. The
    pool is cut to its best operands (12 for pairs, 7 for triples) to bound the enumeration."""
    pool = sorted(pool, key=lambda o: (SOURCE_RANK[o.source], o.rank))
    out = []
    for n, forms, size in ((2, TWO, 12), (3, THREE, 7)):
        sub = pool[:size]
        for ops in itertools.permutations(range(len(sub)), n):
            vals = [sub[o].value for o in ops]
            for f in forms:
                v = evaluate(f, vals)
                if v is not None and v == result and not _trivial(f, vals, result):
                    out.append(Candidate(-1, f, tuple(sub[o] for o in ops), result))
    for o in pool[:12]:  # self pairs x+x, x*x
        for f in ("x0+x0", "x0*x0"):
            if o.value not in (0, 1) and evaluate(f, [o.value]) == result:
                out.append(Candidate(-1, f, (o,), result))
    out.sort(key=lambda c: c.priority)
    seen, unique = set(), []
    for c in out:
        key = (c.formula, tuple(o.value for o in c.operands))
        if key not in seen:
            seen.add(key)
            unique.append(c)
    return unique[:max_candidates]


@dataclasses.dataclass
class InstanceGrids:
    """Top-1 integer and integer ranks per chain position, for the original and edited questions."""

    ints: list[dict[int, int]]  # per chain position: {integer: rank}
    top1: list[int | None]
    question_values: dict[str, int]  # template variable -> value
    edits: dict[tuple[str, int], list[int | None]]  # (var, new value) -> top-1 integer per position
    answer_index: int  # chain index of the answer position


def expected_after_edit(c: Candidate, steps: list[Candidate], var_of: dict[int, str], env: dict[str, int]) -> Fraction | None:
    vals = []
    for o in c.operands:
        if o.step is not None:
            v = expected_after_edit(steps[o.step], steps, var_of, env)
        elif o.value in var_of:
            v = Fraction(env[var_of[o.value]])
        else:
            v = Fraction(o.value)  # a constant: unchanged by edits
        if v is None:
            return None
        vals.append(v)
    return evaluate(c.formula, vals)


def leaves(c: Candidate, steps: list[Candidate], var_of: dict[int, str]) -> list[str]:
    out = []
    for o in c.operands:
        names = leaves(steps[o.step], steps, var_of) if o.step is not None else ([var_of[o.value]] if o.value in var_of else [])
        out += [n for n in names if n not in out]
    return out


def verify(c: Candidate, steps: list[Candidate], g: InstanceGrids, n_edits: int = 3) -> None:
    """Fills c.passes / c.n_edits from the precomputed edited projections."""
    var_of = {v: k for k, v in sorted(g.question_values.items(), reverse=True)}  # value -> first variable
    names = leaves(c, steps, var_of)
    c.passes = c.n_edits = 0
    if not names:
        return
    original = Fraction(c.result)
    tried: dict[str, int] = {n: 0 for n in names}
    for e in range(n_edits):
        var = names[e % len(names)]
        options = [val for (v, val) in g.edits if v == var]
        while tried[var] < len(options):
            new = options[tried[var]]
            tried[var] += 1
            env = dict(g.question_values)
            env[var] = new
            exp = expected_after_edit(c, steps, var_of, env)
            if exp is None or exp == original or exp.denominator != 1:
                continue
            c.n_edits += 1
            c.passes += g.edits[(var, new)][c.position] == int(exp)
            break
    if c.n_edits < n_edits:
        c.passes = 0  # not enough valid edits: unverified


def chain(g: InstanceGrids, required: int, offset: int = 1, max_candidates: int = 40) -> list[tuple[Candidate, bool]]:
    """Phases 1-2: the selected (candidate, verified) per result position, left to right."""
    qvals = set(g.question_values.values())
    selected: list[Candidate] = []
    verified: list[bool] = []
    for j in range(offset, len(g.top1)):
        result = g.top1[j]
        if result is None or result in qvals:
            continue
        i = j - offset
        pool = [Operand(v, "topk_and_question" if v in qvals else "topk", i, r) for v, r in g.ints[i].items()]
        pool += [Operand(g.top1[p], "earlier_top1", p, 0) for p in range(1, i) if g.top1[p] is not None]
        pool += [Operand(s.result, "verified_intermediate" if ok else "unverified_intermediate", s.position, 0, k)
                 for k, (s, ok) in enumerate(zip(selected, verified))]
        pool += [Operand(v, "question", -1, 5) for v in sorted(qvals)]
        pool = list({(o.value, o.source, o.step): o for o in pool}.values())
        cands = candidates_for(result, pool, max_candidates)
        if not cands:
            continue
        chosen, ok = cands[0], False
        for c in cands:
            c.position = j
            verify(c, selected, g)
            if c.passes >= required:
                chosen, ok = c, True
                break
        chosen.position = j
        selected.append(chosen)
        verified.append(ok)
    return list(zip(selected, verified))


def assemble(steps: list[tuple[Candidate, bool]], answer: int | None, answer_index: int):
    """Phase 3: the trace ending in the predicted answer; (found, verified, step texts)."""
    if answer is None:
        return False, False, []
    ends = [k for k, (c, _) in enumerate(steps) if c.result == answer]
    if not ends:
        return False, False, []
    at_answer = [k for k in ends if steps[k][0].position == answer_index]
    root = at_answer[0] if at_answer else ends[0]
    order, todo = [], [root]
    while todo:
        k = todo.pop()
        if k in order:
            continue
        order.append(k)
        todo += [o.step for o in steps[k][0].operands if o.step is not None]
    order.sort()
    return True, all(steps[k][1] for k in order), [steps[k][0].text() for k in order]
