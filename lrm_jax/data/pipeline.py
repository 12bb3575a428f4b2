"""Grain input pipeline: per-host sharding, per-epoch reshuffling, checkpointable iterator.

    it = iter(record_pipeline(source, seed=0, batch_size=32, transform=encode))
    state = it.get_state()    # save with the checkpoint ...
    it.set_state(state)       # ... and resume exactly where it stopped

`source` is any random-access sequence (a list of Records, a `load_tfds` split). Each JAX
process reads only its shard (`source[process_index::process_count]`, disjoint and
deterministic), so hosts never read each other's examples.

`bucketed_pipeline` is the variant for length buckets: every batch holds records of one bucket
(one padded width). All hosts build the same plan of global batches and each takes its slice of
every batch's rows, so they step through the same shapes in lockstep.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import grain
import jax
import numpy as np


def record_pipeline(
    source: Sequence[Any],
    *,
    seed: int,
    batch_size: int | None = None,
    transform: Callable[[Any], Any] | None = None,
    shuffle: bool = True,
    num_epochs: int | None = None,
    shard_index: int | None = None,
    shard_count: int | None = None,
    drop_remainder: bool = True,
) -> grain.IterDataset:
    """`num_epochs=None` repeats forever. Batches stack `transform`ed examples (dict or array)."""
    shard_index = jax.process_index() if shard_index is None else shard_index
    shard_count = jax.process_count() if shard_count is None else shard_count
    if not 0 <= shard_index < shard_count:
        raise ValueError(f"shard_index {shard_index} not in [0, {shard_count})")
    if len(source) < shard_count:
        raise ValueError(f"{len(source)} examples cannot be split over {shard_count} hosts")
    # Equal shards (the remainder is dropped) so every host runs the same number of steps.
    usable = len(source) // shard_count * shard_count
    ds = grain.MapDataset.source(source)[:usable][shard_index::shard_count]
    if shuffle:
        ds = ds.shuffle(seed=seed)  # grain reshuffles differently on every repeat
    ds = ds.repeat(num_epochs)
    if transform is not None:
        ds = ds.map(transform)
    if batch_size is not None:
        ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    return ds.to_iter_dataset()


def bucket_plan(bucket_of: np.ndarray, batch_size: int, seed: int) -> list[tuple[int, np.ndarray]]:
    """One epoch as (bucket, global row indices) per batch, in a seeded random order.

    Each bucket's records, shuffled, are cut into full batches; a bucket's remainder (fewer
    than `batch_size`, a different set every epoch) waits for another epoch.
    """
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(bucket_of))
    plan = []
    for b in np.unique(bucket_of):
        rows = order[bucket_of[order] == b]
        plan += [(int(b), rows[k : k + batch_size]) for k in range(0, len(rows) - batch_size + 1, batch_size)]
    return [plan[i] for i in rng.permutation(len(plan))]


def bucketed_pipeline(
    source: Sequence[Any],
    bucket_of: np.ndarray,
    *,
    seed: int,
    batch_size: int,
    transform: Callable[[int, Any], dict],
    shard_index: int | None = None,
    shard_count: int | None = None,
) -> grain.IterDataset:
    """One epoch of this host's rows of each global batch: `transform(bucket, example)` dicts
    stacked per key. `batch_size` is global and must divide by the number of hosts."""
    shard_index = jax.process_index() if shard_index is None else shard_index
    shard_count = jax.process_count() if shard_count is None else shard_count
    if len(bucket_of) != len(source):
        raise ValueError(f"{len(bucket_of)} bucket indices for {len(source)} examples")
    if batch_size % shard_count:
        raise ValueError(f"batch of {batch_size} cannot be split over {shard_count} hosts")
    local = batch_size // shard_count
    mine = slice(shard_index * local, (shard_index + 1) * local)

    def load(entry):
        bucket, rows = entry
        examples = [transform(bucket, source[int(i)]) for i in rows[mine]]
        return {k: np.stack([e[k] for e in examples]) for k in examples[0]}

    return grain.MapDataset.source(bucket_plan(np.asarray(bucket_of), batch_size, seed)).map(load).to_iter_dataset()
