"""Typed, frozen configuration schema and its YAML/override loader.

Conventions:
- Defaults live only in the dataclasses below. YAML files in `configs/` hold only what differs
  from them; `--set a.b=value` overrides (values parsed as YAML scalars) are applied last.
- Every section validates itself in `__post_init__`, so a bad value fails at load time with the
  name of the field, not deep inside a jitted function.
- `to_dict` / `from_dict` round-trip exactly; the resolved dict is what checkpoints store.
"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml


class ConfigError(ValueError):
    """A config file, key or value is invalid. The message names the key."""


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """GPT-2 shape. Field names follow Hugging Face's GPT2Config so import is a table."""

    vocab_size: int = 512
    n_positions: int = 256
    n_embd: int = 128
    n_layer: int = 2
    n_head: int = 4
    layer_norm_epsilon: float = 1e-5
    # Compute dtype: "float32" (default, exact) or "bfloat16" (accelerators). Params stay fp32.
    dtype: str = "float32"
    init_std: float = 0.02
    # CODI's projection of a thought before it is fed back (Linear, GELU, Linear, LayerNorm):
    # 0 = none (COCONUT feeds the post-ln_f hidden state itself); CODI uses n_embd.
    projection_dim: int = 0
    projection_ln: bool = True
    # Length of each fed-back thought. "none": as the references (post-ln_f, then the projection):
    # about sqrt(n_embd) long, where this project's small models have token embeddings of length
    # ~1 (17 against 0.94 in the ProntoQA-style CoT model). "embedding": rescaled to the mean
    # length of the token-embedding rows, so a CoT model reads a thought as the token it predicts
    # and, from init, carries its chain on through the thoughts (RESULTS.md, session 18). Not
    # in either reference.
    thought_norm: str = "none"
    # LoRA on c_attn / c_proj / c_fc (CODI's runs from a pretrained GPT-2): rank 0 = full
    # fine-tuning. With LoRA only the adapters and the projection are trained.
    lora_rank: int = 0
    lora_alpha: float = 32.0
    # "learned": GPT-2's position table (`wpe`). "rope": rotary embeddings on queries and keys
    # instead (no `wpe`; such a model cannot be exported as HF GPT-2), for from-scratch models
    # that must find a rule by content and copy a token a fixed distance after it. On the CPU
    # logic variant it lowered the loss a little but did not get past chance (RESULTS.md).
    position_embedding: str = "learned"
    rope_base: float = 10000.0
    # Smeared keys: each attention key becomes k_s + sum_j w_j * k_(j-th earlier token), a
    # learned per-channel mix of the keys of the `key_smear` previous (unmasked) tokens, zero at
    # init. A query can then find a token by what came before it, the step of in-context lookup
    # ("the rule whose subject is X") that tiny models otherwise take thousands of steps to
    # build from two attention layers: on the recall probe 0.999 after 1,000 steps (plain GPT-2:
    # 0.2 after 10,000), and the CPU logic task with a chain-of-concepts CoT (100% in 1,250
    # steps), though not when a token separates the asking position from the key, as in
    # COCONUT's sentence steps (RESULTS.md). 0 = off (plain GPT-2; such models cannot be
    # exported as HF GPT-2).
    key_smear: int = 0
    # Token convolution: each block's attention input (ln_1 output) y_t becomes
    # y_t + sum_j w_j * y_(j-th earlier token), a learned per-channel (depthwise) causal
    # convolution over the `token_conv` previous unmasked tokens, zero at init (the "short
    # convolution" of H3/Based, Allen-Zhu's "Canon layers"). Queries, keys and values then all
    # see the few tokens before them: recall probe 0.985 after 1,500 steps; the logic task with
    # sentence steps and the probe's "Every k is v" form still not learned (RESULTS.md). 0 = off
    # (plain GPT-2; such models cannot be exported as HF GPT-2).
    token_conv: int = 0
    # GPT-2's dropout (HF's embd_pdrop = attn_pdrop = resid_pdrop; the reference COCONUT and CODI
    # train HF GPT-2 in train mode, so at 0.1), used only where the caller passes a dropout key:
    # the train step does, evaluation and analysis never do. 0 = off.
    dropout: float = 0.0
    # Unroll the thought loop (`lax.scan(..., unroll=True)`), same numerics. Off: unrolling
    # made the CPU step slower (session 7), and on an H100 an interrupted session saw GPT-2
    # small's step slower and a tiny model's faster, numbers it did not keep (BENCHMARKS.md).
    # `benchmarks.train_step --unroll` times it on the machine at hand.
    latent_unroll: bool = False

    def __post_init__(self):
        for name in ("vocab_size", "n_positions", "n_embd", "n_layer", "n_head"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"model.{name} must be positive, got {getattr(self, name)}")
        if self.n_embd % self.n_head:
            raise ConfigError(
                f"model.n_embd ({self.n_embd}) must be divisible by model.n_head ({self.n_head})"
            )
        if self.dtype not in ("float32", "bfloat16"):
            raise ConfigError(f"model.dtype must be 'float32' or 'bfloat16', got {self.dtype!r}")
        if self.position_embedding not in ("learned", "rope"):
            raise ConfigError(
                f"model.position_embedding must be 'learned' or 'rope', got {self.position_embedding!r}"
            )
        if self.rope_base <= 0:
            raise ConfigError(f"model.rope_base must be positive, got {self.rope_base}")
        if self.position_embedding == "rope" and self.head_dim % 2:
            raise ConfigError(f"model.position_embedding=rope needs an even head dim, got {self.head_dim}")
        for name in ("key_smear", "token_conv"):
            if getattr(self, name) < 0:
                raise ConfigError(f"model.{name} must be >= 0 (0 = off), got {getattr(self, name)}")
            if getattr(self, name) and self.lora_rank:
                raise ConfigError(f"model.{name} with model.lora_rank: LoRA trains only its adapters, so it would stay zero")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"model.dropout must be in [0, 1), got {self.dropout}")
        if self.thought_norm not in ("none", "embedding"):
            raise ConfigError(f"model.thought_norm must be 'none' or 'embedding', got {self.thought_norm!r}")
        if self.projection_dim < 0 or self.lora_rank < 0:
            raise ConfigError("model.projection_dim and model.lora_rank must be >= 0 (0 = off)")

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head


TASKS = ("prosqa", "prontoqa", "arithmetic", "gsm8k")
METHODS = ("coconut", "pause", "cot", "nocot", "multimode", "codi", "codi_multimode")
# Methods with thought slots and COCONUT's stage curriculum.
CURRICULUM_METHODS = ("coconut", "pause", "multimode")
# CODI: a fixed number of thoughts (no curriculum), taught by the same model's CoT pass.
CODI_METHODS = ("codi", "codi_multimode")
# Every method that runs the continuous-thought loop.
LATENT_METHODS = ("coconut", "multimode", "codi", "codi_multimode")


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where records come from and how sequences are laid out (see lrm_jax/data/layout.py).

    Either files (`train_path`, `valid_path`: any format the loaders read) or, when they are
    empty, `n_train`/`n_valid` records generated for `task` with the `generator` knobs.
    """

    task: str = "arithmetic"
    train_path: str = ""
    valid_path: str = ""
    n_train: int = 20000
    n_valid: int = 500
    generator: dict = dataclasses.field(default_factory=dict)
    # Seed of the generated records (validation: seed + 1,000,003); -1 follows train.seed. Set
    # it to vary a run's initialisation, dropout and order over seeds on the same records.
    seed: int = -1
    # "word": a word-level vocabulary built from the training data; else a local HF tokenizer dir.
    tokenizer: str = "word"
    max_question_len: int = 64
    max_rest_len: int = 48
    # Shorter question widths to pad to (increasing, each < max_question_len): every training
    # batch holds records of one width, so short questions skip most of the left padding. The
    # train step compiles once per width. Not for CODI (its teacher and student rows share one
    # width).
    question_buckets: tuple[int, ...] = ()
    lenient: bool = False  # skip malformed records (reported) instead of stopping

    def __post_init__(self):
        if self.task not in TASKS:
            raise ConfigError(f"data.task must be one of {TASKS}, got {self.task!r}")
        if not self.train_path and self.task == "gsm8k":
            raise ConfigError("data.train_path is required for gsm8k (no generator exists for it)")
        for name in ("n_train", "n_valid", "max_question_len", "max_rest_len"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"data.{name} must be positive")
        if self.seed < -1:
            raise ConfigError(f"data.seed must be >= 0, or -1 to follow train.seed, got {self.seed}")
        widths = (*self.question_buckets, self.max_question_len)
        if min(widths) <= 0 or any(a >= b for a, b in zip(widths, widths[1:])):
            raise ConfigError(
                f"data.question_buckets must be positive, increasing and below data.max_question_len="
                f"{self.max_question_len}, got {list(self.question_buckets)}"
            )


@dataclasses.dataclass(frozen=True)
class MethodConfig:
    """The model family and COCONUT's curriculum knobs (coconut.md section 2)."""

    name: str = "coconut"
    c_thought: int = 1
    max_latent_stage: int = 3
    epochs_per_stage: int = 1
    # The stage the run starts counting from (the reference's `resume`, e.g. 3 for GSM8k).
    first_epoch: int = 0
    pad_latent_to_max: bool = True
    uniform_prob: float = 0.0
    # "stage": re-create AdamW when the stage changes (the paper); "epoch": every epoch (the
    # reference code, issues #10/#39); "never". CoT and No-CoT never reset (no curriculum).
    # Stages go on counting past max_latent_stage, so with "stage" a run longer than its
    # curriculum still resets every epochs_per_stage epochs; each reset restarts the schedule,
    # whose horizon is one reset period (a warm restart, where the schedule would otherwise end).
    reset_optimizer: str = "stage"
    # Thoughts used at evaluation; -1 = the current stage's number (as the reference).
    eval_thoughts: int = -1
    # multimode: loss = a*L_latent + b*L_verbal + c*L_direct (the paper uses 1, 1, 1).
    # codi: (student CE, teacher CE, unused); codi_multimode: (student, teacher, direct).
    mode_weights: tuple[float, ...] = (1.0, 1.0, 1.0)
    # CODI (codi.md section 2). Thoughts between <bot> and <eot>:
    num_latent: int = 6
    distill_factor: float = 1.0  # gamma: 1 for GPT-2, 20 for LLaMA-1B in the reference
    distill_loss: str = "smooth_l1"  # or "l2"
    distill_div_std: bool = True  # divide each layer's distance by the teacher's std
    # The reference's data tricks: the teacher's CoT loses its last step (include_last_cot=False),
    # and records whose answer is negative are dropped (GSM8k); both reported in the run log.
    drop_last_step: bool = True
    filter_negative_answers: bool = False

    def __post_init__(self):
        if self.name not in METHODS:
            raise ConfigError(f"method.name must be one of {METHODS}, got {self.name!r}")
        if self.c_thought < 0 or self.max_latent_stage < 0 or self.epochs_per_stage <= 0:
            raise ConfigError("method: c_thought, max_latent_stage >= 0 and epochs_per_stage > 0")
        if not 0.0 <= self.uniform_prob <= 1.0:
            raise ConfigError(f"method.uniform_prob must be in [0, 1], got {self.uniform_prob}")
        if len(self.mode_weights) != 3 or min(self.mode_weights) < 0:
            raise ConfigError("method.mode_weights must be three non-negative numbers (latent, verbal, direct)")
        if self.reset_optimizer not in ("stage", "epoch", "never"):
            raise ConfigError("method.reset_optimizer must be 'stage', 'epoch' or 'never'")
        if self.num_latent < 0 or self.distill_factor < 0:
            raise ConfigError("method.num_latent and method.distill_factor must be >= 0")
        if self.distill_loss not in ("smooth_l1", "l2"):
            raise ConfigError(f"method.distill_loss must be 'smooth_l1' or 'l2', got {self.distill_loss!r}")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    batch_size: int = 64  # global batch; must divide by the number of data-parallel devices
    grad_accum: int = 1
    # Rows of each step split into this many chunks inside the jitted step (exact: the
    # gradient is still the whole batch's). Speeds up CPU steps whose activations overflow the
    # caches (lrm_jax/training/microbatch.py). Token-mean losses only (not multimode or CODI).
    micro_batches: int = 1
    lr: float = 1e-3
    weight_decay: float = 0.01
    schedule: str = "constant"  # "constant" (the reference) or "warmup_cosine"
    warmup_steps: int = 0
    clip_norm: float = 0.0  # 0 = no clipping (the reference)
    num_epochs: int = 4
    max_steps: int = 0  # > 0 stops early (smoke tests, time-boxed runs)
    time_limit_minutes: float = 0.0  # > 0: save and stop after this many minutes of this invocation
    seed: int = 0
    init_from: str = ""  # an lrm_jax run directory or a local HF GPT-2 directory
    # Embedding rows copied after init_from, "dst=src" by special-token role. "bot=end_latent"
    # starts CODI's <bot> as the token after which a CoT model of this project writes its first
    # step, so the first thought already holds that step (RESULTS.md, session 18). The pairs act
    # at once (sources read before any copy): "a=b", "b=a" swaps two rows.
    init_copy_rows: tuple[str, ...] = ()
    log_every: int = 20
    eval_every_epochs: int = 1
    eval_limit: int = 0  # 0 = the whole validation set
    eval_batch_size: int = 128
    max_new_tokens: int = 48
    checkpoint_every_steps: int = 500
    keep_checkpoints: int = 2

    def __post_init__(self):
        for name in ("batch_size", "grad_accum", "micro_batches", "num_epochs", "log_every", "eval_batch_size",
                     "max_new_tokens", "checkpoint_every_steps", "keep_checkpoints", "eval_every_epochs"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"train.{name} must be positive, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ConfigError(f"train.lr must be positive, got {self.lr}")
        if self.batch_size % self.micro_batches:
            raise ConfigError(
                f"train.batch_size {self.batch_size} is not divisible by train.micro_batches {self.micro_batches}"
            )
        if self.schedule not in ("constant", "warmup_cosine"):
            raise ConfigError("train.schedule must be 'constant' or 'warmup_cosine'")
        for pair in self.init_copy_rows:
            if pair.count("=") != 1 or not all(pair.split("=")):
                raise ConfigError(f"train.init_copy_rows: {pair!r} is not 'dst=src' (special-token roles, e.g. bot=end_latent)")
        targets = [pair.split("=")[0] for pair in self.init_copy_rows]
        if len(set(targets)) != len(targets):
            raise ConfigError(f"train.init_copy_rows: {list(self.init_copy_rows)} sets a row twice (the pairs act at once)")
        if self.init_copy_rows and not self.init_from:
            raise ConfigError("train.init_copy_rows copies rows of a trained model: set train.init_from too")


@dataclasses.dataclass(frozen=True)
class MeshConfig:
    """Device mesh ("data", "fsdp"). -1 takes the devices the other axis leaves."""

    data: int = -1
    fsdp: int = 1

    def __post_init__(self):
        if (self.data == -1) and (self.fsdp == -1):
            raise ConfigError("mesh: at most one of data/fsdp may be -1")
        if min(self.data, self.fsdp) < -1 or 0 in (self.data, self.fsdp):
            raise ConfigError("mesh sizes must be positive or -1")


@dataclasses.dataclass(frozen=True)
class RunConfig:
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    method: MethodConfig = dataclasses.field(default_factory=MethodConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    mesh: MeshConfig = dataclasses.field(default_factory=MeshConfig)

    def __post_init__(self):
        if self.data.question_buckets and self.method.name in CODI_METHODS:
            raise ConfigError(f"data.question_buckets is not supported by method {self.method.name!r}")
        if self.train.micro_batches > 1 and self.method.name in ("multimode",) + CODI_METHODS:
            raise ConfigError(
                f"train.micro_batches > 1 needs a single token-mean loss; method {self.method.name!r} "
                "combines several (set train.micro_batches=1)"
            )


def _field_types(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(value: Any, type_: Any, key: str) -> Any:
    """Converts a YAML value to the annotated field type, or raises ConfigError naming `key`."""
    origin = typing.get_origin(type_)
    if dataclasses.is_dataclass(type_):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key} must be a mapping, got {type(value).__name__}")
        return from_dict(type_, value, prefix=key + ".")
    if origin is typing.Union or str(origin) == "types.UnionType":
        args = typing.get_args(type_)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], key)
    if origin in (tuple, Sequence, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key} must be a list, got {value!r}")
        args = typing.get_args(type_)
        elem = args[0] if args else Any
        return tuple(_coerce(v, elem, f"{key}[{i}]") for i, v in enumerate(value))
    if type_ is Any:
        return value
    if type_ is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key} must be a mapping, got {value!r}")
        return dict(value)
    if type_ is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if type_ is float and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    if type_ in (int, float, str, bool) and not (
        isinstance(value, type_) and not (type_ is int and isinstance(value, bool))
    ):
        raise ConfigError(f"{key} must be {type_.__name__}, got {value!r}")
    return value


def from_dict(cls, data: Mapping[str, Any], prefix: str = ""):
    """Builds dataclass `cls` from a (partial) mapping; unknown keys are errors."""
    types = _field_types(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(
            f"unknown config key(s) {', '.join(prefix + k for k in unknown)}; "
            f"valid keys under {prefix or 'top level'}: {', '.join(sorted(known))}"
        )
    kwargs = {k: _coerce(v, types[k], prefix + k) for k, v in data.items()}
    return cls(**kwargs)


def to_dict(cfg) -> dict[str, Any]:
    """Plain nested dict (tuples as lists) suitable for YAML/JSON."""

    def conv(v):
        if dataclasses.is_dataclass(v):
            return {f.name: conv(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, tuple):
            return [conv(x) for x in v]
        return v

    return conv(cfg)


def _set_dotted(tree: dict, dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = tree
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {dotted}: {p} is not a section")
    node[parts[-1]] = value


def parse_overrides(overrides: Sequence[str]) -> dict[str, Any]:
    """`["a.b=3", "c=x"]` -> nested dict. Values are parsed as YAML scalars ("1e-4" -> float)."""
    tree: dict[str, Any] = {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        key, raw = item.split("=", 1)
        value = yaml.safe_load(raw) if raw != "" else ""
        _set_dotted(tree, key.strip(), value)
    return tree


def merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in update.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out


def load(cls, path: str | Path | None = None, overrides: Sequence[str] = ()):
    """Defaults <- YAML file (differences only) <- `--set` overrides, validated."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.exists():
            raise ConfigError(f"config file not found: {path}")
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: invalid YAML: {e}") from e
        if not isinstance(loaded, Mapping):
            raise ConfigError(f"{path}: top level must be a mapping")
        data = dict(loaded)
    data = merge(data, parse_overrides(overrides))
    try:
        return from_dict(cls, data)
    except ConfigError as e:
        where = f"{path}: " if path is not None else ""
        raise ConfigError(f"{where}{e}") from None
