"""Tokenizers: the real one from a checkpoint folder, or a tiny Llama-style one built offline.

The tiny tokenizer has Llama's shape (SentencePiece-style BPE with byte fallback, `<unk>` = 0,
`<s>` = 1, `</s>` = 2, `▁` word prefix), so every code path that handles Vicuna's tokenizer handles
it too; it is deterministic and needs no download.
"""

from __future__ import annotations

import string
from collections.abc import Iterable
from pathlib import Path

from vlora.errors import CheckpointError, ConfigError

SPECIALS = ("<unk>", "<s>", "</s>")
MAX_LEARNED_VOCAB = 1 << 20  # the BPE trainer allocates by the size asked for
# Whole words get their own token so that the template and short answers tokenise compactly.
TINY_WORDS = (
    "A chat between a curious user and an artificial intelligence assistant. The gives helpful, detailed, "
    "polite answers to the user's questions. human USER ASSISTANT: Answer with option's letter from given "
    "choices directly. What is the color shape of this image picture in on how many are there Yes No yes no "
    "Please answer or Question Options Hint red green blue yellow black white circle square triangle left "
    "right top bottom above below count number one two three four five"
).split()


def build_tiny_tokenizer(vocab_size: int = 1024):
    """A deterministic Llama-style tokenizer of at most `vocab_size` tokens."""
    from transformers import LlamaTokenizer

    vocab: dict[str, int] = {}
    for token in (*SPECIALS, *(f"<0x{b:02X}>" for b in range(256)), "▁",
                  *(c for c in string.printable if c not in string.whitespace)):
        vocab.setdefault(token, len(vocab))
    merges: list[tuple[str, str]] = []
    for word in dict.fromkeys(w.strip(".,:") for w in TINY_WORDS):
        piece = "▁"
        for char in word:  # a merge chain ▁ -> ▁w -> ▁wo -> ... (only the leftmost pair ever matches)
            if piece + char not in vocab:
                if len(vocab) >= vocab_size:
                    break
                vocab[piece + char] = len(vocab)
                merges.append((piece, char))
            piece += char
    return LlamaTokenizer(vocab=vocab, merges=merges, add_bos_token=True, add_eos_token=False,
                          pad_token="<unk>", padding_side="left")


def train_tiny_tokenizer(texts: Iterable[str], vocab_size: int = 1024):
    """A Llama-style tokenizer whose merges are learned from `texts` (Hugging Face `tokenizers`' BPE
    trainer; deterministic for the same texts): the three specials, the 256 byte-fallback tokens, then
    learned pieces. Words split at spaces (the `▁` prefix), punctuation, digits and newlines, so a
    piece never spans two words. For models trained from scratch on a known corpus (the mini-suite):
    words become single tokens and sequences are several times shorter than with character pieces."""
    import json

    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import LlamaTokenizer

    byte_tokens = [f"<0x{b:02X}>" for b in range(256)]
    if vocab_size <= len(SPECIALS) + len(byte_tokens):
        raise ConfigError(f"vocab_size {vocab_size} leaves no room for learned pieces (at least 260)")
    if vocab_size > MAX_LEARNED_VOCAB:
        raise ConfigError(f"vocab_size {vocab_size:,} is too large for a tokenizer learned from training texts "
                          f"(at most {MAX_LEARNED_VOCAB:,})")
    bpe = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    bpe.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first"), pre_tokenizers.Punctuation("isolated"),
        pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.Split("\n", "isolated")])
    trainer = trainers.BpeTrainer(vocab_size=vocab_size - len(byte_tokens), special_tokens=list(SPECIALS),
                                  min_frequency=2, show_progress=False)
    bpe.train_from_iterator(texts, trainer)
    learned = json.loads(bpe.to_str())["model"]
    vocab = {token: i for i, token in enumerate((*SPECIALS, *byte_tokens))}
    for token, _ in sorted(learned["vocab"].items(), key=lambda item: item[1]):
        vocab.setdefault(token, len(vocab))
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in learned["merges"]]
    return LlamaTokenizer(vocab=vocab, merges=merges, add_bos_token=True, add_eos_token=False,
                          pad_token="<unk>", padding_side="left")


TOKENIZER_FILES = ("tokenizer.model", "tokenizer.json")  # Vicuna's SentencePiece model, or a fast tokenizer's file
NO_TOKENIZER = "no tokenizer (tokenizer.model or tokenizer.json) in the folder"


def has_tokenizer(folder: str | Path) -> bool:
    """Whether a folder holds a tokenizer that `load_tokenizer` can read (the one presence check)."""
    return any((Path(folder) / name).is_file() for name in TOKENIZER_FILES)


def load_tokenizer(folder: str | Path):
    """The tokenizer saved in a checkpoint folder (Vicuna's `tokenizer.model` or a `tokenizer.json`)."""
    from transformers import AutoTokenizer

    folder = Path(folder)
    if not has_tokenizer(folder):
        raise CheckpointError(f"{folder}: {NO_TOKENIZER}")
    from vlora.hf_quiet import quiet_transformers

    with quiet_transformers():
        tokenizer = AutoTokenizer.from_pretrained(folder)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.unk_token  # LLaVA / VLoRA pad with <unk> (id 0)
    return tokenizer
