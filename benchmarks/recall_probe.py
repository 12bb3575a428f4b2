"""Learnability probe: does a tiny GPT-2 learn in-context associative recall within a step budget?

    python -m benchmarks.recall_probe [--steps 3000] [--positions learned|rope] [--lr 1e-3] [--torch]
                                      [--key-smear 1] [--token-conv 3] [--layers 4] [--template rules|compact]
                                      [--init-std 0.02]

Each sequence is `k1 v1 k2 v2 ... kN vN kq` and the model must answer `vq` (keys from 32 tokens,
distinct within a sequence; values from 32 others). This is the operation the logic tasks need
at every step ("Every <concept> is" -> the object of *that* concept's rule): find the token by
content, return its neighbour. Picking one of the in-context values at random scores 1/N; the
question is whether the binding itself is learned. `--torch` trains transformers'
GPT2LMHeadModel of the same shape with the same data and optimiser, so a failure can be told
apart from a bug in our model. `--template rules` writes each pair as `Every k is v .` and asks
`Every kq is`, the exact shape of a logic step; `--template compact` asks `kq` instead (the
shape of the chain-of-concepts CoT, where the answering position holds the key). Prints loss
and accuracy on a fresh batch every `--every` steps.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


EVERY, IS, STOP = 64, 65, 66  # the filler tokens of `--template rules`


def vocab_size(template: str) -> int:
    return 66 if template == "pairs" else 67


def make_batch(rng: np.random.Generator, n: int, pairs: int, template: str = "pairs") -> np.ndarray:
    keys = np.stack([rng.choice(32, pairs, replace=False) for _ in range(n)])
    values = rng.integers(32, 64, (n, pairs))
    asked = rng.integers(0, pairs, n)
    rows = np.arange(n)
    if template == "pairs":
        seq = np.zeros((n, 2 * pairs + 2), np.int32)
        seq[:, 0 : 2 * pairs : 2], seq[:, 1 : 2 * pairs : 2] = keys, values
        seq[:, -2], seq[:, -1] = keys[rows, asked], values[rows, asked]
        return seq
    # "rules": `Every k is v .` per pair, then `Every kq is` -> vq, the shape of a logic step.
    seq = np.full((n, 5 * pairs + 4), STOP, np.int32)
    seq[:, 0 : 5 * pairs : 5], seq[:, 1 : 5 * pairs : 5] = EVERY, keys
    seq[:, 2 : 5 * pairs : 5], seq[:, 3 : 5 * pairs : 5] = IS, values
    seq[:, -4], seq[:, -3], seq[:, -2], seq[:, -1] = EVERY, keys[rows, asked], IS, values[rows, asked]
    if template == "compact":  # asked as `kq` -> vq: the answering position holds the key
        seq = np.concatenate([seq[:, :-4], seq[:, -3:-2], seq[:, -1:]], axis=1)
    return seq


def jax_trainer(args):
    import jax
    import jax.numpy as jnp
    import optax
    from flax import nnx

    from lrm_jax.config import ModelConfig
    from lrm_jax.model.gpt2 import init_model, positions_from_mask

    cfg = ModelConfig(vocab_size=vocab_size(args.template), n_positions=64, n_embd=args.d, n_layer=args.layers, n_head=args.heads,
                      position_embedding=args.positions, key_smear=args.key_smear, token_conv=args.token_conv,
                      init_std=args.init_std)
    graphdef, params = nnx.split(init_model(cfg, args.seed), nnx.Param)
    tx = optax.adamw(args.lr, weight_decay=0.0)
    opt = tx.init(params)

    @jax.jit
    def step(params, opt, seq):
        def loss_fn(p):
            model = nnx.merge(graphdef, p)
            mask = jnp.ones_like(seq)
            h = model.forward(model.embed(seq), positions_from_mask(mask), mask).h
            logits = model.unembed(h[:, -2])
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
    model = GPT2LMHeadModel(GPT2Config(vocab_size=vocab_size(args.template), n_positions=64, n_embd=args.d, n_layer=args.layers,
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
                   help="model.token_conv: a causal depthwise convolution over this many previous tokens on each attention input")
    p.add_argument("--key-smear", type=int, default=0,
                   help="model.key_smear: mix the keys of this many previous tokens into each key")
    p.add_argument("--init-std", type=float, default=0.02, help="model.init_std (GPT-2: 0.02)")
    p.add_argument("--template", default="pairs", choices=["pairs", "rules", "compact"],
                   help="pairs: `k1 v1 ... kq` -> vq; rules: `Every k1 is v1 . ... Every kq is` -> vq; "
                        "compact: the rules, asked as `kq` -> vq")
    p.add_argument("--every", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    step = torch_trainer(args) if args.torch else jax_trainer(args)
    rng = np.random.default_rng(args.seed)
    if (args.key_smear or args.token_conv) and args.torch:
        p.error("--key-smear and --token-conv are options of our model, not of transformers' GPT-2")
    name = "torch GPT2LMHeadModel" if args.torch else f"lrm_jax GPT2 ({args.positions} positions)"
    if args.token_conv:
        name += f" + token conv over {args.token_conv} previous tokens"
    if args.key_smear:
        name += f" + keys smeared over {args.key_smear} previous tokens"
    print(f"{name}: L={args.layers} d={args.d} H={args.heads}, {args.pairs} pairs, batch {args.batch}, "
          f"lr {args.lr}; chance of a random in-context value 1/{args.pairs} = {1 / args.pairs:.3f}")
    t0, recent = time.time(), []
    for i in range(1, args.steps + 1):
        recent.append(step(make_batch(rng, args.batch, args.pairs, args.template)))
        if i % args.every == 0:
            loss, acc = np.mean(recent, axis=0)
            print(f"step {i}: loss {loss:.3f}, accuracy {acc:.3f} (mean of the last {len(recent)} batches), "
                  f"{time.time() - t0:.0f} s", flush=True)
            recent = []


if __name__ == "__main__":
    main()
