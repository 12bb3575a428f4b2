"""Blind search with verification (paper section 4): a verified trace without the gold trace.

    python -m analysis.search --ckpt checkpoints/arith_coconut --out reports/arith_coconut/search

Forward chaining over the top-k integers of the final-layer projection, counterfactual
verification by editing the question's numbers through its template (n = 3 edits, required
passes r = 1, 2, 3, max rank 1), and trace assembly backwards from the predicted answer
(lrm_jax/studies/forward_chain.py). Needs templated questions: the arithmetic generator's
templates, or, for free text such as GSM8k-Aug, templates extracted here (whole numbers written
in digits and cardinal words from "two" to "ninety" become variables; lrm_jax/studies/templates.py)
with a report of what stays fixed and
what could not be templated. ProsQA/ProntoQA questions take the logic search instead
(analysis/search_logic.py): paths of the question's concepts among the top-k, checked by the
trace checker, verified by renaming concepts in the question. Writes instances.jsonl, summary.json, summary.md
and figure6.png (verified-trace rates for correct and incorrect predictions, found rate as a
line).
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import numpy as np

from analysis import plots
from analysis.search_logic import analyse_logic, is_logic
from analysis.common import guarded, open_run, rate, md_table, parser, records_for, write_outputs
from lrm_jax.data.generators.arithmetic import evaluate as program_results, render
from lrm_jax.data.layout import ANSWER_PREFIX
from lrm_jax.data.records import Record
from lrm_jax.studies import templates
from lrm_jax.studies.auroc import auroc_ci
from lrm_jax.studies.bundle import StudyError
from lrm_jax.studies.forward_chain import InstanceGrids, assemble, chain
from lrm_jax.studies.lens import project_questions

REQUIRED = (1, 2, 3)


def edit_values(value: int) -> list[int]:
    """The paper's order: scale-aware neighbours, round numbers, then +-1..20."""
    scale = 100 if value >= 1000 else 10 if value >= 100 else 1
    out = [value + s * d * scale for d in range(1, 6) for s in (1, -1)]
    out += [m for m in (10, 50, 100) for m in range(m, 10 * m + 1, m)]
    out += [value + s * d for d in range(1, 21) for s in (1, -1)]
    seen = []
    for v in out:
        if v > 0 and v != value and v not in seen:
            seen.append(v)
    return seen


def valid_edits(record, tokenizer, per_var: int) -> list[tuple[str, int]]:
    """(variable, new value): single-token numbers everywhere (for generated arithmetic, every
    intermediate result of the edited program too)."""
    t = record.template
    out = []
    for var, old in t["values"].items():
        found = 0
        for new in edit_values(int(old)):
            values = {**t["values"], var: new}
            if "program" in t:
                try:
                    shown = list(values.values()) + program_results(t, values)
                except ZeroDivisionError:
                    continue
            else:
                shown = [new]
            if all(_single_token(tokenizer, x) for x in shown):
                out.append((var, new))
                found += 1
                if found == per_var:
                    break
    return out


def edited(record, var: str, new: int) -> Record:
    """The record's question with one variable changed (steps and answer are not needed)."""
    values = {**record.template["values"], var: new}
    if "program" in record.template:
        return render(record.template, values)
    return Record(templates.render(record.template, values), (), "", template={**record.template, "values": values})


def _single_token(tokenizer, x) -> bool:
    if x < 0:
        return False
    ids = tokenizer.encode(f" {x}")
    return len(ids) == 1 and ids[0] != tokenizer.ids.get("unk", -1)


def _ints(tokens) -> tuple[dict[int, int], int | None]:
    ranks = {}
    for r, tok in enumerate(tokens):
        t = tok.strip()
        if re.fullmatch(r"\d+", t) and int(t) not in ranks:
            ranks[int(t)] = r
    top1 = next(iter(ranks), None)
    return ranks, top1


def main(argv=None) -> int:
    p = parser(__doc__)
    p.set_defaults(batch_size=128)
    p.add_argument("--top-k", type=int, default=10)
    p.add_argument("--edits-per-var", type=int, default=6)
    p.add_argument("--offset", type=int, default=0, help="result offset d (default: 1 COCONUT, 2 CODI)")
    args = p.parse_args(argv)

    def body() -> int:
        run, sharding = open_run(args.ckpt, need_latent=True, study="blind search")
        records, note = records_for(run, args.data, args.limit)
        t0 = time.time()
        if is_logic(records):
            print(f"{run.family_label} from {args.ckpt}; {len(records)} logic instances from {note}", file=sys.stderr)
            instances = analyse_logic(run, records, args, sharding, required=REQUIRED)
            return finish(run, args, instances, t0, offset=None,
                          templates="logic: paths of question concepts, verified by renaming each concept 3 times")
        records, report = templates.attach(records)
        print(report, file=sys.stderr)
        if not records:
            raise StudyError(f"{args.data or 'validation set'}: no record has a template or a number to edit "
                             f"({report}); counterfactual verification edits the question's numbers")
        offset = args.offset or (2 if run.is_codi else 1)
        print(f"{run.family_label} from {args.ckpt}; {len(records)} instances from {note}; offset d={offset}", file=sys.stderr)
        instances = analyse(run, records, args, offset, sharding)
        return finish(run, args, instances, t0, offset=offset, templates=report)

    return guarded(body)


def finish(run, args, instances, t0, *, offset, templates) -> int:
    summary = summarize(instances)
    summary.update(ckpt=str(args.ckpt), family=run.family, label=run.family_label, offset=offset, templates=templates,
                   top_k=args.top_k, seconds=time.time() - t0)
    out = Path(args.out)
    write_outputs(out, instances, summary, render_md(summary))
    groups = {f"{name} (n={summary[name]['n']})": {f"verified r={r}": summary[name][f"verified_r{r}"] for r in REQUIRED}
              | {"found": summary[name]["found"]} for name in ("correct", "incorrect")}
    plots.found_rates({k: {b: (0.0 if x != x else x) for b, x in g.items()} for k, g in groups.items()},
                      out / "figure6.png", f"{run.family_label}: verified reasoning trace", "% of instances")
    print(render_md(summary))
    return 0


def analyse(run, records, args, offset, sharding) -> list[dict]:
    tok, layout = run.tokenizer, run.layout
    P, Z = layout.n_prefix, layout.n_latent
    prefix = tok.encode(" " + ANSWER_PREFIX)
    columns_one = [P - 1, *range(P, P + Z), P + Z, P + Z + len(prefix)]
    answer_index = len(columns_one) - 1
    # All questions at once: the originals, then every instance's edited versions.
    edits = [valid_edits(r, tok, args.edits_per_var) for r in records]
    rows = list(records) + [edited(r, var, new) for r, es in zip(records, edits) for var, new in es]
    grids_tokens = project_questions(run, rows, columns_one, k=args.top_k, suffix=prefix, batch_size=args.batch_size,
                                     sharding=sharding, progress=not args.no_progress,
                                     desc=f"{len(rows)} original + edited questions")
    results, cursor = [], len(records)
    for i, rec in enumerate(records):
        ints_top1 = [_ints(pos) for pos in grids_tokens[i]]
        edit_top1 = {}
        for var, new in edits[i]:
            edit_top1[(var, new)] = [_ints(pos)[1] for pos in grids_tokens[cursor]]
            cursor += 1
        g = InstanceGrids([x[0] for x in ints_top1], [x[1] for x in ints_top1],
                          {k: int(v) for k, v in rec.template["values"].items()}, edit_top1, answer_index)
        answer = g.top1[answer_index]
        row = {"index": i, "question": rec.question, "gold": rec.answer, "gold_steps": list(rec.steps),
               "prediction": answer, "correct": answer is not None and str(answer) == rec.answer.strip(),
               "n_edits": len(edits[i]), "top1": g.top1}
        for r in REQUIRED:
            steps = chain(g, r, offset)
            found, verified, texts = assemble(steps, answer, answer_index)
            row[f"r{r}"] = {"found": found, "verified": verified, "trace": texts,
                            "steps": [{"position": c.position, "step": c.text(), "verified": ok, "passes": c.passes}
                                      for c, ok in steps]}
        results.append(row)
    return results



def summarize(instances) -> dict:
    s = {"n": len(instances), "accuracy": rate(instances, lambda r: r["correct"])}
    for name, rows in (("correct", [r for r in instances if r["correct"]]), ("incorrect", [r for r in instances if not r["correct"]])):
        s[name] = {"n": len(rows), "found": rate(rows, lambda r: np.mean([r[f"r{q}"]["found"] for q in REQUIRED])),
                   **{f"verified_r{q}": rate(rows, lambda r, q=q: r[f"r{q}"]["verified"]) for q in REQUIRED}}
    labels = [r["correct"] for r in instances]
    s["auroc"] = {f"verified_r{q}": auroc_ci([float(r[f"r{q}"]["verified"]) for r in instances], labels) for q in REQUIRED}
    return s


def render_md(s: dict) -> str:
    rows = [[name, s[name]["n"], s[name]["found"], *[s[name][f"verified_r{r}"] for r in REQUIRED]] for name in ("correct", "incorrect")]
    table = md_table(["predictions", "n", "trace found (mean over r)", "verified r=1", "verified r=2", "verified r=3"], rows)
    au = md_table(["predictor of correctness", "AUROC", "95% CI"],
                  [[k, v["auroc"], f"{v['ci_low']:.3f}-{v['ci_high']:.3f}"] for k, v in s["auroc"].items()])
    how = (f"step offset d={s['offset']}, 3 edits" if s.get("offset") is not None
           else "paths of question concepts, each verified by 3 concept renames")
    return (f"# Blind search with verification: {s['label']} ({s['ckpt']})\n\n{s['n']} instances, accuracy "
            f"{s['accuracy']:.3f}; top-{s['top_k']}, {how}, max rank 1.\n\n{table}\n"
            f"Correctness signal (bootstrap 95% CI, 1000 draws):\n\n{au}")


if __name__ == "__main__":
    sys.exit(main())
