"""The thought scan reading the question's cache pre-transposed (`KVCache.for_reading`) or as stored.

    python -m benchmarks.prefix_layout [--size tiny] [--steps 20] [--batch B] [--recipe-shape]

Same synthetic stage-6 ProsQA batches and model as `benchmarks.train_step` (loss + gradient, no
optimizer); `--recipe-shape` instead takes the shape of configs/prosqa_small_cpu_coconut.yaml
(L=4 d=128 H=4 with key_smear 3, 3 thoughts, questions of 36-72 tokens, batch 32). Both variants are compiled in one process and timed alternately, step by step, so a
noisy host slows both alike; the "as stored" variant is the same code with `for_reading` made a
no-op, which sends attention down the stored-layout (BxSxHxK) path, where XLA transposes the
prefix keys and values inside every thought step. Reports each variant's median and the ratio.
"""

from __future__ import annotations

import argparse
import statistics
import time
from unittest import mock

from lrm_jax.host_devices import huge_pages_active, prepare_cpu_host

prepare_cpu_host()  # as the trainer does

import jax  # noqa: E402
from flax import nnx  # noqa: E402

from benchmarks.parallel import data_parallel  # noqa: E402
from benchmarks.train_step import SIZES, synthetic_batch  # noqa: E402
from lrm_jax.config import ModelConfig  # noqa: E402
from lrm_jax.model.cache import KVCache  # noqa: E402
from lrm_jax.model.gpt2 import init_model  # noqa: E402
from lrm_jax.training.objective import lm_loss  # noqa: E402


def compiled_step(graphdef, layout, params, batch, as_stored: bool, traces: list):
    def step(p, rows):
        traces.append(as_stored)  # runs only when jax traces: each variant must trace once
        loss, grads = jax.value_and_grad(lambda p: lm_loss(nnx.merge(graphdef, p), rows, "coconut", layout)[0])(p)
        return p, (loss, grads)

    jitted, put_params, put_batch = data_parallel(step)
    p, b = put_params(jax.tree.map(lambda a: a.copy(), params)), put_batch(batch)  # own copy: donated
    if as_stored:
        with mock.patch.object(KVCache, "for_reading", lambda self: self):
            p, _ = jax.block_until_ready(jitted(p, b))  # traced and compiled here, with the no-op
    state = {"p": p}

    def run():
        state["p"], out = jitted(state["p"], b)
        jax.block_until_ready(out)
        return out[0]

    return run


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="tiny", choices=sorted(SIZES))
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch", type=int, default=0)
    ap.add_argument("--recipe-shape", action="store_true", help="the CPU ProsQA-style COCONUT recipe's shape")
    args = ap.parse_args(argv)
    n_layer, n_embd, n_head, vocab, B = SIZES[args.size]
    key_smear = 0
    if args.recipe_shape:
        n_layer, n_embd, n_head, vocab, B, key_smear = 4, 128, 4, 64, 32, 3
        args.size = "recipe"
    B = args.batch or B
    layout, batch = (synthetic_batch(vocab, B, min_q=36, max_q=72, n_latent=3) if args.recipe_shape
                     else synthetic_batch(vocab, B))
    cfg = ModelConfig(vocab_size=vocab, n_positions=layout.length + 8, n_embd=n_embd, n_layer=n_layer, n_head=n_head,
                      key_smear=key_smear)
    graphdef, params = nnx.split(init_model(cfg, 0), nnx.Param)
    traces = []
    runs = {"pre-transposed": compiled_step(graphdef, layout, params, batch, False, traces),
            "as stored": compiled_step(graphdef, layout, params, batch, True, traces)}
    losses = {name: float(run()) for name, run in runs.items()}  # warm-up (and compile the first)
    if abs(losses["pre-transposed"] - losses["as stored"]) > 1e-5 * abs(losses["as stored"]):
        raise SystemExit(f"the variants disagree: losses {losses}")
    times = {name: [] for name in runs}
    for _ in range(args.steps):
        for name, run in runs.items():
            t = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - t)
    if sorted(traces) != [False, True]:
        raise SystemExit(f"a variant was traced again (traces: {traces}): the timings would not compare the two layouts")
    print(f"{jax.device_count()} {jax.default_backend()} device(s), glibc huge pages "
          f"{'on' if huge_pages_active() else 'off'}; size {args.size}, B x T = {B} x {layout.length}, "
          f"{args.steps} alternating steps each")
    print("| variant | median s/step | min s/step |\n|---|---|---|")
    med = {name: statistics.median(t) for name, t in times.items()}
    for name, t in times.items():
        print(f"| {name} | {med[name]:.4g} | {min(t):.4g} |")
    print(f'{{"as_stored_over_pre_transposed": {med["as stored"] / med["pre-transposed"]:.3f}}}')


if __name__ == "__main__":
    main()
