"""ProsQA-style record generation: the plain-Python parent draw vs numpy's `Generator.choice`.

    python -m benchmarks.generate_records [--n 100000] [--seed 0]

Generates the same records twice with the 6-9-node recipe's settings
(`configs/prosqa_small_cpu_cot.yaml`): once as the generator is, once with its parent draw
routed through `rng.choice(pool, size=k, replace=False, p=...)` (the code before session 23).
Checks that both give identical records, then prints one JSON line with both times.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from unittest import mock

import numpy as np

from lrm_jax.data.generators import prosqa


def _numpy_draw(rng, pool, weights, k):
    w = np.array(weights)
    return [int(v) for v in rng.choice(pool, size=k, replace=False, p=w / w.sum())]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    cfg = prosqa.ProsQAConfig(min_nodes=6, max_nodes=9, mean_parents=0.8, min_path=2, max_path=3, cot="concepts")
    t0 = time.perf_counter()
    ours = prosqa.generate_prosqa(cfg, args.n, args.seed)
    t_ours = time.perf_counter() - t0
    with mock.patch.object(prosqa, "_weighted_sample", _numpy_draw):
        t0 = time.perf_counter()
        numpys = prosqa.generate_prosqa(cfg, args.n, args.seed)
        t_numpy = time.perf_counter() - t0
    if ours != numpys:
        raise SystemExit("the two draws gave different records: the plain-Python draw no longer matches numpy's")
    print(json.dumps({
        "records": args.n, "plain_python_s": round(t_ours, 2), "numpy_choice_s": round(t_numpy, 2),
        "speedup": round(t_numpy / t_ours, 2), "identical": True, "machine": platform.processor() or platform.machine(),
    }))


if __name__ == "__main__":
    main()
