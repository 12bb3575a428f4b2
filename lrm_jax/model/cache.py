"""Static-shape KV cache.

One write index is shared by the whole batch: prompts are left-padded so that every row's next
token lands in the same column, which keeps every shape static under jit and `lax.scan`. Which
slots a row may attend is the caller's attention mask, not the cache's business.

Models with `token_conv` also cache every layer's attention input before the convolution
(`x`), because a new token's convolution reads its predecessors' inputs; otherwise `x` is None.
Models with `key_smear` cache each key twice: raw in `k` (what a later token's smear reads) and
smeared in `ks` (what attention reads), so a token's smear is computed once, when it is written.

A cache that a loop reads as a fixed prefix (the thought scan reads the question's cache at every
step) can also hold the keys attention reads and the values transposed to LxBxHxKxS (`kt`, `vt`,
from `for_reading`): the layout the CPU's batched matrix product wants, so the transpose is done
once before the loop instead of in every step, forward and backward.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class KVCache:
    k: jax.Array  # LxBxSxHxK
    v: jax.Array  # LxBxSxHxK
    index: jax.Array  # int32 scalar: the slot the next token is written to
    x: jax.Array | None = None  # LxBxSxD: layer inputs (ln_1 output), token_conv models only
    ks: jax.Array | None = None  # LxBxSxHxK: smeared keys, key_smear models only
    kt: jax.Array | None = None  # LxBxHxKxS: the keys attention reads (ks or k), transposed; read-only
    vt: jax.Array | None = None  # LxBxHxKxS: v transposed; read-only

    @classmethod
    def zeros(
        cls, n_layer, batch, max_len, n_head, head_dim, dtype=jnp.float32, inputs=False, smeared=False
    ) -> "KVCache":
        shape = (n_layer, batch, max_len, n_head, head_dim)
        x = jnp.zeros((n_layer, batch, max_len, n_head * head_dim), dtype) if inputs else None
        ks = jnp.zeros(shape, dtype) if smeared else None
        return cls(jnp.zeros(shape, dtype), jnp.zeros(shape, dtype), jnp.zeros((), jnp.int32), x, ks)

    @property
    def max_len(self) -> int:
        return self.k.shape[2]

    def write(self, layer: int, k_BxTxHxK: jax.Array, v_BxTxHxK: jax.Array) -> "KVCache":
        # One update of the whole 5-D buffer (not slice, update, set back), so XLA can do it
        # in place inside loops instead of copying a layer per write.
        at = (layer, 0, self.index, 0, 0)
        k = jax.lax.dynamic_update_slice(self.k, k_BxTxHxK[None].astype(self.k.dtype), at)
        v = jax.lax.dynamic_update_slice(self.v, v_BxTxHxK[None].astype(self.v.dtype), at)
        return dataclasses.replace(self, k=k, v=v)

    def write_inputs(self, layer: int, x_BxTxD: jax.Array) -> "KVCache":
        at = (layer, 0, self.index, 0)
        return dataclasses.replace(self, x=jax.lax.dynamic_update_slice(self.x, x_BxTxD[None].astype(self.x.dtype), at))

    def write_smeared(self, layer: int, ks_BxTxHxK: jax.Array) -> "KVCache":
        at = (layer, 0, self.index, 0, 0)
        return dataclasses.replace(self, ks=jax.lax.dynamic_update_slice(self.ks, ks_BxTxHxK[None].astype(self.ks.dtype), at))

    def for_reading(self) -> "KVCache":
        """This cache with `kt` and `vt` filled, to be read (not written) as a prefix."""
        keys = self.k if self.ks is None else self.ks
        to_hks = lambda a: jnp.transpose(a, (0, 1, 3, 4, 2))
        return dataclasses.replace(self, kt=to_hks(keys), vt=to_hks(self.v))

    def advance(self, n: int) -> "KVCache":
        return dataclasses.replace(self, index=self.index + n)

    @staticmethod
    def concat(parts: "list[KVCache]", index) -> "KVCache":
        """Slots of several caches in order, as one cache whose next write goes to `index`."""
        def cat(name):
            if getattr(parts[0], name) is None:
                return None
            return jnp.concatenate([getattr(p, name) for p in parts], axis=2)

        return KVCache(cat("k"), cat("v"), jnp.asarray(index, jnp.int32), cat("x"), cat("ks"))

    def tile_batch(self, n: int) -> "KVCache":
        """The batch repeated n times, copy-major (row r = c * B + b)."""
        tile = lambda a: None if a is None else jnp.tile(a, (1, n) + (1,) * (a.ndim - 2))
        return KVCache(tile(self.k), tile(self.v), self.index, tile(self.x), tile(self.ks))

    def truncate(self, index) -> "KVCache":
        """Rewinds the write index; later slots are overwritten by the next writes."""
        return dataclasses.replace(self, index=jnp.asarray(index, jnp.int32))
