"""Static-shape KV cache.

One write index is shared by the whole batch: prompts are left-padded so that every row's next
token lands in the same column, which keeps every shape static under jit and `lax.scan`. Which
slots a row may attend is the caller's attention mask, not the cache's business.

Models with `token_conv` also cache every layer's attention input before the convolution
(`x`), because a new token's convolution reads its predecessors' inputs; otherwise `x` is None.
Models with `key_smear` cache each key twice: raw in `k` (what a later token's smear reads) and
smeared in `ks` (what attention reads), so a token's smear is computed once, when it is written.

Every field holds one array per layer (a tuple), not one array stacked over layers: a pass reads
and writes a layer's slots without slicing a stacked buffer, so its backward pass adds each
layer's gradient where it belongs instead of padding it to the whole stack (on the CPU that
padding took 64 ms of a 1.2 s COCONUT loss + gradient inside the thought scan alone:
BENCHMARKS.md, session 27).

A cache that a loop reads as a fixed prefix (the thought scan reads the question's cache at every
step) can also hold the keys attention reads and the values transposed to BxHxKxS (`kt`, `vt`,
from `for_reading`): the layout the CPU's batched matrix product wants, so the transpose is done
once before the loop instead of in every step, forward and backward.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp


Layers = tuple  # one array per layer


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class KVCache:
    k: Layers  # L x (BxSxHxK)
    v: Layers  # L x (BxSxHxK)
    index: jax.Array  # int32 scalar: the slot the next token is written to
    x: Layers | None = None  # L x (BxSxD): layer inputs (ln_1 output), token_conv models only
    ks: Layers | None = None  # L x (BxSxHxK): smeared keys, key_smear models only
    kt: Layers | None = None  # L x (BxHxKxS): the keys attention reads (ks or k), transposed; read-only
    vt: Layers | None = None  # L x (BxHxKxS): v transposed; read-only

    @classmethod
    def zeros(
        cls, n_layer, batch, max_len, n_head, head_dim, dtype=jnp.float32, inputs=False, smeared=False
    ) -> "KVCache":
        def per_layer(shape):
            return tuple(jnp.zeros(shape, dtype) for _ in range(n_layer))

        shape = (batch, max_len, n_head, head_dim)
        x = per_layer((batch, max_len, n_head * head_dim)) if inputs else None
        ks = per_layer(shape) if smeared else None
        return cls(per_layer(shape), per_layer(shape), jnp.zeros((), jnp.int32), x, ks)

    @property
    def max_len(self) -> int:
        return self.k[0].shape[1]

    def _written(self, name: str, layer: int, new_BxTx_: jax.Array) -> "KVCache":
        # An update of the layer's own buffer (not a copy), so XLA does it in place inside loops.
        buffers = getattr(self, name)
        at = (0, self.index) + (0,) * (new_BxTx_.ndim - 2)
        updated = jax.lax.dynamic_update_slice(buffers[layer], new_BxTx_.astype(buffers[layer].dtype), at)
        return dataclasses.replace(self, **{name: buffers[:layer] + (updated,) + buffers[layer + 1 :]})

    def write(self, layer: int, k_BxTxHxK: jax.Array, v_BxTxHxK: jax.Array) -> "KVCache":
        return self._written("k", layer, k_BxTxHxK)._written("v", layer, v_BxTxHxK)

    def write_inputs(self, layer: int, x_BxTxD: jax.Array) -> "KVCache":
        return self._written("x", layer, x_BxTxD)

    def write_smeared(self, layer: int, ks_BxTxHxK: jax.Array) -> "KVCache":
        return self._written("ks", layer, ks_BxTxHxK)

    def for_reading(self) -> "KVCache":
        """This cache with `kt` and `vt` filled, to be read (not written) as a prefix."""
        keys = self.k if self.ks is None else self.ks
        to_hks = lambda layers: tuple(jnp.transpose(a, (0, 2, 3, 1)) for a in layers)
        return dataclasses.replace(self, kt=to_hks(keys), vt=to_hks(self.v))

    def advance(self, n: int) -> "KVCache":
        return dataclasses.replace(self, index=self.index + n)

    @staticmethod
    def concat(parts: "list[KVCache]", index) -> "KVCache":
        """Slots of several caches in order, as one cache whose next write goes to `index`."""
        def cat(name):
            if getattr(parts[0], name) is None:
                return None
            return tuple(jnp.concatenate(layer, axis=1) for layer in zip(*(getattr(p, name) for p in parts)))

        return KVCache(cat("k"), cat("v"), jnp.asarray(index, jnp.int32), cat("x"), cat("ks"))

    def tile_batch(self, n: int) -> "KVCache":
        """The batch repeated n times, copy-major (row r = c * B + b)."""
        def tile(layers):
            return None if layers is None else tuple(jnp.tile(a, (n,) + (1,) * (a.ndim - 1)) for a in layers)

        return KVCache(tile(self.k), tile(self.v), self.index, tile(self.x), tile(self.ks))

    def truncate(self, index) -> "KVCache":
        """Rewinds the write index; later slots are overwritten by the next writes."""
        return dataclasses.replace(self, index=jnp.asarray(index, jnp.int32))
