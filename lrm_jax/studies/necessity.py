"""Study 1, necessity (paper section 2): does the model need its reasoning to give its answer?

For a latent model with Z thought slots, every instance is run in Z + 1 truncations k = 0..Z:
question, start marker, k thoughts, end marker, then the answer prefix " ###" teacher-forced
and a greedy answer of up to `answer_tokens` tokens. Each early answer is compared with the
model's own full-reasoning answer (all Z thoughts, free generation, parsed after "#";
instances without a parseable answer are skipped and counted) and with the gold answer.
Matching lower-cases and removes commas and spaces, as the paper's code does.

Beyond truncation, the same sweep runs under interventions on every fed-back thought:
`zero` (replaced by 0), `mean` (by the mean thought of that slot over the instances), `noise`
(plus Gaussian noise with the slots' standard deviation) and `swap` (by the thoughts of the
next instance). For CoT models the truncations are prefixes of the model's own generated chain:
0..S steps, then " ###".

Instances x conditions are folded into one batch axis and run in fixed-size jitted chunks
sharded over the mesh (lrm_jax/studies/batched.py); nothing loops over instances in Python
around the model. Per instance: first match (smallest k whose answer equals the full answer)
and stable match (smallest k from which every later truncation agrees); the paper's "% of
reasoning tokens needed" is k / Z x 100 (steps / S for CoT).
"""

from __future__ import annotations

import functools
import re
from typing import Sequence

import jax
import numpy as np
from flax import nnx

from lrm_jax.data.layout import ANSWER_PREFIX
from lrm_jax.data.records import Record
from lrm_jax.studies.batched import map_chunks
from lrm_jax.studies.bundle import LoadedRun, StudyError
from lrm_jax.studies.truncate import truncation_generate
from lrm_jax.training.evaluate import build_prompts, generate_batch, parse_answer

INTERVENTIONS = ("none", "zero", "mean", "noise", "swap")


def normalize(answer: str) -> str:
    return answer.lower().replace(",", "").replace(" ", "")


def _generate(graphdef, params, ids, mask, scale, shift, **static):
    """`generate_batch` with its outputs as a dict of row arrays (what map_chunks gathers)."""
    gen = generate_batch(graphdef, params, ids, mask, scale, shift, **static)
    return {"tokens": gen.tokens, "lengths": gen.lengths}


class Runner:
    """Runs generation rows for one loaded model with a fixed chunk size (one compile per shape)."""

    def __init__(self, run: LoadedRun, batch_size: int, sharding=None, progress: bool = True):
        self.run, self.batch_size, self.sharding, self.progress = run, batch_size, sharding, progress
        tok = run.tokenizer
        self.eos, self.pad = tok.ids["eos"], tok.ids["pad"]

    def generate(self, ids, mask, max_new_tokens: int, *, latent: bool, scale=None, shift=None, desc=None) -> list[str]:
        return [self.decode(t) for t in self.generate_tokens(ids, mask, max_new_tokens, latent=latent, scale=scale,
                                                              shift=shift, desc=desc)]

    def generate_tokens(self, ids, mask, max_new_tokens: int, *, latent: bool, scale=None, shift=None, desc=None):
        """Greedy continuation ids per row (up to and including EOS)."""
        run = self.run
        n, Z, D = len(ids), run.layout.n_latent, run.cfg.model.n_embd
        scale = np.ones((n, max(Z, 1)), np.float32) if scale is None else scale
        shift = np.zeros((n, max(Z, 1), D), np.float32) if shift is None else shift
        fn = functools.partial(
            _generate, run.graphdef, run.params, latent=latent, n_prefix=run.layout.n_prefix, n_latent=Z,
            max_new_tokens=max_new_tokens, eos_id=self.eos, pad_id=self.pad,
        )
        out = map_chunks(fn, {"ids": ids, "mask": mask, "scale": scale, "shift": shift},
                         batch_size=self.batch_size, sharding=self.sharding, desc=desc, progress=self.progress)
        return [[int(x) for x in t[:l]] for t, l in zip(out["tokens"], out["lengths"])]

    def decode(self, tokens) -> str:
        return self.run.tokenizer.decode([int(t) for t in tokens if t not in (self.eos, self.pad)])


def append_tokens(ids: np.ndarray, mask: np.ndarray, extra: list[int]):
    """Appends the same tokens to every (left-padded) prompt row."""
    n = len(ids)
    tail = np.tile(np.asarray(extra, np.int32), (n, 1))
    return np.concatenate([ids, tail], 1), np.concatenate([mask, np.ones_like(tail)], 1)


def left_pad(rows: Sequence[list[int]], pad_id: int):
    width = max(len(r) for r in rows)
    ids = np.full((len(rows), width), pad_id, np.int32)
    mask = np.zeros_like(ids)
    for i, r in enumerate(rows):
        ids[i, width - len(r) :] = r
        mask[i, width - len(r) :] = 1
    return ids, mask


def interventions(kind: str, full_thoughts: np.ndarray, seed: int = 0, noise_scale: float = 1.0):
    """(scale NxZ, shift NxZxD) that turn every fed-back thought into the intervened one."""
    n, Z, D = full_thoughts.shape
    scale = np.zeros((n, Z), np.float32)
    shift = np.zeros((n, Z, D), np.float32)
    if kind == "none":
        scale[:] = 1.0
    elif kind == "mean":
        shift[:] = full_thoughts.mean(0, keepdims=True)
    elif kind == "noise":
        scale[:] = 1.0
        std = full_thoughts.std(axis=(0, 2), keepdims=True)  # per slot
        shift[:] = noise_scale * std * np.random.default_rng(seed).standard_normal((n, Z, D)).astype(np.float32)
    elif kind == "swap":
        shift[:] = np.roll(full_thoughts, -1, axis=0)  # instance i gets instance i+1's thoughts
    elif kind != "zero":
        raise StudyError(f"unknown intervention {kind!r}; expected one of {INTERVENTIONS}")
    return scale, shift


def split_steps(reasoning: str) -> list[str]:
    """A generated chain cut into steps: after each `>>` equation or sentence-final period; a
    chain with neither (the CPU logic variants' `cot: concepts`, "Tom rompus kerpus") one word
    a step, which would otherwise count as one step and make the sweep all-or-nothing."""
    text = reasoning.strip()
    if ">>" not in text and "." not in text:
        return text.split()
    return [s for s in re.split(r"(?<=>>)\s+|(?<=\.)\s+", text) if s.strip()]


def match_points(matches: Sequence[bool]) -> tuple[int | None, int | None]:
    """(first match, stable match) over truncations 0..K; None where there is none."""
    first = next((k for k, m in enumerate(matches) if m), None)
    stable = None
    for k in range(len(matches) - 1, -1, -1):
        if not matches[k]:
            break
        stable = k
    return first, stable


def sweep(run: LoadedRun, records: Sequence[Record], *, batch_size: int = 256, answer_tokens: int = 32,
          full_tokens: int | None = None, kinds: Sequence[str] = INTERVENTIONS, sharding=None,
          progress: bool = True, keep_unparseable: bool = False) -> tuple[list[dict], dict]:
    """Per-instance results and counts for a latent/Pause model (k sweep) or a CoT model (prefixes).

    `keep_unparseable` keeps instances whose full answer has no "#" (their whole text is the
    answer) instead of skipping them as the paper does.
    """
    if run.family == "nocot":
        raise StudyError(f"--ckpt {run.path}: a No-CoT model has no reasoning to truncate")
    runner = Runner(run, batch_size, sharding, progress)
    tok, layout = run.tokenizer, run.layout
    full_tokens = full_tokens or run.cfg.train.max_new_tokens
    prefix = tok.encode(" " + ANSWER_PREFIX)
    Z = layout.n_latent
    if run.latent:
        full_texts, answers = _shared_sweep(runner, run, records, kinds, prefix, answer_tokens, full_tokens)
    else:
        ids, mask = build_prompts(run.mode, records, tok, layout, Z)
        full_texts = runner.generate(ids, mask, full_tokens, latent=False, desc="full reasoning")
    keep = [i for i, t in enumerate(full_texts) if keep_unparseable or "#" in t]
    skipped = len(records) - len(keep)
    records = [records[i] for i in keep]
    full_texts = [full_texts[i] for i in keep]
    if not records:
        raise StudyError("no instance gave a parseable full-reasoning answer (text after '#'); nothing to analyse")
    if run.latent:
        answers = {kind: [a[i] for i in keep] for kind, a in answers.items()}
        n_steps = [Z] * len(records)
    elif Z > 0 and run.family != "cot":  # Pause: its slots hold learned tokens, no interventions
        answers = _pause_sweep(runner, run, records, prefix, answer_tokens)
        n_steps = [Z] * len(records)
    else:
        answers, n_steps = _cot_sweep(runner, run, records, full_texts, prefix, answer_tokens)
    finals = [parse_answer(t) for t in full_texts]
    results = []
    for i, rec in enumerate(records):
        row = {"index": keep[i], "question": rec.question, "gold": rec.answer, "full_text": full_texts[i],
               "final": finals[i], "correct": normalize(finals[i]) == normalize(rec.answer),
               "n_steps": n_steps[i], "answers": {kind: a[i] for kind, a in answers.items()}}
        matches = [normalize(a) == normalize(finals[i]) for a in answers["none"][i]]
        row["first_match"], row["stable_match"] = match_points(matches)
        results.append(row)
    return results, {"skipped_unparseable": skipped, "kinds": list(answers)}


@functools.partial(jax.jit, static_argnames=("graphdef", "n_prefix", "n_latent", "forced", "end_id", "max_new_tokens", "eos_id", "pad_id"))
def _truncations(graphdef, params, ids, mask, scale, shift, *, n_prefix, n_latent, forced, end_id, max_new_tokens, eos_id, pad_id):
    tokens, lengths, thoughts = truncation_generate(
        nnx.merge(graphdef, params), ids, mask, n_prefix=n_prefix, n_latent=n_latent, forced=forced, end_id=end_id,
        max_new_tokens=max_new_tokens, eos_id=eos_id, pad_id=pad_id,
        intervene=lambda z, x: scale[:, z, None] * x + shift[:, z],
    )
    return {"tokens": tokens, "lengths": lengths, "thoughts": thoughts}


def _shared_sweep(runner, run, records, kinds, prefix, answer_tokens, full_tokens):
    """Latent models: one question + thoughts pass per instance and condition kind, all k
    truncations and the full run folded into the batch (lrm_jax/studies/truncate.py)."""
    tok, layout, Z = run.tokenizer, run.layout, run.layout.n_latent
    n, D = len(records), run.cfg.model.n_embd
    ids, mask = build_prompts(run.mode, records, tok, layout, Z)
    fn = functools.partial(
        _truncations, run.graphdef, run.params, n_prefix=layout.n_prefix, n_latent=Z, forced=tuple(prefix),
        end_id=tok.ids[run.mode.end_role], max_new_tokens=max(answer_tokens, full_tokens), eos_id=runner.eos, pad_id=runner.pad,
    )
    kinds = ["none"] + [k for k in kinds if k != "none"]  # the others need the unperturbed thoughts
    answers, full_texts, thoughts = {}, None, np.zeros((n, Z, D), np.float32)
    for kind in kinds:
        scale, shift = interventions(kind, thoughts)
        out = map_chunks(fn, {"ids": ids, "mask": mask, "scale": scale, "shift": shift}, batch_size=runner.batch_size,
                         sharding=runner.sharding, desc=f"{kind}: {Z + 2} conditions per instance", progress=runner.progress)
        limit = [answer_tokens] * (Z + 1) + [full_tokens]  # the early answers get answer_tokens only
        texts = [[runner.decode(out["tokens"][i, c, : min(out["lengths"][i, c], limit[c])]) for c in range(Z + 2)]
                 for i in range(n)]
        answers[kind] = [[parse_answer(ANSWER_PREFIX + t[c]) for c in range(Z + 1)] for t in texts]
        if kind == "none":
            full_texts = [t[Z + 1] for t in texts]
            thoughts = out["thoughts"]
    return full_texts, answers


def _pause_sweep(runner, run, records, prefix, answer_tokens) -> dict[str, list[list[str]]]:
    """Pause models: k of their Z slots hold the learned token; one plain pass per row."""
    tok, layout, Z = run.tokenizer, run.layout, run.layout.n_latent
    n = len(records)
    per_k = [append_tokens(*build_prompts(run.mode, records, tok, layout, k), prefix) for k in range(Z + 1)]
    texts = runner.generate(np.concatenate([p[0] for p in per_k]), np.concatenate([p[1] for p in per_k]),
                            answer_tokens, latent=False, desc=f"{Z + 1} truncations")
    return {"none": [[parse_answer(ANSWER_PREFIX + texts[k * n + i]) for k in range(Z + 1)] for i in range(n)]}


def _cot_sweep(runner, run, records, full_texts, prefix, answer_tokens):
    tok, layout = run.tokenizer, run.layout
    base_ids, base_mask = build_prompts(run.mode, records, tok, layout, 0)
    rows, owner = [], []
    n_steps = []
    for i, text in enumerate(full_texts):
        steps = split_steps(text.split("#")[0])
        n_steps.append(len(steps))
        question = [int(t) for t, m in zip(base_ids[i], base_mask[i]) if m]
        for s in range(len(steps) + 1):
            chain = tok.encode(" " + " ".join(steps[:s])) if s else []
            rows.append(question + chain + prefix)
            owner.append(i)
    ids, mask = left_pad(rows, tok.ids["pad"])
    texts = runner.generate(ids, mask, answer_tokens, latent=False, desc=f"{len(rows)} chain prefixes")
    answers = [[] for _ in records]
    for i, t in zip(owner, texts):
        answers[i].append(parse_answer(ANSWER_PREFIX + t))
    return {"none": answers}, n_steps


def summarize(results: list[dict], extra: dict) -> dict:
    """The paper's statistics: % of reasoning needed (first/stable match), accuracy per k."""
    def pct(key):
        vals = [100.0 * (r[key] if r[key] is not None else r["n_steps"]) / max(r["n_steps"], 1) for r in results]
        return float(np.mean(vals)), float(np.std(vals))

    out = {"n": len(results), **extra, "accuracy_full": float(np.mean([r["correct"] for r in results]))}
    out["first_match_pct_mean"], out["first_match_pct_sd"] = pct("first_match")
    out["stable_match_pct_mean"], out["stable_match_pct_sd"] = pct("stable_match")
    out["no_reasoning_needed"] = float(np.mean([r["stable_match"] == 0 for r in results]))
    out["never_matched"] = int(sum(r["first_match"] is None for r in results))
    K = min(len(r["answers"]["none"]) for r in results)
    per_kind = {}
    for kind in extra["kinds"]:
        per_kind[kind] = {
            "accuracy": [float(np.mean([normalize(r["answers"][kind][k]) == normalize(r["gold"]) for r in results])) for k in range(K)],
            "agreement": [float(np.mean([normalize(r["answers"][kind][k]) == normalize(r["final"]) for r in results])) for k in range(K)],
        }
    out["per_k"] = per_kind
    return out


def sweep_loop(run: LoadedRun, records: Sequence[Record], *, answer_tokens: int = 32,
               full_tokens: int | None = None) -> tuple[list[str], list[list[str]]]:
    """The reference analysis code's way: per instance, one call for the full reasoning, then
    one call per k (batch 1). Returns (full texts, answers per k).

    Kept as the baseline of benchmarks/necessity_sweep.py and to test the batched sweep
    against; it shares only the prompt building and the jitted generation with `sweep`.
    """
    tok, layout, Z = run.tokenizer, run.layout, run.layout.n_latent
    prefix = tok.encode(" " + ANSWER_PREFIX)
    D = run.cfg.model.n_embd
    full_tokens = full_tokens or run.cfg.train.max_new_tokens

    def one(ids, mask, n_new) -> str:
        gen = _generate(run.graphdef, run.params, ids, mask, np.ones((1, max(Z, 1)), np.float32),
                        np.zeros((1, max(Z, 1), D), np.float32), latent=run.latent, n_prefix=layout.n_prefix,
                        n_latent=Z, max_new_tokens=n_new, eos_id=tok.ids["eos"], pad_id=tok.ids["pad"])
        tokens = np.asarray(gen["tokens"])[0, : int(gen["lengths"][0])]
        return tok.decode([int(t) for t in tokens if t not in (tok.ids["eos"], tok.ids["pad"])])

    fulls, out = [], []
    for rec in records:
        fulls.append(one(*build_prompts(run.mode, [rec], tok, layout, Z), full_tokens))
        out.append([parse_answer(ANSWER_PREFIX + one(*append_tokens(*build_prompts(run.mode, [rec], tok, layout, k), prefix), answer_tokens))
                    for k in range(Z + 1)])
    return fulls, out
