"""Generation accuracy of a checkpoint, at one or more numbers of thoughts.

    python -m analysis.accuracy --ckpt checkpoints/arith_coconut --thoughts 0 1 2 3 [--data FILE]

Without `--data` it scores the run's own validation set (regenerated from the saved config:
generators are deterministic). `--thoughts 0` puts the end marker right after the start
marker, i.e. the thoughts removed. `--show-wrong N` prints the first N misses (gold answer and
the generated text) and counts the misses whose output has no "###" answer at all.
`--check-traces` (ProsQA/ProntoQA-style runs that write their chain) runs the trace checker on
every generated chain and counts its verdicts for right and for wrong answers: a right answer
reached through an invented edge, a wrong one through valid edges to a dead end. `--by-steps`
splits the accuracy by the gold chain's number of steps as the record writes them (the path's
edges on ProsQA-style tasks; ProntoQA-style chains add the "[not] P" step to their hops): where
a model falls short, is it on the long chains? The last line is JSON:
{"thoughts": {k: accuracy}, "n": N} (+ "by_steps": {k: {steps: [records, accuracy]}}).
"""

from __future__ import annotations

import argparse
import collections
import json
import sys

from flax import nnx

from lrm_jax.data.layout import ANSWER_PREFIX
from lrm_jax.data.loaders import DataError, load_records
from lrm_jax.traces import check_generated, detect_format
from lrm_jax.training.checkpoint import CheckpointError, load_params, read_run_files
from lrm_jax.training.evaluate import accuracy, generate_texts, is_hit, modes_of, normalize, parse_answer
from lrm_jax.training.setup import load_data, make_layout


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ckpt", required=True, help="an lrm_jax run directory")
    p.add_argument("--thoughts", type=int, nargs="+", default=None, help="default: the run's maximum")
    p.add_argument("--data", help="records to score (default: the run's validation set)")
    p.add_argument("--limit", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--show-wrong", type=int, default=0, metavar="N", help="print the first N misses")
    p.add_argument("--check-traces", action="store_true", help="check each generated chain (logic tasks)")
    p.add_argument("--by-steps", action="store_true", help="accuracy per number of gold reasoning steps")
    args = p.parse_args(argv)
    try:
        cfg, tok = read_run_files(args.ckpt)
        model = load_params(args.ckpt)
        if args.data:
            loaded = load_records(args.data, lenient=True)
            print(loaded.summary(), file=sys.stderr)
            records = loaded.records
        else:
            records = load_data(cfg)[1]
    except (CheckpointError, DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    records = records[: args.limit] if args.limit else records
    if args.check_traces and records and detect_format(records[0]) not in ("prosqa", "prontoqa"):
        print("error: --check-traces checks ProsQA/ProntoQA-style chains; these records are "
              f"{detect_format(records[0])}-style", file=sys.stderr)
        return 2
    layout = make_layout(cfg)
    thoughts = args.thoughts if args.thoughts is not None else [layout.n_latent]
    graphdef, params = nnx.split(model, nnx.Param)
    mode = modes_of(cfg.method.name)[0]  # multi-mode models: their latent mode
    out, by_steps = {}, {}
    for k in thoughts:
        if not 0 <= k <= layout.n_latent:
            print(f"error: --thoughts {k} not in [0, {layout.n_latent}] for this run", file=sys.stderr)
            return 2
        texts = generate_texts(graphdef, params, records, tok, layout, mode, k,
                               batch_size=args.batch_size, max_new_tokens=cfg.train.max_new_tokens)
        out[k] = accuracy(records, texts)
        print(f"{cfg.method.name} with {k} thought(s): accuracy {out[k]:.4f} on {len(records)} records")
        if args.show_wrong:
            print_misses(records, texts, args.show_wrong)
        if args.check_traces:
            print_trace_verdicts(records, texts)
        if args.by_steps:
            by_steps[k] = accuracy_by_steps(records, texts)
            rows = (f"{s} steps {a:.4f} ({n})" for s, (n, a) in by_steps[k].items())
            print("  by gold steps: " + ", ".join(rows))
    result = {"ckpt": args.ckpt, "method": cfg.method.name, "n": len(records), "thoughts": out}
    if args.by_steps:
        result["by_steps"] = by_steps
    print(json.dumps(result))
    return 0


def accuracy_by_steps(records, texts) -> dict[int, tuple[int, float]]:
    """{number of gold steps: (records, accuracy)}, in increasing number of steps."""
    groups = collections.defaultdict(list)
    for pair in zip(records, texts, strict=True):
        groups[len(pair[0].steps)].append(pair)
    return {s: (len(g), accuracy(*zip(*g))) for s, g in sorted(groups.items())}


def other_option(record) -> str | None:
    """ProsQA-style records ask "A or B?": the answer naming the wrong option, else None."""
    g = record.graph
    if g is None:
        return None
    right, wrong = g.idx_to_symbol[g.target], g.idx_to_symbol[g.neg_target]
    return normalize(record.answer.replace(right, wrong))


def print_misses(records, texts, limit: int) -> None:
    misses = [(r, t) for r, t in zip(records, texts) if not is_hit(r, t)]
    no_answer = sum(ANSWER_PREFIX not in t for _, t in misses)
    print(f"  {len(misses)} misses, {no_answer} of them without a '{ANSWER_PREFIX}' answer")
    two_options = [(r, t) for r, t in misses if ANSWER_PREFIX in t and other_option(r) is not None]
    if two_options:  # a wrong branch can end at a concept that is neither option
        other = sum(parse_answer(t) == other_option(r) for r, t in two_options)
        print(f"  of the answered two-option misses: {other} name the other option, "
              f"{len(two_options) - other} neither option")
    for rec, text in misses[:limit]:
        print(f"  gold {rec.answer!r}\n    got  {text!r}")


def print_trace_verdicts(records, texts) -> None:
    verdicts = collections.Counter()
    for rec, text in zip(records, texts):
        outcome = "right" if is_hit(rec, text) else "wrong"
        verdicts[(outcome, check_generated(rec, text).reason or "valid")] += 1
    for (outcome, reason), n in sorted(verdicts.items()):
        print(f"  {outcome} answer, chain {reason}: {n}")


if __name__ == "__main__":
    sys.exit(main())
