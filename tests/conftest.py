"""Shared fixtures. XLA_FLAGS must be set before jax is imported so that sharding is tested on
8 simulated CPU devices.

Under xdist (`-n 2`, the README's command) the workers start with jemalloc preloaded where it is
installed, as the entry points do (lrm_jax/host_devices.py): XLA's compiles, which dominate the
suite, ran 12% faster with it here (BENCHMARKS.md, session 28). Each worker takes the preload back
out of its environment at once, so the programs tests start see the environment the user gave.
`LRM_NO_JEMALLOC=1` turns it off."""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

_WORKER_PRELOAD = "LRM_TEST_WORKER_PRELOAD"
if _WORKER_PRELOAD in os.environ:  # an xdist worker that the hook below started
    if os.environ.get("LD_PRELOAD") == os.environ[_WORKER_PRELOAD]:
        del os.environ["LD_PRELOAD"]
        if os.environ.pop("LRM_TEST_WORKER_CONF", None):
            os.environ.pop("MALLOC_CONF", None)
    del os.environ[_WORKER_PRELOAD]


def pytest_configure(config):
    if ("PYTEST_XDIST_WORKER" in os.environ or not config.getoption("numprocesses", None)
            or os.environ.get("LD_PRELOAD") or os.environ.get("LRM_NO_JEMALLOC")):
        return
    from lrm_jax.host_devices import JEMALLOC_CONF, JEMALLOC_HUGE, find_jemalloc

    lib = find_jemalloc()
    if lib is None:
        return
    # Workers are started after this hook and inherit the environment.
    os.environ.update(LD_PRELOAD=lib, **{_WORKER_PRELOAD: lib})
    if "MALLOC_CONF" not in os.environ:
        os.environ.update(MALLOC_CONF=f"{JEMALLOC_CONF},{JEMALLOC_HUGE}", LRM_TEST_WORKER_CONF="1")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("LRM_SHARED_DATA", REPO.parent / "shared" / "data"))


def shared_file(name: str) -> Path:
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"reference data {path} is absent (expected ../shared/data beside the repo)")
    return path


@pytest.fixture(scope="session")
def tiny_cfg():
    from lrm_jax.config import ModelConfig

    return ModelConfig(vocab_size=97, n_positions=64, n_embd=32, n_layer=2, n_head=4)


@pytest.fixture(scope="session")
def tiny_model(tiny_cfg):
    from lrm_jax.model.gpt2 import init_model

    return init_model(tiny_cfg, seed=0)



@pytest.fixture(scope="session")
def variant_model(tiny_cfg):
    """`variant_model(**model_overrides)`: a tiny model with the options given; the zero-init
    extras (key_smear, token_conv) get random non-zero weights, without which any test of them
    would pass vacuously. Built once per set of options."""
    import dataclasses

    import numpy as np

    from lrm_jax.model.gpt2 import init_model

    built = {}

    def make(**overrides):
        key = tuple(sorted(overrides.items()))
        if key not in built:
            model = init_model(dataclasses.replace(tiny_cfg, **overrides), seed=3)
            rng = np.random.RandomState(0)
            for block in model.h:
                for w in (block.attn.key_smear, block.token_conv):
                    if w is not None:
                        w[...] = (2.0 * rng.randn(*w.shape)).astype(np.float32)
            built[key] = model
        return built[key]

    return make
