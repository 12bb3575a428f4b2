"""The multi-mode control (the paper's Figure 3 / "Table 10"): every mode of multi-mode runs.

    python -m analysis.modes --ckpt checkpoints/arith_multimode checkpoints/prosqa_multimode \
        [--limit 500] [--thoughts K] --out reports/multimode

A multi-mode model answers the same questions directly, with a verbalized chain or through
its thoughts, from the same weights, so the differences between its modes are the
training-matched comparison the paper draws: does the latent mode beat direct answering, and
does the verbalized chain beat the latent one? For each run this scores every mode by greedy
generation on the run's validation set (or `--data`), then writes `summary.json`, `summary.md`
and `dumbbell.png` (one row per run, one dot per mode) under `--out`. The latent mode uses the
run's full number of thoughts unless `--thoughts` says otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from analysis.common import guarded, open_run, records_for
from analysis.plots import dumbbell
from lrm_jax.studies.bundle import LoadedRun, StudyError
from lrm_jax.training.evaluate import mode_accuracies

MULTI_MODE = ("multimode", "codi_multimode")


def load_multimode(ckpt: str):
    """(run with its parameters on every device, the rows' sharding), as every study opens a run."""
    run, sharding = open_run(ckpt)
    if run.family not in MULTI_MODE:
        raise StudyError(f"--ckpt {ckpt}: a {run.family!r} model has one mode; the multi-mode control needs a "
                         f"run trained with method.name in {MULTI_MODE} (use analysis.accuracy for the others)")
    return run, sharding


def thoughts_for(run: LoadedRun, thoughts: int | None) -> int:
    k = run.n_thoughts if thoughts is None else thoughts
    if not 0 <= k <= run.n_thoughts:
        raise StudyError(f"--thoughts {k} not in [0, {run.n_thoughts}] for {run.path}")
    return k


def score_modes(run: LoadedRun, records, *, thoughts: int | None = None, batch_size: int = 128, sharding=None) -> dict:
    """Accuracy of every mode of one multi-mode run on `records` (same prompts as the trainer's
    validation), the latent mode with `thoughts` thoughts (default: the run's maximum)."""
    k = thoughts_for(run, thoughts)
    acc = mode_accuracies(run.graphdef, run.params, records, run.tokenizer, run.layout, run.family, k,
                          batch_size=batch_size, max_new_tokens=run.cfg.train.max_new_tokens,
                          sharding=sharding)
    print(f"{run.path}: " + ", ".join(f"{name} {a:.4f}" for name, a in acc.items()))
    return {"ckpt": str(run.path), "label": run.path.name, "method": run.family, "task": run.cfg.data.task,
            "n": len(records), "thoughts": k, "accuracy": acc,
            "latent_minus_direct": acc["latent"] - acc["direct"], "verbal_minus_latent": acc["verbal"] - acc["latent"]}


def table(rows: list[dict]) -> str:
    lines = ["| run | family | task | n | thoughts | direct | latent | verbalized | latent - direct | verbalized - latent |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        a = r["accuracy"]
        lines.append(f"| {r['label']} | {r['method']} | {r['task']} | {r['n']} | {r['thoughts']} | {a['direct']:.3f} | "
                     f"{a['latent']:.3f} | {a['verbal']:.3f} | {r['latent_minus_direct']:+.3f} | {r['verbal_minus_latent']:+.3f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ckpt", nargs="+", required=True, help="multi-mode run directories")
    p.add_argument("--data", help="records to score (default: each run's validation set)")
    p.add_argument("--limit", type=int, default=0)
    p.add_argument("--thoughts", type=int, default=None, help="thoughts in the latent mode (default: the run's maximum)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--out", required=True, help="directory for summary.json, summary.md, dumbbell.png")
    args = p.parse_args(argv)
    return guarded(lambda: run_all(args))


def run_all(args) -> int:
    runs = [load_multimode(c) for c in args.ckpt]
    for run, _ in runs:  # every bad --thoughts before any scoring
        thoughts_for(run, args.thoughts)
    rows = []
    for run, sharding in runs:
        records, note = records_for(run, args.data, args.limit)
        print(f"{run.path}: {len(records)} records, {note}", file=sys.stderr)
        rows.append(score_modes(run, records, thoughts=args.thoughts, batch_size=args.batch_size, sharding=sharding))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps({"runs": rows}, indent=1))
    (out / "summary.md").write_text(table(rows))
    # Figure rows are keyed by name: runs of the same directory name under different parents
    # would overwrite each other, so such runs are named by their whole path.
    unique = len({r["label"] for r in rows}) == len(rows)
    dumbbell({f"{r['label'] if unique else r['ckpt']} ({r['task']})": r["accuracy"] for r in rows}, out / "dumbbell.png",
             title="multi-mode models: accuracy by mode (same weights)")
    print(table(rows), end="")
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
