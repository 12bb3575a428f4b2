"""GPT-2 model: Hugging Face parity, causality, KV cache, masking and generation."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from lrm_jax.config import ModelConfig
from lrm_jax.model.generate import generate
from lrm_jax.model.gpt2 import init_model, positions_from_mask
from lrm_jax.model.hf_io import HFImportError, load_hf_gpt2, save_hf_gpt2


def full_logits(model, ids, mask=None, positions=None):
    ids = jnp.asarray(ids)
    mask = jnp.ones_like(ids) if mask is None else jnp.asarray(mask)
    positions = positions_from_mask(mask) if positions is None else jnp.asarray(positions)
    out = model.forward(model.embed(ids), positions, mask)
    return np.asarray(model.unembed(out.h))


@pytest.fixture(scope="module")
def hf_pair(tmp_path_factory):
    """A random tiny transformers GPT2LMHeadModel (torch) and our import of it."""
    torch = pytest.importorskip("torch", reason="torch (extra 'hf') is needed for HF parity")
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    cfg = GPT2Config(
        vocab_size=97, n_positions=64, n_embd=32, n_layer=2, n_head=4,
        bos_token_id=0, eos_token_id=1, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
    )
    torch_model = GPT2LMHeadModel(cfg).eval()
    d = tmp_path_factory.mktemp("hf_gpt2")
    torch_model.save_pretrained(d)
    return torch, torch_model, load_hf_gpt2(d)


def test_hf_parity_full_sequence_with_left_padding(hf_pair):
    torch, tm, ours = hf_pair
    rng = np.random.RandomState(0)
    ids = rng.randint(0, 97, (3, 12))
    mask = np.ones_like(ids)
    mask[1, :4] = 0  # left padding
    mask[2, :7] = 0
    pos = np.asarray(positions_from_mask(jnp.asarray(mask)))
    with torch.no_grad():
        ref = tm(
            torch.tensor(ids), attention_mask=torch.tensor(mask), position_ids=torch.tensor(pos)
        ).logits.numpy()
    got = full_logits(ours, ids, mask)
    real = mask.astype(bool)
    np.testing.assert_allclose(got[real], ref[real], atol=1e-4)


def test_hf_parity_cached_incremental_decoding(hf_pair):
    torch, tm, ours = hf_pair
    ids = np.random.RandomState(1).randint(0, 97, (2, 10))
    with torch.no_grad():
        ref = tm(torch.tensor(ids)).logits.numpy()
    mask_S = jnp.ones((2, 10), jnp.int32)
    cache = ours.new_cache(2, 10)
    out = ours.forward(ours.embed(jnp.asarray(ids[:, :4])), jnp.arange(4)[None].repeat(2, 0), mask_S, cache)
    got = [np.asarray(ours.unembed(out.h))]
    cache = out.cache
    for t in range(4, 10):
        out = ours.forward(ours.embed(jnp.asarray(ids[:, t : t + 1])), jnp.full((2, 1), t), mask_S, cache)
        cache = out.cache
        got.append(np.asarray(ours.unembed(out.h)))
    np.testing.assert_allclose(np.concatenate(got, axis=1), ref, atol=1e-4)


def test_export_then_transformers_loads_same_logits(hf_pair, tmp_path):
    torch, _, ours = hf_pair
    from transformers import GPT2LMHeadModel

    save_hf_gpt2(ours, tmp_path)
    reloaded = GPT2LMHeadModel.from_pretrained(tmp_path).eval()
    ids = np.random.RandomState(2).randint(0, 97, (2, 9))
    with torch.no_grad():
        ref = reloaded(torch.tensor(ids)).logits.numpy()
    np.testing.assert_allclose(full_logits(ours, ids), ref, atol=1e-4)


def test_export_import_round_trip_is_exact(tiny_model, tmp_path):
    save_hf_gpt2(tiny_model, tmp_path)
    back = load_hf_gpt2(tmp_path)
    a = jax.tree.leaves(nnx.state(tiny_model, nnx.Param))
    b = jax.tree.leaves(nnx.state(back, nnx.Param))
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_hf_import_errors_name_the_problem(tmp_path, tiny_model):
    with pytest.raises(HFImportError, match="config.json not found"):
        load_hf_gpt2(tmp_path)
    save_hf_gpt2(tiny_model, tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["n_embd"] = 64
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(HFImportError, match="shape"):
        load_hf_gpt2(tmp_path)


def test_causal_future_tokens_do_not_change_the_past(tiny_model):
    ids = np.random.RandomState(3).randint(0, 97, (1, 10))
    changed = ids.copy()
    changed[0, 6:] = (changed[0, 6:] + 5) % 97
    a, b = full_logits(tiny_model, ids), full_logits(tiny_model, changed)
    np.testing.assert_allclose(a[:, :6], b[:, :6], atol=1e-6)
    assert np.abs(a[:, 6:] - b[:, 6:]).max() > 1e-3


def test_layers_are_returned_and_last_matches_h(tiny_model, tiny_cfg):
    ids = jnp.asarray(np.random.RandomState(4).randint(0, 97, (2, 5)))
    out = tiny_model.forward(
        tiny_model.embed(ids), jnp.arange(5)[None].repeat(2, 0), jnp.ones((2, 5)), return_layers=True
    )
    assert out.layers.shape == (tiny_cfg.n_layer + 1, 2, 5, tiny_cfg.n_embd)
    np.testing.assert_array_equal(np.asarray(out.layers[-1]), np.asarray(out.h))


def test_removing_slots_by_masking_equals_the_shorter_sequence(tiny_model):
    ids = np.random.RandomState(5).randint(0, 97, (1, 12))
    removed = [4, 5, 6]  # e.g. three thought slots
    keep = [i for i in range(12) if i not in removed]
    mask = np.ones((1, 12), np.int32)
    mask[0, removed] = 0
    # Later positions shift down so the remaining tokens see consecutive positions.
    positions = positions_from_mask(jnp.asarray(mask))
    masked = full_logits(tiny_model, ids, mask, positions)
    short = full_logits(tiny_model, ids[:, keep])
    np.testing.assert_allclose(masked[:, keep], short, atol=1e-5)


def naive_greedy(model, ids, mask, n, eos_id):
    """Reference: re-run the full sequence for every new token (as COCONUT's generate does)."""
    ids, mask = np.asarray(ids), np.asarray(mask)
    out = []
    done = np.zeros(len(ids), bool)
    for _ in range(n):
        logits = full_logits(model, ids, mask)[:, -1]
        tok = logits.argmax(-1)
        out.append(np.where(done, -1, tok))
        done |= tok == eos_id
        ids = np.concatenate([ids, tok[:, None]], 1)
        mask = np.concatenate([mask, np.ones((len(ids), 1), mask.dtype)], 1)
    return np.stack(out, 1)


def test_generate_equals_naive_loop_and_stops_per_row_at_eos(tiny_model):
    rng = np.random.RandomState(6)
    ids = rng.randint(2, 97, (3, 7))
    mask = np.ones_like(ids)
    mask[1, :3] = 0
    ids[1, :3] = 0
    free = naive_greedy(tiny_model, ids, mask, 6, eos_id=-100)
    eos = int(free[0, 2])  # row 0 must stop at its third token at the latest
    ref = naive_greedy(tiny_model, ids, mask, 6, eos_id=eos)
    gen = generate(tiny_model, jnp.asarray(ids), jnp.asarray(mask), max_new_tokens=6, eos_id=eos, pad_id=0)
    tokens, lengths = np.asarray(gen.tokens), np.asarray(gen.lengths)
    np.testing.assert_array_equal(tokens, np.where(ref == -1, 0, ref))
    np.testing.assert_array_equal(lengths, (ref != -1).sum(1))
    assert lengths[0] <= 3 and (tokens[0, lengths[0]:] == 0).all()


def test_bfloat16_compute_is_close_to_float32():
    cfg32 = ModelConfig(vocab_size=50, n_positions=16, n_embd=32, n_layer=2, n_head=4)
    cfg16 = ModelConfig(vocab_size=50, n_positions=16, n_embd=32, n_layer=2, n_head=4, dtype="bfloat16")
    m32, m16 = init_model(cfg32, 0), init_model(cfg16, 0)
    ids = np.random.RandomState(7).randint(0, 50, (2, 8))
    a, b = full_logits(m32, ids), full_logits(m16, ids)
    assert b.dtype == np.float32
    np.testing.assert_allclose(a, b, atol=5e-2)
    assert not np.array_equal(a, b)  # really computed in bf16


def test_rope_model_has_no_position_table_and_sees_only_relative_positions(variant_model):
    rope_model = variant_model(position_embedding="rope")
    assert rope_model.wpe is None
    ids = np.random.RandomState(7).randint(0, 97, (2, 9))
    base = full_logits(rope_model, ids)
    shifted = full_logits(rope_model, ids, positions=np.arange(9)[None].repeat(2, 0) + 11)
    np.testing.assert_allclose(base, shifted, atol=2e-5)
    # Order still matters: a rotation that ignored positions would make these equal.
    swapped = full_logits(rope_model, ids[:, [1, 0] + list(range(2, 9))])
    assert np.abs(swapped[:, -1] - base[:, -1]).max() > 1e-4


def test_rope_model_refuses_export_and_bad_rope_config(variant_model, tmp_path):
    from lrm_jax.config import ConfigError

    with pytest.raises(HFImportError, match="position_embedding"):
        save_hf_gpt2(variant_model(position_embedding="rope"), tmp_path)
    with pytest.raises(ConfigError, match="position_embedding"):
        ModelConfig(position_embedding="alibi")
    with pytest.raises(ConfigError, match="rope_base"):
        ModelConfig(position_embedding="rope", rope_base=0.0)


def test_earlier_slots_skip_masked_slots():
    from lrm_jax.model.blocks import earlier_slots

    mask = np.array([[0, 0, 1, 1, 0, 1, 1], [1, 1, 1, 1, 1, 1, 1]], np.int32)
    got = earlier_slots(jnp.asarray(mask), 2)
    for b, row in enumerate(mask):
        unmasked = [s for s in range(len(row)) if row[s]]
        for s in unmasked:
            before = [t for t in unmasked if t < s][::-1]  # nearest first
            for j in range(2):
                assert bool(got.valid_NxBxS[j, b, s]) == (j < len(before))
                if j < len(before):
                    assert int(got.slot_NxBxS[j, b, s]) == before[j]


EXTRAS = [{"key_smear": 2}, {"token_conv": 2}]


@pytest.mark.parametrize("extra", EXTRAS, ids=lambda d: next(iter(d)))
def test_extra_changes_the_model(variant_model, extra):
    model = variant_model(**extra)
    ids = np.random.RandomState(9).randint(0, 97, (1, 10))
    plain = nnx.clone(model)
    for block in plain.h:
        for w in (block.attn.key_smear, block.token_conv):
            if w is not None:
                w[...] = jnp.zeros_like(w[...])
    assert np.abs(full_logits(model, ids) - full_logits(plain, ids)).max() > 1e-4


VARIANTS = [{"position_embedding": "rope"}, *EXTRAS]


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda d: next(iter(d)))
def test_variant_slot_masking_equals_removal(variant_model, variant):
    model = variant_model(**variant)
    ids = np.random.RandomState(9).randint(0, 97, (1, 10))
    keep = [0, 1, 2, 6, 7, 8, 9]
    mask = np.ones((1, 10), np.int32)
    mask[0, 3:6] = 0
    masked = full_logits(model, ids, mask)
    np.testing.assert_allclose(masked[:, keep], full_logits(model, ids[:, keep]), atol=1e-5)


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda d: next(iter(d)))
def test_variant_cached_generation_matches_full_passes(variant_model, variant):
    model = variant_model(**variant)
    rng = np.random.RandomState(10)
    ids = rng.randint(2, 97, (2, 6))
    mask = np.ones_like(ids)
    mask[1, :2] = 0
    ref = naive_greedy(model, ids, mask, 4, eos_id=-100)
    gen = generate(model, jnp.asarray(ids), jnp.asarray(mask), max_new_tokens=4, eos_id=-100, pad_id=0)
    np.testing.assert_array_equal(np.asarray(gen.tokens), ref)


@pytest.mark.parametrize("extra", EXTRAS, ids=lambda d: next(iter(d)))
def test_extra_refuses_export_and_bad_config(variant_model, extra, tmp_path):
    from lrm_jax.config import ConfigError

    (name, _), = extra.items()
    with pytest.raises(HFImportError, match=name):
        save_hf_gpt2(variant_model(**extra), tmp_path)
    with pytest.raises(ConfigError, match=name):
        ModelConfig(**{name: -1})
    with pytest.raises(ConfigError, match="lora_rank"):
        ModelConfig(**{name: 2}, lora_rank=4)


def test_dropout_rate_and_scale():
    from lrm_jax.model.blocks import Dropout

    out = np.asarray(Dropout(0.25, jax.random.key(0))(jnp.ones(40_000), salt=1))
    dropped = out == 0
    assert abs(dropped.mean() - 0.25) < 0.01
    np.testing.assert_allclose(out[~dropped], 1 / 0.75, rtol=1e-6)  # kept values rescaled: mean 1


def test_dropout_runs_only_with_a_key(tiny_cfg):
    import dataclasses

    model = init_model(dataclasses.replace(tiny_cfg, dropout=0.3), seed=0)
    plain = init_model(tiny_cfg, seed=0)  # same parameters, no dropout
    ids = jnp.asarray(np.random.RandomState(4).randint(0, 97, (2, 9)))
    mask, pos = jnp.ones_like(ids), positions_from_mask(jnp.ones_like(ids))

    def h(m, key=None):
        return np.asarray(m.forward(m.embed(ids), pos, mask, dropout_key=key).h)

    np.testing.assert_array_equal(h(model), h(plain))  # evaluation: no key, no dropout
    k1, k2 = jax.random.key(1), jax.random.key(2)
    assert np.abs(h(model, k1) - h(model)).max() > 1e-2
    np.testing.assert_array_equal(h(model, k1), h(model, k1))  # a function of the key
    assert np.abs(h(model, k1) - h(model, k2)).max() > 1e-2
    np.testing.assert_array_equal(h(plain, k1), h(plain))  # rate 0: the key changes nothing


def test_keep_last_equals_the_full_pass_with_a_cache(variant_model):
    """keep_last=n: the last n columns' outputs and layers as in the full pass, every key and
    value still cached (a smeared-key model, so the cut block's key work is exercised)."""
    model = variant_model(key_smear=2)
    ids = jnp.asarray(np.random.RandomState(6).randint(0, 97, (2, 9)))
    mask = jnp.asarray(np.array([[0, 0, 1, 1, 1, 1, 1, 1, 1], [1] * 9], np.int32))
    pos = positions_from_mask(mask)
    run = lambda n: model.forward(model.embed(ids), pos, mask, model.new_cache(2, 9), return_layers=True, keep_last=n)
    full, part = run(None), run(3)
    assert part.h.shape == (2, 3, model.cfg.n_embd)
    np.testing.assert_allclose(np.asarray(part.h), np.asarray(full.h[:, -3:]), atol=1e-6)
    np.testing.assert_allclose(np.asarray(part.layers), np.asarray(full.layers[:, :, -3:]), atol=1e-6)
    for name in ("k", "v", "ks"):
        np.testing.assert_allclose(np.asarray(getattr(part.cache, name)), np.asarray(getattr(full.cache, name)), atol=1e-6)
    assert int(part.cache.index) == 9
    with pytest.raises(ValueError, match="keep_last"):
        run(10)
