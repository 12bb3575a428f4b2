"""split_cpu_host: two CPU devices when nothing says otherwise; never overrides XLA_FLAGS."""

import os
import subprocess
import sys

PROBE = "from lrm_jax.host_devices import split_cpu_host; s = split_cpu_host(); import jax; print(s, jax.device_count())"


def _probe(env_extra):
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "LRM_NO_HOST_SPLIT")}
    env.update(env_extra, JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def test_splits_an_unconfigured_cpu_host_and_respects_explicit_flags():
    expect = ["True", "2"] if (os.cpu_count() or 1) >= 2 else ["False", "1"]
    assert _probe({}) == expect
    assert _probe({"XLA_FLAGS": "--xla_force_host_platform_device_count=3"}) == ["False", "3"]
    assert _probe({"LRM_NO_HOST_SPLIT": "1"}) == ["False", "1"]
