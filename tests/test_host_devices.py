"""The CPU host set-up of the entry points (lrm_jax/host_devices.py): two CPU devices when nothing
says otherwise, never overriding XLA_FLAGS; a restart with glibc's huge-page tunable only for
processes started as a project entry point, keeping the pid and any tunables already set."""

import os
import re
import subprocess
import sys

from lrm_jax import host_devices

PROBE = "from lrm_jax.host_devices import split_cpu_host; s = split_cpu_host(); import jax; print(s, jax.device_count())"
OUR_VARS = ("XLA_FLAGS", "LRM_NO_HOST_SPLIT", "LRM_NO_HUGE_PAGES", "GLIBC_TUNABLES")


def _env(extra):
    env = {k: v for k, v in os.environ.items() if k not in OUR_VARS}
    env.update(extra, JAX_PLATFORMS="cpu")
    return env


def _probe(env_extra):
    out = subprocess.run([sys.executable, "-c", PROBE], env=_env(env_extra), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def test_splits_an_unconfigured_cpu_host_and_respects_explicit_flags():
    expect = ["True", "2"] if (os.cpu_count() or 1) >= 2 else ["False", "1"]
    assert _probe({}) == expect
    assert _probe({"XLA_FLAGS": "--xla_force_host_platform_device_count=3"}) == ["False", "3"]
    assert _probe({"LRM_NO_HOST_SPLIT": "1"}) == ["False", "1"]


def _entry_point(env_extra):
    """Runs `python -m lrm_jax.host_devices`; returns (launched pid, printed pid, tunables, on)."""
    proc = subprocess.Popen([sys.executable, "-m", "lrm_jax.host_devices"], env=_env(env_extra),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    m = re.match(r"pid (\d+); glibc malloc huge pages: (on|off) \(GLIBC_TUNABLES=([^;]*);", out)
    assert m, out
    return proc.pid, int(m.group(1)), m.group(3), m.group(2) == "on"


def test_entry_point_restarts_in_place_with_huge_pages_where_the_host_has_them():
    supported = sys.platform == "linux" and host_devices._glibc() and host_devices._huge_pages_possible()
    launched, printed, tunables, on = _entry_point({})
    assert launched == printed  # execve: same process, so schedulers and signals still find it
    assert on == supported
    assert tunables == ("glibc.malloc.hugetlb=1" if supported else "")
    if supported:
        _, _, tunables, on = _entry_point({"GLIBC_TUNABLES": "glibc.malloc.check=0"})
        assert on and tunables == "glibc.malloc.check=0:glibc.malloc.hugetlb=1"
    _, _, tunables, on = _entry_point({"LRM_NO_HUGE_PAGES": "1"})
    assert not on and tunables == ""


def test_no_restart_outside_an_entry_point():
    code = "from lrm_jax.host_devices import prepare_cpu_host; prepare_cpu_host(); import os; print(os.environ.get('GLIBC_TUNABLES'))"
    out = subprocess.run([sys.executable, "-c", code], env=_env({}), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["None"]
    assert host_devices.huge_page_environment() is None  # inside pytest
