"""Everything a run needs before its first step: records, tokenizer, layout, initial model.

The config is resolved against the data here, and every mismatch is a clear error before any
compile: a stage beyond the longest chain, questions longer than the layout, too few positions.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax.numpy as jnp
import numpy as np
from flax import nnx

from lrm_jax.config import CODI_METHODS, CURRICULUM_METHODS, ConfigError, RunConfig, from_dict
from lrm_jax.data.codi_layout import encode_codi
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


def data_seed(cfg: RunConfig) -> int:
    """The generator's seed: data.seed, or train.seed where data.seed is -1."""
    return cfg.train.seed if cfg.data.seed == -1 else cfg.data.seed


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
    seed = data_seed(cfg)
    train = generate(gcfg, d.n_train, seed)
    valid = generate(gcfg, d.n_valid, seed + 1_000_003)
    notes.append(f"generated {len(train)} train / {len(valid)} valid {d.task} records (seed {seed}) with {gcfg}")
    return train, valid, notes


def make_layout(cfg: RunConfig) -> Layout:
    m = cfg.method
    if m.name in CODI_METHODS:  # a fixed number of thoughts: one "stage" of num_latent slots
        return Layout(cfg.data.max_question_len, 1 if m.num_latent else 0, m.num_latent, cfg.data.max_rest_len)
    stages = m.max_latent_stage if m.name in CURRICULUM_METHODS else 0
    return Layout(cfg.data.max_question_len, stages, m.c_thought if stages else 0, cfg.data.max_rest_len)


def _check_fits(records, tokenizer, layout, method, where: str) -> None:
    """Stage 0 has the longest continuation; the last stage the most thoughts."""
    if method in CODI_METHODS:
        for i, rec in enumerate(records):
            try:  # the full chain is the longest teacher row
                encode_codi(rec, tokenizer, layout, multimode=method == "codi_multimode", drop_last_step=False, index=i)
            except LayoutError as e:
                raise LayoutError(f"{where} {e} (raise data.max_question_len / data.max_rest_len)") from None
        return
    methods = ("coconut", "cot") if method == "multimode" else (method,)
    for i, rec in enumerate(records):
        for stage, m in ((s, m) for s in (0, layout.max_latent_stage + 1) for m in methods):
            try:
                encode_example(rec, tokenizer, layout, m, stage, index=i)
            except LayoutError as e:
                raise LayoutError(f"{where} {e} (raise data.max_question_len / data.max_rest_len)") from None


def build_tokenizer(cfg: RunConfig, records: list[Record]) -> Tokenizer:
    """A word vocabulary from the records, a local HF tokenizer, or, when the run starts from
    another lrm_jax run, that run's own tokenizer: token ids must mean what they meant to the
    weights (a word vocabulary rebuilt from other records can number tokens differently)."""
    source = Path(cfg.train.init_from) if cfg.train.init_from else None
    if source is not None and (source / "config.yaml").exists():
        from lrm_jax.training.checkpoint import read_run_files

        tok = read_run_files(source)[1]
        if isinstance(tok, WordTokenizer):
            missing = sorted({p for r in records for t in sequence_texts(r) for p in tok.pieces(t)} - set(tok.token_to_id))
            if missing:
                raise ConfigError(
                    f"train.init_from={source}: its word vocabulary lacks {len(missing)} token(s) of this run's data, "
                    f"e.g. {missing[:5]}; generate data the source run has seen, or train from scratch"
                )
        return tok
    if cfg.data.tokenizer == "word":
        return WordTokenizer.build(t for r in records for t in sequence_texts(r))
    return HFTokenizer.from_directory(cfg.data.tokenizer)


def _drop_negative(records: list[Record], where: str, notes: list[str]) -> list[Record]:
    kept = [r for r in records if not r.answer.strip().startswith("-")]
    if len(kept) < len(records):
        notes.append(f"{where}: dropped {len(records) - len(kept)} of {len(records)} records with a negative "
                     "answer (method.filter_negative_answers, as the CODI reference)")
    return kept


def resolve(cfg: RunConfig, tokenizer: Tokenizer | None = None) -> RunInputs:
    train, valid, notes = load_data(cfg)
    if cfg.method.filter_negative_answers:
        train, valid = _drop_negative(train, "train", notes), _drop_negative(valid, "valid", notes)
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
    """A fresh model, or one initialised from `train.init_from` (a run dir or an HF dir).

    Parameters the source lacks (CODI's projection, LoRA adapters, new token rows) keep their
    fresh initialisation; the note says which.
    """
    src = cfg.train.init_from
    model = init_model(cfg.model, cfg.train.seed)
    if not src:
        return model, "random init"
    path = Path(src)
    if (path / "config.yaml").exists():
        from lrm_jax.training.checkpoint import load_params

        source, what = load_params(path, expect_model=cfg.model), f"run {path}"
    elif (path / "config.json").exists():
        from lrm_jax.model.hf_io import load_hf_gpt2

        source, what = load_hf_gpt2(path), f"Hugging Face GPT-2 {path}"
        if (source.cfg.n_embd, source.cfg.n_layer, source.cfg.n_head) != (cfg.model.n_embd, cfg.model.n_layer, cfg.model.n_head):
            raise ConfigError(
                f"model config {cfg.model} does not match the Hugging Face checkpoint {source.cfg}; "
                "set model.n_embd/n_layer/n_head to the checkpoint's"
            )
    else:
        raise ConfigError(f"train.init_from={src}: neither an lrm_jax run (config.yaml) nor an HF directory (config.json)")
    fresh = _transplant(source, model, tokenizer)
    copied = _copy_rows(model, tokenizer, cfg.train.init_copy_rows)
    return model, f"initialised from {what}" + (f"; newly initialised: {', '.join(fresh)}" if fresh else "") + copied


def _copy_rows(model: GPT2, tokenizer: Tokenizer, pairs: tuple[str, ...]) -> str:
    """Applies `train.init_copy_rows` ("dst=src" special-token roles) to the embedding table.

    Every source row is read from the table as loaded, so the pairs act at once and
    ("start_latent=end_latent", "end_latent=start_latent") swaps two rows."""
    if not pairs:
        return ""
    # After _transplant the table may hold a NumPy array (no `.at`).
    loaded = jnp.asarray(model.wte.embedding[...])
    table = loaded
    for pair in pairs:
        dst, src = pair.split("=")
        unknown = [r for r in (dst, src) if r not in tokenizer.ids]
        if unknown:
            raise ConfigError(f"train.init_copy_rows: {pair!r} names unknown role(s) {unknown}; roles: {sorted(tokenizer.ids)}")
        table = table.at[tokenizer.ids[dst]].set(loaded[tokenizer.ids[src]])
    model.wte.embedding.set_value(table)
    return f"; embedding rows copied: {', '.join(pairs)}"


def _transplant(source: GPT2, model: GPT2, tokenizer: Tokenizer) -> list[str]:
    """Copies `source`'s parameters into `model` in place; returns the names left fresh.

    Embedding tables may differ in rows (new special tokens, more positions): the overlap is
    copied, and new token rows copy the embedding of "<<" where the tokenizer has it as one
    token (COCONUT's choice for its new tokens).
    """
    flat_src = nnx.traversals.flatten_mapping(nnx.to_pure_dict(nnx.state(source, nnx.Param)))
    flat_dst = nnx.traversals.flatten_mapping(nnx.to_pure_dict(nnx.state(model, nnx.Param)))
    fresh = set()
    for key, value in flat_dst.items():
        name = ".".join(map(str, key))
        if key not in flat_src:
            fresh.add(name.split(".")[0] if name.startswith("prj") else "lora adapters" if "lora" in name else name)
            continue
        old = np.asarray(flat_src[key])
        new = np.asarray(value).copy()
        if old.shape == new.shape:
            flat_dst[key] = old
        elif old.ndim == 2 and old.shape[1] == new.shape[1]:
            n = min(old.shape[0], new.shape[0])
            new[:n] = old[:n]
            if name == "wte.embedding" and new.shape[0] > old.shape[0]:
                seed_ids = tokenizer.encode("<<") if isinstance(tokenizer, HFTokenizer) else []
                if len(seed_ids) == 1:
                    new[old.shape[0] :] = old[seed_ids[0]]
            flat_dst[key] = new
        else:
            raise ConfigError(f"train.init_from: parameter {name} has shape {old.shape}, this model needs {new.shape}")
    state = nnx.state(model, nnx.Param)
    nnx.replace_by_pure_dict(state, nnx.traversals.unflatten_mapping(flat_dst))
    nnx.update(model, state)
    return sorted(fresh)
