"""The one record type every task, loader, generator and analysis shares.

A record is COCONUT's schema: `question`, `steps` (the gold chain of thought, one string per
step), `answer`. ProsQA/ProntoQA records may carry their graph (`Graph`); generated arithmetic
records carry a `template` (numbers as variables) for counterfactual edits. Any other JSON
fields are kept in `extra` so nothing is lost on a load/save round trip.
"""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class Graph:
    """ProsQA-style graph: `edges` are (i, j) pairs meaning "i is a j"."""

    idx_to_symbol: tuple[str, ...]
    edges: tuple[tuple[int, int], ...]
    root: int
    target: int
    neg_target: int


@dataclasses.dataclass(frozen=True)
class Record:
    question: str
    steps: tuple[str, ...]
    answer: str
    graph: Graph | None = None
    template: dict[str, Any] | None = None
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "question": self.question,
            "steps": list(self.steps),
            "answer": self.answer,
        }
        if self.graph is not None:
            g = self.graph
            out.update(
                idx_to_symbol=list(g.idx_to_symbol),
                edges=[list(e) for e in g.edges],
                root=g.root,
                target=g.target,
                neg_target=g.neg_target,
            )
        if self.template is not None:
            out["template"] = self.template
        out.update(self.extra)
        return out
