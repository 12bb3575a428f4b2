"""What every study CLI shares: arguments, loading, output files, error handling.

Every study writes into `--out DIR`: `instances.jsonl` (one line per instance), `summary.json`,
`summary.md` (a markdown table) and PNG figures. Bad input exits with status 2 and one line
naming the file, record or field.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from lrm_jax.config import ConfigError
from lrm_jax.data.layout import LayoutError
from lrm_jax.data.loaders import DataError, load_records
from lrm_jax.data.records import Record
from lrm_jax.studies.batched import default_sharding
from lrm_jax.studies.bundle import LoadedRun, StudyError, load_run
from lrm_jax.training.checkpoint import CheckpointError
from lrm_jax.training.setup import load_data


def parser(doc: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=doc.strip().splitlines()[0])
    p.add_argument("--ckpt", required=True, help="an lrm_jax run directory (config, tokenizer, checkpoints)")
    p.add_argument("--data", help="records in any format the loaders read (default: the run's validation set)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--limit", type=int, default=0, help="first N instances only (0 = all)")
    p.add_argument("--batch-size", type=int, default=256, help="rows per jitted chunk")
    p.add_argument("--no-progress", action="store_true")
    return p


def open_run(ckpt: str, *, need_latent: bool = False, study: str = "this study"):
    """(run with its parameters on every device of the mesh, the rows' sharding)."""
    run = load_run(ckpt, need_latent=need_latent, study=study)
    sharding = default_sharding()
    return run.replicate(sharding), sharding


def rate(rows, fn) -> float:
    """Mean of fn over rows; NaN for no rows (shown as n/a in reports)."""
    return float(np.mean([fn(r) for r in rows])) if rows else float("nan")


def records_for(run: LoadedRun, data: str | None, limit: int) -> tuple[list[Record], str]:
    if data:
        loaded = load_records(data, lenient=True)
        records, note = loaded.records, loaded.summary()
    else:
        records, note = load_data(run.cfg)[1], "the run's validation set (regenerated from its config)"
    if limit:
        records = records[:limit]
    if not records:
        raise StudyError(f"{data or 'validation set'}: no records to analyse ({note})")
    return records, note


def write_outputs(out: Path, instances: Sequence[dict], summary: dict, table: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "instances.jsonl", "w") as f:
        for row in instances:
            f.write(json.dumps(row) + "\n")
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    (out / "summary.md").write_text(table)


def guarded(body: Callable[[], int]) -> int:
    try:
        return body()
    except (StudyError, CheckpointError, DataError, LayoutError, ConfigError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def md_table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    def fmt(v):
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in r) + " |" for r in rows]
    return "\n".join(lines) + "\n"
