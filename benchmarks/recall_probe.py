"""Learnability probe: does a tiny GPT-2 learn in-context associative recall within a step budget?

    python -m benchmarks.recall_probe [--steps 3000] [--positions learned|rope] [--lr 1e-3] [--torch]
                                      [--key-smear 1] [--token-conv 3] [--layers 4]

Each sequence is `k1 v1 k2 v2 ... kN vN kq` and the model must answer `vq` (keys from 32 tokens,
distinct within a sequence; values from 32 others). This is the operation the logic tasks need
at every step ("Every <concept> is" -> the object of *that* concept's rule): find the token by
content, return its neighbour. Picking one of the in-context values at random scores 1/N; the
question is whether the binding itself is learned. `--torch` trains transformers'
GPT2LMHeadModel of the same shape with the same data and optimiser, so a failure can be told
apart from a bug in our model. Prints loss and accuracy on a fresh batch every `--every` steps.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def make_batch(rng: np.random.Generator, n: int, pairs: int) -> np.ndarray:
    keys = np.stack([rng.choice(32, pairs, replace=False) for _ in range(n)])
    values = rng.integers(32, 64, (n, pairs))
    asked = rng.integers(0, pairs, n)
    seq = np.zeros((n, 2 * pairs + 2), np.int32)
    seq[:, 0 : 2 * pairs : 2], seq[:, 1 : 2 * pairs : 2] = keys, values
    seq[:, -2], seq[:, -1] = keys[np.arange(n), asked], values[np.arange(n), asked]
    return seq


def jax_trainer(args):
    import jax
    import jax.numpy as jnp
    import optax
    from flax import nnx

    from lrm_jax.config import ModelConfig
    from lrm_jax.model.gpt2 import init_model, positions_from_mask

    cfg = ModelConfig(vocab_size=66, n_positions=64, n_embd=args.d, n_layer=args.layers, n_head=args.heads,
                      position_embedding=args.positions, key_smear=args.key_smear)
    graphdef, gpt_params = nnx.split(init_model(cfg, args.seed), nnx.Param)
    # --token-conv: per-layer weights of a causal depthwise convolution over the previous
    # `token_conv` positions, added to each block's attention input (zero-initialised, so the
    # model starts as plain GPT-2). Not a library option yet: the probe runs its own block loop.
    params = {"gpt": gpt_params, "conv": jnp.zeros((args.layers, args.token_conv, args.d))}
    tx = optax.adamw(args.lr, weight_decay=0.0)
    opt = tx.init(params)

    def hidden(model, conv_LxKxD, seq):
        mask = jnp.ones_like(seq)
        if not args.token_conv:
            return model.forward(model.embed(seq), positions_from_mask(mask), mask).h
        T = seq.shape[1]
        x = model.embed(seq) + model.wpe(positions_from_mask(mask))
        causal = jnp.tril(jnp.ones((T, T), bool))[None]
        for i, block in enumerate(model.h):
            y = block.ln_1(x)
            y = y + sum(conv_LxKxD[i, j - 1] * jnp.pad(y, ((0, 0), (j, 0), (0, 0)))[:, :T]
                        for j in range(1, args.token_conv + 1))
            a, _ = block.attn(y, causal, i, None, None)
            x = x + a
            x = x + block.mlp(block.ln_2(x))
        return x

    @jax.jit
    def step(params, opt, seq):
        def loss_fn(p):
            model = nnx.merge(graphdef, p["gpt"])
            logits = model.unembed(hidden(model, p["conv"], seq)[:, -2])
            loss = optax.softmax_cross_entropy_with_integer_labels(logits, seq[:, -1]).mean()
            return loss, (logits.argmax(-1) == seq[:, -1]).mean()

        (loss, acc), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt = tx.update(grads, opt, params)
        return optax.apply_updates(params, updates), opt, loss, acc

    def run(seq):
        nonlocal params, opt
        params, opt, loss, acc = step(params, opt, jnp.asarray(seq))
        return float(loss), float(acc)

    return run


def torch_trainer(args):
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(args.seed)
    torch.set_num_threads(2)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=66, n_positions=64, n_embd=args.d, n_layer=args.layers,
                                       n_head=args.heads, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0))
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)

    def run(seq):
        seq = torch.tensor(seq, dtype=torch.long)
        logits = model(seq).logits[:, -2]
        loss = torch.nn.functional.cross_entropy(logits, seq[:, -1])
        loss.backward()
        opt.step()
        opt.zero_grad()
        return loss.item(), (logits.argmax(-1) == seq[:, -1]).float().mean().item()

    return run


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--pairs", type=int, default=6)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--d", type=int, default=128)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--positions", default="learned", choices=["learned", "rope"])
    p.add_argument("--torch", action="store_true", help="transformers' GPT-2 (learned positions) instead of ours")
    p.add_argument("--token-conv", type=int, default=0,
                   help="add a causal depthwise convolution over this many previous tokens before each attention")
    p.add_argument("--key-smear", type=int, default=0,
                   help="model.key_smear: mix the keys of this many previous tokens into each key")
    p.add_argument("--every", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    step = torch_trainer(args) if args.torch else jax_trainer(args)
    rng = np.random.default_rng(args.seed)
    if args.token_conv and (args.torch or args.positions != "learned"):
        p.error("--token-conv is implemented for our model with learned positions only")
    if args.key_smear and args.torch:
        p.error("--key-smear is an option of our model, not of transformers' GPT-2")
    name = "torch GPT2LMHeadModel" if args.torch else f"lrm_jax GPT2 ({args.positions} positions)"
    if args.token_conv:
        name += f" + token conv over {args.token_conv} previous tokens"
    if args.key_smear:
        name += f" + keys smeared over {args.key_smear} previous tokens"
    print(f"{name}: L={args.layers} d={args.d} H={args.heads}, {args.pairs} pairs, batch {args.batch}, "
          f"lr {args.lr}; chance of a random in-context value 1/{args.pairs} = {1 / args.pairs:.3f}")
    t0, recent = time.time(), []
    for i in range(1, args.steps + 1):
        recent.append(step(make_batch(rng, args.batch, args.pairs)))
        if i % args.every == 0:
            loss, acc = np.mean(recent, axis=0)
            print(f"step {i}: loss {loss:.3f}, accuracy {acc:.3f} (mean of the last {len(recent)} batches), "
                  f"{time.time() - t0:.0f} s", flush=True)
            recent = []


if __name__ == "__main__":
    main()
