"""The CPU host set-up of the entry points (lrm_jax/host_devices.py): two CPU devices when nothing
says otherwise, never overriding XLA_FLAGS; a restart with jemalloc preloaded (or, without it,
glibc's huge-page tunable) only for processes started as a project entry point, keeping the pid,
the user's own settings, and an LD_PRELOAD for child programs without ours."""

import os
import re
import subprocess
import sys

import pytest

from lrm_jax import host_devices

PROBE = "from lrm_jax.host_devices import split_cpu_host; s = split_cpu_host(); import jax; print(s, jax.device_count())"
OUR_VARS = ("XLA_FLAGS", "LRM_NO_HOST_SPLIT", "LRM_NO_HUGE_PAGES", "GLIBC_TUNABLES", "LRM_NO_JEMALLOC", "LRM_JEMALLOC",
            "MALLOC_CONF", "LD_PRELOAD", "LRM_MALLOC_RESTARTED")


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


def _entry_point(env_extra, expect_rc=0):
    """Runs `python -m lrm_jax.host_devices`; returns the launched pid and the printed fields."""
    proc = subprocess.Popen([sys.executable, "-m", "lrm_jax.host_devices"], env=_env(env_extra),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == expect_rc, err
    if expect_rc:
        return proc.pid, err
    m = re.match(r"pid (\d+); (.*)", out.strip())
    assert m, out
    fields = dict(f.split("=", 1) for f in m.group(2).split("; ")[:-1])
    fields["pid"] = int(m.group(1))
    return proc.pid, fields


def _glibc_huge_pages_supported():
    return sys.platform == "linux" and host_devices._glibc() and host_devices._huge_pages_possible()


def test_without_jemalloc_the_entry_point_restarts_in_place_with_glibc_huge_pages():
    supported = _glibc_huge_pages_supported()
    launched, got = _entry_point({"LRM_NO_JEMALLOC": "1"})
    assert launched == got["pid"]  # execve: same process, so schedulers and signals still find it
    assert got["malloc"] == "libc"
    assert (got["glibc_huge_pages"] == "on") == supported
    assert got["GLIBC_TUNABLES"] == ("glibc.malloc.hugetlb=1" if supported else "")
    if supported:
        _, got = _entry_point({"LRM_NO_JEMALLOC": "1", "GLIBC_TUNABLES": "glibc.malloc.check=0"})
        assert got["GLIBC_TUNABLES"] == "glibc.malloc.check=0:glibc.malloc.hugetlb=1"
    _, got = _entry_point({"LRM_NO_JEMALLOC": "1", "LRM_NO_HUGE_PAGES": "1"})
    assert got["glibc_huge_pages"] == "off" and got["GLIBC_TUNABLES"] == ""


JEMALLOC = host_devices.find_jemalloc() if sys.platform == "linux" else None
needs_jemalloc = pytest.mark.skipif(JEMALLOC is None, reason="libjemalloc.so.2 not installed (apt-get install libjemalloc2)")


@needs_jemalloc
def test_entry_point_restarts_in_place_with_jemalloc_and_keeps_the_users_settings():
    launched, got = _entry_point({})
    assert launched == got["pid"]
    assert os.path.realpath(got["malloc"]) == os.path.realpath(JEMALLOC)  # mapped, not just named
    huge = ",thp:always" if host_devices._huge_pages_possible() else ""
    assert got["MALLOC_CONF"] == "dirty_decay_ms:-1,muzzy_decay_ms:-1" + huge
    assert got["children_LD_PRELOAD"] == "" and got["glibc_huge_pages"] == "off"
    _, got = _entry_point({"MALLOC_CONF": "narenas:2", "LRM_NO_HUGE_PAGES": "1"})
    assert got["MALLOC_CONF"] == "narenas:2"
    # A preload of the user's stays loaded and is all that child programs inherit.
    libm = next((p for p in ("/lib/x86_64-linux-gnu/libm.so.6", "/usr/lib/x86_64-linux-gnu/libm.so.6",
                             "/lib64/libm.so.6", "/usr/lib64/libm.so.6") if os.path.exists(p)), None)
    if libm:
        _, got = _entry_point({"LD_PRELOAD": libm})
        assert got["children_LD_PRELOAD"] == libm and got["malloc"] != "libc"
    _, got = _entry_point({"LRM_NO_HUGE_PAGES": "1"})
    assert got["MALLOC_CONF"] == "dirty_decay_ms:-1,muzzy_decay_ms:-1"


@needs_jemalloc
def test_a_malloc_the_user_preloaded_is_left_alone():
    launched, got = _entry_point({"LD_PRELOAD": JEMALLOC, "MALLOC_CONF": "narenas:1"})
    assert got["children_LD_PRELOAD"] == JEMALLOC and got["MALLOC_CONF"] == "narenas:1"
    assert got["GLIBC_TUNABLES"] == ""  # no restart for glibc's tunable either


def test_a_missing_jemalloc_named_by_the_user_is_a_clear_error():
    if sys.platform != "linux":
        pytest.skip("the restart is Linux-only")
    _, err = _entry_point({"LRM_JEMALLOC": "/nonexistent/libjemalloc.so.2"}, expect_rc=1)
    assert "LRM_JEMALLOC=/nonexistent/libjemalloc.so.2: no such file" in err


def test_no_restart_outside_an_entry_point():
    code = ("from lrm_jax.host_devices import prepare_cpu_host; prepare_cpu_host(); import os; "
            "print(os.environ.get('GLIBC_TUNABLES'), os.environ.get('LD_PRELOAD'))")
    out = subprocess.run([sys.executable, "-c", code], env=_env({}), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["None", "None"]
    assert host_devices.restart_environment() is None  # inside pytest


@needs_jemalloc
def test_xdist_workers_run_on_jemalloc_and_pass_a_clean_environment_on():
    if "PYTEST_XDIST_WORKER" not in os.environ or os.environ.get("LRM_NO_JEMALLOC") or "LD_PRELOAD" in os.environ:
        pytest.skip("only under xdist (-n), with no preload or opt-out of the user's (tests/conftest.py)")
    assert host_devices.malloc_library() is not None
    assert "LRM_MALLOC_RESTARTED" not in os.environ
