"""Every YAML file in configs/ parses and validates against the schema."""

from pathlib import Path

import pytest

from lrm_jax.config import RunConfig, load

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_parses(path):
    cfg = load(RunConfig, path)
    assert cfg.method.name in ("coconut", "pause", "cot", "nocot", "multimode", "codi", "codi_multimode")
    if "gpt2" in path.name:  # paper-faithful recipes: GPT-2 124M shape
        assert (cfg.model.n_layer, cfg.model.n_embd, cfg.model.n_head) == (12, 768, 12)
        if cfg.method.name.startswith("codi"):  # CODI scripts: lr 3e-3, 64 x 2, LoRA 128/32, prj 768
            assert cfg.train.lr == 3e-3 and cfg.train.batch_size * cfg.train.grad_accum == 128
            assert (cfg.model.lora_rank, cfg.model.lora_alpha, cfg.model.projection_dim) == (128, 32.0, 768)
            assert cfg.method.num_latent == 6 and cfg.train.clip_norm == 2.0
        else:  # COCONUT repo: lr 1e-4, batch 128
            assert cfg.train.lr == 1e-4 and cfg.train.batch_size == 128
