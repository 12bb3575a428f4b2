"""Blind search with verification on ProsQA/ProntoQA records (`python -m analysis.search` picks
it for logic questions): paths of question concepts among the top-k of the reasoning
positions, checked by the trace checker, verified by renaming concepts in the question
(lrm_jax/studies/logic_search.py). Rows have the same fields as the arithmetic search, so the
summary, table and Figure 6 are shared.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

from lrm_jax.data.generators.names import CONCEPTS
from lrm_jax.studies.backtrack import rank_table
from lrm_jax.studies.lens import project, project_questions
from lrm_jax.studies.logic_search import find_path, fresh_names, node_passes, rename
from lrm_jax.studies.necessity import normalize
from lrm_jax.traces.logic import ParseError, parse_question


def is_logic(records) -> bool:
    """True when the first records parse as ProsQA/ProntoQA questions."""
    head = records[: min(5, len(records))]
    try:
        for r in head:
            parse_question(r.question)
    except ParseError:
        return False
    return bool(head)


def analyse_logic(run, records, args, sharding, required: Sequence[int], n_edits: int = 3,
                  max_rank: int = 1) -> list[dict]:
    tok, Z = run.tokenizer, run.layout.n_latent
    progress = not args.no_progress
    grids, predictions = project(run, records, k=args.top_k, batch_size=args.batch_size, sharding=sharding,
                                 progress=progress)
    unk = tok.ids["unk"]

    def usable(name: str) -> bool:
        ids = tok.encode(" " + name)
        return len(ids) == 1 and ids[0] != unk

    paths, edits = [], []  # per instance: the path (or None); per node, its (new name, edited question)s
    for rec, grid, pred in zip(records, grids, predictions):
        q = parse_question(rec.question)
        path = find_path(rec.question, q, rank_table(grid.tokens(tok)), grid.n_reasoning, pred or "")
        nodes = path.nodes if path else []
        paths.append(path)
        edits.append([[(name, rename(rec.question, n.concept, name)) for name in fresh_names(q, n.concept, CONCEPTS, n_edits, usable)]
                      for n in nodes])
    rows = [dataclasses.replace(records[i], question=text) for i, per_node in enumerate(edits)
            for names in per_node for _, text in names]
    # The reasoning positions only: start marker, thoughts, end marker (the grid's first Z + 2).
    P = run.layout.n_prefix
    tables = iter([rank_table(row) for row in project_questions(
        run, rows, [P - 1, *range(P, P + Z), P + Z], k=args.top_k, batch_size=args.batch_size, sharding=sharding,
        progress=progress, desc=f"{len(rows)} questions with a concept renamed")] if rows else [])
    out = []
    for i, (rec, pred, path) in enumerate(zip(records, predictions, paths)):
        nodes = path.nodes if path else []
        passes = [node_passes(n, [name for name, _ in names], [next(tables) for _ in names], max_rank)
                  for n, names in zip(nodes, edits[i])]
        found = path is not None and path.checker_ok
        row = {"index": i, "question": rec.question, "gold": rec.answer, "gold_steps": list(rec.steps),
               "prediction": pred, "correct": normalize(pred or "") == normalize(rec.answer),
               "n_edits": sum(len(n) for n in edits[i]), "checker": None if path is None else (path.checker_reason or "valid")}
        for r in required:
            row[f"r{r}"] = {"found": found, "verified": found and all(p >= r for p in passes),
                            "trace": path.trace if path else [],
                            "steps": [{"position": n.position, "step": n.concept, "verified": p >= r, "passes": p}
                                      for n, p in zip(nodes, passes)]}
        out.append(row)
    return out
