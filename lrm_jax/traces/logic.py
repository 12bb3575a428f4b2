"""Forward-chaining checker for ProsQA- and ProntoQA-style reasoning traces.

The question is parsed into facts about named entities ("Tom is a terpus.", "Alex is not
happy.") and rules about concepts ("Every terpus is a brimpus.", "Tumpuses are not floral.").
Both kinds are one shape: a predicate (a concept or an adjective) with a polarity; a rule maps a
concept to a predicate. A trace is valid when, sentence by sentence:
- a fact it states is already known (from the question or derived by an earlier step);
- a rule it states appears in the question and its antecedent already holds for the queried
  entity, which derives the consequent for that entity;
and at the end the answer holds: ProsQA "X is a Y." must be derived and be one of the two
options; ProntoQA True/False must equal whether the derived polarity matches the query.

Traces written as the chain's concepts (`cot: concepts`: "Max yerpus", "lorpus" for ProsQA;
"rorpus", "zhorpus", "not mean" for ProntoQA) are checked as a path: the first concept must be a
fact of the queried entity (its name may lead the step), and each later one must follow from the
one before by a rule of the question.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Iterable

from lrm_jax.traces.result import CheckResult

_SENT_SPLIT = re.compile(r"(?<=[.?!])\s+")
_ARTICLES = ("a", "an")


class ParseError(ValueError):
    pass


@dataclasses.dataclass(frozen=True)
class Pred:
    name: str
    positive: bool = True


@dataclasses.dataclass(frozen=True)
class Fact:
    entity: str
    pred: Pred


@dataclasses.dataclass(frozen=True)
class Rule:
    concept: str
    pred: Pred


@dataclasses.dataclass(frozen=True)
class Query:
    """ProntoQA: `pred` is asked True/False. ProsQA: `options` are the two candidate concepts."""

    entity: str
    pred: Pred | None = None
    options: tuple[str, str] | None = None


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENT_SPLIT.split(text.strip()) if s.strip()]


def singular(word: str) -> str:
    """Fictional-ontology plurals: tumpuses -> tumpus, cats -> cat."""
    w = word.lower()
    if w.endswith("uses") or w.endswith("sses") or w.endswith("xes") or w.endswith("ches") or w.endswith("shes"):
        return w[:-2]
    if w.endswith("s") and not w.endswith("ss"):
        return w[:-1]
    return w


def _predicate(words: list[str], concepts: set[str], plural: bool) -> Pred:
    """Parses "[not] [a|an] X" (singular) or "[not] Xs" (plural) into a predicate."""
    positive = True
    if words and words[0] == "not":
        positive, words = False, words[1:]
    if len(words) == 2 and words[0] in _ARTICLES:
        return Pred(words[1].lower(), positive)
    if len(words) != 1:
        raise ParseError("expected one predicate word")
    w = words[0].lower()
    if plural:
        s = singular(w)
        if s in concepts or w.endswith("uses"):
            return Pred(s, positive)
    return Pred(w, positive)  # adjective (property)


def parse_sentence(sentence: str, concepts: set[str]):
    """Returns a Fact, Rule or Query; raises ParseError for anything else."""
    s = sentence.rstrip(".?! ")
    words = s.split()
    if len(words) >= 4 and words[:3] == ["True", "or", "false:"]:
        inner = parse_sentence(" ".join(words[3:]), concepts)
        if not isinstance(inner, Fact):
            raise ParseError(f"query is not about an entity: {sentence!r}")
        return Query(inner.entity, pred=inner.pred)
    if len(words) >= 5 and words[0] == "Is" and "or" in words:
        # "Is Tom a lempus or scrompus?"
        entity, rest = words[1], words[2:]
        if rest[0] in _ARTICLES:
            rest = rest[1:]
        i = rest.index("or")
        if i != 1 or len(rest) != 3:
            raise ParseError(f"unrecognised question {sentence!r}")
        return Query(entity, options=(rest[0].lower(), rest[2].lower()))
    if len(words) >= 3 and words[0] in ("Every", "Each") and words[2] == "is":
        return Rule(words[1].lower(), _predicate(words[3:], concepts, plural=False))
    if len(words) >= 3 and words[1] == "are":
        return Rule(singular(words[0]), _predicate(words[2:], concepts, plural=True))
    if len(words) >= 3 and words[1] == "is":
        return Fact(words[0], _predicate(words[2:], concepts, plural=False))
    raise ParseError(f"unrecognised sentence {sentence!r}")


def _concept_vocabulary(texts: Iterable[str]) -> set[str]:
    """Concept names seen in unambiguous positions (after an article, Each/Every, plural subject)."""
    concepts = set()
    for text in texts:
        for sent in sentences(text):
            words = sent.rstrip(".?!").split()
            for i, w in enumerate(words[:-1]):
                if w in _ARTICLES or w in ("Every", "Each"):
                    concepts.add(words[i + 1].lower())
            if len(words) >= 3 and words[1] == "are":
                concepts.add(singular(words[0]))
    return concepts


@dataclasses.dataclass
class ParsedQuestion:
    facts: set[Fact]
    rules: set[Rule]
    query: Query
    concepts: set[str]


def parse_question(question: str, extra_texts: Iterable[str] = ()) -> ParsedQuestion:
    concepts = _concept_vocabulary([question, *extra_texts])
    facts, rules, query = set(), set(), None
    for sent in sentences(question):
        item = parse_sentence(sent, concepts)
        if isinstance(item, Fact):
            facts.add(item)
        elif isinstance(item, Rule):
            rules.add(item)
        else:
            query = item
    if query is None:
        raise ParseError("the question asks nothing ('Is X a A or B?' / 'True or false: ...')")
    return ParsedQuestion(facts, rules, query, concepts)


def is_concept_path(steps: list[str]) -> bool:
    """True for traces in the concepts format: short steps, none a sentence."""
    return bool(steps) and all(
        0 < len(s.split()) <= 3 and not {"is", "are", "Every", "Each"} & set(s.split()) for s in steps
    )


def split_generated(cot_text: str, entity: str) -> list[str]:
    """The steps of a model's chain of thought: its sentences, or for a concept path its words,
    the entity's name joined to the first concept and "not" to the property after it."""
    if "." in cot_text:
        return sentences(cot_text)
    steps, pending = [], ""
    for word in cot_text.split():
        if word == "not" or (word == entity and not steps and not pending):
            pending += word + " "
        else:
            steps.append(pending + word)
            pending = ""
    return steps + [pending.strip()] if pending else steps


def _check_concept_path(q: ParsedQuestion, steps: list[str], answer: str) -> CheckResult:
    entity = q.query.entity
    known = set(q.facts)
    prev: Pred | None = None
    for i, step in enumerate(steps):
        words = step.rstrip(".").split()
        if i == 0 and words[0] == entity:
            words = words[1:]
            if not words:  # `cot: nodes` writes the entity as a step of its own
                continue
        if not words or len(words) > 2 or (len(words) == 2 and words[0] != "not"):
            return CheckResult(False, "unparseable_step", i, f"expected '[not] concept', got {step!r}")
        pred = Pred(words[-1].lower(), len(words) == 1)
        if prev is None:
            if Fact(entity, pred) not in known:
                return CheckResult(False, "unsupported_fact", i, f"the question does not say {entity} is {step!r}")
        elif Rule(prev.name, pred) not in q.rules:
            return CheckResult(False, "rule_not_in_question", i, f"no rule of the question leads from {prev.name!r} to {step!r}")
        known.add(Fact(entity, pred))
        prev = pred
    return _check_answer(q, known, answer)


def check_logic_trace(question: str, steps: Iterable[str], answer: str) -> CheckResult:
    steps = list(steps)
    concept_path = is_concept_path(steps)
    try:
        q = parse_question(question, [] if concept_path else steps)
    except ParseError as e:
        return CheckResult(False, "unparseable_question", None, str(e))
    if concept_path:
        return _check_concept_path(q, steps, answer)
    entity = q.query.entity
    known = set(q.facts)
    last_derived: Fact | None = None
    for i, step in enumerate(steps):
        for sent in sentences(step):
            try:
                item = parse_sentence(sent, q.concepts)
            except ParseError as e:
                return CheckResult(False, "unparseable_step", i, str(e))
            if isinstance(item, Fact):
                if item not in known:
                    return CheckResult(False, "unsupported_fact", i, f"{sent!r} does not follow from the question and earlier steps")
            elif isinstance(item, Rule):
                if item not in q.rules:
                    return CheckResult(False, "rule_not_in_question", i, f"{sent!r} is not a rule of the question")
                if Fact(entity, Pred(item.concept)) not in known:
                    return CheckResult(False, "rule_not_applicable", i, f"{sent!r}: {entity} is not yet known to be a {item.concept}")
                last_derived = Fact(entity, item.pred)
                known.add(last_derived)
            else:
                return CheckResult(False, "unparseable_step", i, f"a step asks a question: {sent!r}")
    return _check_answer(q, known, answer)


def _check_answer(q: ParsedQuestion, known: set[Fact], answer: str) -> CheckResult:
    query = q.query
    if query.options is not None:  # ProsQA
        try:
            stated = parse_sentence(answer, q.concepts)
        except ParseError as e:
            return CheckResult(False, "unparseable_answer", None, str(e))
        if not isinstance(stated, Fact) or stated.entity != query.entity:
            return CheckResult(False, "answer_mismatch", None, f"answer {answer!r} is not about {query.entity}")
        if stated.pred.name not in query.options:
            return CheckResult(False, "answer_not_an_option", None, f"{stated.pred.name} is not one of {query.options}")
        if stated not in known:
            return CheckResult(False, "answer_not_reached", None, f"the chain does not derive {answer!r}")
        return CheckResult(True)
    # ProntoQA
    if answer.strip() not in ("True", "False"):
        return CheckResult(False, "unparseable_answer", None, f"expected True/False, got {answer!r}")
    pos = Fact(query.entity, Pred(query.pred.name, True)) in known
    neg = Fact(query.entity, Pred(query.pred.name, False)) in known
    if pos == neg:
        why = "both polarities" if pos else "neither polarity"
        return CheckResult(False, "answer_not_reached", None, f"the chain derives {why} of {query.pred.name!r}")
    expected = "True" if pos == query.pred.positive else "False"
    if answer.strip() != expected:
        return CheckResult(False, "answer_mismatch", None, f"the chain implies {expected}, answer is {answer!r}")
    return CheckResult(True)
