"""Vocabulary projection ("logit lens") of every reasoning position at every layer.

For each instance the model first answers normally (all thoughts, greedy). The prompt plus
that answer is then run once more, teacher-forced, keeping every layer's residual stream; at
each position of interest the hidden state of every layer goes through the final LayerNorm and
the tied unembedding (one batched projection over layers, positions and rows), and the top-k
tokens are kept. The last layer's projection is the model's own next-token distribution there:
the paper uses only that one; the other layers are a logit lens beyond the paper.

Positions, in order (R = Z + 2 "reasoning positions" first, as the paper's index 0..7):
    start marker, thought 0..Z-1, end marker, then the answer-prefix tokens (" ###", whose last
    token predicts the answer: the "answer position") and up to `n_answer` answer tokens.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from lrm_jax.data.layout import ANSWER_PREFIX
from lrm_jax.data.records import Record
from lrm_jax.model.latent import latent_forward
from lrm_jax.studies.batched import map_chunks
from lrm_jax.studies.bundle import LoadedRun, StudyError
from lrm_jax.studies.necessity import Runner, append_tokens
from lrm_jax.training.evaluate import build_prompts, parse_answer


@dataclasses.dataclass
class LensGrid:
    """Top-k projections of one instance. ids/logprobs: (L+1) x positions x k."""

    labels: list[str]  # position names, e.g. "<bot>", "thought 0", ..., "ans 0"
    ids: np.ndarray
    logprobs: np.ndarray
    answer_position: int  # index into positions of the token that predicts the answer
    n_reasoning: int  # positions 0..n_reasoning-1 are the reasoning positions

    def tokens(self, tokenizer, layer: int = -1) -> list[list[str]]:
        return [[tokenizer.decode([int(t)]) for t in row] for row in self.ids[layer]]


@functools.partial(jax.jit, static_argnames=("graphdef", "n_prefix", "n_latent", "k", "last_only"))
def project_columns(graphdef, params, ids, mask, columns, *, n_prefix, n_latent, k, last_only=False):
    """Top-k (ids, log-probs) at `columns` (B x C) of every layer (or the last): B x L x C x k."""
    model = nnx.merge(graphdef, params)
    out = latent_forward(model, ids, mask, n_prefix=n_prefix, n_latent=n_latent, return_layers=not last_only)
    layers = out.h[None] if last_only else out.layers
    picked = jnp.take_along_axis(layers, columns[None, :, :, None], axis=2)  # (L+1) x B x C x D
    logp = jax.nn.log_softmax(model.unembed(picked), axis=-1)
    top_lp, top_ids = jax.lax.top_k(logp, k)
    return {"ids": top_ids.transpose(1, 0, 2, 3), "logprobs": top_lp.transpose(1, 0, 2, 3)}


def project_questions(run: LoadedRun, records: Sequence[Record], columns: Sequence[int], *, k: int,
                      suffix: Sequence[int] = (), batch_size: int = 128, sharding=None, progress: bool = True,
                      desc: str = "projection") -> list[list[list[str]]]:
    """Final-layer top-k token strings (rows x columns x k) of each question's prompt, all
    thoughts, then `suffix` tokens (teacher-forced), at the same `columns` for every row: the
    one batched pass over original and edited questions that the blind searches run."""
    tok, P, Z = run.tokenizer, run.layout.n_prefix, run.layout.n_latent
    ids, mask = build_prompts(run.mode, records, tok, run.layout, Z)
    if suffix:
        ids, mask = append_tokens(ids, mask, list(suffix))
    cols = np.tile(np.asarray(columns, np.int32), (len(records), 1))
    fn = functools.partial(project_columns, run.graphdef, run.params, n_prefix=P, n_latent=Z, k=k, last_only=True)
    out = map_chunks(fn, {"ids": ids, "mask": mask, "columns": cols}, batch_size=batch_size, sharding=sharding,
                     desc=desc, progress=progress)
    return [[[tok.decode([int(t)]) for t in pos] for pos in row] for row in out["ids"][:, 0]]


def project(run: LoadedRun, records: Sequence[Record], *, k: int = 10, n_answer: int = 2, max_new_tokens: int = 64,
            batch_size: int = 32, sharding=None, progress: bool = True) -> tuple[list[LensGrid], list[str]]:
    """(grid per instance, generated text per instance)."""
    if not run.latent:
        raise StudyError(f"--ckpt {run.path}: decoding needs a latent model; this is a {run.family!r} model")
    tok, layout = run.tokenizer, run.layout
    P, Z = layout.n_prefix, layout.n_latent
    runner = Runner(run, batch_size, sharding, progress)
    ids, mask = build_prompts(run.mode, records, tok, layout, Z)
    generated = runner.generate_tokens(ids, mask, max_new_tokens, latent=True, desc="answers")
    texts = [runner.decode(g) for g in generated]
    prefix = tok.encode(" " + ANSWER_PREFIX)
    eos = tok.ids["eos"]
    gen_len = max_new_tokens + len(prefix) + n_answer
    W = ids.shape[1] + gen_len
    full_ids = np.full((len(records), W), tok.ids["pad"], np.int32)
    full_mask = np.zeros_like(full_ids)
    full_ids[:, : ids.shape[1]], full_mask[:, : ids.shape[1]] = ids, mask
    n_pos = Z + 2 + len(prefix) + n_answer
    columns = np.zeros((len(records), n_pos), np.int32)
    answer_pos = []
    for i, gen in enumerate(generated):
        gen = [t for t in gen if t != eos][:max_new_tokens] + [eos]
        full_ids[i, ids.shape[1] : ids.shape[1] + len(gen)] = gen
        full_mask[i, ids.shape[1] : ids.shape[1] + len(gen)] = 1
        # The answer-prefix tokens: their last occurrence in the generated text (CoT-mode
        # leftovers may come before); else where they would be right after the end marker.
        start = _find_last(gen, prefix)
        first = ids.shape[1] + (start if start is not None else 0)
        extra = [min(first + j, W - 1) for j in range(len(prefix) + n_answer)]
        columns[i] = [P - 1, *range(P, P + Z), P + Z, *extra]
        answer_pos.append(Z + 2 + len(prefix) - 1)
    fn = functools.partial(project_columns, run.graphdef, run.params, n_prefix=P, n_latent=Z, k=k)
    out = map_chunks(fn, {"ids": full_ids, "mask": full_mask, "columns": columns}, batch_size=batch_size,
                     sharding=sharding, desc="projection", progress=progress)
    labels = [_marker_label(run, "start"), *[f"thought {z}" for z in range(Z)], _marker_label(run, "end"),
              *[f"{ANSWER_PREFIX}[{j}]" for j in range(len(prefix))], *[f"ans {j}" for j in range(n_answer)]]
    grids = [LensGrid(labels, out["ids"][i], out["logprobs"][i], answer_pos[i], Z + 2) for i in range(len(records))]
    return grids, [parse_answer(t) for t in texts]


def _find_last(seq: list[int], sub: list[int]) -> int | None:
    for s in range(len(seq) - len(sub), -1, -1):
        if seq[s : s + len(sub)] == sub:
            return s
    return None


def _marker_label(run: LoadedRun, which: str) -> str:
    role = run.mode.start_role if which == "start" else run.mode.end_role
    return run.tokenizer.decode([run.tokenizer.ids[role]]) or role
