"""The main job on an embedded default: `python -m analysis.demo [--out report] [--quick]`.

From nothing to the paper's three findings on this machine: it generates two CPU-sized tasks
(ProntoQA-style logic, where the paper finds the thoughts unnecessary, and single-token
arithmetic, where they are needed), trains CoT, No-CoT, COCONUT and CODI on each (COCONUT and
CODI start from the CoT model, as the reference GSM8k recipe does), runs the necessity,
decoding and blind-search studies on the latent models, and writes `<out>/README.md` with the
tables, figures and what was found, in plain words.

Every training job has a time limit, so the full run fits in about 30 minutes on 2 CPU cores;
every step is resumable: runs resume from their checkpoints and finished steps are skipped
(delete `<out>/runs/<name>` or `<out>/studies/<name>` to redo one). `--quick` shrinks
everything to a pipeline check of under 3 minutes on the arithmetic task alone, whose models
learn nothing; its report says so.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

from lrm_jax.host_devices import prepare_cpu_host

prepare_cpu_host()  # before jax is imported

from analysis import decode, necessity, search
from analysis.report import write_report
from lrm_jax.config import RunConfig, load
from lrm_jax.studies.bundle import load_run
from lrm_jax.training.evaluate import accuracy, generate_texts
from lrm_jax.training.loop import run as train
from lrm_jax.training.setup import load_data


@dataclasses.dataclass(frozen=True)
class Job:
    name: str  # run directory under <out>/runs
    method: str
    minutes: float
    overrides: tuple[str, ...] = ()
    init_from: str = ""  # another job's name


ARITH = (
    "data.task=arithmetic", "data.n_train=20000", "data.n_valid=500",
    "data.generator={min_ops: 2, max_ops: 3, max_value: 20, ops: ['+', '-']}",
    "data.max_question_len=28", "data.max_rest_len=28",
    "model.n_layer=2", "model.n_embd=128", "model.n_head=4", "model.n_positions=128",
    "train.batch_size=128", "train.max_new_tokens=28", "train.schedule=warmup_cosine", "train.clip_norm=1.0",
)
LOGIC = (
    "data.task=prontoqa", "data.n_train=8000", "data.n_valid=500",
    "data.generator={min_hops: 1, max_hops: 2, n_distractor_properties: 0, n_distractor_isa: 1, extra_subject_fact: false, "
    "templates: every, branching: false, cot: concepts}",
    "data.max_question_len=48", "data.max_rest_len=24",
    "model.n_layer=2", "model.n_embd=128", "model.n_head=4", "model.n_positions=128", "model.key_smear=3",
    "train.batch_size=32", "train.max_new_tokens=24", "train.schedule=warmup_cosine", "train.clip_norm=1.0",
)
# Rows split into 4 chunks inside the step: 1.5-1.7x more CoT steps a minute on 2 cores, 0.8-1.2x
# (noise) for COCONUT's (BENCHMARKS.md, `benchmarks/demo_chunks.py`); CODI's several losses cannot
# be chunked this way.
CHUNKED = ("train.micro_batches=4",)
COT = ("train.lr=2e-3", "train.warmup_steps=100", "train.num_epochs=3") + CHUNKED
# From the CoT model: stages 1..3 (one step each, one epoch of 156 steps each), then one more
# epoch with every step latent. Fewer steps per stage did not learn (8% after 62 per stage).
COCONUT = ("method.c_thought=1", "method.max_latent_stage=3", "method.epochs_per_stage=1",
           "method.first_epoch=1", "train.num_epochs=4", "train.lr=1e-3", "train.warmup_steps=20") + CHUNKED
CODI = ("method.num_latent=6", "model.projection_dim=128", "train.num_epochs=2",
        "train.lr=1e-3", "train.warmup_steps=20", "train.weight_decay=0.1", "train.clip_norm=2.0")

TASKS = {
    "arithmetic": (ARITH, [
        Job("cot", "cot", 3.5, COT), Job("nocot", "nocot", 1.0, COT),
        Job("coconut", "coconut", 6.5, COCONUT, "cot"), Job("codi", "codi", 5.0, CODI, "cot"),
    ]),
    # The logic task is written as a chain of concepts with keys that see their 3 previous tokens
    # (configs/prontoqa_cpu_cot.yaml says why): at this size that is what makes its lookups
    # learnable within a few minutes (RESULTS.md, logic section).
    "logic": (LOGIC, [
        # Four epochs (1,000 steps): its lookups are learned between steps 500 and 1,000, and three
        # epochs (750 steps) scored 86-89% in session 17 (RESULTS.md, demo section).
        Job("cot", "cot", 2.5, COT + ("train.num_epochs=4",)), Job("nocot", "nocot", 0.5, COT),
        Job("coconut", "coconut", 3.0, COCONUT + ("method.max_latent_stage=2", "train.num_epochs=3"), "cot"),
        # configs/prontoqa_cpu_codi.yaml's settings: the teacher keeps its last step (the final
        # lookup); no projection; thoughts at the token-embedding length and <bot> from
        # <|end-latent|>, without which the student stays at chance. 0.82 in 1.5 min here (0.50
        # before, RESULTS.md session 18).
        Job("codi", "codi", 2.0, CODI + ("data.n_train=3000", "method.drop_last_step=false", "model.projection_dim=0",
                                         "model.thought_norm=embedding", "method.num_latent=2",
                                         "train.init_copy_rows=[bot=end_latent]", "train.num_epochs=4"), "cot"),
    ]),
}
QUICK = ("data.n_train=256", "data.n_valid=16", "model.n_layer=1", "model.n_embd=32", "model.n_head=2",
         "train.batch_size=32", "train.max_steps=6", "train.num_epochs=3", "model.projection_dim=32")
STUDY_LIMIT = {"necessity": 200, "decode": 200, "search": 60}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="report", help="output directory (runs, studies, README.md)")
    p.add_argument("--quick", action="store_true", help="a ~2-minute pipeline check on tiny settings")
    args = p.parse_args(argv)
    out = Path(args.out)
    t0 = time.time()
    models, studies = [], []
    # --quick: the arithmetic task only (every model and study), to stay within ~3 minutes.
    tasks = {"arithmetic": TASKS["arithmetic"]} if args.quick else TASKS
    for task, (common, jobs) in tasks.items():
        for job in jobs:
            models.append(train_job(out, task, common, job, args.quick))
        for job in jobs:
            if job.method in ("coconut", "codi", "cot"):
                studies.append(run_studies(out, task, job, args.quick))
    write_report(out, models, studies, quick=args.quick, minutes=(time.time() - t0) / 60)
    print(f"report written to {out / 'README.md'} ({(time.time() - t0) / 60:.1f} min)")
    return 0


def train_job(out: Path, task: str, common, job: Job, quick: bool) -> dict:
    workdir = out / "runs" / f"{task}_{job.name}"
    done = workdir / "demo_done.json"
    if done.exists():
        print(f"[{task}/{job.name}] done earlier, skipped")
        return json.loads(done.read_text())
    cfg = job_config(out, task, common, job, quick)
    print(f"[{task}/{job.name}] training {job.method} for at most {job.minutes} min in {workdir}")
    start = time.time()
    result = train(cfg, workdir, progress=True)
    info = {"task": task, "name": job.name, "method": job.method, "workdir": str(workdir), "steps": result.step,
            "stopped": result.stopped, "minutes": (time.time() - start) / 60, "accuracy": score(workdir, quick)}
    done.write_text(json.dumps(info))
    return info


def job_config(out: Path, task: str, common, job: Job, quick: bool = False, extra=()) -> RunConfig:
    """The resolved config of one demo job (`extra`: overrides applied last, for benchmarks)."""
    overrides = [*common, f"method.name={job.method}", *job.overrides, f"train.time_limit_minutes={job.minutes}",
                 "train.eval_every_epochs=1000", "train.log_every=20"]
    if job.init_from:
        overrides.append(f"train.init_from={out / 'runs' / f'{task}_{job.init_from}'}")
    if quick:
        overrides += list(QUICK)
    return load(RunConfig, None, [*overrides, *extra])


def score(workdir: Path, quick: bool) -> float:
    """Generation accuracy of the run's main mode on (up to 500 of) its validation records."""
    run = load_run(workdir)
    records = load_data(run.cfg)[1][: 16 if quick else 500]
    texts = generate_texts(run.graphdef, run.params, records, run.tokenizer, run.layout, run.mode, run.n_thoughts,
                           batch_size=128, max_new_tokens=run.cfg.train.max_new_tokens)
    return accuracy(records, texts)


def run_studies(out: Path, task: str, job: Job, quick: bool) -> dict:
    ckpt = out / "runs" / f"{task}_{job.name}"
    base = out / "studies" / f"{task}_{job.name}"
    limit = {k: (8 if quick else v) for k, v in STUDY_LIMIT.items()}
    common = ["--ckpt", str(ckpt), "--no-progress"]
    # --quick: fewer and shorter conditions, the same code paths.
    extra = {"necessity": ["--keep-unparseable", "--answer-tokens", "4", "--interventions", "none", "zero"],
             "decode": ["--max-new-tokens", "8", "--top-k", "5"], "search": ["--edits-per-var", "2"]} if quick else {}
    info = {"task": task, "name": job.name, "method": job.method, "dir": str(base)}
    plan = [("necessity", necessity.main)]
    if job.method != "cot":
        plan.append(("decode", decode.main))
        plan.append(("search", search.main))
    plan = [(name, fn, common + ["--limit", str(limit[name])] + extra.get(name, [])) for name, fn in plan]
    for name, fn, argv in plan:
        target = base / name
        if not (target / "summary.json").exists():
            print(f"[{task}/{job.name}] {name} study")
            if fn(argv + ["--out", str(target)]) != 0:
                info[name] = {"error": f"{name} failed; see the log above"}
                continue
        info[name] = json.loads((target / "summary.json").read_text())
    return info


if __name__ == "__main__":
    sys.exit(main())
