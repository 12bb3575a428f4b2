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
