"""Data parallel over the host's XLA devices, as the trainer's mesh does: parameters and
optimizer state replicated, batch rows split. With one device this is a plain `jax.jit`."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec


def data_parallel(step):
    """(jitted step(state, batch) -> (state, aux), put_state, put_batch)."""
    mesh = Mesh(np.array(jax.devices()), ("data",))
    rows = NamedSharding(mesh, PartitionSpec("data"))
    replicated = NamedSharding(mesh, PartitionSpec())
    jitted = jax.jit(step, donate_argnums=0, in_shardings=(replicated, rows), out_shardings=(replicated, replicated))
    return (jitted, lambda state: jax.device_put(state, replicated),
            lambda batch: jax.device_put(jax.tree.map(jnp.asarray, batch), rows))
