"""Two variants of one loss + gradient compiled in one process and timed alternately, step by step.

A noisy host (this project's 2-core CPU varies 10-40% between runs) then slows both variants
alike, so their ratio holds where two separate runs would not; the order within a round flips
every round (A B, B A, ...). A variant is the same code under a
patch (a `contextlib` context manager active while jax traces it); each must trace exactly once
and the variants' losses must agree, or the script stops.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from typing import Callable

import jax
from flax import nnx

from benchmarks.parallel import data_parallel
from benchmarks.train_step import SIZES, synthetic_batch
from lrm_jax.config import ModelConfig
from lrm_jax.host_devices import malloc_summary
from lrm_jax.model.gpt2 import init_model
from lrm_jax.training.objective import lm_loss


def add_shape_args(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--size", default="tiny", choices=sorted(SIZES))
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch", type=int, default=0)
    ap.add_argument("--recipe-shape", action="store_true", help="the CPU ProsQA-style COCONUT recipe's shape")


def shape_from_args(args):
    """(graphdef, params, layout, batch, description): benchmarks.train_step's synthetic stage-6
    ProsQA batch and model, or with `--recipe-shape` configs/prosqa_small_cpu_coconut.yaml's shape
    (L=4 d=128 H=4, key_smear 3, 3 thoughts, questions of 36-72 tokens, batch 32)."""
    n_layer, n_embd, n_head, vocab, B = SIZES[args.size]
    key_smear, size = 0, args.size
    if args.recipe_shape:
        n_layer, n_embd, n_head, vocab, B, key_smear, size = 4, 128, 4, 64, 32, 3, "recipe"
    B = args.batch or B
    layout, batch = (synthetic_batch(vocab, B, min_q=36, max_q=72, n_latent=3) if args.recipe_shape
                     else synthetic_batch(vocab, B))
    cfg = ModelConfig(vocab_size=vocab, n_positions=layout.length + 8, n_embd=n_embd, n_layer=n_layer, n_head=n_head,
                      key_smear=key_smear)
    graphdef, params = nnx.split(init_model(cfg, 0), nnx.Param)
    about = (f"{jax.device_count()} {jax.default_backend()} device(s), "
             f"{malloc_summary()}; size {size}: L={n_layer} d={n_embd} key_smear={key_smear}, "
             f"B x T = {B} x {layout.length}, {layout.n_latent} thoughts, {args.steps} alternating steps each")
    return graphdef, params, layout, batch, about


def compiled_loss_grad(graphdef, layout, params, batch, method: str, patch: Callable[[], contextlib.AbstractContextManager],
                       traces: list, name: str, objective: Callable = lm_loss) -> Callable[[], jax.Array]:
    """`run()` computes the loss and gradient once (data parallel, as the trainer) and returns the loss.
    `objective` is `lm_loss` or another version of it (benchmarks.against_commit)."""

    def step(p, rows):
        traces.append(name)  # runs only while jax traces
        loss, grads = jax.value_and_grad(lambda p: objective(nnx.merge(graphdef, p), rows, method, layout)[0])(p)
        return p, (loss, grads)

    jitted, put_params, put_batch = data_parallel(step)
    p, b = put_params(jax.tree.map(lambda a: a.copy(), params)), put_batch(batch)  # own copy: donated
    with patch():
        p, _ = jax.block_until_ready(jitted(p, b))  # traced and compiled here, under the patch
    state = {"p": p}

    def run():
        state["p"], out = jitted(state["p"], b)
        jax.block_until_ready(out)
        return out[0]

    return run


def time_alternately(runs: dict[str, Callable[[], jax.Array]], steps: int, traces: list) -> dict[str, list[float]]:
    losses = {name: float(run()) for name, run in runs.items()}  # warm-up
    first = next(iter(losses.values()))
    if any(abs(v - first) > 1e-5 * abs(first) for v in losses.values()):
        raise SystemExit(f"the variants disagree: losses {losses}")
    times = {name: [] for name in runs}
    order = list(runs)
    for i in range(steps):
        # A B, then B A: a variant that gains or loses from running right after the other (its
        # memory still warm, or handed back to the host) does so in both orders.
        for name in order if i % 2 == 0 else order[::-1]:
            run = runs[name]
            t = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - t)
    if sorted(traces) != sorted(runs):
        raise SystemExit(f"a variant was traced again (traces: {traces}): the timings would not compare the variants")
    return times


def print_table(times: dict[str, list[float]]) -> dict[str, float]:
    print("| variant | median s/step | min s/step |\n|---|---|---|")
    med = {name: statistics.median(t) for name, t in times.items()}
    for name, t in times.items():
        print(f"| {name} | {med[name]:.4g} | {min(t):.4g} |")
    return med
