"""Language-model objective on the static layout, for every method.

The loss lives only in the columns after the thoughts ([P+Z, T), see lrm_jax/data/layout.py),
so logits are computed there only: with GPT-2's 50k vocabulary the full-sequence logits would
dominate memory. COCONUT runs the latent loop; CoT, No-CoT and Pause run one plain pass (their
thought columns are masked out or hold `<pause>` tokens).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from lrm_jax.data.layout import Layout
from lrm_jax.model.gpt2 import GPT2, positions_from_mask
from lrm_jax.model.latent import latent_forward


def hidden_states(model: GPT2, ids, mask, method: str, layout: Layout) -> jax.Array:
    if method == "coconut":
        return latent_forward(model, ids, mask, n_prefix=layout.n_prefix, n_latent=layout.n_latent).h
    return model.forward(model.embed(ids), positions_from_mask(mask), mask).h


def lm_loss(model: GPT2, batch: dict, method: str, layout: Layout):
    """Token-mean cross-entropy over supervised targets; returns (loss, metrics)."""
    ids, mask, loss_mask = batch["ids"], batch["mask"], batch["loss_mask"]
    start = layout.n_prefix + layout.n_latent
    h = hidden_states(model, ids, mask, method, layout)
    logits = model.unembed(h[:, start:-1])
    targets = ids[:, start + 1 :]
    weights = loss_mask[:, start:-1]
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
    n = jnp.maximum(weights.sum(), 1.0)
    loss = (ce * weights).sum() / n
    correct = ((jnp.argmax(logits, -1) == targets) * weights).sum() / n
    return loss, {"loss": loss, "token_acc": correct, "tokens": weights.sum()}
