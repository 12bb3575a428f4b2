"""Set up a CPU host before jax starts: two XLA devices, and an allocator that keeps its memory.

On CPU, XLA runs one device's program with intra-op threads for the big matrix products only;
many small ops of a tiny model's step run on one core. With the host split into two devices and
the batch split over them (the trainer's data-parallel mesh), both programs run at once: on this
project's 2-core machine a ProntoQA-sized CoT step (batch 32) took 0.395 s instead of 0.714 s
(`python -m benchmarks.host_split`, BENCHMARKS.md); at larger batches the gain is smaller.
Only the CPU platform's device count changes, so GPU and TPU runs are unaffected.

The allocator: every execution of a jitted step allocates its temporaries afresh (about 1 GB per
device for the benchmark's tiny COCONUT step) and frees them at the end. glibc serves such sizes
with `mmap` and returns them with `munmap`, so every step touches a gigabyte of new 4 KiB pages:
a quarter of a million page faults per device, and on the 2-core machine about a quarter of the
step's CPU time spent in the kernel (the small CPU recipes' steps allocate too little to care).
Two cures, both needing the process to start with them, so `tune_malloc` restarts the process
(`execve`: same pid, same arguments) once:

- jemalloc, where it is installed (Debian/Ubuntu `libjemalloc2`; `LRM_JEMALLOC=/path/to/lib`
  names another), preloaded with `MALLOC_CONF=dirty_decay_ms:-1,muzzy_decay_ms:-1,thp:always`:
  freed memory stays with the process and the next step reuses it, in huge pages, with no page
  faults at all (BENCHMARKS.md, sessions 27-28). The cost: the process keeps its peak footprint
  until it exits. A `MALLOC_CONF` of the user's own is kept.
- otherwise glibc's `glibc.malloc.hugetlb=1` tunable, which asks the kernel for transparent huge
  pages on those mappings (512 times fewer faults, but still faults and zeroing every step).

It restarts only on Linux, only before jax is imported, and only when the process was started as
one of the project's entry points (`python -m train.coconut ...`), never inside pytest or a
user's program, and never when malloc is already replaced (a jemalloc or tcmalloc of the user's).
`LRM_NO_JEMALLOC=1` skips jemalloc, `LRM_NO_HUGE_PAGES=1` asks for no huge pages either way.
The restarted process takes its preload back out of `LD_PRELOAD`, so programs it starts (git,
a browser) get the environment the user gave. `python -m lrm_jax.host_devices` prints what a
process gets.

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
JEMALLOC_CONF = "dirty_decay_ms:-1,muzzy_decay_ms:-1"
JEMALLOC_HUGE = "thp:always"
_JEMALLOC_DIRS = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib",
                  "/usr/local/lib", f"{sys.prefix}/lib")
# Set only across the restart: its value is the library preloaded ("" for none), so the new
# process knows what to take back out of LD_PRELOAD, and never restarts twice.
_RESTARTED = "LRM_MALLOC_RESTARTED"
_REPLACEMENTS = ("libjemalloc", "libtcmalloc", "libmimalloc")
_tuned = False


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


def malloc_library() -> str | None:
    """The malloc replacement mapped into this process (a path), or None for the C library's."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return None
    for line in maps.splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and any(Path(fields[5]).name.startswith(n) for n in _REPLACEMENTS):
            return fields[5]
    return None


def find_jemalloc() -> str | None:
    """`LRM_JEMALLOC` when set (it must exist), else the first libjemalloc.so.2 in the usual places."""
    named = os.environ.get("LRM_JEMALLOC")
    if named:
        if not Path(named).is_file():
            raise SystemExit(f"LRM_JEMALLOC={named}: no such file (unset it, or set LRM_NO_JEMALLOC=1)")
        return named
    for d in _JEMALLOC_DIRS:
        path = Path(d) / "libjemalloc.so.2"
        if path.is_file():
            return str(path)
    return None


def jemalloc_environment() -> dict[str, str] | None:
    """This environment with jemalloc preloaded ahead of any preload of the user's, and tuned
    (module docstring), for a process to start with; None where jemalloc is switched off or not
    found. The started process calls `take_back_preload` first thing."""
    jemalloc = None if os.environ.get("LRM_NO_JEMALLOC") else find_jemalloc()
    if jemalloc is None:
        return None
    huge = not os.environ.get("LRM_NO_HUGE_PAGES") and _huge_pages_possible()
    preload = os.environ.get("LD_PRELOAD", "")
    conf = os.environ.get("MALLOC_CONF") or ",".join([JEMALLOC_CONF] + [JEMALLOC_HUGE] * huge)
    return dict(os.environ, LD_PRELOAD=":".join(p for p in (jemalloc, preload) if p), MALLOC_CONF=conf,
                **{_RESTARTED: jemalloc})


def take_back_preload() -> bool:
    """In a process started with `jemalloc_environment` (or the glibc restart): takes our library
    back out of LD_PRELOAD, so the programs it starts get the user's. True in such a process."""
    if _RESTARTED not in os.environ:
        return False
    preloaded = os.environ.pop(_RESTARTED)
    rest = [p for p in os.environ.get("LD_PRELOAD", "").split(":") if p]
    if preloaded and rest and rest[0] == preloaded:
        if rest[1:]:
            os.environ["LD_PRELOAD"] = ":".join(rest[1:])
        else:
            del os.environ["LD_PRELOAD"]
    return True


def restart_environment() -> dict[str, str] | None:
    """The environment to restart this process with, or None when it should not restart."""
    if (
        _RESTARTED in os.environ
        or "jax" in sys.modules
        or sys.platform != "linux"
        or not _started_as_entry_point()
        or not hasattr(sys, "orig_argv")
        or malloc_library() is not None
    ):
        return None
    env = jemalloc_environment()
    if env is not None:
        return env
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    if os.environ.get("LRM_NO_HUGE_PAGES") or not _huge_pages_possible() or not _glibc() or _TUNABLE in tunables:
        return None
    return dict(os.environ, GLIBC_TUNABLES=":".join(t for t in (tunables, f"{_TUNABLE}=1") if t),
                **{_RESTARTED: ""})


def tune_malloc() -> None:
    """Restarts this process with jemalloc or glibc's huge pages when that helps (module
    docstring); otherwise returns at once. In the restarted process it only tidies up."""
    global _tuned
    if _tuned:
        return
    _tuned = True
    if take_back_preload():
        return
    env = restart_environment()
    if env is None:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, sys.orig_argv, env)


def prepare_cpu_host() -> None:
    tune_malloc()
    split_cpu_host()


def huge_pages_active() -> bool:
    """glibc's huge-page tunable is on in this process."""
    return malloc_library() is None and f"{_TUNABLE}=1" in os.environ.get("GLIBC_TUNABLES", "")


def malloc_summary() -> str:
    """One phrase for benchmark headers: which malloc this process runs and how it is tuned."""
    lib = malloc_library()
    if lib is not None:
        return f"malloc {Path(lib).name} (MALLOC_CONF={os.environ.get('MALLOC_CONF', '')})"
    return f"glibc malloc, huge pages {'on' if huge_pages_active() else 'off'}"


if __name__ == "__main__":
    prepare_cpu_host()
    import jax

    mode = _THP_MODE.read_text().strip() if _THP_MODE.exists() else "absent"
    lib = malloc_library()
    print(f"pid {os.getpid()}; malloc={lib or 'libc'}; glibc_huge_pages={'on' if huge_pages_active() else 'off'}; "
          f"MALLOC_CONF={os.environ.get('MALLOC_CONF', '')}; GLIBC_TUNABLES={os.environ.get('GLIBC_TUNABLES', '')}; "
          f"children_LD_PRELOAD={os.environ.get('LD_PRELOAD', '')}; kernel_thp={mode}; "
          f"{jax.device_count()} {jax.default_backend()} device(s)")
