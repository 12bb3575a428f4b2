"""CODI's objective: student CE + teacher CE + gamma * distillation (codi.md section 2).

One network plays both parts. Rows per record (lrm_jax/data/codi_layout.py): the student runs
the latent loop (thoughts fed back through the projection), the teacher (and, for the
multi-mode control, the direct row) one plain pass. The distillation compares the hidden states
at the token just before the answer (" ###") in the student and in the teacher, at every entry
of Hugging Face's `hidden_states` (embedding output, each block, the last one after ln_f),
each layer's distance divided by the teacher's standard deviation there, with the teacher side
under stop-gradient.

Difference from the reference, same values: the reference runs the teacher twice (once under
no_grad for the targets, once for its CE); we run it once and stop the gradient of the targets.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from lrm_jax.data.layout import Layout
from lrm_jax.model.gpt2 import GPT2, positions_from_mask
from lrm_jax.model.latent import latent_forward


def token_ce(model: GPT2, h_BxWxD, ids_BxT, loss_mask_BxT, start: int):
    """(CE sum, supervised-token count, correct argmax count) over the loss window [start, T),
    `h_BxWxD` holding the last block's output there (W = T - start columns)."""
    logits = model.unembed(h_BxWxD[:, :-1])
    targets = ids_BxT[:, start + 1 :]
    weights = loss_mask_BxT[:, start:-1]
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
    hits = (jnp.argmax(logits, -1) == targets) * weights
    return (ce * weights).sum(), weights.sum(), hits.sum()


def layer_distance(student_LxBxD, teacher_LxBxD, kind: str, div_std: bool) -> jax.Array:
    """Mean over layers of the mean (over B x D) distance, each divided by the teacher's std."""
    target = jax.lax.stop_gradient(teacher_LxBxD)
    diff = student_LxBxD - target
    if kind == "smooth_l1":  # torch's SmoothL1Loss, beta = 1
        per = jnp.where(jnp.abs(diff) < 1.0, 0.5 * diff**2, jnp.abs(diff) - 0.5)
    else:
        per = diff**2
    per_layer = per.mean(axis=(1, 2))
    if div_std:
        # torch's Tensor.std: unbiased, over the whole B x D slice; l2 divides twice (reference).
        std = jnp.std(target, axis=(1, 2), ddof=1)
        per_layer = per_layer / (std if kind == "smooth_l1" else std**2)
    return per_layer.mean()


def _hidden_at(model: GPT2, layers_LxBxWxD, pos_B):
    """HF's hidden_states at one column per row (of the window `layers` holds): the last entry
    is after ln_f."""
    picked = jnp.take_along_axis(layers_LxBxWxD, pos_B[None, :, None, None], axis=2)[:, :, 0]
    return picked.at[-1].set(model.final_norm(picked[-1]))


def codi_loss(model: GPT2, batch: dict, layout: Layout, method_cfg, dropout_key=None):
    """CODI loss of a BxMxT batch (M = 2 or 3 rows per record); returns (loss, metrics)."""
    ids, mask, loss_mask, distill = batch["ids"], batch["mask"], batch["loss_mask"], batch["distill"]
    B, M, T = ids.shape
    start = layout.n_prefix + layout.n_latent
    keys = (None, None) if dropout_key is None else jax.random.split(dropout_key)
    # Every column the loss and the distillation read is in the window [start, T)
    # (lrm_jax/data/codi_layout.py), so the passes keep the last block's outputs there only.
    student = latent_forward(
        model, ids[:, 0], mask[:, 0], n_prefix=layout.n_prefix, n_latent=layout.n_latent, return_layers=True,
        dropout_key=keys[0], h_from=start,
    )
    plain_ids = ids[:, 1:].reshape(B * (M - 1), T)
    plain_mask = mask[:, 1:].reshape(B * (M - 1), T)
    plain = model.forward(
        model.embed(plain_ids), positions_from_mask(plain_mask), plain_mask, return_layers=True, dropout_key=keys[1],
        keep_last=T - start,
    )

    ce_s, n_s, hit_s = token_ce(model, student.h, ids[:, 0], loss_mask[:, 0], start)
    plain_loss_mask = loss_mask[:, 1:].reshape(B * (M - 1), T)
    rows = []
    for r in range(M - 1):  # teacher, then direct: CE per row kind
        sel = slice(r, None, M - 1)
        rows.append(token_ce(model, plain.h[sel], plain_ids[sel], plain_loss_mask[sel], start))
    L = plain.layers.shape[0]
    teacher_layers = plain.layers.reshape(L, B, M - 1, T - start, -1)[:, :, 0]
    kd = layer_distance(
        _hidden_at(model, student.layers, distill[:, 0] - start),
        _hidden_at(model, teacher_layers, distill[:, 1] - start),
        method_cfg.distill_loss, method_cfg.distill_div_std,
    )
    w = method_cfg.mode_weights
    l_student = ce_s / jnp.maximum(n_s, 1.0)
    l_teacher = rows[0][0] / jnp.maximum(rows[0][1], 1.0)
    loss = w[0] * l_student + w[1] * l_teacher + method_cfg.distill_factor * kd
    metrics = {
        "loss_student": l_student, "loss_teacher": l_teacher, "loss_distill": kd,
        "token_acc": hit_s / jnp.maximum(n_s, 1.0),
        "tokens": n_s + sum(r[1] for r in rows),
    }
    if M == 3:
        l_direct = rows[1][0] / jnp.maximum(rows[1][1], 1.0)
        loss = loss + w[2] * l_direct
        metrics["loss_direct"] = l_direct
    metrics["loss"] = loss
    return loss, metrics
