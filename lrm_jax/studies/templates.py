"""Question templates for counterfactual edits of free-text math questions (GSM8k-Aug).

The blind-search study verifies a step by editing the question's numbers and re-running the
model. Generated arithmetic carries its template; free text gets one here: every whole-number
literal written in digits (commas allowed: "1,200") and every cardinal written as a word from
"two" to "ninety" ("three", "Twelve", "forty") becomes a variable `VAR_i`, and editing means
writing another number in its place (a word variable is written back as a word when the new
value has one, capitalised like the original, else in digits). What is left fixed, and
reported: decimals and percentages written in digits (an edit would change their format),
"one" (as often a pronoun as a count: "one of them"), hyphenated compounds ("twenty-five"), and
multipliers and fractions written as words ("twice", "half", "double", "dozen", "hundred"). A question with no editable number cannot
be templated.

    {"text": "A set of {VAR_0} spoons costs ${VAR_1}. ...", "values": {"VAR_0": 7, "VAR_1": 21}}
"""

from __future__ import annotations

import collections
import dataclasses
import re
from typing import Sequence

from lrm_jax.data.records import Record

_LITERAL = re.compile(r"(?<![\w.,])(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?(\s*%|\s+percent)?(?![\w])")
_CARDINALS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen twenty".split())}
_CARDINALS.update({w: 10 * i for i, w in enumerate("thirty forty fifty sixty seventy eighty ninety".split(), 3)})
_WORD_OF = {v: w for w, v in _CARDINALS.items()}
# Not inside a hyphenated compound ("twenty-five" stays whole and fixed, and is reported).
_EDITABLE_WORD = re.compile(r"(?<!-)\b(" + "|".join(w for w, v in _CARDINALS.items() if v >= 2) + r")\b(?!-)",
                            re.IGNORECASE)
_FIXED_WORD = re.compile(r"\b(one|hundred|thousand|half|twice|double|triple|dozen|quarter)\b|\w+-(one|two|three|four|"
                         r"five|six|seven|eight|nine)\b", re.IGNORECASE)


def extract(question: str) -> tuple[dict | None, list[str]]:
    """(template or None, notes on what stays fixed or why there is no template)."""
    parts, values, notes, commas, words = [], {}, [], [], {}
    found = []  # (start, end, value, style): style "digits", "commas", "word" or "Word"
    for m in _LITERAL.finditer(question):
        whole, decimal, percent = m.group(1), m.group(2), m.group(3)
        if decimal or percent:
            notes.append("decimal or percentage kept fixed")
            continue
        found.append((m.start(), m.end(), int(whole.replace(",", "")), "commas" if "," in whole else "digits"))
    for m in _EDITABLE_WORD.finditer(question):
        word = m.group(1)
        found.append((m.start(), m.end(), _CARDINALS[word.lower()], "Word" if word[0].isupper() else "word"))
    pos = 0
    for start, end, value, style in sorted(found):
        name = f"VAR_{len(values)}"
        values[name] = value
        if style == "commas":
            commas.append(name)
        elif style in ("word", "Word"):
            words[name] = style
        parts.append(question[pos:start].replace("{", "{{").replace("}", "}}"))
        parts.append("{" + name + "}")
        pos = end
    parts.append(question[pos:].replace("{", "{{").replace("}", "}}"))
    if _FIXED_WORD.search(question):
        notes.append("number words kept fixed (one, compounds, multipliers, fractions)")
    if not values:
        return None, notes + ["no whole number written in digits or as a word"]
    return {"text": "".join(parts), "values": values, "commas": commas, "words": words}, notes


def render(template: dict, values: dict[str, int]) -> str:
    """The question with these values, written as the original wrote them ("30,000")."""
    commas, words = set(template.get("commas", ())), template.get("words", {})

    def written(name: str, v: int) -> str:
        if name in words and v in _WORD_OF:
            return _WORD_OF[v].capitalize() if words[name] == "Word" else _WORD_OF[v]
        return f"{v:,}" if name in commas else str(v)

    return template["text"].format(**{k: written(k, v) for k, v in values.items()})


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
              + "".join(f"; {n}: {c} question(s)" for n, c in sorted(fixed.items()) if n != "no whole number written in digits or as a word"))
    return out, report
