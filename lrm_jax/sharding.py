"""Device mesh, shardings and multi-host start-up.

The mesh has two axes, ("data", "fsdp"). Batches are split over both (FSDP is data parallel
with sharded parameters); parameters and optimizer state are replicated unless `fsdp > 1`,
in which case each array is split along its largest dimension that the fsdp size divides.
Meshes are built with `Mesh(...)` directly: `jax.make_mesh` defaults to Explicit axes in
jax 0.10, which `nnx.Embed`'s gather rejects.
"""

from __future__ import annotations

import os

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from lrm_jax.config import ConfigError, MeshConfig

BATCH_AXES = ("data", "fsdp")


def make_mesh(cfg: MeshConfig, devices=None) -> Mesh:
    devices = jax.devices() if devices is None else devices
    n = len(devices)
    data, fsdp = cfg.data, cfg.fsdp
    if data == -1:
        data = n // fsdp
    if fsdp == -1:
        fsdp = n // data
    if data * fsdp != n:
        raise ConfigError(f"mesh data={cfg.data} x fsdp={cfg.fsdp} does not fit {n} devices")
    return Mesh(np.asarray(devices).reshape(data, fsdp), BATCH_AXES)


def batch_sharding(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P(BATCH_AXES))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def param_sharding(tree, mesh: Mesh):
    """A sharding per leaf: replicated, or split over "fsdp" along the largest divisible dim."""
    size = mesh.shape["fsdp"]

    def one(x):
        if size == 1 or not hasattr(x, "shape") or not x.shape:
            return replicated(mesh)
        dims = sorted(range(len(x.shape)), key=lambda d: -x.shape[d])
        for d in dims:
            if x.shape[d] % size == 0:
                spec = [None] * len(x.shape)
                spec[d] = "fsdp"
                return NamedSharding(mesh, P(*spec))
        return replicated(mesh)

    return jax.tree.map(one, tree)


def round_batch(batch_size: int, sharding: NamedSharding | None) -> int:
    """`batch_size` rounded down to a multiple of the sharding's devices (at least one row each)."""
    n = sharding.mesh.size if sharding is not None else 1
    return max(n, (batch_size // n) * n)


def check_batch_size(global_batch: int, mesh: Mesh, micro_batches: int = 1) -> None:
    n = mesh.shape["data"] * mesh.shape["fsdp"]
    if micro_batches > 1 and (global_batch // micro_batches) % n:
        raise ConfigError(
            f"train.batch_size {global_batch} / train.micro_batches {micro_batches} rows per chunk "
            f"is not divisible by the {n} data-parallel devices"
        )
    if global_batch % n:
        raise ConfigError(
            f"train.batch_size {global_batch} is not divisible by the {n} data-parallel devices "
            f"(mesh data={mesh.shape['data']} x fsdp={mesh.shape['fsdp']})"
        )
    if global_batch % jax.process_count():
        raise ConfigError(f"train.batch_size {global_batch} is not divisible by {jax.process_count()} hosts")


def init_distributed(coordinator: str | None = None, num_processes: int | None = None,
                     process_id: int | None = None) -> None:
    """`jax.distributed.initialize` when several processes are asked for (flags or env).

    On TPU pods and SLURM clusters jax detects everything itself: set LRM_DISTRIBUTED=1. On a
    single host with no flags this does nothing.
    """
    if coordinator is None and os.environ.get("LRM_DISTRIBUTED") != "1":
        return
    # CPU collectives across processes (harmless on accelerators). Must precede any backend use.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=coordinator, num_processes=num_processes, process_id=process_id
    )


def global_batch(local: dict[str, np.ndarray], sharding: NamedSharding) -> dict[str, jax.Array]:
    """This host's rows -> one global array per key, sharded over the batch axes."""
    return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in local.items()}
