"""Checker for calculator traces (`<<expr=result>>`, GSM8k-Aug and the generated arithmetic task).

Each step is parsed, its expression evaluated exactly (fractions, no floats), and compared with
the stated result; every operand must be a number of the question (digits, decimals, commas,
percentages (p, p/100, 100 and 0.01), and words such as "half", "twice", "dozen", "two-thirds"), the result of an
earlier step, or a domain constant. The last result must equal the answer.

Domain constants default to the set the interpretability paper's templates use
(100, 60, 12, 7, 24, 52: percent, minutes, months, days, hours, weeks); pass `constants=()` for
the strict reading. A percentage p% contributes both p and p/100.
"""

from __future__ import annotations

import ast
import re
from fractions import Fraction
from typing import Iterable

from lrm_jax.traces.result import CheckResult

DOMAIN_CONSTANTS = (100, 60, 12, 7, 24, 52)

_STEP = re.compile(r"^<<(?P<expr>[^=<>]+)=(?P<result>[^=<>]+)>>$")
_NUMBER = re.compile(r"(?<![\w.])(\d[\d,]*(?:\.\d+)?|\.\d+)(\s*%|\s+percent)?")

_UNITS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
    "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18,
    "nineteen": 19,
}
_TENS = {
    "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
    "eighty": 80, "ninety": 90,
}
_SCALES = {"hundred": 100, "thousand": 1000, "million": 1000000}
# Words that imply numbers: a multiplier and/or a fraction.
_IMPLIED = {
    "half": (1, 2, Fraction(1, 2)), "halves": (1, 2, Fraction(1, 2)), "twice": (2,),
    "double": (2,), "doubles": (2,), "doubled": (2,), "triple": (3,), "triples": (3,),
    "tripled": (3,), "thrice": (3,), "quadruple": (4,), "quadruples": (4,),
    "third": (3, Fraction(1, 3)), "thirds": (3,), "quarter": (4, Fraction(1, 4)),
    "quarters": (4,), "fourth": (4,), "fifth": (5,), "dozen": (12,), "dozens": (12,),
    "pair": (2,), "pairs": (2,), "weekly": (7,), "daily": (1,), "score": (20,),
}
_ORDINAL_DEN = {"half": 2, "halves": 2, "third": 3, "thirds": 3, "quarter": 4, "quarters": 4,
                "fourth": 4, "fourths": 4, "fifth": 5, "fifths": 5, "sixth": 6, "sixths": 6,
                "eighth": 8, "eighths": 8, "tenth": 10, "tenths": 10}


class ArithParseError(ValueError):
    pass


def to_fraction(text: str) -> Fraction:
    t = text.strip().replace(",", "").replace("$", "")
    try:
        return Fraction(t)
    except (ValueError, ZeroDivisionError):
        raise ArithParseError(f"not a number: {text!r}") from None


def question_numbers(question: str) -> set[Fraction]:
    """Every number a question states or implies (see module docstring)."""
    found: set[Fraction] = set()
    text = question.replace("$", " ")
    for m in _NUMBER.finditer(text):
        value = to_fraction(m.group(1))
        found.add(value)
        if m.group(2):
            found.update({value / 100, Fraction(100), Fraction(1, 100)})
    words = re.findall(r"[a-z]+(?:-[a-z]+)*", question.lower())
    for w in words:
        parts = w.split("-")
        total = 0
        for p in parts:
            if p in _UNITS:
                total += _UNITS[p]
            elif p in _TENS:
                total += _TENS[p]
        if total:
            found.add(Fraction(total))
        for p in parts:
            if p in _UNITS:
                found.add(Fraction(_UNITS[p]))
            if p in _SCALES:
                found.add(Fraction(_SCALES[p]))
            for v in _IMPLIED.get(p, ()):
                found.add(Fraction(v))
        # "two-thirds" -> 2, 3 and 2/3
        if len(parts) == 2 and parts[0] in _UNITS and parts[1] in _ORDINAL_DEN:
            num, den = _UNITS[parts[0]], _ORDINAL_DEN[parts[1]]
            found.update({Fraction(num), Fraction(den), Fraction(num, den)})
    if "percent" in question.lower() or "%" in question:
        found.update({Fraction(100), Fraction(1, 100)})
    return found


def _eval(node) -> Fraction:
    if isinstance(node, ast.Expression):
        return _eval(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        return Fraction(str(node.value))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        v = _eval(node.operand)
        return -v if isinstance(node.op, ast.USub) else v
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div)):
        a, b = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Add):
            return a + b
        if isinstance(node.op, ast.Sub):
            return a - b
        if isinstance(node.op, ast.Mult):
            return a * b
        if b == 0:
            raise ArithParseError("division by zero")
        return a / b
    raise ArithParseError(f"unsupported expression element {ast.dump(node)[:40]}")


def parse_step(step: str) -> tuple[Fraction, list[Fraction], Fraction]:
    """`<<a*b=c>>` -> (value of the expression, its operands, stated result)."""
    m = _STEP.match(step.strip())
    if m is None:
        raise ArithParseError(f"not a calculator step <<expr=result>>: {step!r}")
    expr = m["expr"].replace(",", "").replace("$", "")
    literals = re.findall(r"\d+\.?\d*|\.\d+", expr)
    try:
        tree = ast.parse(expr.strip(), mode="eval")
    except SyntaxError:
        raise ArithParseError(f"cannot parse expression {m['expr']!r}") from None
    return _eval(tree), [Fraction(x) for x in literals], to_fraction(m["result"])


def check_arith_trace(
    question: str,
    steps: Iterable[str],
    answer: str,
    constants: Iterable[int] = DOMAIN_CONSTANTS,
) -> CheckResult:
    steps = list(steps)
    if not steps or not any(s.strip() for s in steps):
        return CheckResult(False, "empty_steps", None, "the record has no reasoning steps")
    available = question_numbers(question) | {Fraction(c) for c in constants}
    result = None
    for i, step in enumerate(steps):
        try:
            value, operands, result = parse_step(step)
        except ArithParseError as e:
            return CheckResult(False, "unparseable_step", i, str(e))
        if value != result:
            return CheckResult(False, "wrong_result", i, f"{step}: expression equals {_fmt(value)}, not {_fmt(result)}")
        for op in operands:
            if op not in available:
                return CheckResult(False, "operand_not_found", i, f"{step}: operand {_fmt(op)} is neither in the question nor an earlier result")
        available.add(result)
    try:
        gold = to_fraction(answer)
    except ArithParseError as e:
        return CheckResult(False, "unparseable_answer", None, str(e))
    if result != gold:
        return CheckResult(False, "answer_mismatch", len(steps) - 1, f"last result {_fmt(result)} != answer {answer!r}")
    return CheckResult(True)


def _fmt(x: Fraction) -> str:
    return str(x.numerator) if x.denominator == 1 else f"{float(x):g}"
