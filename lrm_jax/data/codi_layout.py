"""CODI rows in the same static layout as COCONUT (lrm_jax/data/layout.py).

Each record gives M rows (M = 2, or 3 for the multi-mode control), all T = P + Z + R columns:

    student  (latent)   question <bot> | Z thoughts | <eot> " ###" answer <eos>
    teacher  (verbal)   question [<bocot>] steps " ###" answer <eos>
    direct              question <eocot> " ###" answer <eos>          (codi_multimode only)

The student row is a COCONUT row with every thought slot in use and CODI's markers. The teacher
and direct rows are plain sequences placed so that their last prompt token (the last question
token, or the mode marker) sits in column P+Z: the loss window [P+Z, T) then covers exactly the
same targets as the reference (CoT and answer for the teacher, question masked), and positions
skip the left padding, so the teacher sees `question ‖ cot ‖ answer` with no marker, as in the
reference. Only the multi-mode control adds `<bocot>` / `<eocot>`, because there the mode must be
selectable at inference.

`distill` holds, per record, the column of the token just before the first answer token (the
" ###" token) in the student row and in the teacher row: CODI's distillation position.
"""

from __future__ import annotations

import numpy as np

from lrm_jax.data.layout import Layout, LayoutError, answer_tokens, encode_example, sequence_texts
from lrm_jax.data.records import Record
from lrm_jax.tokenizer import Tokenizer

# (mode name, prompt marker after the question: None = none) for the plain rows.
TEACHER_MARKER = {False: None, True: "bocot"}
DIRECT_MARKER = "eocot"
STUDENT_ROLES = ("bot", "eot")  # start and end markers around the thoughts


def teacher_steps(record: Record, drop_last_step: bool) -> list[str]:
    return list(record.steps[:-1] if drop_last_step and record.steps else record.steps)


def plain_row(prompt: list[int], continuation: list[int], layout: Layout, where: str = ""):
    """A plain sequence whose last prompt token is in column P+Z; loss on the continuation."""
    P, Z, T = layout.n_prefix, layout.n_latent, layout.length
    end = P + Z  # column of the last prompt token
    if len(prompt) > layout.max_question_len + 1:
        raise LayoutError(f"{where}prompt has {len(prompt)} tokens > max_question_len + 1 = {layout.max_question_len + 1}")
    if len(continuation) + 1 > layout.max_rest_len:
        raise LayoutError(f"{where}steps and answer take {len(continuation) + 1} tokens > max_rest_len {layout.max_rest_len}")
    row = np.zeros(T, np.int32)
    mask = np.zeros(T, np.int32)
    loss = np.zeros(T, np.float32)
    seq = prompt + continuation
    first = end + 1 - len(prompt)
    row[first : first + len(seq)] = seq
    mask[first : first + len(seq)] = 1
    loss[end : first + len(seq) - 1] = 1.0
    return row, mask, loss


def encode_codi(
    record: Record,
    tokenizer: Tokenizer,
    layout: Layout,
    *,
    multimode: bool = False,
    drop_last_step: bool = True,
    index: int | None = None,
):
    """(ids MxT, mask MxT, loss_mask MxT, distill 2): rows student, teacher[, direct]."""
    where = f"record {index}: " if index is not None else ""
    pad = tokenizer.ids["pad"]
    # Every slot in use: a COCONUT row past its last stage, with all steps dropped.
    s_ids, s_mask, s_loss, _ = encode_example(
        record, tokenizer, layout, "coconut", layout.max_latent_stage + 1, True, index,
        start_role=STUDENT_ROLES[0], end_role=STUDENT_ROLES[1],
    )
    question = tokenizer.encode(sequence_texts(record)[0])
    if not question:
        raise LayoutError(f"{where}empty question")
    answer = answer_tokens(record, tokenizer)
    steps = [t for s in teacher_steps(record, drop_last_step) for t in tokenizer.encode(" " + s)]
    marker = TEACHER_MARKER[multimode]
    t_prompt = question + ([tokenizer.ids[marker]] if marker else [])
    rows = [(s_ids, s_mask, s_loss), plain_row(t_prompt, steps + answer, layout, where)]
    if multimode:
        rows.append(plain_row(question + [tokenizer.ids[DIRECT_MARKER]], answer, layout, where))
    ids, mask, loss = (np.stack(x) for x in zip(*rows))
    ids = np.where(mask == 1, ids, pad).astype(np.int32)
    n_marker = len(answer) - 1 - len(tokenizer.encode(" " + record.answer))  # tokens of " ###"
    end = layout.n_prefix + layout.n_latent  # <eot> (student) / last prompt token (teacher)
    distill = np.asarray([end + n_marker, end + len(steps) + n_marker], np.int32)
    return ids, mask, loss, distill


def plain_prompt_batch(records, tokenizer: Tokenizer, layout: Layout, marker: str | None):
    """Generation prompts for the plain modes: question [marker], left-padded to P+Z+1 columns."""
    P, Z = layout.n_prefix, layout.n_latent
    out = np.full((len(records), P + Z + 1), tokenizer.ids["pad"], np.int32)
    mask = np.zeros_like(out)
    for i, rec in enumerate(records):
        prompt = tokenizer.encode(sequence_texts(rec)[0]) + ([tokenizer.ids[marker]] if marker else [])
        if len(prompt) > layout.max_question_len + 1:
            raise LayoutError(f"record {i}: prompt has {len(prompt)} tokens > max_question_len + 1")
        out[i, P + Z + 1 - len(prompt) :] = prompt
        mask[i, P + Z + 1 - len(prompt) :] = 1
    return out, mask
