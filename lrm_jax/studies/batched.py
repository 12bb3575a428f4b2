"""Fixed-size, sharded chunks over many rows: one compile per study, no per-instance loop.

Rows (instances x conditions, folded into one axis) are cut into chunks of `batch_size`; the
last chunk is padded by repeating its last row (the padded outputs are dropped), so every call
has the same shape. With several devices each chunk is split over the mesh's batch axes.
"""

from __future__ import annotations

from typing import Callable

import jax
import numpy as np
from jax.experimental import multihost_utils
from tqdm import tqdm

from lrm_jax.config import MeshConfig
from lrm_jax.sharding import batch_sharding, make_mesh, round_batch


def default_sharding():
    return batch_sharding(make_mesh(MeshConfig()))


def map_chunks(
    fn: Callable[..., dict], rows: dict[str, np.ndarray], *, batch_size: int, sharding=None,
    desc: str | None = None, progress: bool = True,
) -> dict[str, np.ndarray]:
    """Applies `fn(**chunk) -> dict of arrays (leading axis = rows)` over all rows."""
    n = len(next(iter(rows.values())))
    if n == 0:
        raise ValueError("no rows to run")
    batch_size = round_batch(batch_size, sharding)
    outs: dict[str, list[np.ndarray]] = {}
    bar = tqdm(total=n, desc=desc, disable=not progress or jax.process_index() != 0, unit="row", leave=False)
    for start in range(0, n, batch_size):
        m = min(batch_size, n - start)
        chunk = {}
        for k, v in rows.items():
            part = v[start : start + m]
            if m < batch_size:
                part = np.concatenate([part, np.repeat(part[-1:], batch_size - m, axis=0)])
            chunk[k] = jax.device_put(part, sharding) if sharding is not None else part
        result = fn(**chunk)
        for k, v in result.items():
            v = np.asarray(multihost_utils.process_allgather(v, tiled=True)) if jax.process_count() > 1 else np.asarray(v)
            outs.setdefault(k, []).append(v[:m])
        bar.update(m)
    bar.close()
    return {k: np.concatenate(v) for k, v in outs.items()}
