"""Necessity study (paper section 2): are the thoughts needed for the model's own answer?

    python -m analysis.necessity --ckpt checkpoints/arith_coconut --out reports/arith_coconut/necessity

For each instance: the model's full-reasoning answer, then the answer after k = 0..Z thoughts
(or 0..S steps of its own chain for CoT), with the answer prefix forced, under no intervention
and with the thoughts zeroed, mean-replaced, noised and swapped between instances. Writes
instances.jsonl, summary.json, summary.md, necessity_curves.png and figure2.png (the paper's
first/stable-match bar). See lrm_jax/studies/necessity.py for the procedure.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from analysis import plots
from analysis.common import guarded, open_run, md_table, parser, records_for, write_outputs
from lrm_jax.studies.necessity import INTERVENTIONS, summarize, sweep


def main(argv=None) -> int:
    p = parser(__doc__)
    p.add_argument("--answer-tokens", type=int, default=32, help="answer length after the forced prefix")
    p.add_argument("--keep-unparseable", action="store_true",
                   help="keep instances whose full answer has no '#' (the paper skips them)")
    p.add_argument("--interventions", nargs="+", default=list(INTERVENTIONS), choices=INTERVENTIONS)
    args = p.parse_args(argv)

    def body() -> int:
        run, sharding = open_run(args.ckpt)
        records, note = records_for(run, args.data, args.limit)
        print(f"{run.family_label} from {args.ckpt}; {len(records)} instances from {note}", file=sys.stderr)
        t0 = time.time()
        results, extra = sweep(run, records, batch_size=args.batch_size, answer_tokens=args.answer_tokens,
                               kinds=args.interventions, sharding=sharding, progress=not args.no_progress,
                               keep_unparseable=args.keep_unparseable)
        seconds = time.time() - t0
        summary = summarize(results, extra)
        n_conditions = sum(len(r["answers"][k]) for r in results for k in r["answers"])
        summary.update(ckpt=str(args.ckpt), family=run.family, label=run.family_label, seconds=seconds,
                       conditions_per_second=n_conditions / seconds, n_thoughts=run.n_thoughts)
        out = Path(args.out)
        write_outputs(out, results, summary, render(summary))
        plots.necessity_curves(summary, out / "necessity_curves.png")
        plots.figure2([summary], out / "figure2.png")
        print(render(summary))
        return 0

    return guarded(body)


def render(s: dict) -> str:
    head = (f"# Necessity: {s['label']} ({s['ckpt']})\n\n{s['n']} instances ({s['skipped_unparseable']} skipped: "
            f"no parseable full answer); full-reasoning accuracy {s['accuracy_full']:.3f}.\n\n")
    main = md_table(
        ["% reasoning needed: first match", "SD", "stable match", "SD", "no reasoning needed (stable at 0)", "never matched"],
        [[s["first_match_pct_mean"], s["first_match_pct_sd"], s["stable_match_pct_mean"], s["stable_match_pct_sd"],
          s["no_reasoning_needed"], s["never_matched"]]],
    )
    K = len(s["per_k"]["none"]["accuracy"])
    rows = []
    for kind, v in s["per_k"].items():
        rows.append([f"{kind}: accuracy"] + v["accuracy"])
        rows.append([f"{kind}: agrees with full"] + v["agreement"])
    per_k = md_table(["condition"] + [f"k={k}" for k in range(K)], rows)
    return head + main + "\nPer truncation k (thoughts or chain steps kept):\n\n" + per_k


if __name__ == "__main__":
    sys.exit(main())
