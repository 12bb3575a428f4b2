"""Necessity sweep throughput: our batched sweep vs a per-instance, per-k loop (issue #5).

    python -m benchmarks.necessity_sweep --ckpt checkpoints/arith_coconut [--n 500] [--loop-n 500]

Both run the same model on the same instances: k = 0..Z thoughts, the answer prefix forced,
answers up to 32 tokens, and each instance's full-reasoning answer. The batched side is
`lrm_jax.studies.necessity.sweep` with only the truncation condition; the loop is `sweep_loop`,
one jitted batch-1 call per instance for the full answer and one per (instance, k), the way
the reference analysis code runs. Times include compilation; a second batched run shows
the time without it. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

from lrm_jax.studies.batched import default_sharding
from lrm_jax.studies.bundle import load_run
from lrm_jax.studies.necessity import sweep, sweep_loop
from lrm_jax.training.setup import load_data


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ckpt", required=True)
    p.add_argument("--n", type=int, default=500)
    p.add_argument("--loop-n", type=int, default=500, help="instances for the loop (time scaled to --n if fewer)")
    p.add_argument("--batch-size", type=int, default=512)
    args = p.parse_args(argv)
    sharding = default_sharding()
    run = load_run(args.ckpt).replicate(sharding)
    records = load_data(run.cfg)[1][: args.n]
    Z = run.layout.n_latent
    timings = {}
    for name in ("batched (incl. compile)", "batched"):
        t0 = time.time()
        results, _ = sweep(run, records, batch_size=args.batch_size, answer_tokens=32, kinds=("none",),
                           sharding=sharding, progress=False, keep_unparseable=True)
        timings[name] = time.time() - t0
    t0 = time.time()
    _, loop = sweep_loop(run, records[: args.loop_n], answer_tokens=32)
    loop_s = (time.time() - t0) * len(records) / args.loop_n
    same = sum(r["answers"]["none"] == a for r, a in zip(results, loop))
    conditions = len(records) * (Z + 1)
    print(json.dumps({
        "ckpt": args.ckpt, "family": run.family, "instances": len(records), "k_values": Z + 1,
        "conditions": conditions, "machine": f"{platform.machine()} {platform.processor()}",
        "batched_s_incl_compile": round(timings["batched (incl. compile)"], 2), "batched_s": round(timings["batched"], 2),
        "loop_s": round(loop_s, 2), "loop_instances_timed": args.loop_n,
        "speedup_incl_compile": round(loop_s / timings["batched (incl. compile)"], 1),
        "speedup": round(loop_s / timings["batched"], 1),
        "conditions_per_s_batched": round(conditions / timings["batched"], 1),
        "conditions_per_s_loop": round(conditions / loop_s, 1),
        "loop_agrees_with_batched": f"{same}/{min(len(loop), len(results))}",
    }))


if __name__ == "__main__":
    main()
