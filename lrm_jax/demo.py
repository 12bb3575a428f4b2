"""The main job on an embedded default: `python -m lrm_jax.demo [--out report] [--quick]`.

Today it generates the CPU-sized task variants (a logic task where the paper finds thoughts
unnecessary, and arithmetic where they are needed), verifies every gold trace with the trace
checkers, builds the word tokenizers, and writes `report/README.md` saying what was done. The
trainer exists (`python -m train.cot|coconut|...`, see RESULTS.md) but the demo does not run it
yet, nor the analysis studies; the report says so plainly rather than pretending.
"""

from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

from tqdm import tqdm

from lrm_jax.data.generators import ArithConfig, ProntoQAConfig, ProsQAConfig, GENERATORS
from lrm_jax.data.layout import sequence_texts
from lrm_jax.data.loaders import save_records
from lrm_jax.tokenizer import WordTokenizer
from lrm_jax.traces import check_record

# CPU-sized variants (../shared/reference/feasibility.md): full-size tasks do not train here.
CPU_TASKS = {
    "prontoqa": ProntoQAConfig(min_hops=2, max_hops=3, n_distractor_properties=4, n_distractor_isa=2),
    "prosqa": ProsQAConfig(min_nodes=8, max_nodes=12, min_path=2, max_path=4),
    "arithmetic": ArithConfig(min_ops=2, max_ops=3, max_value=20, ops=("+", "-")),
}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="report")
    p.add_argument("--quick", action="store_true", help="tiny sizes: a pipeline check")
    args = p.parse_args(argv)
    out = Path(args.out)
    sizes = {"train": 200, "valid": 50} if args.quick else {"train": 20000, "valid": 500}
    lines = ["# lrm-jax demo report", ""]
    if args.quick:
        lines += ["**--quick run: a pipeline check on tiny data; no numbers here mean anything.**", ""]
    lines += ["| task | split | records | gold traces verified |", "|---|---|---|---|"]
    for task, cfg in CPU_TASKS.items():
        _, generate = GENERATORS[task]
        texts = []
        for split, n in sizes.items():
            seed = {"train": 0, "valid": 1}[split]
            records = generate(cfg, n, seed)
            verdicts = collections.Counter(
                check_record(r).ok for r in tqdm(records, desc=f"{task}/{split} check", leave=False)
            )
            save_records(records, out / "data" / f"{task}_{split}.json")
            texts += [t for r in records for t in sequence_texts(r)]
            lines.append(f"| {task} | {split} | {n} | {verdicts[True]}/{n} |")
        tok = WordTokenizer.build(texts)
        tok.save(out / "tokenizers" / task)
        print(f"{task}: vocabulary of {tok.vocab_size} tokens")
    lines += [
        "",
        "Not in the demo yet (issue #6): training (the trainer exists: `python -m train.cot` etc.),",
        "CODI, the necessity, decoding and verification studies, figures. No model results here.",
    ]
    out.mkdir(parents=True, exist_ok=True)
    (out / "README.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out / 'README.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
