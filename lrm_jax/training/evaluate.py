"""Validation accuracy by batched greedy generation, parsed as the reference does.

The answer is the decoded continuation after the last "#", commas removed, stripped (COCONUT's
`split("#")[-1]`), compared by exact string match with the gold answer (commas removed).
Batches are padded to a fixed size (one compile) and sharded over the mesh when one is given.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.experimental import multihost_utils

from lrm_jax.data.codi_layout import DIRECT_MARKER, STUDENT_ROLES, TEACHER_MARKER, plain_prompt_batch
from lrm_jax.data.layout import MODES, Layout, prompt_batch
from lrm_jax.data.records import Record
from lrm_jax.model.generate import decode_greedy, prefill
from lrm_jax.model.latent import latent_generate
from lrm_jax.sharding import round_batch
from lrm_jax.tokenizer import Tokenizer


def parse_answer(text: str) -> str:
    return text.split("#")[-1].replace(",", "").strip()


def normalize(answer: str) -> str:
    return answer.replace(",", "").strip()


@dataclasses.dataclass(frozen=True)
class Mode:
    """How to prompt a model family in one of its modes.

    `kind`: "latent" (thought loop between `start_role` and `end_role`), "layout" (one pass over
    the COCONUT layout: CoT, No-CoT, Pause) or "plain" (question then `marker`, if any).
    """

    name: str  # "" for a single-mode family; else latent / verbal / direct / teacher
    kind: str
    method: str = "coconut"  # the layout method for "layout"/"latent" prompts
    start_role: str = "start_latent"
    end_role: str = "end_latent"
    marker: str | None = None

    @property
    def latent(self) -> bool:
        return self.kind == "latent"


def modes_of(method: str) -> list[Mode]:
    """Every mode a trained family answers in; the first is the one its accuracy reports."""
    if method == "coconut":
        return [Mode("", "latent")]
    if method in ("cot", "nocot", "pause"):
        return [Mode("", "layout", method)]
    if method == "multimode":
        return [Mode(n, "latent" if m == "coconut" else "layout", m, role) for n, m, role in MODES]
    codi_latent = Mode("latent", "latent", start_role=STUDENT_ROLES[0], end_role=STUDENT_ROLES[1])
    if method == "codi":
        return [dataclasses.replace(codi_latent, name=""), Mode("teacher", "plain", marker=TEACHER_MARKER[False])]
    if method == "codi_multimode":
        return [codi_latent, Mode("verbal", "plain", marker=TEACHER_MARKER[True]), Mode("direct", "plain", marker=DIRECT_MARKER)]
    raise ValueError(f"unknown method {method!r}")


def build_prompts(mode: Mode, records, tokenizer: Tokenizer, layout: Layout, n_thoughts: int):
    """(ids, mask) of generation prompts: P+Z+1 columns, the last one the end of the prompt."""
    if mode.kind == "plain":
        return plain_prompt_batch(records, tokenizer, layout, mode.marker)
    return prompt_batch(records, tokenizer, layout, mode.method, n_thoughts, mode.start_role, mode.end_role)


@functools.partial(jax.jit, static_argnames=("graphdef", "latent", "n_prefix", "n_latent", "max_new_tokens", "eos_id", "pad_id"))
def generate_batch(graphdef, params, ids, mask, scale=None, shift=None, *, latent, n_prefix, n_latent,
                   max_new_tokens, eos_id, pad_id):
    """Greedy continuations of one batch of prompts. Latent rows may intervene on their
    thoughts: slot z is fed `scale[:, z] * thought + shift[:, z]` (both or neither given)."""
    model = nnx.merge(graphdef, params)
    if latent:
        intervene = None if scale is None else (lambda z, x: scale[:, z, None] * x + shift[:, z])
        return latent_generate(
            model, ids, mask, n_prefix=n_prefix, n_latent=n_latent,
            max_new_tokens=max_new_tokens, eos_id=eos_id, pad_id=pad_id, intervene=intervene,
        )
    cache, logits, next_pos, keys = prefill(model, ids, mask, max_new_tokens)
    return decode_greedy(model, cache, logits, next_pos, keys, max_new_tokens=max_new_tokens, eos_id=eos_id, pad_id=pad_id)


def generate_texts(
    graphdef, params, records: Sequence[Record], tokenizer: Tokenizer, layout: Layout, mode: Mode,
    n_thoughts: int, *, batch_size: int, max_new_tokens: int, sharding=None,
) -> list[str]:
    batch_size = round_batch(batch_size, sharding)  # every device gets whole rows
    texts = []
    for start in range(0, len(records), batch_size):
        chunk = list(records[start : start + batch_size])
        n = len(chunk)
        chunk += [chunk[-1]] * (batch_size - n)  # fixed shape: one compile
        ids, mask = build_prompts(mode, chunk, tokenizer, layout, n_thoughts)
        ids, mask = jnp.asarray(ids), jnp.asarray(mask)
        if sharding is not None:
            ids, mask = jax.device_put(ids, sharding), jax.device_put(mask, sharding)
        gen = generate_batch(
            graphdef, params, ids, mask, latent=mode.latent, n_prefix=layout.n_prefix,
            n_latent=layout.n_latent, max_new_tokens=max_new_tokens,
            eos_id=tokenizer.ids["eos"], pad_id=tokenizer.ids["pad"],
        )
        # Rows may live on other hosts' devices: gather the whole batch everywhere.
        tokens = np.asarray(multihost_utils.process_allgather(gen.tokens, tiled=True))
        lengths = np.asarray(multihost_utils.process_allgather(gen.lengths, tiled=True))
        for row in range(n):
            toks = [t for t in tokens[row, : lengths[row]] if t != tokenizer.ids["eos"]]
            texts.append(tokenizer.decode(toks))
    return texts


def mode_accuracies(
    graphdef, params, records: Sequence[Record], tokenizer: Tokenizer, layout: Layout, method: str,
    n_thoughts: int, *, batch_size: int, max_new_tokens: int, sharding=None,
) -> dict[str, float]:
    """Generation accuracy in each mode of a family, keyed by mode name ("" for one-mode families)."""
    accs = {}
    for mode in modes_of(method):
        texts = generate_texts(graphdef, params, records, tokenizer, layout, mode, n_thoughts, batch_size=batch_size,
                               max_new_tokens=max_new_tokens, sharding=sharding)
        accs[mode.name] = accuracy(records, texts)
    return accs


def is_hit(record: Record, text: str) -> bool:
    """Whether a generated text's answer (after the last "#") is the record's answer."""
    return parse_answer(text) == normalize(record.answer)


def accuracy(records: Sequence[Record], texts: Sequence[str]) -> float:
    hits = sum(is_hit(r, t) for r, t in zip(records, texts))
    return hits / max(len(records), 1)
