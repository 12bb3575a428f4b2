"""Blind search with verification on the logic tasks (ProsQA, ProntoQA): no gold trace used.

The arithmetic blind search (forward_chain.py) looks for computations among the top-k numbers;
here the candidates are the question's own concepts. A *path* is a walk up the question's is-a
rules from a concept the queried entity belongs to, every concept of it among the top-k of a
reasoning position, at non-decreasing positions, ending where the predicted answer follows:
- ProntoQA: at a concept with a rule about the queried property whose polarity gives the
  predicted True/False;
- ProsQA: at the predicted option.
The found path is written out as a trace ("Tom is a wumpus. Every wumpus is a zumpus. ...") and
checked by the trace checker of `lrm_jax.traces.logic`, which accepts only rules the question
states, applied in order, that derive the predicted answer.

Counterfactual verification, the logic analogue of editing a question's numbers: each concept
of the path is renamed in the question (every form: singular, plural, capitalised) to fresh
concept names. Renaming is an isomorphism, so the answer cannot change; if a thought position
really carries concept X, the renamed question must show the new name at that position at rank
at most `max_rank`. A concept passes when at least `required` of its `n_edits` renames do; the
trace is verified when every concept of it passes and the checker accepts it.

Among several paths the search keeps the shortest, then the one with the smallest sum of
10 * position + rank (as in the gold-trace search).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Sequence

from lrm_jax.data.generators.names import article, plural
from lrm_jax.traces.logic import ParsedQuestion, Pred, Rule, check_logic_trace, singular


@dataclasses.dataclass
class Node:
    concept: str
    position: int
    rank: int


@dataclasses.dataclass
class LogicPath:
    nodes: list[Node]
    end_rule: Rule | None  # ProntoQA: the property rule that gives the answer
    trace: list[str]  # the path written as trace steps
    checker_ok: bool
    checker_reason: str | None


def subject_concepts(q: ParsedQuestion) -> list[str]:
    return sorted(f.pred.name for f in q.facts if f.entity == q.query.entity and f.pred.positive and f.pred.name in q.concepts)


def _children(q: ParsedQuestion) -> dict[str, list[str]]:
    up: dict[str, list[str]] = {}
    for r in q.rules:
        if r.pred.positive and r.pred.name in q.concepts:
            up.setdefault(r.concept, []).append(r.pred.name)
    return {k: sorted(v) for k, v in up.items()}


def _end_rule(q: ParsedQuestion, concept: str, predicted: str) -> Rule | None | bool:
    """ProntoQA: the rule on `concept` about the queried property giving `predicted` (None if
    none does). ProsQA: True when `concept` is the predicted option."""
    query = q.query
    if query.options is not None:
        return concept == predicted
    for r in sorted(q.rules, key=lambda r: (r.concept, r.pred.name, r.pred.positive)):
        if r.concept == concept and r.pred.name == query.pred.name:
            answer = "True" if r.pred.positive == query.pred.positive else "False"
            if answer == predicted:
                return r
    return None


def predicted_target(q: ParsedQuestion, prediction: str) -> str | None:
    """What the path must reach: "True"/"False" (ProntoQA) or the option concept (ProsQA)."""
    p = prediction.strip()
    if q.query.options is None:
        return p if p in ("True", "False") else None
    words = p.rstrip(".").split()
    if not words:
        return None
    for name in (words[-1].lower(), singular(words[-1])):
        if name in q.query.options:
            return name
    return None


def find_path(question: str, q: ParsedQuestion, table: Sequence[dict[str, int]], n_reasoning: int, prediction: str,
              max_path: int = 12) -> LogicPath | None:
    """Breadth-first over paths (shortest first); each node placed at its earliest position at
    or after the previous node's. Returns the best path or None."""
    target = predicted_target(q, prediction)
    if target is None:
        return None
    up = _children(q)

    def place(concept: str, start: int) -> Node | None:
        for p in range(start, n_reasoning):
            r = table[p].get(concept)
            if r is not None:
                return Node(concept, p, r)
        return None

    frontier = [[n] for c in subject_concepts(q) if (n := place(c, 0)) is not None]
    for _ in range(max_path):
        done = []
        for path in frontier:
            end = _end_rule(q, path[-1].concept, target)
            if end:
                done.append((path, end if isinstance(end, Rule) else None))
        if done:
            path, rule = min(done, key=lambda d: sum(10 * n.position + n.rank for n in d[0]))
            return _written(question, q, path, rule, target)
        nxt = []
        for path in frontier:
            seen = {n.concept for n in path}
            for c in up.get(path[-1].concept, []):
                if c not in seen and (n := place(c, path[-1].position)) is not None:
                    nxt.append(path + [n])
        if not nxt:
            return None
        frontier = nxt
    return None


def _rule_text(q: ParsedQuestion, rule: Rule) -> str:
    neg = "" if rule.pred.positive else "not "
    obj = rule.pred.name
    if obj in q.concepts:
        obj = f"{article(obj)} {obj}"
    return f"Every {rule.concept} is {neg}{obj}."


def _written(question: str, q: ParsedQuestion, path: list[Node], end_rule: Rule | None, target: str) -> LogicPath:
    entity = q.query.entity
    steps = []
    for a, b in zip(path, path[1:]):
        steps.append(f"{entity} is {article(a.concept)} {a.concept}. {_rule_text(q, Rule(a.concept, Pred(b.concept)))}")
    last = path[-1].concept
    if end_rule is not None:
        steps.append(f"{entity} is {article(last)} {last}. {_rule_text(q, end_rule)}")
        steps.append(f"{entity} is {'' if end_rule.pred.positive else 'not '}{end_rule.pred.name}.")
        answer = target
    else:
        steps.append(f"{entity} is {article(last)} {last}.")
        answer = steps[-1]
    check = check_logic_trace(question, steps, answer)
    return LogicPath(path, end_rule, steps, check.ok, check.detail or check.reason)


def rename(question: str, old: str, new: str) -> str:
    """Every form of concept `old` (singular, plural, capitalised) becomes that form of `new`."""
    forms = sorted({old, plural(old)}, key=len, reverse=True)

    def sub(m: re.Match) -> str:
        word = m.group(0)
        out = plural(new) if word.lower() == plural(old) and plural(old) != old else new
        return out.capitalize() if word[0].isupper() else out

    return re.sub(r"\b(" + "|".join(re.escape(f) for f in forms) + r")\b", sub, question, flags=re.IGNORECASE)


def fresh_names(q: ParsedQuestion, old: str, pool: Sequence[str], n: int, usable) -> list[str]:
    """Up to n concept names from `pool` that the question does not use, taking the same article
    as `old` (the edited text stays grammatical) and accepted by `usable` (single known token)."""
    out = []
    for name in pool:
        if name not in q.concepts and article(name) == article(old) and usable(name):
            out.append(name)
            if len(out) == n:
                break
    return out


def node_passes(node: Node, new_names: Sequence[str], edited_tables: Sequence[Sequence[dict[str, int]]],
                max_rank: int) -> int:
    """How many renames show the new name at the node's position within rank `max_rank` (1 = top-1)."""
    return sum(1 for name, table in zip(new_names, edited_tables) if table[node.position].get(name, max_rank) < max_rank)
