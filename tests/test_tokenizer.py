"""Word-level and Hugging Face tokenizers behind one interface; special tokens added once."""

import pytest

from lrm_jax.data.loaders import load_records
from lrm_jax.tokenizer import (
    SPECIAL_TOKENS, HFTokenizer, TokenizerError, WordTokenizer, load_tokenizer,
)
from tests.conftest import shared_file


@pytest.fixture(scope="module")
def logic_records():
    recs = []
    for name in ("prosqa_valid.json", "prontoqa_valid.json"):
        recs += load_records(shared_file(name)).records
    return recs


def texts(records):
    for r in records:
        yield r.question
        yield from r.steps
        yield r.answer


def test_word_tokenizer_round_trips_real_logic_data(logic_records):
    tok = WordTokenizer.build(texts(logic_records))
    # ~60-100 distinct words per task, each with and without a leading space, plus punctuation.
    assert tok.vocab_size < 400
    for r in logic_records[:50]:
        for t in (r.question, *r.steps, r.answer):
            ids = tok.encode(t, strict=True)
            assert tok.decode(ids) == " ".join(t.split())
    # Every entity is one token.
    g = logic_records[0].graph
    for name in g.idx_to_symbol:
        assert len(tok.encode(" " + name, strict=True)) == 1


def test_special_tokens_are_atomic_and_have_fixed_ids():
    a = WordTokenizer.build(["Tom is a terpus."])
    b = WordTokenizer.build(["a = 7 . b = a + 8 ."])
    for role, token in SPECIAL_TOKENS.items():
        assert a.ids[role] == b.ids[role]
        assert a.encode(token) == [a.ids[role]]
    ids = a.encode("Tom is<|start-latent|><|latent|><|latent|><|end-latent|> a terpus.")
    assert ids.count(a.ids["latent"]) == 2
    assert a.decode(ids, skip_special=True) == "Tom is a terpus."


def test_unknown_words_map_to_unk_or_raise_in_strict_mode():
    tok = WordTokenizer.build(["Tom is a terpus."])
    assert tok.encode("Tom is a gorpus.")[3] == tok.ids["unk"]
    with pytest.raises(TokenizerError, match="gorpus"):
        tok.encode("Tom is a gorpus.", strict=True)


def test_word_tokenizer_save_load(tmp_path):
    tok = WordTokenizer.build(["Every wumpus is a yumpus. <<7+8=15>>"])
    tok.save(tmp_path)
    back = load_tokenizer(tmp_path)
    assert isinstance(back, WordTokenizer) and back.vocab == tok.vocab
    (tmp_path / "word_tokenizer.json").write_text("{not json")
    with pytest.raises(TokenizerError, match="word_tokenizer.json"):
        load_tokenizer(tmp_path)


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    """A tiny byte-level BPE saved as a GPT-2 tokenizer directory (no download)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2TokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"])
    corpus = ["Janet has 16 eggs and sells 9 of them for $2 each."] * 20
    bpe.train_from_iterator(corpus, trainer)
    d = tmp_path_factory.mktemp("bpe")
    GPT2TokenizerFast(tokenizer_object=bpe, eos_token="<|endoftext|>").save_pretrained(d)
    return d


def test_hf_tokenizer_adds_special_tokens_once(hf_dir, tmp_path):
    tok = HFTokenizer.from_directory(hf_dir)
    n = tok.vocab_size
    assert set(SPECIAL_TOKENS.values()) <= set(tok.hf.get_vocab())
    text = "Janet has 16 eggs<|start-latent|><|latent|><|end-latent|>"
    ids = tok.encode(text)
    assert tok.ids["latent"] in ids and tok.decode(ids) == text
    tok.save(tmp_path)
    again = load_tokenizer(tmp_path)
    assert isinstance(again, HFTokenizer)
    assert again.vocab_size == n and again.ids == tok.ids


def test_hf_tokenizer_missing_directory_is_a_clear_error(tmp_path):
    with pytest.raises(TokenizerError, match="does not exist"):
        HFTokenizer.from_directory(tmp_path / "nope")
