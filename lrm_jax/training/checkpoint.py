"""Checkpoints: one Orbax wrapper, plus the run's config and tokenizer beside them.

    workdir/
      config.yaml          the resolved RunConfig (written once, atomically)
      tokenizer/           the tokenizer (word vocabulary or HF files)
      checkpoints/<step>/  Orbax: `state` (params, optimizer state, step) and `meta` (JSON:
                           epoch, stage, data-iterator state, model family)

Orbax writes each step to a temporary directory and renames it when complete, so a kill
mid-save leaves the previous checkpoint intact; `latest_step` only sees finished ones. Every
process calls save/restore (required on multi-host); only process 0 writes config/tokenizer.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp
import yaml

from lrm_jax.config import RunConfig, from_dict, to_dict
from lrm_jax.tokenizer import Tokenizer, load_tokenizer

CONFIG_FILE = "config.yaml"
TOKENIZER_DIR = "tokenizer"
CHECKPOINT_DIR = "checkpoints"


class CheckpointError(ValueError):
    pass


class Checkpointer:
    def __init__(self, workdir: str | Path, keep: int = 2):
        self.dir = Path(workdir).absolute() / CHECKPOINT_DIR
        self.manager = ocp.CheckpointManager(
            self.dir, options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True)
        )

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(self, step: int, state: Any, meta: dict) -> None:
        """Saves (replacing this step if a periodic save already wrote it, e.g. at an epoch end)."""
        if step in self.manager.all_steps():
            self.manager.delete(step)
        self.manager.save(
            step,
            args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)),
            force=True,
        )
        self.manager.wait_until_finished()

    def restore(self, abstract_state: Any, step: int | None = None, shardings: Any = None) -> tuple[Any, dict]:
        """Restores onto `shardings` (default: this process's first device), so a checkpoint
        written on any topology (another mesh, several hosts) loads anywhere."""
        step = self.latest_step() if step is None else step
        if step is None:
            raise CheckpointError(f"no checkpoint in {self.dir}")
        if shardings is None:
            one = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
            shardings = jax.tree.map(lambda _: one, abstract_state)
        abstract_state = jax.tree.map(
            lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract_state, shardings
        )
        out = self.manager.restore(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract_state), meta=ocp.args.JsonRestore()
            ),
        )
        return out.state, dict(out.meta)

    def close(self) -> None:
        self.manager.close()


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_run_files(workdir: str | Path, cfg: RunConfig, tokenizer: Tokenizer) -> None:
    if jax.process_index() != 0:
        return
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    _atomic_write(workdir / CONFIG_FILE, yaml.safe_dump(to_dict(cfg), sort_keys=False))
    tokenizer.save(workdir / TOKENIZER_DIR)


def read_run_files(workdir: str | Path) -> tuple[RunConfig, Tokenizer]:
    """What `--ckpt DIR` needs to rebuild a model and tokenizer."""
    workdir = Path(workdir)
    cfg_path = workdir / CONFIG_FILE
    if not cfg_path.exists():
        raise CheckpointError(f"{workdir} is not an lrm_jax run directory ({CONFIG_FILE} missing)")
    cfg = from_dict(RunConfig, yaml.safe_load(cfg_path.read_text()))
    return cfg, load_tokenizer(workdir / TOKENIZER_DIR)


def load_params(workdir: str | Path, expect_model=None, step: int | None = None):
    """The model of a run's latest (or given) checkpoint; `--ckpt DIR` is all it needs."""
    from flax import nnx

    from lrm_jax.model.gpt2 import init_model
    from lrm_jax.training.state import init_state, make_optimizer, trainable_labels

    cfg, _ = read_run_files(workdir)
    if expect_model is not None:
        mismatched = [
            f for f in ("vocab_size", "n_embd", "n_layer", "n_head")
            if getattr(cfg.model, f) != getattr(expect_model, f)
        ]
        if mismatched:
            raise CheckpointError(
                f"{workdir}: model {', '.join(f'{f}={getattr(cfg.model, f)}' for f in mismatched)} "
                f"does not match this run's ({', '.join(f'{f}={getattr(expect_model, f)}' for f in mismatched)})"
            )
    model = init_model(cfg.model, 0)
    graphdef, params = nnx.split(model, nnx.Param)
    tx = make_optimizer(cfg.train, trainable=trainable_labels(params, cfg.model))
    abstract = jax.eval_shape(lambda p: init_state(p, tx), params)
    ckpt = Checkpointer(workdir)
    try:
        state, _ = ckpt.restore(abstract, step)
    finally:
        ckpt.close()
    return nnx.merge(graphdef, state.params)
