"""Grain input pipeline: per-host sharding, per-epoch reshuffling, checkpointable iterator.

    it = iter(record_pipeline(source, seed=0, batch_size=32, transform=encode))
    state = it.get_state()    # save with the checkpoint ...
    it.set_state(state)       # ... and resume exactly where it stopped

`source` is any random-access sequence (a list of Records, a `load_tfds` split). Each JAX
process reads only its shard (`source[process_index::process_count]`, disjoint and
deterministic), so hosts never read each other's examples.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import grain
import jax


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
