"""Shared fixtures. XLA_FLAGS must be set before jax is imported so that sharding is tested on
8 simulated CPU devices."""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

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
def smear_model(tiny_cfg):
    """A `key_smear=2` model with random non-zero smear weights (they start at zero, which
    would make any test of the smear pass vacuously)."""
    import dataclasses

    import numpy as np

    from lrm_jax.model.gpt2 import init_model

    model = init_model(dataclasses.replace(tiny_cfg, key_smear=2), seed=3)
    rng = np.random.RandomState(0)
    for block in model.h:
        w = block.attn.key_smear
        w[...] = (2.0 * rng.randn(*w.shape)).astype(np.float32)
    return model
