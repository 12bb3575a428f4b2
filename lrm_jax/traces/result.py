"""The verdict of a trace checker."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class CheckResult:
    ok: bool
    reason: str | None = None  # a short machine-readable failure category
    step: int | None = None  # 0-based index of the offending step, if any
    detail: str = ""
