"""Tokenizers behind one interface, and the special tokens of every model family.

Two implementations:
- `WordTokenizer`: built from the data of the synthetic logic/arithmetic tasks. Every word,
  number and punctuation mark is one token; like GPT-2's BPE, a token preceded by whitespace
  carries a leading space (" terpus" vs "terpus"), so decoding reproduces the text (runs of
  whitespace are normalised to one space) and number matching works the same way for both
  tokenizers ("N" and " N").
- `HFTokenizer`: any Hugging Face tokenizer in a local directory (GPT-2 BPE for GSM8k).

Special tokens are added in one place (`SPECIAL_TOKENS`), always all of them, so one tokenizer
serves every model family and checkpoints of different families share ids.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Iterable, Sequence

# role -> token string. Order fixes the ids of a WordTokenizer (they come first).
SPECIAL_TOKENS: dict[str, str] = {
    "pad": "<|pad|>",
    "eos": "<|endoftext|>",
    "unk": "<|unk|>",
    # COCONUT
    "start_latent": "<|start-latent|>",
    "latent": "<|latent|>",
    "end_latent": "<|end-latent|>",
    # CODI
    "bot": "<bot>",
    "eot": "<eot>",
    # Pause-token baseline
    "pause": "<pause>",
    # Multi-mode control: begin/end of (verbal or latent) chain of thought
    "bocot": "<|bocot|>",
    "eocot": "<|eocot|>",
}

WORD_TOKENIZER_FILE = "word_tokenizer.json"
_SPECIAL_RE = "|".join(re.escape(t) for t in SPECIAL_TOKENS.values())
_SPECIALS = frozenset(SPECIAL_TOKENS.values())
_MEMO_LIMIT = 1 << 18
_PIECE_RE = re.compile(rf"(\s*)({_SPECIAL_RE}|<<|>>|\d+|[A-Za-z]+|[^\sA-Za-z\d])")


class TokenizerError(ValueError):
    pass


class Tokenizer:
    """Common interface. `ids[role]` gives the id of a special token, e.g. `ids['latent']`."""

    ids: dict[str, int]

    @property
    def vocab_size(self) -> int:
        raise NotImplementedError

    def encode(self, text: str) -> list[int]:
        raise NotImplementedError

    def decode(self, ids: Iterable[int], skip_special: bool = False) -> str:
        raise NotImplementedError

    def id_to_token(self, i: int) -> str:
        raise NotImplementedError

    def save(self, directory: str | Path) -> None:
        raise NotImplementedError

    @property
    def special_ids(self) -> set[int]:
        return set(self.ids.values())


class WordTokenizer(Tokenizer):
    def __init__(self, vocab: Sequence[str]):
        self.vocab = list(vocab)
        self.token_to_id = {t: i for i, t in enumerate(self.vocab)}
        if len(self.token_to_id) != len(self.vocab):
            raise TokenizerError("vocabulary has duplicate tokens")
        missing = [t for t in SPECIAL_TOKENS.values() if t not in self.token_to_id]
        if missing:
            raise TokenizerError(f"vocabulary lacks special tokens {missing}")
        self.ids = {role: self.token_to_id[t] for role, t in SPECIAL_TOKENS.items()}
        self._memo: dict[str, tuple[int, ...]] = {}

    @staticmethod
    def pieces(text: str) -> list[str]:
        # Every non-space character matches one alternative of _PIECE_RE, so findall covers
        # the text (only trailing whitespace is left out).
        return [piece if (not space or piece in _SPECIALS) else " " + piece for space, piece in _PIECE_RE.findall(text)]

    @classmethod
    def build(cls, texts: Iterable[str]) -> "WordTokenizer":
        seen = set()
        for text in texts:
            seen.update(cls.pieces(text))
        specials = list(SPECIAL_TOKENS.values())
        return cls(specials + sorted(seen - set(specials)))

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def encode(self, text: str, strict: bool = False) -> list[int]:
        # Training re-encodes the same records every epoch: memoise (the tuples share the
        # vocabulary's int objects, so a 20k-record task costs tens of MB).
        hit = self._memo.get(text)
        if hit is not None:
            return list(hit)
        out = []
        unk = self.ids["unk"]
        for piece in self.pieces(text):
            i = self.token_to_id.get(piece)
            if i is None:
                if strict:
                    raise TokenizerError(f"token {piece!r} is not in the vocabulary")
                i = unk
            out.append(i)
        if len(self._memo) < _MEMO_LIMIT and (unk not in out):
            self._memo[text] = tuple(out)
        return out

    def decode(self, ids: Iterable[int], skip_special: bool = False) -> str:
        special = self.special_ids
        return "".join(
            self.vocab[int(i)] for i in ids if not (skip_special and int(i) in special)
        )

    def id_to_token(self, i: int) -> str:
        return self.vocab[int(i)]

    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        payload = {"type": "word", "vocab": self.vocab}
        (directory / WORD_TOKENIZER_FILE).write_text(json.dumps(payload))

    @classmethod
    def load(cls, directory: str | Path) -> "WordTokenizer":
        path = Path(directory) / WORD_TOKENIZER_FILE
        try:
            payload = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise TokenizerError(f"{path}: cannot read word tokenizer: {e}") from e
        return cls(payload["vocab"])


class HFTokenizer(Tokenizer):
    """Wraps a local Hugging Face tokenizer and adds our special tokens to it once."""

    def __init__(self, hf_tokenizer):
        missing = [t for t in SPECIAL_TOKENS.values() if t not in hf_tokenizer.get_vocab()]
        if missing:
            hf_tokenizer.add_special_tokens({"additional_special_tokens": missing})
        self.hf = hf_tokenizer
        self.ids = {role: hf_tokenizer.convert_tokens_to_ids(t) for role, t in SPECIAL_TOKENS.items()}

    @classmethod
    def from_directory(cls, directory: str | Path) -> "HFTokenizer":
        from transformers import AutoTokenizer

        directory = Path(directory)
        if not directory.is_dir():
            raise TokenizerError(f"tokenizer directory {directory} does not exist")
        try:
            tok = AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
        except Exception as e:  # transformers raises many types; the path is what matters
            raise TokenizerError(f"{directory}: cannot load a Hugging Face tokenizer: {e}") from e
        return cls(tok)

    @property
    def vocab_size(self) -> int:
        return len(self.hf)

    def encode(self, text: str) -> list[int]:
        return list(self.hf.encode(text, add_special_tokens=False))

    def decode(self, ids: Iterable[int], skip_special: bool = False) -> str:
        return self.hf.decode([int(i) for i in ids], skip_special_tokens=skip_special)

    def id_to_token(self, i: int) -> str:
        # Byte-level BPE marks a leading space with "Ġ"; decode one id to get real text.
        return self.hf.decode([int(i)])

    def save(self, directory: str | Path) -> None:
        self.hf.save_pretrained(str(directory))


def load_tokenizer(directory: str | Path) -> Tokenizer:
    directory = Path(directory)
    if (directory / WORD_TOKENIZER_FILE).exists():
        return WordTokenizer.load(directory)
    return HFTokenizer.from_directory(directory)
