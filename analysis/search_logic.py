"""Blind search with verification on ProsQA/ProntoQA records (`python -m analysis.search` picks
it for logic questions): paths of question concepts among the top-k of the reasoning
positions, checked by the trace checker, verified by renaming concepts in the question
(lrm_jax/studies/logic_search.py). Rows have the same fields as the arithmetic search, so the
summary, table and Figure 6 are shared.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from lrm_jax.data.generators.names import CONCEPTS
from lrm_jax.studies.backtrack import rank_table
from lrm_jax.studies.batched import map_chunks
from lrm_jax.studies.lens import project, project_columns
from lrm_jax.studies.logic_search import find_path, fresh_names, node_passes, rename
from lrm_jax.studies.necessity import normalize
from lrm_jax.traces.logic import ParseError, parse_question
from lrm_jax.training.evaluate import build_prompts

REQUIRED = (1, 2, 3)


def is_logic(records) -> bool:
    """True when the first records parse as ProsQA/ProntoQA questions."""
    head = records[: min(5, len(records))]
    try:
        for r in head:
            parse_question(r.question)
    except ParseError:
        return False
    return bool(head)


def analyse_logic(run, records, args, sharding, n_edits: int = 3, max_rank: int = 1) -> list[dict]:
    tok, layout = run.tokenizer, run.layout
    P, Z = layout.n_prefix, layout.n_latent
    grids, predictions = project(run, records, k=args.top_k, batch_size=args.batch_size, sharding=sharding,
                                 progress=not args.no_progress)
    unk = tok.ids["unk"]

    def usable(name: str) -> bool:
        ids = tok.encode(" " + name)
        return len(ids) == 1 and ids[0] != unk

    parsed, paths, edits = [], [], []
    for rec, grid, pred in zip(records, grids, predictions):
        q = parse_question(rec.question)
        table = rank_table(grid.tokens(tok))
        path = find_path(rec.question, q, table, grid.n_reasoning, pred or "")
        parsed.append(q)
        paths.append(path)
        per_node = []
        for node in (path.nodes if path else []):
            names = fresh_names(q, node.concept, CONCEPTS, n_edits, usable)
            per_node.append([(name, rename(rec.question, node.concept, name)) for name in names])
        edits.append(per_node)
    rows = [dataclasses.replace(records[i], question=text) for i, per_node in enumerate(edits)
            for names in per_node for _, text in names]
    edited_tables = iter(_edited_tables(run, rows, args, sharding, P, Z) if rows else [])
    out = []
    for i, (rec, pred, path) in enumerate(zip(records, predictions, paths)):
        row = {"index": i, "question": rec.question, "gold": rec.answer, "gold_steps": list(rec.steps),
               "prediction": pred, "correct": normalize(pred or "") == normalize(rec.answer)}
        passes = []
        for node, names in zip(path.nodes if path else [], edits[i]):
            tables = [next(edited_tables) for _ in names]
            passes.append(node_passes(node, [n for n, _ in names], tables, max_rank))
        row["n_edits"] = sum(len(n) for n in edits[i])
        found = path is not None and path.checker_ok
        for r in REQUIRED:
            verified = found and all(p >= r for p in passes)
            row[f"r{r}"] = {"found": found, "verified": verified, "trace": path.trace if path else [],
                            "steps": [{"position": n.position, "step": n.concept, "verified": p >= r, "passes": p}
                                      for n, p in zip(path.nodes if path else [], passes)]}
        row["checker"] = None if path is None else (path.checker_reason or "valid")
        out.append(row)
    return out


def _edited_tables(run, rows, args, sharding, P, Z) -> list[list[dict[str, int]]]:
    tok = run.tokenizer
    ids, mask = build_prompts(run.mode, rows, tok, run.layout, Z)
    columns = np.tile(np.asarray([P - 1, *range(P, P + Z), P + Z], np.int32), (len(rows), 1))
    fn = functools.partial(project_columns, run.graphdef, run.params, n_prefix=P, n_latent=Z, k=args.top_k,
                           last_only=True)
    res = map_chunks(fn, {"ids": ids, "mask": mask, "columns": columns}, batch_size=args.batch_size,
                     sharding=sharding, desc=f"{len(rows)} questions with a concept renamed", progress=not args.no_progress)
    return [rank_table([[tok.decode([int(t)]) for t in pos] for pos in row]) for row in res["ids"][:, 0]]
