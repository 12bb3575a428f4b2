"""Shared argument handling of the training entry points (each stays a few lines)."""

from __future__ import annotations

import argparse
import sys

from lrm_jax.host_devices import prepare_cpu_host

prepare_cpu_host()  # before jax is imported (lrm_jax.config and the loaders do not import it)

from lrm_jax.config import ConfigError, RunConfig, load
from lrm_jax.data.layout import LayoutError
from lrm_jax.data.loaders import DataError


def main(argv=None, method: str | None = None, description: str = "", family: tuple[str, ...] = ()) -> int:
    """`method` is forced unless the config already names one of `family` (e.g. the CODI
    entry point keeps `codi_multimode`)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--config", help="YAML file: differences from the defaults in lrm_jax/config.py")
    p.add_argument("--workdir", required=True, help="run directory (checkpoints, config, tokenizer, metrics)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override, e.g. train.lr=1e-4")
    p.add_argument("--coordinator", help="host:port of process 0, for multi-host runs")
    p.add_argument("--num-processes", type=int)
    p.add_argument("--process-id", type=int)
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)

    from lrm_jax.sharding import init_distributed

    init_distributed(args.coordinator, args.num_processes, args.process_id)
    try:
        cfg = load(RunConfig, args.config, args.set)
        if method and cfg.method.name not in (method, *family):
            cfg = load(RunConfig, args.config, [f"method.name={method}", *args.set])
        from lrm_jax.training.loop import run

        result = run(cfg, args.workdir, progress=not args.no_progress)
    except (ConfigError, DataError, LayoutError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    acc = "n/a" if result.val_acc is None else f"{result.val_acc:.4f}"
    print(f"{result.stopped} at step {result.step} (epoch {result.epoch}); val accuracy {acc}; "
          f"train step compiled {result.compiles} time(s); run in {result.workdir}")
    return 0
