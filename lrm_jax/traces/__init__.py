"""Trace checkers: does a gold (or decoded) chain of thought follow from its question?

`check_record(record, fmt)` dispatches on the task format; `detect_format` guesses it from the
record (a "True or false:" query is ProntoQA, "Is X a A or B?" ProsQA, `<<...>>` steps GSM8k).
"""

from __future__ import annotations

from lrm_jax.data.records import Record
from lrm_jax.traces.arith import check_arith_trace
from lrm_jax.traces.logic import check_logic_trace
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


def check_record(record: Record, fmt: str = "auto") -> CheckResult:
    fmt = detect_format(record) if fmt == "auto" else fmt
    if fmt == "gsm8k":
        return check_arith_trace(record.question, record.steps, record.answer)
    if fmt in ("prosqa", "prontoqa"):
        return check_logic_trace(record.question, record.steps, record.answer)
    raise ValueError(f"unknown trace format {fmt!r}; expected auto or one of {TRACE_FORMATS}")


__all__ = ["CheckResult", "check_record", "detect_format", "TRACE_FORMATS"]
