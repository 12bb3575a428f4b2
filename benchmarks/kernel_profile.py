"""Where a step's device time goes: the kernels of our CoT and COCONUT loss + gradient.

    python -m benchmarks.kernel_profile [--size small] [--batch 32] [--unroll] [--top 20]

Same synthetic stage-6 ProsQA batches and model sizes as `benchmarks.train_step`, without the
optimizer. For each variant: median forward and forward + backward times, then three steps under
`jax.profiler` and, from its Perfetto trace, the kernels per step, the device's busy time against
the span from first kernel start to last kernel end (busy close to span: the device never waits
for the host, so the step is bound by the kernels themselves, not by launches), and the kernels
that take the most time, and how much of the time falls inside while loops (the thought scan,
forward and backward) against the rest, where the events name their HLO op. On a CPU the trace has no device streams; the same report then lists
XLA's thunks (the events that name an `hlo_op`, control flow such as `while` left out so that
nothing is counted twice), and busy time may exceed the span where thunks ran on both cores at
once. Run it on one CPU device to read one device's program:

    XLA_FLAGS=--xla_force_host_platform_device_count=1 python -m benchmarks.kernel_profile --size tiny --batch 16
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import glob
import gzip
import json
import os
import re
import statistics
import tempfile
import time

from lrm_jax.host_devices import prepare_cpu_host

prepare_cpu_host()  # as the trainer does
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from flax import nnx  # noqa: E402

from benchmarks.train_step import SIZES, synthetic_batch  # noqa: E402
from lrm_jax.config import ModelConfig  # noqa: E402
from lrm_jax.model.gpt2 import init_model  # noqa: E402
from lrm_jax.training.objective import lm_loss  # noqa: E402

PROFILED_STEPS = 3


def median_seconds(fn, *args, n: int = 10) -> float:
    for _ in range(2):
        jax.block_until_ready(fn(*args))
    times = []
    for _ in range(n):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def device_kernels(trace_dir: str) -> list[dict]:
    """Complete ('X') events on the device's compute streams of the Perfetto trace."""
    (path,) = glob.glob(f"{trace_dir}/**/perfetto_trace.json.gz", recursive=True)
    with gzip.open(path) as f:
        events = json.load(f)
    events = events["traceEvents"] if isinstance(events, dict) else events
    meta = [e for e in events if e.get("ph") == "M"]
    process = {e["pid"]: e["args"]["name"] for e in meta if e.get("name") == "process_name"}
    thread = {(e["pid"], e["tid"]): e["args"]["name"] for e in meta if e.get("name") == "thread_name"}
    kernels = [
        e for e in events
        if e.get("ph") == "X" and "GPU" in process.get(e["pid"], "") and "Stream" in thread.get((e["pid"], e["tid"]), "")
    ]
    return kernels or [e for e in events if e.get("ph") == "X" and _is_cpu_thunk(e)]


CONTROL_FLOW = ("while", "conditional", "call")


def _is_cpu_thunk(event: dict) -> bool:
    op = (event.get("args") or {}).get("hlo_op")
    return op is not None and not op.startswith(CONTROL_FLOW)


def report(label: str, kernels: list[dict], top: int) -> None:
    if not kernels:
        print(f"{label}: no device kernels or XLA thunks in the trace")
        return
    per_name = collections.defaultdict(lambda: [0, 0.0])
    for e in kernels:
        per_name[e["name"]][0] += 1
        per_name[e["name"]][1] += e.get("dur", 0.0)
    busy_us = sum(d for _, d in per_name.values())
    span_us = max(e["ts"] + e.get("dur", 0.0) for e in kernels) - min(e["ts"] for e in kernels)
    n = PROFILED_STEPS
    print(f"{label}: {len(kernels) / n:.0f} kernels per step, busy {busy_us / n / 1e3:.2f} ms of a "
          f"{span_us / n / 1e3:.2f} ms span")
    for name, (count, dur) in sorted(per_name.items(), key=lambda kv: -kv[1][1])[:top]:
        print(f"    {dur / n / 1e3:7.3f} ms {count / n:6.0f}x  {name[:100]}")


def while_body_ops(hlo_text: str) -> set[str]:
    """Names of the instructions inside while-loop bodies (the thought scan, forward and
    backward) of a compiled module's text."""
    bodies = set(re.findall(r"body=%([\w.\-]+)", hlo_text))
    inside, current = set(), None
    for line in hlo_text.splitlines():
        header = re.match(r"^(?:ENTRY )?%([\w.\-]+) ", line)
        if header and line.rstrip().endswith("{"):
            current = header.group(1)
            continue
        op = re.match(r"^\s+(?:ROOT )?%([\w.\-]+) = ", line)
        if op and current in bodies:
            inside.add(op.group(1))
    return inside


def report_loops(kernels: list[dict], inside: set[str]) -> None:
    """Device time inside the while loops against the rest, where events name their HLO op."""
    named = [e for e in kernels if (e.get("args") or {}).get("hlo_op")]
    if not named:
        return
    loop_us = sum(e.get("dur", 0.0) for e in named if e["args"]["hlo_op"] in inside)
    rest_us = sum(e.get("dur", 0.0) for e in named) - loop_us
    n = PROFILED_STEPS
    print(f"    inside while loops {loop_us / n / 1e3:.2f} ms, elsewhere {rest_us / n / 1e3:.2f} ms per step")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", default="small", choices=sorted(SIZES))
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--unroll", action="store_true", help="also profile COCONUT with model.latent_unroll")
    p.add_argument("--top", type=int, default=20, help="kernels listed per variant")
    args = p.parse_args(argv)
    n_layer, n_embd, n_head, vocab, _ = SIZES[args.size]
    layout, batch = synthetic_batch(vocab, args.batch)
    batch = {k: jnp.asarray(v) for k, v in batch.items()}
    cfg = ModelConfig(vocab_size=vocab, n_positions=layout.length + 8, n_embd=n_embd, n_layer=n_layer, n_head=n_head)
    variants = [("cot", "cot", cfg), ("coconut", "coconut", cfg)]
    if args.unroll:
        variants.append(("coconut, thoughts unrolled", "coconut", dataclasses.replace(cfg, latent_unroll=True)))
    print(f"{jax.devices()[0].device_kind}, jax {jax.__version__}; size {args.size}, B x T = {args.batch} x {layout.length}")
    for label, method, model_cfg in variants:
        graphdef, params = nnx.split(init_model(model_cfg, 0), nnx.Param)

        def loss(p, rows, method=method, graphdef=graphdef):
            return lm_loss(nnx.merge(graphdef, p), rows, method, layout)[0]

        forward, both = jax.jit(loss), jax.jit(jax.value_and_grad(loss))
        print(f"{label}: forward {1e3 * median_seconds(forward, params, batch):.2f} ms, "
              f"forward + backward {1e3 * median_seconds(both, params, batch):.2f} ms", flush=True)
        with tempfile.TemporaryDirectory() as trace_dir:
            with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
                for _ in range(PROFILED_STEPS):
                    jax.block_until_ready(both(params, batch))
            kernels = device_kernels(trace_dir)
            report(f"{label}, forward + backward", kernels, args.top)
        report_loops(kernels, while_body_ops(both.lower(params, batch).compile().as_text()))


if __name__ == "__main__":
    main()
