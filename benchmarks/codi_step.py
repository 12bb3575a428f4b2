"""CODI training step: ours (teacher + student) against a PyTorch + transformers implementation of
the reference algorithm, and the student loop's cost relative to the teacher pass (issue #4).

    python -m benchmarks.codi_step [--size tiny|small] [--steps 5] [--batch B] [--skip-torch]

Synthetic GSM8k-Aug-shaped records: a question of 100-150 tokens, a CoT of 30-50 tokens, an
answer of 4 tokens; 6 thoughts; a GPT-2-shaped model, tiny (L=4, d=256, H=4, vocab 515, batch 32)
or GPT-2 small (L=12, d=768, H=12, vocab 50260, batch 8), projection width d. Both sides compute
student CE + teacher CE + SmoothL1/std distillation over all layers at the token before the
answer, then AdamW. The torch side follows the reference (codi.md section 2): the question with
<bot> in one pass (cache kept), 6 single-token passes fed prj(last hidden state), then the
answer segment, and the teacher sequence twice (under no_grad for the targets, with gradients
for its CE). Ours: lrm_jax.training.distill.codi_loss. Also timed: our teacher rows alone (a CoT
step on the same rows) to give the student loop's cost.
Median of --steps after 2 warm-ups; prints a markdown table and a JSON line. On a GPU both sides
run there, TF32 matrix products on both (see benchmarks/train_step.py).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from typing import NamedTuple

from lrm_jax.host_devices import malloc_summary, prepare_cpu_host

prepare_cpu_host()  # as the trainer does; XLA_FLAGS=--xla_force_host_platform_device_count=1 for one device
# On a GPU torch shares the device with us in this process: JAX must not take 75% of it up front.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from benchmarks.parallel import data_parallel
from benchmarks.timing import median_step_seconds
from lrm_jax.config import MethodConfig, ModelConfig
from lrm_jax.data.layout import Layout
from lrm_jax.model.gpt2 import count_params, init_model
from lrm_jax.training.distill import codi_loss, token_ce
from lrm_jax.model.gpt2 import positions_from_mask
from lrm_jax.training.state import TrainState, init_state

Z = 6
BOT, EOT, PAD, HASH = 1, 2, 0, 3


class Dims(NamedTuple):
    L: int
    D: int
    H: int
    V: int
    B: int


SIZES = {"tiny": Dims(4, 256, 4, 515, 32), "small": Dims(12, 768, 12, 50260, 8)}


def synthetic(dims: Dims, seed: int = 0):
    """(our layout batch, torch tensors) describing the same records."""
    V, B = dims.V, dims.B
    rng = np.random.default_rng(seed)
    layout = Layout(max_question_len=150, max_latent_stage=1, c_thought=Z, max_rest_len=58)
    P, T = layout.n_prefix, layout.length
    end = P + Z
    ids = np.zeros((B, 2, T), np.int32)
    mask = np.zeros((B, 2, T), np.int32)
    loss = np.zeros((B, 2, T), np.float32)
    distill = np.zeros((B, 2), np.int32)
    recs = []
    for b in range(B):
        q = list(rng.integers(10, V, int(rng.integers(100, 151))))
        cot = list(rng.integers(10, V, int(rng.integers(30, 51))))
        ans = [HASH] + list(rng.integers(10, V, 2)) + [PAD]  # "###", two answer tokens, eos
        recs.append((q, cot, ans))
        # student: question <bot> | 6 thoughts | <eot> answer
        ids[b, 0, P - 1 - len(q) : P - 1], ids[b, 0, P - 1] = q, BOT
        ids[b, 0, end : end + 1 + len(ans)] = [EOT] + ans
        mask[b, 0, P - 1 - len(q) : end + 1 + len(ans)] = 1
        loss[b, 0, end : end + len(ans)] = 1
        distill[b, 0] = end + 1
        # teacher: question || cot || answer, last question token in column end
        seq = q + cot + ans
        first = end + 1 - len(q)
        ids[b, 1, first : first + len(seq)], mask[b, 1, first : first + len(seq)] = seq, 1
        loss[b, 1, end : first + len(seq) - 1] = 1
        distill[b, 1] = end + len(cot) + 1
    return layout, {"ids": ids, "mask": mask, "loss_mask": loss, "distill": distill}, recs


def jax_times(dims: Dims, layout, batch, steps):
    cfg = ModelConfig(vocab_size=dims.V, n_positions=layout.length + 8, n_embd=dims.D, n_layer=dims.L,
                      n_head=dims.H, projection_dim=dims.D)
    model = init_model(cfg, 0)
    graphdef, params = nnx.split(model, nnx.Param)
    tx = optax.adamw(1e-4, weight_decay=0.1)
    mcfg = MethodConfig(name="codi", num_latent=Z)

    def teacher_only(m, b):  # a CoT step on the teacher rows: the student loop's reference cost
        ids, mask, lm = b["ids"][:, 1], b["mask"][:, 1], b["loss_mask"][:, 1]
        start = layout.n_prefix + layout.n_latent
        h = m.forward(m.embed(ids), positions_from_mask(mask), mask, keep_last=ids.shape[1] - start).h
        ce, n, _ = token_ce(m, h, ids, lm, start)
        return ce / n, {}

    out = {}
    for name, fn in (("codi", lambda m, b: codi_loss(m, b, layout, mcfg)), ("teacher", teacher_only)):
        def step(state, b, fn=fn):
            (loss, _), g = jax.value_and_grad(lambda p: fn(nnx.merge(graphdef, p), b), has_aux=True)(state.params)
            u, o = tx.update(g, state.opt_state, state.params)
            return TrainState(optax.apply_updates(state.params, u), o, state.step + 1), loss

        step, put_state, put_batch = data_parallel(step)
        state = put_state(init_state(jax.tree.map(jnp.array, params), tx))
        b = put_batch(batch)

        def run():
            nonlocal state
            state, loss = step(state, b)
            loss.block_until_ready()

        out[name] = median_step_seconds(run, steps)
    return out, count_params(model)


def torch_time(dims: Dims, layout, recs, steps):
    import torch

    from benchmarks.torch_coconut import make_model, torch_device, torch_train_step

    L, D, H, V, B = dims
    dev, sync = torch_device()
    model = make_model(V, L, D, H, layout.length + 8).to(dev).train()
    prj = torch.nn.Sequential(torch.nn.Linear(D, D), torch.nn.GELU(), torch.nn.Linear(D, D), torch.nn.LayerNorm(D)).to(dev)
    opt = torch.optim.AdamW(list(model.parameters()) + list(prj.parameters()), lr=1e-4, weight_decay=0.1)
    Pq = max(len(q) for q, _, _ in recs) + 1
    q_ids = torch.zeros(B, Pq, dtype=torch.long)
    q_mask = torch.zeros(B, Pq, dtype=torch.long)
    A = 1 + max(len(a) for _, _, a in recs)
    a_ids = torch.zeros(B, A, dtype=torch.long)
    a_lab = torch.full((B, A), -100, dtype=torch.long)
    Tt = max(len(q) + len(c) + len(a) for q, c, a in recs)
    t_ids = torch.zeros(B, Tt, dtype=torch.long)
    t_mask = torch.zeros(B, Tt, dtype=torch.long)
    t_lab = torch.full((B, Tt), -100, dtype=torch.long)
    t_pos = torch.zeros(B, dtype=torch.long)
    for b, (q, c, a) in enumerate(recs):
        q_ids[b, Pq - 1 - len(q) : Pq - 1], q_ids[b, Pq - 1] = torch.tensor(q), BOT
        q_mask[b, Pq - 1 - len(q) :] = 1
        a_ids[b, : 1 + len(a)] = torch.tensor([EOT] + a)
        a_lab[b, 1 : 1 + len(a)] = torch.tensor(a)
        seq = q + c + a
        t_ids[b, : len(seq)], t_mask[b, : len(seq)] = torch.tensor(seq), 1
        t_lab[b, len(q) : len(seq)] = torch.tensor(c + a)
        t_pos[b] = len(q) + len(c)  # the "###" token: the one before the answer
    q_ids, q_mask, a_ids, a_lab, t_ids, t_mask, t_lab, t_pos = (
        x.to(dev) for x in (q_ids, q_mask, a_ids, a_lab, t_ids, t_mask, t_lab, t_pos))
    ar = torch.arange(B, device=dev)

    def loss_fn():
        out = model(input_ids=q_ids, attention_mask=q_mask, use_cache=True, output_hidden_states=True)
        cache, mask = out.past_key_values, q_mask
        z = prj(out.hidden_states[-1][:, -1:])
        for _ in range(Z):
            mask = torch.cat([mask, torch.ones(B, 1, dtype=torch.long, device=dev)], 1)
            out = model(inputs_embeds=z, attention_mask=mask, past_key_values=cache, use_cache=True, output_hidden_states=True)
            cache, z = out.past_key_values, prj(out.hidden_states[-1][:, -1:])
        mask = torch.cat([mask, torch.ones(B, A, dtype=torch.long, device=dev)], 1)
        out = model(input_ids=a_ids, attention_mask=mask, past_key_values=cache, output_hidden_states=True)
        logits = out.logits
        l_student = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, V), a_lab[:, 1:].reshape(-1), ignore_index=-100)
        with torch.no_grad():
            target = model(input_ids=t_ids, attention_mask=t_mask, output_hidden_states=True).hidden_states
        teach = model(input_ids=t_ids, attention_mask=t_mask)
        l_teacher = torch.nn.functional.cross_entropy(teach.logits[:, :-1].reshape(-1, V), t_lab[:, 1:].reshape(-1), ignore_index=-100)
        kd = 0
        for hs, ht in zip(out.hidden_states, target):
            tgt = ht[ar, t_pos].detach()
            kd = kd + torch.nn.functional.smooth_l1_loss(hs[:, 1], tgt) / tgt.std()
        return l_student + l_teacher + kd / len(target)

    return median_step_seconds(torch_train_step(loss_fn, opt, sync), steps)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", default="tiny", choices=sorted(SIZES))
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--batch", type=int, default=0, help="rows per step (default: the size's own)")
    p.add_argument("--skip-torch", action="store_true")
    args = p.parse_args(argv)
    dims = SIZES[args.size]
    dims = dims._replace(B=args.batch or dims.B)
    layout, batch, recs = synthetic(dims)
    ours, n_params = jax_times(dims, layout, batch, args.steps)
    rows = {"lrm_jax codi (student + teacher)": ours["codi"], "lrm_jax teacher rows only (CoT step)": ours["teacher"]}
    if not args.skip_torch:
        rows["torch reference algorithm (teacher twice, per-thought passes)"] = torch_time(dims, layout, recs, args.steps)
    tokens = int(batch["mask"].sum())
    L, D, H, V, B = dims
    print(f"machine: {platform.processor() or platform.machine()}, jax {jax.__version__}, {jax.device_count()} "
          f"{jax.default_backend()} device(s) ({jax.devices()[0].device_kind}), "
          f"{malloc_summary()}; "
          f"L={L} d={D} H={H} V={V} params={n_params:,}; B={B}, {Z} thoughts; {tokens} real tokens per step")
    print("| variant | s/step | real tokens/s |\n|---|---|---|")
    for name, sec in rows.items():
        print(f"| {name} | {sec:.4g} | {tokens / sec:,.0f} |")
    summary = {"student_loop_cost_vs_teacher_pass": round((ours["codi"] - ours["teacher"]) / ours["teacher"], 3)}
    if not args.skip_torch:
        summary["speedup_vs_torch"] = round(rows["torch reference algorithm (teacher twice, per-thought passes)"] / ours["codi"], 3)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
