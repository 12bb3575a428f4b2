"""The thought scan reading the question's cache pre-transposed (`KVCache.for_reading`) or as stored.

    python -m benchmarks.prefix_layout [--size tiny] [--steps 20] [--batch B] [--recipe-shape]

Same synthetic stage-6 ProsQA batches and model as `benchmarks.train_step` (loss + gradient, no
optimizer); `--recipe-shape` instead takes the shape of configs/prosqa_small_cpu_coconut.yaml
(L=4 d=128 H=4 with key_smear 3, 3 thoughts, questions of 36-72 tokens, batch 32). Both
variants are compiled in one process and timed alternately (benchmarks/alternate.py); the "as stored" variant is the same code with `for_reading` made a
no-op, which sends attention down the stored-layout (BxSxHxK) path, where XLA transposes the
prefix keys and values inside every thought step. Reports each variant's median and the ratio.
"""

from __future__ import annotations

import argparse
import contextlib
from unittest import mock

from lrm_jax.host_devices import prepare_cpu_host

prepare_cpu_host()  # as the trainer does

from benchmarks.alternate import (  # noqa: E402
    add_shape_args, compiled_loss_grad, print_table, shape_from_args, time_alternately,
)
from lrm_jax.model.cache import KVCache  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_shape_args(ap)
    args = ap.parse_args(argv)
    graphdef, params, layout, batch, about = shape_from_args(args)
    traces = []
    variants = {"pre-transposed": contextlib.nullcontext,
                "as stored": lambda: mock.patch.object(KVCache, "for_reading", lambda self: self)}
    runs = {name: compiled_loss_grad(graphdef, layout, params, batch, "coconut", patch, traces, name)
            for name, patch in variants.items()}
    times = time_alternately(runs, args.steps, traces)
    print(about)
    med = print_table(times)
    print(f'{{"as_stored_over_pre_transposed": {med["as stored"] / med["pre-transposed"]:.3f}}}')


if __name__ == "__main__":
    main()
