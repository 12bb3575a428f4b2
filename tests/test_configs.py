"""Every YAML file in configs/ parses and validates against the schema."""

from pathlib import Path

import pytest

from lrm_jax.config import RunConfig, load

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_parses(path):
    cfg = load(RunConfig, path)
    assert cfg.method.name in ("coconut", "pause", "cot", "nocot", "multimode")
    if "gpt2" in path.name:  # paper-faithful recipes: GPT-2 124M shape, lr 1e-4, batch 128
        assert (cfg.model.n_layer, cfg.model.n_embd, cfg.model.n_head) == (12, 768, 12)
        assert cfg.train.lr == 1e-4 and cfg.train.batch_size == 128
