"""Everything a run needs before its first step: records, tokenizer, layout, initial model.

The config is resolved against the data here, and every mismatch is a clear error before any
compile: a stage beyond the longest chain, questions longer than the layout, too few positions.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import numpy as np
from flax import nnx

from lrm_jax.config import CURRICULUM_METHODS, ConfigError, RunConfig, from_dict
from lrm_jax.data.generators import GENERATORS
from lrm_jax.data.layout import Layout, LayoutError, encode_example, sequence_texts
from lrm_jax.data.loaders import load_records
from lrm_jax.data.records import Record
from lrm_jax.model.gpt2 import GPT2, init_model
from lrm_jax.tokenizer import HFTokenizer, Tokenizer, WordTokenizer


@dataclasses.dataclass
class RunInputs:
    cfg: RunConfig  # resolved: model.vocab_size fits the tokenizer
    train: list[Record]
    valid: list[Record]
    tokenizer: Tokenizer
    layout: Layout
    notes: list[str]  # what was loaded/generated/skipped, for the log


def load_data(cfg: RunConfig) -> tuple[list[Record], list[Record], list[str]]:
    d = cfg.data
    notes = []
    if d.train_path:
        tr = load_records(d.train_path, lenient=d.lenient)
        notes.append(tr.summary())
        train = tr.records
        if d.valid_path:
            va = load_records(d.valid_path, lenient=d.lenient)
            notes.append(va.summary())
            valid = va.records
        else:
            n = min(d.n_valid, len(train) // 10)
            train, valid = train[n:], train[:n]
            notes.append(f"no valid_path: held out the first {n} training records for validation")
        return train, valid, notes
    cls, generate = GENERATORS[d.task]
    try:
        gcfg = from_dict(cls, d.generator, prefix="data.generator.")
    except (ValueError, TypeError) as e:
        raise ConfigError(str(e)) from None
    train = generate(gcfg, d.n_train, cfg.train.seed)
    valid = generate(gcfg, d.n_valid, cfg.train.seed + 1_000_003)
    notes.append(f"generated {len(train)} train / {len(valid)} valid {d.task} records with {gcfg}")
    return train, valid, notes


def make_layout(cfg: RunConfig) -> Layout:
    m = cfg.method
    stages = m.max_latent_stage if m.name in CURRICULUM_METHODS else 0
    return Layout(cfg.data.max_question_len, stages, m.c_thought if stages else 0, cfg.data.max_rest_len)


def _check_fits(records, tokenizer, layout, method, where: str) -> None:
    """Stage 0 has the longest continuation; the last stage the most thoughts."""
    methods = ("coconut", "cot") if method == "multimode" else (method,)
    for i, rec in enumerate(records):
        for stage, m in ((s, m) for s in (0, layout.max_latent_stage + 1) for m in methods):
            try:
                encode_example(rec, tokenizer, layout, m, stage, index=i)
            except LayoutError as e:
                raise LayoutError(f"{where} {e} (raise data.max_question_len / data.max_rest_len)") from None


def build_tokenizer(cfg: RunConfig, records: list[Record]) -> Tokenizer:
    if cfg.data.tokenizer == "word":
        return WordTokenizer.build(t for r in records for t in sequence_texts(r))
    return HFTokenizer.from_directory(cfg.data.tokenizer)


def resolve(cfg: RunConfig, tokenizer: Tokenizer | None = None) -> RunInputs:
    train, valid, notes = load_data(cfg)
    if not train:
        raise ConfigError("no training records")
    tokenizer = tokenizer or build_tokenizer(cfg, train + valid)
    m = cfg.method
    longest = max(len(r.steps) for r in train)
    if m.name in CURRICULUM_METHODS and m.max_latent_stage > longest:
        raise ConfigError(
            f"method.max_latent_stage={m.max_latent_stage} exceeds the longest chain in the "
            f"training data ({longest} steps)"
        )
    vocab = tokenizer.vocab_size if cfg.data.tokenizer == "word" else max(cfg.model.vocab_size, tokenizer.vocab_size)
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, vocab_size=vocab))
    layout = make_layout(cfg)
    need = layout.length + cfg.train.max_new_tokens
    if cfg.model.n_positions < need:
        raise ConfigError(
            f"model.n_positions={cfg.model.n_positions} < {need} = layout length {layout.length} "
            f"+ train.max_new_tokens {cfg.train.max_new_tokens}"
        )
    _check_fits(train, tokenizer, layout, m.name, "train")
    _check_fits(valid, tokenizer, layout, m.name, "valid")
    return RunInputs(cfg, train, valid, tokenizer, layout, notes)


def initial_model(cfg: RunConfig, tokenizer: Tokenizer) -> tuple[GPT2, str]:
    """A fresh model, or one initialised from `train.init_from` (a run dir or an HF dir)."""
    src = cfg.train.init_from
    if not src:
        return init_model(cfg.model, cfg.train.seed), "random init"
    path = Path(src)
    if (path / "config.yaml").exists():
        from lrm_jax.training.checkpoint import load_params

        model = load_params(path, expect_model=cfg.model)
        return model, f"initialised from run {path}"
    if (path / "config.json").exists():
        from lrm_jax.model.hf_io import load_hf_gpt2

        hf = load_hf_gpt2(path)
        return _resize_vocab(hf, cfg, tokenizer), f"initialised from Hugging Face GPT-2 {path}"
    raise ConfigError(f"train.init_from={src}: neither an lrm_jax run (config.yaml) nor an HF directory (config.json)")


def _resize_vocab(hf: GPT2, cfg: RunConfig, tokenizer: Tokenizer) -> GPT2:
    """New token rows copy the embedding of "<<" where it exists (COCONUT's choice)."""
    hf_cfg = hf.cfg
    if (hf_cfg.n_embd, hf_cfg.n_layer, hf_cfg.n_head) != (cfg.model.n_embd, cfg.model.n_layer, cfg.model.n_head):
        raise ConfigError(
            f"model config {cfg.model} does not match the Hugging Face checkpoint {hf_cfg}; "
            "set model.n_embd/n_layer/n_head to the checkpoint's"
        )
    model = init_model(dataclasses.replace(cfg.model, n_positions=max(cfg.model.n_positions, hf_cfg.n_positions)), cfg.train.seed)
    hf_params = nnx.to_pure_dict(nnx.state(hf, nnx.Param))
    params = nnx.to_pure_dict(nnx.state(model, nnx.Param))
    wte = np.asarray(params["wte"]["embedding"]).copy()
    old = np.asarray(hf_params["wte"]["embedding"])
    wte[: old.shape[0]] = old
    seed_ids = tokenizer.encode("<<") if isinstance(tokenizer, HFTokenizer) else []
    if len(seed_ids) == 1:
        wte[old.shape[0] :] = old[seed_ids[0]]
    hf_params["wte"]["embedding"] = wte
    wpe = np.asarray(params["wpe"]["embedding"]).copy()
    hf_wpe = np.asarray(hf_params["wpe"]["embedding"])
    wpe[: hf_wpe.shape[0]] = hf_wpe
    hf_params["wpe"]["embedding"] = wpe
    state = nnx.state(model, nnx.Param)
    nnx.replace_by_pure_dict(state, jax.tree.map(np.asarray, hf_params))
    nnx.update(model, state)
    return model
