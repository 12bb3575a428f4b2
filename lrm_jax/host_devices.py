"""Split a CPU-only host into two XLA devices before jax starts.

On CPU, XLA runs one device's program with intra-op threads for the big matrix products only;
many small ops of a tiny model's step run on one core. With the host split into two devices and
the batch split over them (the trainer's data-parallel mesh), both programs run at once: on this
project's 2-core machine a ProntoQA-sized CoT step (batch 32) took 0.395 s instead of 0.714 s
(`python -m benchmarks.host_split`, BENCHMARKS.md); at larger batches the gain is smaller.
Only the CPU platform's device count changes, so GPU and TPU runs are unaffected.

Entry points call `split_cpu_host()` before anything imports jax; it does nothing once jax is
imported or when XLA_FLAGS already sets a device count (the tests use 8).
"""

from __future__ import annotations

import os
import sys

_FLAG = "--xla_force_host_platform_device_count"


def split_cpu_host(n: int = 2) -> bool:
    """True when the flag was set here."""
    flags = os.environ.get("XLA_FLAGS", "")
    if "jax" in sys.modules or _FLAG in flags or (os.cpu_count() or 1) < n or os.environ.get("LRM_NO_HOST_SPLIT"):
        return False
    os.environ["XLA_FLAGS"] = f"{flags} {_FLAG}={n}".strip()
    return True
