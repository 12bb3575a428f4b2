"""Train state as plain pytrees (params, optimizer state, step) and the optimizer.

The model's graph (`graphdef`) is static; `params` is the `nnx.State` of its parameters. The
train step is a pure function of (state, batch), jitted with the state donated.
"""

from __future__ import annotations

import dataclasses

import jax
import optax
from flax import nnx

from lrm_jax.config import ModelConfig, TrainConfig


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class TrainState:
    params: nnx.State
    opt_state: optax.OptState
    step: jax.Array


def trainable_labels(params: nnx.State, model_cfg: ModelConfig):
    """"train" / "frozen" per parameter, or None when everything trains.

    With LoRA only the adapters (`nnx.LoRAParam`) and CODI's projection train, as in the
    reference (its embeddings, new tokens included, stay frozen).
    """
    if model_cfg.lora_rank == 0:
        return None

    def label(path, _):
        names = [str(getattr(k, "key", k)) for k in path]
        return "train" if names[0] == "prj" or any(n.startswith("lora_") for n in names) else "frozen"

    return jax.tree_util.tree_map_with_path(label, params)


def make_optimizer(cfg: TrainConfig, total_steps: int | None = None, trainable=None) -> optax.GradientTransformation:
    """AdamW (optax) with optional clipping, schedule and gradient accumulation.

    `total_steps` is the cosine horizon in optimizer updates (a reset restarts the schedule).
    `trainable` (from `trainable_labels`) freezes the "frozen" leaves: their gradients are never
    used, so XLA does not compute them.
    """
    if cfg.schedule == "warmup_cosine":
        horizon = max(total_steps or 1000, cfg.warmup_steps + 1)
        lr = optax.warmup_cosine_decay_schedule(0.0, cfg.lr, max(cfg.warmup_steps, 1), horizon, cfg.lr * 0.1)
    else:
        lr = cfg.lr
    tx = optax.adamw(lr, weight_decay=cfg.weight_decay)
    if cfg.clip_norm > 0:
        tx = optax.chain(optax.clip_by_global_norm(cfg.clip_norm), tx)
    if trainable is not None:
        tx = optax.multi_transform({"train": tx, "frozen": optax.set_to_zero()}, trainable)
    if cfg.grad_accum > 1:
        tx = optax.MultiSteps(tx, every_k_schedule=cfg.grad_accum)
    return tx


def init_state(params: nnx.State, tx: optax.GradientTransformation) -> TrainState:
    return TrainState(params, tx.init(params), jax.numpy.zeros((), jax.numpy.int32))


def reset_optimizer(state: TrainState, tx: optax.GradientTransformation) -> TrainState:
    return dataclasses.replace(state, opt_state=tx.init(state.params))
