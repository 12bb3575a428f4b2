"""Decoding study (paper section 3): is the gold reasoning trace readable from the thoughts?

    python -m analysis.decode --ckpt checkpoints/arith_coconut --out reports/arith_coconut/decode

Projects every reasoning position (start marker, thoughts, end marker, answer prefix, answer)
at every layer onto the vocabulary (top-k, lrm_jax/studies/lens.py), then searches the gold
trace in the final layer's grid by backtracking (lrm_jax/studies/backtrack.py): with and
without question numbers as leaves, primary and any gold trace (records may list alternatives
in an `alternatives` field), and the random-trace baseline (best of 1 and of 5, seed 42, the
answer not required). Calculator traces (arithmetic, GSM8k) are searched as values; ProsQA and
ProntoQA traces as the entities along the gold path. Beyond the paper, the same search runs on
every layer's grid (found rate per layer). Writes instances.jsonl, summary.json, summary.md,
figure5.png, per_layer.png and viewer.html (one instance's grid with its trace, Figure 4).
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

import numpy as np

from analysis import html_view, plots
from analysis.common import guarded, open_run, rate, md_table, parser, records_for, write_outputs
from lrm_jax.studies.auroc import auroc_ci
from lrm_jax.studies.backtrack import parse_trace, path_search, random_traces, rank_table, search, value_key
from lrm_jax.studies.bundle import StudyError
from lrm_jax.studies.lens import project
from lrm_jax.studies.necessity import normalize
from lrm_jax.traces.arith import question_numbers
from lrm_jax.traces.logic import singular


def main(argv=None) -> int:
    p = parser(__doc__)
    p.set_defaults(batch_size=32)
    p.add_argument("--top-k", type=int, default=10)
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--view", type=int, default=-1, help="instance for viewer.html (default: first correct with a trace)")
    args = p.parse_args(argv)

    def body() -> int:
        run, sharding = open_run(args.ckpt, need_latent=True, study="decoding")
        records, note = records_for(run, args.data, args.limit)
        if not any(r.steps for r in records):
            raise StudyError(f"{args.data or 'validation set'}: no record has reasoning steps; the gold-trace search needs them")
        print(f"{run.family_label} from {args.ckpt}; {len(records)} instances from {note}", file=sys.stderr)
        t0 = time.time()
        grids, predictions = project(run, records, k=args.top_k, max_new_tokens=args.max_new_tokens,
                                     batch_size=args.batch_size, sharding=sharding, progress=not args.no_progress)
        instances = analyse(run, records, grids, predictions)
        summary = summarize(instances, run)
        summary.update(ckpt=str(args.ckpt), family=run.family, label=run.family_label, top_k=args.top_k,
                       seconds=time.time() - t0)
        out = Path(args.out)
        write_outputs(out, instances, summary, render(summary))
        figure5(summary, out / "figure5.png")
        plots.found_rates({"per layer": {f"L{i}": v for i, v in enumerate(summary["found_by_layer"])}},
                          out / "per_layer.png", "gold trace found (with question) per layer", "% found")
        pick = args.view if args.view >= 0 else next(
            (i for i, r in enumerate(instances) if r["correct"] and r["found"]["primary_q"]), 0)
        r = instances[pick]
        (out / "viewer.html").write_text(html_view.render(
            f"{run.family_label}: instance {r['index']}", r["question"], r["labels"], r["topk"], r["topk_logprobs"],
            [tuple(n) for n in r["best_tree"]],
            note=f"gold {r['gold']!r}, predicted {r['prediction']!r}; gold steps: {' '.join(r['steps'])}",
        ))
        print(render(summary))
        return 0

    return guarded(body)


def gold_entities(steps) -> list[str]:
    """The entities along a logic record's gold path as the model writes them: the last word of
    each sentence of each step, lowercased ("Stella is a tumpus." -> "tumpus"; a concept chain's
    "not luminous" -> "luminous"), a repeat of the previous one dropped. Not singularised: the
    grid holds the tokens as written, and "tumpus" is already singular."""
    out = []
    for step in steps:
        for sent in step.replace("?", ".").split("."):
            words = sent.split()
            if words:
                e = words[-1].lower()
                if not out or singular(out[-1]) != singular(e):
                    out.append(e)
    return out


def analyse(run, records, grids, predictions) -> list[dict]:
    tok = run.tokenizer
    traces = [parse_trace(r.steps) if r.steps else None for r in records]
    calculator = sum(t is not None for t in traces) >= sum(bool(r.steps) for r in records) / 2
    pool = [t for t in traces if t]
    rng = random.Random(42)
    out = []
    for i, (rec, grid, pred) in enumerate(zip(records, grids, predictions)):
        layers = [rank_table(grid.tokens(tok, layer)) for layer in range(grid.ids.shape[0])]
        table = layers[-1]
        R, A = grid.n_reasoning, grid.answer_position
        row = {"index": i, "question": rec.question, "gold": rec.answer, "steps": list(rec.steps), "prediction": pred,
               "correct": normalize(pred) == normalize(rec.answer), "labels": grid.labels,
               "topk": grid.tokens(tok), "topk_logprobs": grid.logprobs[-1].round(3).tolist(), "n_steps": len(rec.steps)}
        if calculator:
            golds = [t for t in [traces[i]] + [parse_trace(a) for a in rec.extra.get("alternatives", [])] if t]
            qnums = {value_key(v) for v in question_numbers(rec.question)} - {None}
            if not golds:
                row.update(found={k: False for k in ("primary", "primary_q", "any", "any_q")}, best_tree=[], vp_impossible="unparsed trace")
                out.append(row)
                continue
            res = {(g, q): search(table, R, A, tr, qnums if q else None) for g, tr in enumerate(golds) for q in (False, True)}
            row["found"] = {
                "primary": res[(0, False)].found, "primary_q": res[(0, True)].found,
                "any": any(v.found for (g, q), v in res.items() if not q), "any_q": any(v.found for v in res.values()),
            }
            row["n_trees"] = res[(0, True)].n_trees
            row["best_tree"] = res[(0, True)].best
            row["vp_impossible"] = res[(0, False)].impossible
            baselines = random_traces(golds, [t for t in pool if t is not traces[i]], 5, rng)
            hits = [search(table, R, A, b, qnums, require_answer=False).found for b in baselines]
            row["baseline"] = {"tested": bool(baselines), "best_of_1": bool(hits[:1] and hits[0]), "best_of_5": any(hits)}
            row["found_by_layer"] = [search(t, R, A, traces[i], qnums).found for t in layers]
        else:
            ents = gold_entities(rec.steps)
            answer_first = rec.answer.split()[0] if rec.answer.split() else rec.answer
            res = path_search(table, R, A, ents, answer_first)
            row["found"] = {k: res.found for k in ("primary", "primary_q", "any", "any_q")}
            row["n_trees"], row["best_tree"] = res.n_trees, res.best
            others = [gold_entities(r.steps) for r in records if r is not rec and len(r.steps) == len(rec.steps)]
            rng.shuffle(others)
            hits = [path_search(table, R, A, e, answer_first, require_answer=False).found for e in others[:5] if e != ents]
            row["baseline"] = {"tested": bool(hits), "best_of_1": bool(hits[:1] and hits[0]), "best_of_5": any(hits)}
            row["found_by_layer"] = [path_search(t, R, A, ents, answer_first).found for t in layers]
        out.append(row)
    return out



def summarize(instances, run) -> dict:
    s = {"n": len(instances), "accuracy": rate(instances, lambda r: r["correct"])}
    for name, rows in (("correct", [r for r in instances if r["correct"]]), ("incorrect", [r for r in instances if not r["correct"]])):
        tested = [r for r in rows if r.get("baseline", {}).get("tested")]
        s[name] = {
            "n": len(rows),
            **{f"found_{k}": rate(rows, lambda r, k=k: r["found"][k]) for k in ("primary", "primary_q", "any", "any_q")},
            "baseline_n": len(tested),
            "baseline_best_of_1": rate(tested, lambda r: r["baseline"]["best_of_1"]),
            "baseline_best_of_5": rate(tested, lambda r: r["baseline"]["best_of_5"]),
            "vp_impossible": int(sum(bool(r.get("vp_impossible")) for r in rows)),
        }
    by_steps = {}
    for r in instances:
        by_steps.setdefault(r["n_steps"], []).append(r)
    s["by_steps"] = {str(k): {"n": len(v), "found_any_q_correct": rate([r for r in v if r["correct"]], lambda r: r["found"]["any_q"])}
                     for k, v in sorted(by_steps.items())}
    labels = [r["correct"] for r in instances]
    s["auroc"] = {
        "gold_trace_found": auroc_ci([float(r["found"]["any_q"]) for r in instances], labels),
        "log_trees": auroc_ci([float(np.log1p(r.get("n_trees", 0))) for r in instances], labels),
    }
    L = len(instances[0]["found_by_layer"]) if instances else 0
    s["found_by_layer"] = [rate(instances, lambda r, i=i: r["found_by_layer"][i]) for i in range(L)]
    return s


def render(s: dict) -> str:
    rows = []
    for name in ("correct", "incorrect"):
        v = s[name]
        rows.append([name, v["n"], v["found_primary"], v["found_primary_q"], v["found_any"], v["found_any_q"],
                     v["baseline_best_of_1"], v["baseline_best_of_5"], v["vp_impossible"]])
    table = md_table(["predictions", "n", "primary", "primary + question", "any gold", "any + question",
                      "random best of 1", "random best of 5", "VP-impossible"], rows)
    steps = md_table(["gold steps", "n", "found (any + question), correct"],
                     [[k, v["n"], v["found_any_q_correct"]] for k, v in s["by_steps"].items()])
    layers = md_table(["layer"] + [str(i) for i in range(len(s["found_by_layer"]))], [["found (all)"] + s["found_by_layer"]])
    au = md_table(["predictor of correctness", "AUROC", "95% CI"],
                  [[k, v["auroc"], f"{v['ci_low']:.3f}-{v['ci_high']:.3f}"] for k, v in s["auroc"].items()])
    return (f"# Gold-trace decoding: {s['label']} ({s['ckpt']})\n\n{s['n']} instances, accuracy {s['accuracy']:.3f}, "
            f"top-{s['top_k']} final-layer projection.\n\nShare of instances with the gold trace found:\n\n{table}\n"
            f"By number of gold steps:\n\n{steps}\nBy layer (logit lens; the last is the paper's):\n\n{layers}\n"
            f"Correctness signal (bootstrap 95% CI, 1000 draws):\n\n{au}")


def figure5(s: dict, path: Path) -> None:
    groups = {}
    for name in ("correct", "incorrect"):
        v = s[name]
        groups[f"{name}: primary"] = {"no question": v["found_primary"], "with question": v["found_primary_q"]}
        groups[f"{name}: any gold"] = {"no question": v["found_any"], "with question": v["found_any_q"]}
        groups[f"{name}: best of 5 other"] = {"no question": v["baseline_best_of_5"], "with question": v["baseline_best_of_5"]}
    plots.found_rates({k: {b: (0.0 if x != x else x) for b, x in g.items()} for k, g in groups.items()}, path,
                      f"{s['label']}: gold reasoning trace found", "% of instances")


if __name__ == "__main__":
    sys.exit(main())
