"""Question templates for counterfactual edits of free-text math questions (GSM8k-Aug).

The blind-search study verifies a step by editing the question's numbers and re-running the
model. Generated arithmetic carries its template; free text gets one here: every whole-number
literal written in digits (commas allowed: "1,200") becomes a variable `VAR_i`, and editing
means writing another number in its place. What is left fixed, and reported: decimals and
percentages written in digits (an edit would change their format), and numbers written as
words ("twice", "half", "three"). A question with no editable number cannot be templated.

    {"text": "A set of {VAR_0} spoons costs ${VAR_1}. ...", "values": {"VAR_0": 7, "VAR_1": 21}}
"""

from __future__ import annotations

import collections
import dataclasses
import re
from typing import Sequence

from lrm_jax.data.records import Record

_LITERAL = re.compile(r"(?<![\w.,])(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?(\s*%|\s+percent)?(?![\w])")
_WORD_NUMBER = re.compile(
    r"\b(one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|fifty|"
    r"hundred|thousand|half|twice|double|triple|dozen|quarter)\b", re.IGNORECASE)


def extract(question: str) -> tuple[dict | None, list[str]]:
    """(template or None, notes on what stays fixed or why there is no template)."""
    parts, values, notes, commas = [], {}, [], []
    pos = 0
    for m in _LITERAL.finditer(question):
        whole, decimal, percent = m.group(1), m.group(2), m.group(3)
        if decimal or percent:
            notes.append("decimal or percentage kept fixed")
            continue
        name = f"VAR_{len(values)}"
        values[name] = int(whole.replace(",", ""))
        if "," in whole:
            commas.append(name)
        parts.append(question[pos : m.start()].replace("{", "{{").replace("}", "}}"))
        parts.append("{" + name + "}")
        pos = m.end()
    parts.append(question[pos:].replace("{", "{{").replace("}", "}}"))
    if _WORD_NUMBER.search(question):
        notes.append("number words kept fixed")
    if not values:
        return None, notes + ["no whole number written in digits"]
    return {"text": "".join(parts), "values": values, "commas": commas}, notes


def render(template: dict, values: dict[str, int]) -> str:
    """The question with these values, written as the original wrote them ("30,000")."""
    commas = set(template.get("commas", ()))
    return template["text"].format(**{k: f"{v:,}" if k in commas else str(v) for k, v in values.items()})


def attach(records: Sequence[Record]) -> tuple[list[Record], str]:
    """Records with text templates (those already templated kept), and a one-line report."""
    out, fixed = [], collections.Counter()
    failed = 0
    for r in records:
        if r.template:
            out.append(r)
            continue
        t, notes = extract(r.question)
        fixed.update(set(notes))
        if t is None:
            failed += 1
            continue
        out.append(dataclasses.replace(r, template=t))
    report = (f"templated {len(out)} of {len(records)} questions; {failed} without an editable number (skipped)"
              + "".join(f"; {n}: {c} question(s)" for n, c in sorted(fixed.items()) if n != "no whole number written in digits"))
    return out, report
