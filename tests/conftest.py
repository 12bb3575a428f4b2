"""Shared fixtures. XLA_FLAGS must be set before jax is imported so that sharding is tested on
8 simulated CPU devices.

Under xdist (`-n 2`, the README's command) the workers start with jemalloc preloaded where it is
installed, as the entry points do (lrm_jax/host_devices.py): XLA's compiles, which dominate the
suite, ran 12% faster with it here (BENCHMARKS.md, session 28). Each worker takes the preload back
out of LD_PRELOAD at once, so the programs tests start see the user's.
`LRM_NO_JEMALLOC=1` turns it off."""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from lrm_jax import host_devices  # noqa: E402  (imports no jax)

host_devices.take_back_preload()  # in an xdist worker that the hook below started


def pytest_configure(config):
    if "PYTEST_XDIST_WORKER" in os.environ or not config.getoption("numprocesses", None) or host_devices.malloc_library():
        return
    env = host_devices.jemalloc_environment()
    if env is not None:
        os.environ.update(env)  # the workers, started after this hook, inherit it


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
