"""Batched greedy generation: a plain prompt (`generate`) and a latent one (`latent_generate`).

    python -m benchmarks.generation [--batch 32] [--prompt 300] [--new 24] [--runs 10]

The benchmark's tiny GPT-2 (L=4 d=256 H=4, random weights, so no row stops early: every run
decodes all `--new` tokens), prompts of `--prompt` tokens plus, for the latent prompt, 6 thought
slots and the end marker. Median wall time of `--runs` calls after two warm-up calls, on one
device (generation is not sharded here). Compare commits by running it on each.
"""

from __future__ import annotations

import argparse

from lrm_jax.host_devices import malloc_summary, prepare_cpu_host

prepare_cpu_host()  # as the trainer does

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402

from benchmarks.timing import median_step_seconds  # noqa: E402
from lrm_jax.config import ModelConfig  # noqa: E402
from lrm_jax.model.generate import generate  # noqa: E402
from lrm_jax.model.gpt2 import init_model  # noqa: E402
from lrm_jax.model.latent import latent_generate  # noqa: E402

N_LATENT = 6


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--prompt", type=int, default=300)
    ap.add_argument("--new", type=int, default=24)
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args(argv)
    B, P, N = args.batch, args.prompt, args.new
    T = P + N_LATENT + 1
    vocab = 515
    model = init_model(ModelConfig(vocab_size=vocab, n_positions=T + N + 8, n_embd=256, n_layer=4, n_head=4), 0)
    ids = jnp.asarray(np.random.default_rng(0).integers(10, vocab, (B, T)), jnp.int32)
    mask = jnp.ones((B, T), jnp.int32)
    never = vocab  # an EOS id no row can produce
    latent = nnx.jit(lambda m: latent_generate(m, ids, mask, n_prefix=P, n_latent=N_LATENT, max_new_tokens=N,
                                               eos_id=never, pad_id=0).tokens)
    variants = {
        f"generate (prompt {T})": lambda: generate(model, ids, mask, max_new_tokens=N, eos_id=never, pad_id=0).tokens,
        f"latent_generate (prompt {P} + {N_LATENT} thoughts + end marker)": lambda: latent(model),
    }
    print(f"{jax.default_backend()}, {malloc_summary()}; B={B}, {N} new tokens")
    print("| variant | ms per call |\n|---|---|")
    for name, call in variants.items():
        sec = median_step_seconds(lambda: call().block_until_ready(), args.runs)
        print(f"| {name} | {1000 * sec:.1f} |", flush=True)


if __name__ == "__main__":
    main()
