"""Multi-step arithmetic in which every number is one token and each record carries its template.

    question: "a = 7 . b = a + 8 . c = b - 3 . what is c ?"
    steps:    ["<<7+8=15>>", "<<15-3=12>>"]          (GSM8k-Aug's calculator format)
    answer:   "12"

Each step combines the previous variable with a fresh constant (or, with probability
`p_two_vars`, with an earlier variable other than the previous one), so the answer needs every intermediate result. Every
value stays in [0, max_value), which keeps each number a single token. The template stores the
program with its constants as variables (`VAR_i`) and step results as `RESULT_k`, so a
counterfactual edit is `render(template, new_values)`.
"""

from __future__ import annotations

import dataclasses
import operator
import string

import numpy as np

from lrm_jax.data.records import Record

_OPS = {"+": operator.add, "-": operator.sub, "*": operator.mul}


@dataclasses.dataclass(frozen=True)
class ArithConfig:
    min_ops: int = 3
    max_ops: int = 4
    max_value: int = 100  # values in [0, max_value): 100 = the spike's full size, 20 = CPU size
    ops: tuple[str, ...] = ("+", "-", "*")
    p_two_vars: float = 0.0
    max_tries: int = 200

    def __post_init__(self):
        if not 1 <= self.min_ops <= self.max_ops <= 20:
            raise ValueError("arithmetic: need 1 <= min_ops <= max_ops <= 20")
        if self.max_value < 2:
            raise ValueError("arithmetic: max_value must be at least 2")
        bad = [o for o in self.ops if o not in _OPS]
        if bad or not self.ops:
            raise ValueError(f"arithmetic: ops must be a non-empty subset of {sorted(_OPS)}, got {self.ops}")


def evaluate(template: dict, values: dict[str, int]) -> list[int]:
    """Results of every step for the given VAR_i values."""
    env = dict(values)
    results = []
    for k, (op, left, right) in enumerate(template["program"]):
        r = _OPS[op](env[left], env[right])
        env[f"RESULT_{k}"] = r
        results.append(r)
    return results


def render(template: dict, values: dict[str, int] | None = None) -> Record:
    """Question, steps and answer of a template for the given (default: original) values."""
    values = dict(template["values"] if values is None else values)
    results = evaluate(template, values)
    env = dict(values)
    env.update({f"RESULT_{k}": r for k, r in enumerate(results)})
    names = string.ascii_lowercase
    var_of = {"VAR_0": "a"}  # the variable a quantity is called in the question
    parts = [f"a = {values['VAR_0']} ."]
    steps = []
    for k, (op, left, right) in enumerate(template["program"]):
        lhs = names[k + 1]
        rhs = var_of.get(right, str(values.get(right)))
        parts.append(f"{lhs} = {var_of[left]} {op} {rhs} .")
        steps.append(f"<<{env[left]}{op}{env[right]}={results[k]}>>")
        var_of[f"RESULT_{k}"] = lhs
    parts.append(f"what is {names[len(results)]} ?")
    return Record(" ".join(parts), tuple(steps), str(results[-1]), template={**template, "values": values})


def _one(cfg: ArithConfig, rng: np.random.Generator) -> dict | None:
    n_ops = int(rng.integers(cfg.min_ops, cfg.max_ops + 1))
    values = {"VAR_0": int(rng.integers(cfg.max_value))}
    env = dict(values)
    program = []
    prev = "VAR_0"
    for k in range(n_ops):
        for _ in range(cfg.max_tries):
            op = str(rng.choice(cfg.ops))
            if k > 0 and rng.random() < cfg.p_two_vars:
                # An earlier quantity other than the one being updated (x - x is no step).
                earlier = ["VAR_0"] + [f"RESULT_{j}" for j in range(k - 1)]
                right, value = str(rng.choice(earlier)), None
            else:
                right, value = f"VAR_{len(values)}", int(rng.integers(cfg.max_value))
            rv = env[right] if value is None else value
            r = _OPS[op](env[prev], rv)
            if 0 <= r < cfg.max_value and not (op == "*" and rv in (0, 1)):
                break
        else:
            return None
        if value is not None:
            values[right] = env[right] = value
        env[f"RESULT_{k}"] = r
        program.append([op, prev, right])
        prev = f"RESULT_{k}"
    return {"program": program, "values": values}


def generate_arithmetic(cfg: ArithConfig, n: int, seed: int) -> list[Record]:
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < n:
        t = _one(cfg, rng)
        if t is not None:
            out.append(render(t))
    return out
