"""The last block run over the loss window only (`keep_last` / `h_from`) or over every column.

    python -m benchmarks.loss_window [--size tiny] [--steps 20] [--batch B] [--recipe-shape]
                                     [--method coconut cot]

The loss reads the last block's output only in the columns after the thoughts, so the trainer
asks the model for those (training/objective.py): the last block still writes every question
column's key and value, but skips their attention output, MLP and residual, which nothing reads.
"all columns" is the same step with that request ignored (the last block runs everywhere and
the window is sliced out afterwards, the code before this change). Same shapes as
benchmarks.prefix_layout; loss + gradient per method, both variants compiled in one process and
timed alternately (benchmarks/alternate.py).
"""

from __future__ import annotations

import argparse
import contextlib
import json
from unittest import mock

from lrm_jax.host_devices import prepare_cpu_host

prepare_cpu_host()  # as the trainer does

from benchmarks.alternate import (  # noqa: E402
    add_shape_args, compiled_loss_grad, print_table, shape_from_args, time_alternately,
)
from lrm_jax.model.gpt2 import GPT2  # noqa: E402


@contextlib.contextmanager
def every_column():
    """GPT2.forward computing all columns, then handing back only the ones asked for."""
    forward = GPT2.forward

    def full(self, *args, keep_last=None, **kwargs):
        out = forward(self, *args, **kwargs)
        if keep_last is None:
            return out
        layers = out.layers[:, :, -keep_last:] if out.layers is not None else None
        return out._replace(h=out.h[:, -keep_last:], layers=layers)

    with mock.patch.object(GPT2, "forward", full):
        yield


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_shape_args(ap)
    ap.add_argument("--method", nargs="+", default=["coconut", "cot"], choices=["coconut", "cot"])
    args = ap.parse_args(argv)
    graphdef, params, layout, batch, about = shape_from_args(args)
    print(about)
    summary = {}
    for method in args.method:
        traces = []
        variants = {f"{method}, loss window": contextlib.nullcontext, f"{method}, all columns": every_column}
        runs = {name: compiled_loss_grad(graphdef, layout, params, batch, method, patch, traces, name)
                for name, patch in variants.items()}
        med = print_table(time_alternately(runs, args.steps, traces))
        summary[f"{method}_all_columns_over_window"] = round(med[f"{method}, all columns"] / med[f"{method}, loss window"], 3)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
