"""Set up a CPU host before jax starts: two XLA devices, and memory in transparent huge pages.

On CPU, XLA runs one device's program with intra-op threads for the big matrix products only;
many small ops of a tiny model's step run on one core. With the host split into two devices and
the batch split over them (the trainer's data-parallel mesh), both programs run at once: on this
project's 2-core machine a ProntoQA-sized CoT step (batch 32) took 0.395 s instead of 0.714 s
(`python -m benchmarks.host_split`, BENCHMARKS.md); at larger batches the gain is smaller.
Only the CPU platform's device count changes, so GPU and TPU runs are unaffected.

Huge pages: every execution of a jitted step allocates its temporaries afresh (about 1 GB per
device for the benchmark's tiny COCONUT step) and frees them at the end. glibc serves such sizes
with `mmap` and returns them with `munmap`, so every step touches a gigabyte of new 4 KiB pages:
a quarter of a million page faults per device, and on the 2-core machine about a quarter of the
step's CPU time spent in the kernel (the small CPU recipes' steps allocate too little to care).
glibc's `glibc.malloc.hugetlb=1` tunable asks the kernel for transparent huge pages on those
mappings (512 times fewer faults). Tunables are read only when a process starts, so
`use_huge_pages` restarts the process (`execve`: same pid, same arguments) with it set. It does
so only on Linux with glibc and huge pages not switched off in the kernel, only before jax is
imported, and only when the process was started as one of the project's entry points (`python -m
train.coconut ...`), never inside pytest or a user's program; `LRM_NO_HUGE_PAGES=1` turns it
off. `python -m lrm_jax.host_devices` prints what a process gets.

Entry points call `prepare_cpu_host()` before anything imports jax; each part does nothing once
jax is imported, and the split does nothing when XLA_FLAGS already sets a device count (the tests
use 8).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

_FLAG = "--xla_force_host_platform_device_count"
_TUNABLE = "glibc.malloc.hugetlb"
_THP_MODE = Path("/sys/kernel/mm/transparent_hugepage/enabled")
ENTRY_PACKAGES = ("train", "analysis", "benchmarks", "lrm_jax")


def split_cpu_host(n: int = 2) -> bool:
    """True when the flag was set here."""
    flags = os.environ.get("XLA_FLAGS", "")
    if "jax" in sys.modules or _FLAG in flags or (os.cpu_count() or 1) < n or os.environ.get("LRM_NO_HOST_SPLIT"):
        return False
    os.environ["XLA_FLAGS"] = f"{flags} {_FLAG}={n}".strip()
    return True


def _glibc() -> bool:
    try:
        return os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc")
    except (AttributeError, ValueError, OSError):
        return False


def _huge_pages_possible() -> bool:
    """The kernel has transparent huge pages and does not forbid them ("[never]")."""
    try:
        return "[never]" not in _THP_MODE.read_text()
    except OSError:
        return False


def _started_as_entry_point() -> bool:
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    return spec is not None and spec.name.split(".")[0] in ENTRY_PACKAGES


def huge_page_environment() -> dict[str, str] | None:
    """The environment to restart this process with, or None when it should not restart."""
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    if (
        _TUNABLE in tunables
        or os.environ.get("LRM_NO_HUGE_PAGES")
        or "jax" in sys.modules
        or sys.platform != "linux"
        or not _glibc()
        or not _huge_pages_possible()
        or not _started_as_entry_point()
        or not hasattr(sys, "orig_argv")
    ):
        return None
    return dict(os.environ, GLIBC_TUNABLES=":".join(t for t in (tunables, f"{_TUNABLE}=1") if t))


def use_huge_pages() -> None:
    """Restarts this process with glibc's huge-page tunable when that helps (module docstring);
    otherwise returns at once."""
    env = huge_page_environment()
    if env is None:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, sys.orig_argv, env)


def prepare_cpu_host() -> None:
    use_huge_pages()
    split_cpu_host()


def huge_pages_active() -> bool:
    return f"{_TUNABLE}=1" in os.environ.get("GLIBC_TUNABLES", "")


if __name__ == "__main__":
    prepare_cpu_host()
    import jax

    mode = _THP_MODE.read_text().strip() if _THP_MODE.exists() else "absent"
    print(f"pid {os.getpid()}; glibc malloc huge pages: {'on' if huge_pages_active() else 'off'} "
          f"(GLIBC_TUNABLES={os.environ.get('GLIBC_TUNABLES', '')}; kernel transparent huge pages: {mode}); "
          f"{jax.device_count()} {jax.default_backend()} device(s)")
