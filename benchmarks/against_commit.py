"""This tree's loss + gradient against the same step of an earlier commit, in one process.

    python -m benchmarks.against_commit REV [--method coconut cot] [--steps 20] [--size tiny]
                                            [--batch B] [--recipe-shape]

The commit's `lrm_jax` is taken out of git (`git archive REV lrm_jax`) into a temporary folder
and imported under another name (its own imports rewritten to that name), so both versions of
the library are compiled in one process, on the same synthetic batch and the same initial
weights, and timed step by step alternately (benchmarks/alternate.py): on this project's noisy
CPU host two separate runs of one code differ by more than most changes gain. The script stops
if the two versions' losses differ or a step is traced twice. Only a change inside the library
can be measured this way, and only against a commit whose `init_model`, `ModelConfig` and
`lm_loss` take the arguments used here.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib
import io
import json
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from lrm_jax.host_devices import prepare_cpu_host

prepare_cpu_host()  # as the trainer does

from flax import nnx  # noqa: E402

from benchmarks.alternate import (  # noqa: E402
    add_shape_args, compiled_loss_grad, print_table, shape_from_args, time_alternately,
)

REPO = Path(__file__).resolve().parents[1]


def import_library_at(rev: str, into: Path):
    """The package `lrm_jax` as it was at `rev`, imported as `lrm_jax_at_<sha>`; (name, sha)."""
    try:
        sha = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", rev], check=True,
                             capture_output=True, text=True).stdout.strip()
        archive = subprocess.run(["git", "-C", str(REPO), "archive", sha, "lrm_jax"], check=True,
                                 capture_output=True).stdout
    except subprocess.CalledProcessError as e:
        raise SystemExit(f"cannot read lrm_jax at {rev!r} from the git repository {REPO}: {e.stderr.strip()}")
    name = f"lrm_jax_at_{sha}"
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    package = into / name
    (into / "lrm_jax").rename(package)
    for path in package.rglob("*.py"):
        path.write_text(re.sub(r"\blrm_jax\b(?=[.\s])", name, path.read_text()))
    sys.path.insert(0, str(into))
    return name, sha


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("rev", help="the commit to compare with (anything `git rev-parse` reads)")
    add_shape_args(ap)
    ap.add_argument("--method", nargs="+", default=["coconut", "cot"], choices=["coconut", "cot"])
    args = ap.parse_args(argv)
    graphdef, params, layout, batch, about = shape_from_args(args)
    with tempfile.TemporaryDirectory() as tmp:
        name, sha = import_library_at(args.rev, Path(tmp))
        old_config = importlib.import_module(f"{name}.config")
        old_gpt2 = importlib.import_module(f"{name}.model.gpt2")
        old_objective = importlib.import_module(f"{name}.training.objective")
        cfg = nnx.merge(graphdef, params).cfg
        known = {f.name for f in dataclasses.fields(old_config.ModelConfig)}
        old_cfg = old_config.ModelConfig(**{k: v for k, v in dataclasses.asdict(cfg).items() if k in known})
        old_graphdef, old_params = nnx.split(old_gpt2.init_model(old_cfg, 0), nnx.Param)
        print(f"{about}; this tree against {sha}")
        summary = {}
        for method in args.method:
            traces = []
            runs = {
                f"{method}, this tree": compiled_loss_grad(graphdef, layout, params, batch, method,
                                                           contextlib.nullcontext, traces, f"{method}, this tree"),
                f"{method}, {sha}": compiled_loss_grad(old_graphdef, layout, old_params, batch, method,
                                                       contextlib.nullcontext, traces, f"{method}, {sha}",
                                                       objective=old_objective.lm_loss),
            }
            med = print_table(time_alternately(runs, args.steps, traces))
            summary[f"{method}_speedup_over_{sha}"] = round(med[f"{method}, {sha}"] / med[f"{method}, this tree"], 3)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
