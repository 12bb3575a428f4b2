"""Loaders for the real data formats, with errors that name the file, record and field.

Formats:
- COCONUT JSON (`.json`): a list of objects with `question` (str), `steps` (list of str) and
  `answer` (str), optionally ProsQA graph fields and a `template`. Also JSON lines (`.jsonl`).
- iCoT text (`.txt`): `question||<<a*b=c>> <<...>> #### answer` per line (GSM8k-Aug).

Strict by default: the first malformed record raises `DataError`. With `lenient=True` such
records are skipped and `LoadResult.skipped` says which and why, so nothing is dropped silently.
Empty steps are malformed: the released GSM8k-Aug files hold six validation problems whose chain
is empty (`steps == [""]`); a strict load stops on them, a lenient one skips and reports them.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import re
from pathlib import Path
from typing import Any, Iterable

from lrm_jax.data.records import Graph, Record

GRAPH_FIELDS = ("idx_to_symbol", "edges", "root", "target", "neg_target")
FORMATS = ("coconut_json", "jsonl", "icot_text")


class DataError(ValueError):
    """Malformed input. `file`, `index` (0-based record or line) and `field` say where."""

    def __init__(self, file: str | Path, index: int | None, field: str | None, reason: str):
        self.file, self.index, self.field, self.reason = str(file), index, field, reason
        where = self.file
        if index is not None:
            where += f", record {index}"
        if field is not None:
            where += f", field {field!r}"
        super().__init__(f"{where}: {reason}")


@dataclasses.dataclass
class LoadResult:
    records: list[Record]
    skipped: list[DataError]
    path: str
    total: int

    def summary(self) -> str:
        if not self.skipped:
            return f"{self.path}: loaded {len(self.records)} records"
        reasons = collections.Counter(f"{e.field}: {e.reason}" for e in self.skipped)
        detail = "; ".join(f"{n} x {r}" for r, n in reasons.most_common())
        return (
            f"{self.path}: loaded {len(self.records)} of {self.total} records, "
            f"skipped {len(self.skipped)} ({detail})"
        )


def _check_str(obj: dict, key: str, path, index, allow_empty=False) -> str:
    if key not in obj:
        raise DataError(path, index, key, "missing")
    v = obj[key]
    if not isinstance(v, str):
        raise DataError(path, index, key, f"expected a string, got {type(v).__name__}")
    if not allow_empty and not v.strip():
        raise DataError(path, index, key, "empty")
    return v


def _check_int(obj, key, path, index, upper: int) -> int:
    v = obj[key]
    if not isinstance(v, int) or isinstance(v, bool):
        raise DataError(path, index, key, f"expected an integer, got {type(v).__name__}")
    if not 0 <= v < upper:
        raise DataError(path, index, key, f"index {v} out of range [0, {upper})")
    return v


def parse_record(obj: Any, path, index: int) -> Record:
    if not isinstance(obj, dict):
        raise DataError(path, index, None, f"expected an object, got {type(obj).__name__}")
    question = _check_str(obj, "question", path, index)
    answer = _check_str(obj, "answer", path, index)
    if "steps" not in obj:
        raise DataError(path, index, "steps", "missing")
    steps = obj["steps"]
    if not isinstance(steps, list):
        raise DataError(path, index, "steps", f"expected a list, got {type(steps).__name__}")
    if not steps:
        raise DataError(path, index, "steps", "empty (no reasoning steps)")
    for i, s in enumerate(steps):
        if not isinstance(s, str):
            raise DataError(path, index, f"steps[{i}]", f"expected a string, got {type(s).__name__}")
        if not s.strip():
            raise DataError(path, index, f"steps[{i}]", "empty step")
    graph = None
    present = [k for k in GRAPH_FIELDS if k in obj]
    if present:
        missing = [k for k in GRAPH_FIELDS if k not in obj]
        if missing:
            raise DataError(path, index, missing[0], "missing (other graph fields are present)")
        symbols = obj["idx_to_symbol"]
        if not isinstance(symbols, list) or not all(isinstance(s, str) for s in symbols):
            raise DataError(path, index, "idx_to_symbol", "expected a list of strings")
        n = len(symbols)
        edges = obj["edges"]
        if not isinstance(edges, list):
            raise DataError(path, index, "edges", "expected a list of [i, j] pairs")
        for i, e in enumerate(edges):
            ok = (
                isinstance(e, list)
                and len(e) == 2
                and all(isinstance(x, int) and not isinstance(x, bool) and 0 <= x < n for x in e)
            )
            if not ok:
                raise DataError(path, index, f"edges[{i}]", f"expected [i, j] with 0 <= i, j < {n}, got {e!r}")
        graph = Graph(
            tuple(symbols),
            tuple((a, b) for a, b in edges),
            _check_int(obj, "root", path, index, n),
            _check_int(obj, "target", path, index, n),
            _check_int(obj, "neg_target", path, index, n),
        )
    template = obj.get("template")
    if template is not None and not isinstance(template, dict):
        raise DataError(path, index, "template", "expected an object")
    known = {"question", "steps", "answer", "template", *GRAPH_FIELDS}
    extra = {k: v for k, v in obj.items() if k not in known}
    return Record(question, tuple(steps), answer, graph, template, extra)


_ICOT_LINE = re.compile(r"^(?P<q>.*?)\|\|(?P<steps>.*?)####(?P<a>.*)$")


def parse_icot_line(line: str, path, index: int) -> Record:
    """`question||<<e1>> <<e2>> #### answer`; steps split on whitespace as the reference does."""
    m = _ICOT_LINE.match(line)
    if m is None:
        field = "question" if "||" not in line else "answer"
        raise DataError(path, index, field, "expected 'question||steps #### answer'")
    question, answer = m["q"].strip(), m["a"].strip()
    if not question:
        raise DataError(path, index, "question", "empty")
    if not answer:
        raise DataError(path, index, "answer", "empty")
    steps = m["steps"].split()
    if not steps:
        raise DataError(path, index, "steps", "empty (no reasoning steps)")
    return Record(question, tuple(steps), answer)


def detect_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".json":
        return "coconut_json"
    if suffix == ".jsonl":
        return "jsonl"
    if suffix == ".txt":
        return "icot_text"
    raise DataError(path, None, None, f"cannot tell the format from suffix {suffix!r}; pass one of {FORMATS}")


def _items(path: Path, fmt: str) -> Iterable[tuple[int, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(path, None, None, "file not found") from None
    except UnicodeDecodeError as e:
        raise DataError(path, None, None, f"not UTF-8 text: {e}") from None
    if fmt == "coconut_json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise DataError(path, None, None, f"invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from None
        if not isinstance(data, list):
            raise DataError(path, None, None, f"top level must be a list of records, got {type(data).__name__}")
        yield from enumerate(data)
    else:
        for i, line in enumerate(text.splitlines()):
            if line.strip():
                yield i, line


def load_records(path: str | Path, fmt: str = "auto", lenient: bool = False) -> LoadResult:
    path = Path(path)
    fmt = detect_format(path) if fmt == "auto" else fmt
    if fmt not in FORMATS:
        raise DataError(path, None, None, f"unknown format {fmt!r}; expected one of {FORMATS}")
    records, skipped, total = [], [], 0
    for index, item in _items(path, fmt):
        total += 1
        try:
            if fmt == "icot_text":
                rec = parse_icot_line(item, path, index)
            elif fmt == "jsonl":
                try:
                    obj = json.loads(item)
                except json.JSONDecodeError as e:
                    raise DataError(path, index, None, f"invalid JSON: {e.msg}") from None
                rec = parse_record(obj, path, index)
            else:
                rec = parse_record(item, path, index)
        except DataError as e:
            if not lenient:
                raise
            skipped.append(e)
            continue
        records.append(rec)
    return LoadResult(records, skipped, str(path), total)


def save_records(records: Iterable[Record], path: str | Path) -> Path:
    """Writes COCONUT JSON atomically (a temp file then rename), so a kill never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps([r.to_json() for r in records]))
    tmp.replace(path)
    return path
