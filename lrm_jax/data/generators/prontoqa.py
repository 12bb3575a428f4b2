"""ProntoQA-style fictional-ontology questions (N hops, True/False, with distractors).

The subject is a member of concept c0; a chain of is-a rules c0 -> c1 -> ... -> c_{h-1} ends in
a property rule "c_{h-1} is [not] P"; the query asks "True or false: S is [not] P." (balanced).
The steps follow COCONUT's ProntoQA preprocessing: consecutive pairs of chain-of-thought
sentences ("S is a c0. C0s are c1s."), the last one the single conclusion, so h hops give h+1
steps. Distractors never make the query derivable the other way: a second chain d0 -> d1 that
the subject cannot reach carries P with the opposite polarity (as in the official generator),
chain concepts get other properties, and the subject belongs to one off-chain concept.
Extra is-a rules branch off the chain by default, giving a concept a second parent, as in the
real 5-hop files (there "Tumpuses are numpuses." sits beside the chain's "Tumpuses are
gorpuses."), so a forward-chaining reader must pick the branch that reaches the queried
property. `branching=False` makes them add children instead ("Every brimpus is a wumpus."):
every concept then has at most one parent and the chain up from the subject is unique (the
CPU-sized variant).
Rules use ProntoQA's three templates ("Xes are Ys.", "Every X is a Y.", "Each X is a Y.");
`templates="every"` keeps only the singular one, so a concept is always the same token (the
CPU-sized variant: a tiny model then needs no singular/plural mapping to look a rule up).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from lrm_jax.data.generators.names import ADJECTIVES, CONCEPTS, PEOPLE, article, plural
from lrm_jax.data.records import Record


@dataclasses.dataclass(frozen=True)
class ProntoQAConfig:
    min_hops: int = 5  # the real 5-hop data has 6 steps
    max_hops: int = 5
    n_distractor_properties: int = 6  # extra property rules on chain and distractor concepts
    n_distractor_isa: int = 4  # extra is-a rules leaving the chain to fresh concepts
    distractor_chain: bool = True  # d0 -> d1 carrying the query property with opposite sign
    extra_subject_fact: bool = True  # "S is a d0." style second membership (off-chain)
    branching: bool = True  # extra is-a rules add a second parent (real data); False: a child
    templates: str = "all"  # "all": ProntoQA's three rule templates; "every": "Every X is ..." only
    cot: str = "sentences"  # "sentences": COCONUT's steps; "concepts": the chain's concepts, then "[not] P"

    def __post_init__(self):
        if not 1 <= self.min_hops <= self.max_hops:
            raise ValueError("prontoqa: need 1 <= min_hops <= max_hops")
        if self.templates not in ("all", "every"):
            raise ValueError(f"prontoqa: templates must be 'all' or 'every', got {self.templates!r}")
        if self.cot not in ("sentences", "concepts"):
            raise ValueError(f"prontoqa: cot must be 'sentences' or 'concepts', got {self.cot!r}")
        if self.cot == "concepts" and self.templates != "every":
            raise ValueError("prontoqa: cot='concepts' needs templates='every' (a concept is then one token)")
        need = self.max_hops + 2 + self.n_distractor_isa + 1
        if need > len(CONCEPTS):
            raise ValueError(f"prontoqa: too many concepts needed ({need} > {len(CONCEPTS)})")


def _isa(rng, a: str, b: str, templates: str) -> str:
    t = int(rng.integers(3)) if templates == "all" else 1
    if t == 0:
        return f"{plural(a).capitalize()} are {plural(b)}."
    return f"{['Every', 'Each'][t - 1]} {a} is {article(b)} {b}."


def _prop(rng, a: str, p: str, positive: bool, templates: str) -> str:
    neg = "" if positive else "not "
    t = int(rng.integers(3)) if templates == "all" else 1
    if t == 0:
        return f"{plural(a).capitalize()} are {neg}{p}."
    return f"{['Every', 'Each'][t - 1]} {a} is {neg}{p}."


def _one(cfg: ProntoQAConfig, rng: np.random.Generator, want_true: bool) -> Record:
    hops = int(rng.integers(cfg.min_hops, cfg.max_hops + 1))
    tpl = cfg.templates
    concepts = [str(c) for c in rng.permutation(CONCEPTS)]
    chain, rest = concepts[:hops], concepts[hops:]
    adjectives = [str(a) for a in rng.permutation(ADJECTIVES)]
    prop, other_props = adjectives[0], adjectives[1:]
    subject = str(rng.choice(PEOPLE))
    sign = bool(rng.integers(2))  # polarity the chain derives
    query_positive = sign if want_true else not sign

    rules: list[str] = []
    chain_rules = [_isa(rng, chain[k], chain[k + 1], tpl) for k in range(hops - 1)]
    final_rule = _prop(rng, chain[-1], prop, sign, tpl)
    rules += chain_rules + [final_rule]
    facts = [f"{subject} is {article(chain[0])} {chain[0]}."]
    fresh = iter(rest)
    off_chain = []
    if cfg.distractor_chain:
        d0, d1 = next(fresh), next(fresh)
        rules += [_isa(rng, d0, d1, tpl), _prop(rng, d1, prop, not sign, tpl)]
        off_chain += [d0, d1]
    if cfg.extra_subject_fact:
        e = next(fresh)  # never d0: that would derive the opposite polarity
        facts.append(f"{subject} is {article(e)} {e}.")
        off_chain.append(e)
    for _ in range(cfg.n_distractor_isa):
        known = str(rng.choice(chain + off_chain))
        new = next(fresh)
        rules.append(_isa(rng, known, new, tpl) if cfg.branching else _isa(rng, new, known, tpl))
        off_chain.append(new)
    # Properties other than the queried one, on any concept: never affect the answer.
    for k in range(cfg.n_distractor_properties):
        c = str(rng.choice(chain + off_chain))
        rules.append(_prop(rng, c, other_props[k % len(other_props)], bool(rng.integers(2)), tpl))

    order = rng.permutation(len(rules))
    neg = "" if query_positive else "not "
    question = " ".join(rules[k] for k in order) + " " + " ".join(facts)
    question += f" True or false: {subject} is {neg}{prop}."

    conclusion = f"{'' if sign else 'not '}{prop}"
    if cfg.cot == "concepts":
        steps = (*chain, conclusion)
    else:
        steps = tuple(
            f"{subject} is {article(chain[k])} {chain[k]}. {rule}"
            for k, rule in enumerate(chain_rules + [final_rule])
        ) + (f"{subject} is {conclusion}.",)
    return Record(question, steps, "True" if want_true else "False", extra={"chain_concepts": chain})


def generate_prontoqa(cfg: ProntoQAConfig, n: int, seed: int) -> list[Record]:
    rng = np.random.default_rng(seed)
    return [_one(cfg, rng, want_true=(i % 2 == 0)) for i in range(n)]
