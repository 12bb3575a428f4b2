"""Trace checkers: does a gold (or decoded) chain of thought follow from its question?

`check_record(record, fmt)` dispatches on the task format; `check_generated(record, text)` checks
a logic model's own chain of thought and answer; `detect_format` guesses the format from the
record (a "True or false:" query is ProntoQA, "Is X a A or B?" ProsQA, `<<...>>` steps GSM8k).
"""

from __future__ import annotations

from lrm_jax.data.layout import ANSWER_PREFIX
from lrm_jax.data.records import Record
from lrm_jax.traces.arith import check_arith_trace
from lrm_jax.traces.logic import ParseError, check_logic_trace, parse_question, split_generated
from lrm_jax.traces.result import CheckResult

TRACE_FORMATS = ("prosqa", "prontoqa", "gsm8k")


def detect_format(record: Record) -> str:
    if "True or false:" in record.question:
        return "prontoqa"
    if any(s.strip().startswith("<<") for s in record.steps):
        return "gsm8k"
    if record.question.rstrip().endswith("?") and " or " in record.question.rsplit(".", 1)[-1]:
        return "prosqa"
    return "gsm8k"


def check_generated(record: Record, text: str) -> CheckResult:
    """Checks a logic model's own output, "<chain> ### <answer>", against the record's question."""
    if detect_format(record) not in ("prosqa", "prontoqa"):
        raise ValueError("generated chains are checked for ProsQA/ProntoQA-style records only")
    if ANSWER_PREFIX not in text:
        return CheckResult(False, "no_answer", None, f"the output has no '{ANSWER_PREFIX}' answer")
    cot, answer = text.split(ANSWER_PREFIX, 1)
    try:
        entity = parse_question(record.question).query.entity
    except ParseError as e:
        return CheckResult(False, "unparseable_question", None, str(e))
    return check_logic_trace(record.question, split_generated(cot, entity), answer.strip())


def check_record(record: Record, fmt: str = "auto") -> CheckResult:
    fmt = detect_format(record) if fmt == "auto" else fmt
    if fmt == "gsm8k":
        return check_arith_trace(record.question, record.steps, record.answer)
    if fmt in ("prosqa", "prontoqa"):
        return check_logic_trace(record.question, record.steps, record.answer)
    raise ValueError(f"unknown trace format {fmt!r}; expected auto or one of {TRACE_FORMATS}")


__all__ = ["CheckResult", "check_generated", "check_record", "detect_format", "TRACE_FORMATS"]
