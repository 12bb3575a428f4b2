"""Training-step throughput: our COCONUT step vs a PyTorch n+1-pass baseline, our CoT step, MFU.

    python -m benchmarks.train_step [--size tiny|small] [--steps 5] [--batch B] [--skip-torch]
                                    [--reference-feedback] [--key-smear N] [--unroll]

Batches mirror perf-anchors.md: synthetic ProsQA at stage 6 with `pad_latent_to_max`: a question
of 200-300 random tokens, the start marker, 6 thought slots, the end marker and 9-11 answer
tokens, left-padded so the thought slots line up. Every step is forward + backward + AdamW;
each variant runs 2 warm-up steps and reports the median of `--steps`. Tokens/s counts all B*T
positions (padding included), as perf-anchors.md does; MFU = 6*N*B*T / time / matmul peak,
with the peak measured in the same run (fp32 matmul of 2048^3 on CPU, 8192^3 on a GPU, best of 10).

On a GPU both sides run there (JAX's default backend, torch's "cuda"), fp32 parameters with
TF32 matrix products on both sides (JAX's default for fp32 on GPU; torch is told to allow it).
`--reference-feedback` also times the torch baseline with the reference's own way of writing a
thought (benchmarks/torch_coconut.py: 16-22x a plain pass at the tiny size on CPU).
`--key-smear N` gives our model the key smear of the CPU logic recipes (ours only: the torch
baseline has no such option, so it needs `--skip-torch`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import time

from lrm_jax.host_devices import malloc_summary, prepare_cpu_host

prepare_cpu_host()  # as the trainer does; XLA_FLAGS=--xla_force_host_platform_device_count=1 for one device
# On a GPU torch shares the device with us in this process: JAX must not take 75% of it up front.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from benchmarks.parallel import data_parallel
from benchmarks.timing import median_step_seconds
from lrm_jax.config import ModelConfig
from lrm_jax.data.layout import Layout
from lrm_jax.model.gpt2 import count_params, init_model
from lrm_jax.training.microbatch import chunked_value_and_grad
from lrm_jax.training.objective import lm_loss
from lrm_jax.training.state import TrainState, init_state

SIZES = {
    # name: (n_layer, n_embd, n_head, vocab, batch)
    "tiny": (4, 256, 4, 515, 32),
    "small": (12, 768, 12, 50260, 8),
}
N_LATENT = 6


def synthetic_batch(vocab: int, batch: int, seed: int = 0, min_q: int = 200, max_q: int = 300, n_latent: int = N_LATENT):
    """Questions of min_q..max_q tokens (perf-anchors' ProsQA by default)."""
    rng = np.random.default_rng(seed)
    rest = 12
    layout = Layout(max_question_len=max_q, max_latent_stage=n_latent, c_thought=1, max_rest_len=rest)
    P, Z, T = layout.n_prefix, layout.n_latent, layout.length
    ids = rng.integers(10, vocab, (batch, T)).astype(np.int32)
    mask = np.zeros((batch, T), np.int32)
    loss = np.zeros((batch, T), np.float32)
    for b in range(batch):
        q = int(rng.integers(min_q, max_q + 1))
        mask[b, P - 1 - q : P + Z] = 1
        n_ans = int(rng.integers(9, 12))
        mask[b, P + Z : P + Z + 1 + n_ans] = 1
        loss[b, P + Z : P + Z + n_ans] = 1.0
    return layout, {"ids": ids, "mask": mask, "loss_mask": loss}


def matmul_peak() -> float:
    n = 2048 if jax.default_backend() == "cpu" else 8192
    a = jnp.ones((n, n), jnp.float32)
    f = jax.jit(lambda x, y: x @ y)
    f(a, a).block_until_ready()
    best = min(_timed(lambda: f(a, a).block_until_ready()) for _ in range(10))
    return 2 * n**3 / best


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def jax_step_time(cfg: ModelConfig, layout, batch, method: str, steps: int, micro: int = 1) -> tuple[float, int]:
    model = init_model(cfg, 0)
    graphdef, params = nnx.split(model, nnx.Param)
    tx = optax.adamw(1e-4, weight_decay=0.01)
    state = init_state(params, tx)

    def step(state: TrainState, batch):
        def loss_fn(p, rows):
            return lm_loss(nnx.merge(graphdef, p), rows, method, layout)

        (loss, _), grads = chunked_value_and_grad(loss_fn, state.params, batch, micro)
        updates, opt = tx.update(grads, state.opt_state, state.params)
        return TrainState(optax.apply_updates(state.params, updates), opt, state.step + 1), loss

    step, put_state, put_batch = data_parallel(step)
    state, batch = put_state(state), put_batch(batch)

    def run():
        nonlocal state
        state, loss = step(state, batch)
        loss.block_until_ready()

    return median_step_seconds(run, steps), count_params(model)


def torch_step_time(size, layout, batch, method: str, steps: int, feedback: str = "index_put") -> float:
    import torch

    from benchmarks.torch_coconut import coconut_loss, make_model, plain_loss, torch_device, torch_train_step

    dev, sync = torch_device()
    n_layer, n_embd, n_head, vocab, _ = size
    model = make_model(vocab, n_layer, n_embd, n_head, layout.length + 8).to(dev).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)
    ids = torch.tensor(batch["ids"], dtype=torch.long)
    mask = torch.tensor(batch["mask"], dtype=torch.long)
    labels = ids.clone()
    labels[torch.tensor(np.roll(batch["loss_mask"], 1, axis=1)) == 0] = -100
    ids, mask, labels = ids.to(dev), mask.to(dev), labels.to(dev)
    if method == "coconut":
        loss_fn = lambda: coconut_loss(model, ids, mask, labels, layout.n_prefix, layout.n_latent, feedback)  # noqa: E731
    else:
        loss_fn = lambda: plain_loss(model, ids, mask, labels)  # noqa: E731
    return median_step_seconds(torch_train_step(loss_fn, opt, sync), steps)


def report_peak_memory(when: str) -> None:
    """Accelerators only: the CPU client keeps no allocator statistics."""
    stats = jax.devices()[0].memory_stats() or {}
    if "peak_bytes_in_use" in stats:
        print(f"peak device memory {when}: {stats['peak_bytes_in_use'] / 2**30:.2f} GiB", flush=True)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", default="tiny", choices=sorted(SIZES))
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--batch", type=int, default=0, help="rows per step (default: the size's own)")
    p.add_argument("--skip-torch", action="store_true")
    p.add_argument("--reference-feedback", action="store_true",
                   help="also time the torch baseline writing thoughts the reference's way (slow)")
    p.add_argument("--key-smear", type=int, default=0, help="our model's key_smear (with --skip-torch)")
    p.add_argument("--unroll", action="store_true",
                   help="also time our COCONUT step with the thought loop unrolled (model.latent_unroll)")
    p.add_argument("--micro", type=int, default=0,
                   help="also time our steps with the rows split into this many chunks inside the step")
    args = p.parse_args(argv)
    if args.key_smear and not args.skip_torch:
        p.error("--key-smear needs --skip-torch: the torch baseline has no key smear to compare with")
    size = SIZES[args.size]
    n_layer, n_embd, n_head, vocab, B = size
    B = args.batch or B
    layout, batch = synthetic_batch(vocab, B)
    T = layout.length
    cfg = ModelConfig(vocab_size=vocab, n_positions=T + 8, n_embd=n_embd, n_layer=n_layer, n_head=n_head,
                      key_smear=args.key_smear)
    rows = {}
    for method in ("coconut", "cot"):
        sec, n_params = jax_step_time(cfg, layout, batch, method, args.steps)
        rows[f"lrm_jax {method}"] = sec
        print(f"lrm_jax {method}: {sec:.4g} s/step", flush=True)
        if method == "coconut":
            report_peak_memory("after our COCONUT steps")
            if args.unroll:
                sec, _ = jax_step_time(dataclasses.replace(cfg, latent_unroll=True), layout, batch, method, args.steps)
                rows["lrm_jax coconut, thoughts unrolled"] = sec
                print(f"lrm_jax coconut, thoughts unrolled: {sec:.4g} s/step", flush=True)
        if args.micro > 1:
            sec, _ = jax_step_time(cfg, layout, batch, method, args.steps, args.micro)
            rows[f"lrm_jax {method}, {args.micro} chunks"] = sec
            print(f"lrm_jax {method}, {args.micro} chunks: {sec:.4g} s/step", flush=True)
    peak = matmul_peak()  # after our steps, so its big operands do not set their memory peak
    if not args.skip_torch:
        rows["torch n+1-pass coconut"] = torch_step_time(size, layout, batch, "coconut", args.steps)
        print(f"torch n+1-pass coconut: {rows['torch n+1-pass coconut']:.4g} s/step", flush=True)
        rows["torch plain pass"] = torch_step_time(size, layout, batch, "cot", args.steps)
        if args.reference_feedback:
            sec = torch_step_time(size, layout, batch, "coconut", args.steps, feedback="restack")
            rows["torch n+1-pass coconut, reference feedback"] = sec
            print(f"torch n+1-pass coconut, reference feedback: {sec:.4g} s/step", flush=True)
    tokens = B * T
    print(f"machine: {platform.processor() or platform.machine()}, {jax.device_count()} {jax.default_backend()} "
          f"device(s) ({jax.devices()[0].device_kind}), {malloc_summary()}, "
          f"jax {jax.__version__}; size {args.size}: L={n_layer} d={n_embd} H={n_head} V={vocab} "
          f"key_smear={args.key_smear} params={n_params:,}; B x T = {B} x {T}; matmul peak {peak / 1e9:.0f} GFLOP/s")
    print("| variant | s/step | tokens/s (all positions) | MFU |")
    print("|---|---|---|---|")
    for name, sec in rows.items():
        mfu = 6 * n_params * tokens / sec / peak
        print(f"| {name} | {sec:.4g} | {tokens / sec:,.0f} | {100 * mfu:.1f}% |")
    ours = rows["lrm_jax coconut"]
    summary = {"latent_overhead_vs_our_cot": ours / rows["lrm_jax cot"]}
    if args.unroll:
        summary["latent_overhead_thoughts_unrolled"] = rows["lrm_jax coconut, thoughts unrolled"] / rows["lrm_jax cot"]
    if not args.skip_torch:
        summary["speedup_vs_torch_n+1_pass"] = rows["torch n+1-pass coconut"] / ours
        if args.reference_feedback:
            summary["speedup_vs_torch_reference_feedback"] = rows["torch n+1-pass coconut, reference feedback"] / ours
    if args.micro > 1:
        chunked = rows[f"lrm_jax coconut, {args.micro} chunks"]
        summary["chunked_speedup_vs_whole_batch"] = ours / chunked
        if not args.skip_torch:
            summary["chunked_speedup_vs_torch_n+1_pass"] = rows["torch n+1-pass coconut"] / chunked
    print(json.dumps({k: round(v, 3) for k, v in summary.items()}))


if __name__ == "__main__":
    main()
