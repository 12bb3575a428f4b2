"""Language-model objective on the static layout, for every method.

The loss lives only in the columns after the thoughts ([P+Z, T), see lrm_jax/data/layout.py),
so logits are computed there only (with GPT-2's 50k vocabulary the full-sequence logits would
dominate memory), and the last block runs its attention output and MLP there only too (the
question's last-block outputs feed no loss; `GPT2.forward`'s `keep_last`). COCONUT runs the latent loop; CoT, No-CoT and Pause run one plain pass (their
thought columns are masked out or hold `<pause>` tokens).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from lrm_jax.data.layout import Layout
from lrm_jax.model.gpt2 import GPT2, positions_from_mask
from lrm_jax.model.latent import latent_forward


def hidden_states(model: GPT2, ids, mask, method: str, layout: Layout, dropout_key=None) -> jax.Array:
    """The last block's output over the loss window, columns [P+Z, T)."""
    start = layout.n_prefix + layout.n_latent
    if method in ("coconut", "multimode"):
        return latent_forward(
            model, ids, mask, n_prefix=layout.n_prefix, n_latent=layout.n_latent, dropout_key=dropout_key,
            h_from=start,
        ).h
    T = ids.shape[1]
    return model.forward(
        model.embed(ids), positions_from_mask(mask), mask, dropout_key=dropout_key, keep_last=T - start
    ).h


def lm_loss(model: GPT2, batch: dict, method: str, layout: Layout, mode_weights=(1.0, 1.0, 1.0), dropout_key=None):
    """Token-mean cross-entropy over supervised targets; returns (loss, metrics).

    Multimode batches are BxMxT (M = 3 modes: latent, verbal, direct); the loss is
    sum_m w_m * (token-mean CE of mode m), the paper's a*L_latent + b*L_verbal + c*L_direct.
    """
    ids, mask, loss_mask = batch["ids"], batch["mask"], batch["loss_mask"]
    multimode = ids.ndim == 3
    if multimode:
        B, M, T = ids.shape
        ids, mask, loss_mask = (x.reshape(B * M, T) for x in (ids, mask, loss_mask))
    start = layout.n_prefix + layout.n_latent
    h = hidden_states(model, ids, mask, method, layout, dropout_key)
    logits = model.unembed(h[:, :-1])
    targets = ids[:, start + 1 :]
    weights = loss_mask[:, start:-1]
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
    hit = (jnp.argmax(logits, -1) == targets) * weights
    n = jnp.maximum(weights.sum(), 1.0)
    metrics = {"token_acc": hit.sum() / n, "tokens": weights.sum()}
    if not multimode:
        loss = (ce * weights).sum() / n
    else:
        ce_per_mode = (ce * weights).reshape(B, M, -1).sum((0, 2))
        n_per_mode = jnp.maximum(weights.reshape(B, M, -1).sum((0, 2)), 1.0)
        per_mode = ce_per_mode / n_per_mode
        loss = jnp.dot(jnp.asarray(mode_weights, jnp.float32), per_mode)
        for k, name in enumerate(("latent", "verbal", "direct")):
            metrics[f"loss_{name}"] = per_mode[k]
    metrics["loss"] = loss
    return loss, metrics
