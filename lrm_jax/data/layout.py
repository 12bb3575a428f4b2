"""Curriculum sequences in one static layout, so no stage change ever recompiles.

Every example, whatever the method and stage, is laid out in fixed columns:

    [0, P)        left pad, question, then the start marker in column P-1
    [P, P+Z)      Z thought slots; a row using n < Z thoughts masks slots n..Z-1
    [P+Z, T)      end marker, the remaining language steps, "###", answer, <eos>, right pad

P = `max_question_len` + 1, Z = `max_latent_stage * c_thought`, T = P + Z + `max_rest_len`.
Positions skip masked columns (`positions_from_mask`), so a row equals its unpadded sequence.
The loss mask covers only the remaining steps, the answer and <eos> (COCONUT: never the
question, the markers or the thoughts). Methods:

- `coconut`: stage k replaces the first k steps by k*c thoughts (COCONUT's rules, below).
- `pause`: the same sequence with a learned `<pause>` token in each used slot (one pass).
- `cot`: every step in language, no thought used. `nocot`: no steps and no thought.
- `multimode` (the interpretability paper's training-matched control): each record gives three
  rows, selected by the token in column P-1: latent (`<|start-latent|>`, a COCONUT row at the
  current stage), verbalized (`<|bocot|>`, a CoT row) and direct (`<|eocot|>`, a No-CoT row).

COCONUT's stage rules (`get_cot_latent_dataset` in the reference): with probability
`uniform_prob` the stage is drawn uniformly from 0..#steps; beyond `max_latent_stage` all steps
are dropped and the thoughts are max_latent_stage*c (`pad_latent_to_max`) or
min(#steps, max_latent_stage)*c; otherwise stage k drops k steps and uses k*c thoughts, even when
the example has fewer than k steps.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from lrm_jax.data.records import Record
from lrm_jax.tokenizer import Tokenizer

METHODS = ("coconut", "pause", "cot", "nocot")
# multimode rows: (mode, row method, role of the token in column P-1)
MODES = (("latent", "coconut", "start_latent"), ("verbal", "cot", "bocot"), ("direct", "nocot", "eocot"))
ANSWER_PREFIX = "###"


class LayoutError(ValueError):
    pass


@dataclasses.dataclass(frozen=True)
class Layout:
    max_question_len: int
    max_latent_stage: int
    c_thought: int
    max_rest_len: int

    @property
    def n_prefix(self) -> int:
        return self.max_question_len + 1

    @property
    def n_latent(self) -> int:
        return self.max_latent_stage * self.c_thought

    @property
    def length(self) -> int:
        return self.n_prefix + self.n_latent + self.max_rest_len

    def with_length(self, length: int) -> "Layout":
        """This layout narrowed (or widened) in the question only, to rows of `length` columns:
        how a question-width bucket's batch is read (the thoughts and the rest do not move)."""
        width = length - 1 - self.n_latent - self.max_rest_len
        if width <= 0:
            raise LayoutError(f"rows of {length} columns leave no room for a question in {self}")
        return dataclasses.replace(self, max_question_len=width)


@dataclasses.dataclass
class Batch:
    ids: np.ndarray  # BxT int32
    mask: np.ndarray  # BxT int32, 1 = a real column
    loss_mask: np.ndarray  # BxT float32, 1 where the *next* token is supervised
    n_thoughts: np.ndarray  # B int32


def sequence_texts(record: Record) -> list[str]:
    """The exact strings `encode_example` tokenizes: build word vocabularies from these."""
    return [record.question, *(" " + s for s in record.steps), f" {ANSWER_PREFIX} {record.answer}"]


def question_buckets(records: Sequence[Record], tokenizer: Tokenizer, widths: Sequence[int]) -> np.ndarray:
    """For each record, the index of the narrowest of `widths` (increasing) its question fits."""
    lengths = np.array([len(tokenizer.encode(sequence_texts(r)[0])) for r in records])
    bucket = np.searchsorted(np.asarray(widths), lengths, side="left")
    if len(bucket) and bucket.max() >= len(widths):
        i = int(np.argmax(bucket >= len(widths)))
        raise LayoutError(f"record {i}: question has {lengths[i]} tokens > the widest bucket {widths[-1]}")
    return bucket


def answer_tokens(record: Record, tokenizer: Tokenizer) -> list[int]:
    """" ###", the answer, <eos>. The prefix is tokenized on its own so that the token just
    before the answer (CODI's distillation position) is always the last prefix token."""
    return tokenizer.encode(" " + ANSWER_PREFIX) + tokenizer.encode(" " + record.answer) + [tokenizer.ids["eos"]]


def n_thoughts_and_skip(n_steps: int, stage: int, layout: Layout, pad_latent_to_max: bool) -> tuple[int, int]:
    """(thoughts used, language steps dropped) for an example at a stage."""
    if stage > layout.max_latent_stage:
        k = layout.max_latent_stage if pad_latent_to_max else min(n_steps, layout.max_latent_stage)
        return k * layout.c_thought, n_steps
    return stage * layout.c_thought, min(stage, n_steps)


def sample_stage(record: Record, stage: int, uniform_prob: float, rng: np.random.Generator | None) -> int:
    """COCONUT's stage mixing: with probability `uniform_prob`, a stage uniform in 0..#steps."""
    if uniform_prob > 0 and rng is not None and rng.random() < uniform_prob:
        return int(rng.integers(0, len(record.steps) + 1))
    return stage


def encode_example(
    record: Record,
    tokenizer: Tokenizer,
    layout: Layout,
    method: str,
    stage: int,
    pad_latent_to_max: bool = True,
    index: int | None = None,
    start_role: str = "start_latent",
    end_role: str = "end_latent",
):
    """One row: (ids_T, mask_T, loss_mask_T, n_thoughts). Raises LayoutError if it does not fit.

    `start_role` names the special token in column P-1 (multimode selects the mode with it),
    `end_role` the one in column P+Z (CODI uses `<bot>` and `<eot>`).
    """
    if method not in METHODS:
        raise LayoutError(f"unknown method {method!r}; expected one of {METHODS}")
    ids = tokenizer.ids
    q_text, *step_texts, answer_text = sequence_texts(record)
    q = tokenizer.encode(q_text)
    where = f"record {index}: " if index is not None else ""
    if len(q) > layout.max_question_len:
        raise LayoutError(f"{where}question has {len(q)} tokens > max_question_len {layout.max_question_len}")
    steps = [tokenizer.encode(s) for s in step_texts]
    if method == "coconut" or method == "pause":
        n_think, skip = n_thoughts_and_skip(len(steps), stage, layout, pad_latent_to_max)
    elif method == "cot":
        n_think, skip = 0, 0
    else:
        n_think, skip = 0, len(steps)
    rest = [t for s in steps[skip:] for t in s]
    answer = answer_tokens(record, tokenizer)
    tail = [ids[end_role]] + rest + answer
    if len(tail) > layout.max_rest_len:
        raise LayoutError(f"{where}steps and answer take {len(tail)} tokens > max_rest_len {layout.max_rest_len}")
    P, Z, T = layout.n_prefix, layout.n_latent, layout.length
    row = np.full(T, ids["pad"], np.int32)
    mask = np.zeros(T, np.int32)
    loss = np.zeros(T, np.float32)
    row[P - 1 - len(q) : P - 1] = q
    row[P - 1] = ids[start_role]
    mask[P - 1 - len(q) : P] = 1
    slot = ids["pause"] if method == "pause" else ids["latent"]
    row[P : P + Z] = slot
    mask[P : P + n_think] = 1
    row[P + Z : P + Z + len(tail)] = tail
    mask[P + Z : P + Z + len(tail)] = 1
    # Column t predicts column t+1: supervise the targets after the end marker.
    loss[P + Z : P + Z + len(tail) - 1] = 1.0
    return row, mask, loss, n_think


def encode_multimode(record, tokenizer, layout, stage, pad_latent_to_max=True, index=None):
    """Three rows (latent, verbal, direct) stacked: arrays of shape 3xT."""
    rows = [
        encode_example(record, tokenizer, layout, method, stage, pad_latent_to_max, index, role)
        for _, method, role in MODES
    ]
    ids, mask, loss, _ = (np.stack(x) for x in zip(*rows))
    return ids, mask, loss


def make_batch(
    records: Sequence[Record],
    tokenizer: Tokenizer,
    layout: Layout,
    method: str,
    stage: int,
    *,
    pad_latent_to_max: bool = True,
    uniform_prob: float = 0.0,
    rng: np.random.Generator | None = None,
) -> Batch:
    rows = []
    for i, rec in enumerate(records):
        s = sample_stage(rec, stage, uniform_prob, rng)
        rows.append(encode_example(rec, tokenizer, layout, method, s, pad_latent_to_max, index=i))
    ids, mask, loss, n = zip(*rows)
    return Batch(np.stack(ids), np.stack(mask), np.stack(loss), np.asarray(n, np.int32))


def prompt_batch(
    records: Sequence[Record], tokenizer: Tokenizer, layout: Layout, method: str, n_thoughts: int,
    start_role: str = "start_latent",
    end_role: str = "end_latent",
) -> tuple[np.ndarray, np.ndarray]:
    """Generation prompts: columns [0, P+Z] of the layout, ending with the end marker.

    `n_thoughts` slots are in use (COCONUT thoughts or Pause tokens); CoT/No-CoT use none. The
    model then writes the remaining steps (CoT) and "### answer".
    """
    if not 0 <= n_thoughts <= layout.n_latent:
        raise LayoutError(f"n_thoughts {n_thoughts} not in [0, {layout.n_latent}]")
    if method in ("cot", "nocot"):
        n_thoughts = 0
    P, Z = layout.n_prefix, layout.n_latent
    ids = tokenizer.ids
    out = np.full((len(records), P + Z + 1), ids["pad"], np.int32)
    mask = np.zeros_like(out)
    for i, rec in enumerate(records):
        q = tokenizer.encode(sequence_texts(rec)[0])
        if len(q) > layout.max_question_len:
            raise LayoutError(f"record {i}: question has {len(q)} tokens > max_question_len {layout.max_question_len}")
        out[i, P - 1 - len(q) : P - 1] = q
        out[i, P - 1] = ids[start_role]
        out[i, P : P + Z] = ids["pause"] if method == "pause" else ids["latent"]
        out[i, P + Z] = ids[end_role]
        mask[i, P - 1 - len(q) : P] = 1
        mask[i, P : P + n_thoughts] = 1
        mask[i, P + Z] = 1
    return out, mask
