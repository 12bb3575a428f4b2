"""Hugging Face GPT-2 import/export from/to a local directory, without torch.

A directory holds `config.json` and `model.safetensors` (keys prefixed `transformer.`, as
`GPT2LMHeadModel.save_pretrained` writes them; `lm_head.weight` is tied and absent). HF's
Conv1D stores weights as (in, out), the same layout as an `nnx.Linear` kernel, so the mapping is
a name table and nothing is transposed.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from flax import nnx
from safetensors.numpy import load_file, save_file

from lrm_jax.config import ModelConfig
from lrm_jax.model.gpt2 import GPT2, init_model

_TOP = {
    "wte.weight": ("wte", "embedding"),
    "wpe.weight": ("wpe", "embedding"),
    "ln_f.weight": ("ln_f", "scale"),
    "ln_f.bias": ("ln_f", "bias"),
}
_BLOCK = {
    "ln_1.weight": ("ln_1", "scale"),
    "ln_1.bias": ("ln_1", "bias"),
    "attn.c_attn.weight": ("attn", "c_attn", "kernel"),
    "attn.c_attn.bias": ("attn", "c_attn", "bias"),
    "attn.c_proj.weight": ("attn", "c_proj", "kernel"),
    "attn.c_proj.bias": ("attn", "c_proj", "bias"),
    "ln_2.weight": ("ln_2", "scale"),
    "ln_2.bias": ("ln_2", "bias"),
    "mlp.c_fc.weight": ("mlp", "c_fc", "kernel"),
    "mlp.c_fc.bias": ("mlp", "c_fc", "bias"),
    "mlp.c_proj.weight": ("mlp", "c_proj", "kernel"),
    "mlp.c_proj.bias": ("mlp", "c_proj", "bias"),
}


class HFImportError(ValueError):
    """A Hugging Face directory is missing a file or holds incompatible weights."""


def name_table(n_layer: int) -> dict[str, tuple]:
    """HF key (without the `transformer.` prefix) -> path in our parameter tree."""
    table = dict(_TOP)
    for i in range(n_layer):
        for k, path in _BLOCK.items():
            table[f"h.{i}.{k}"] = ("h", i) + path
    return table


def config_from_hf(hf: dict, **overrides) -> ModelConfig:
    if hf.get("model_type", "gpt2") != "gpt2":
        raise HFImportError(f"config.json: model_type is {hf.get('model_type')!r}, expected 'gpt2'")
    act = hf.get("activation_function", "gelu_new")
    if act not in ("gelu_new", "gelu_pytorch_tanh"):
        raise HFImportError(f"config.json: activation_function {act!r} is not supported (gelu_new)")
    if hf.get("n_inner") not in (None, 4 * hf["n_embd"]):
        raise HFImportError("config.json: n_inner other than 4*n_embd is not supported")
    return ModelConfig(
        vocab_size=hf["vocab_size"],
        n_positions=hf["n_positions"],
        n_embd=hf["n_embd"],
        n_layer=hf["n_layer"],
        n_head=hf["n_head"],
        layer_norm_epsilon=hf.get("layer_norm_epsilon", 1e-5),
        **overrides,
    )


def config_to_hf(cfg: ModelConfig, bos_id: int | None = None, eos_id: int | None = None) -> dict:
    last = cfg.vocab_size - 1
    return {
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "vocab_size": cfg.vocab_size,
        "n_positions": cfg.n_positions,
        "n_embd": cfg.n_embd,
        "n_layer": cfg.n_layer,
        "n_head": cfg.n_head,
        "n_inner": None,
        "activation_function": "gelu_new",
        "layer_norm_epsilon": cfg.layer_norm_epsilon,
        "initializer_range": cfg.init_std,
        "resid_pdrop": cfg.dropout,
        "embd_pdrop": cfg.dropout,
        "attn_pdrop": cfg.dropout,
        "bos_token_id": last if bos_id is None else bos_id,
        "eos_token_id": last if eos_id is None else eos_id,
        "tie_word_embeddings": True,
    }


def _get(tree, path):
    for p in path:
        tree = tree[p]
    return tree


def _set(tree, path, value):
    for p in path[:-1]:
        tree = tree[p]
    tree[path[-1]] = value


def load_hf_gpt2(directory: str | Path, **config_overrides) -> GPT2:
    """Builds our GPT2 from a local HF GPT-2 directory (config.json + model.safetensors)."""
    directory = Path(directory)
    cfg_path, weights_path = directory / "config.json", directory / "model.safetensors"
    for p in (cfg_path, weights_path):
        if not p.exists():
            raise HFImportError(f"{p} not found (a local Hugging Face GPT-2 directory is needed)")
    cfg = config_from_hf(json.loads(cfg_path.read_text()), **config_overrides)
    if cfg.position_embedding != "learned":
        raise HFImportError(f"{cfg_path}: GPT-2 weights have learned positions; position_embedding must be 'learned'")
    tensors = load_file(str(weights_path))
    tensors = {k.removeprefix("transformer."): v for k, v in tensors.items()}
    model = init_model(cfg)
    state = nnx.to_pure_dict(nnx.state(model, nnx.Param))
    for hf_key, path in name_table(cfg.n_layer).items():
        if hf_key not in tensors:
            raise HFImportError(f"{weights_path}: tensor {hf_key!r} is missing")
        want = _get(state, path)
        got = tensors[hf_key]
        if tuple(got.shape) != tuple(want.shape):
            raise HFImportError(
                f"{weights_path}: {hf_key} has shape {got.shape}, expected {tuple(want.shape)}"
            )
        _set(state, path, np.asarray(got, np.float32))
    nnx.replace_by_pure_dict(params := nnx.state(model, nnx.Param), state)
    nnx.update(model, params)
    return model


def save_hf_gpt2(model: GPT2, directory: str | Path, bos_id=None, eos_id=None) -> Path:
    """Writes config.json + model.safetensors that transformers' GPT2LMHeadModel loads."""
    directory = Path(directory)
    if model.cfg.position_embedding != "learned":
        raise HFImportError(
            f"model.position_embedding={model.cfg.position_embedding!r}: Hugging Face GPT-2 has "
            "only learned positions, so this model cannot be exported as GPT-2"
        )
    for name in ("key_smear", "token_conv"):
        if getattr(model.cfg, name):
            raise HFImportError(
                f"model.{name}={getattr(model.cfg, name)}: Hugging Face GPT-2 has no such layer, so this "
                "model cannot be exported as GPT-2"
            )
    directory.mkdir(parents=True, exist_ok=True)
    state = nnx.to_pure_dict(nnx.state(model, nnx.Param))
    tensors = {
        "transformer." + k: np.ascontiguousarray(np.asarray(_get(state, path), np.float32))
        for k, path in name_table(model.cfg.n_layer).items()
    }
    save_file(tensors, str(directory / "model.safetensors"), metadata={"format": "pt"})
    hf_cfg = config_to_hf(model.cfg, bos_id, eos_id)
    (directory / "config.json").write_text(json.dumps(hf_cfg, indent=2))
    return directory
