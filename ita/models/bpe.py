"""Byte-level BPE tokenizers for decoder checkpoints, built with Hugging Face ``tokenizers``.

A GGUF file carries its tokenizer as data (vocabulary, merge list, token types, a named
pre-tokenizer); a Hugging Face folder carries ``tokenizer.json``. Both become the same
:class:`Tokenizer`, so the model description never depends on where the vocabulary came from.
The BPE itself is the ``tokenizers`` library's, not ours: only the assembly is here.
"""

from __future__ import annotations

from pathlib import Path

from tokenizers import AddedToken, decoders, models, pre_tokenizers
from tokenizers import Tokenizer as Backend

from ita.models.ir import ModelError

__all__ = ["Tokenizer", "from_gguf_metadata", "from_tokenizer_json"]

# GGUF token types (llama.cpp's llama_token_type): 3 is a control token such as <|im_start|>,
# 4 a user-defined one; both are matched whole in the text, never split by BPE.
_SPECIAL_TOKEN_TYPES = (3, 4)


def _byte_level():
    return pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)


# GGUF's ``tokenizer.ggml.pre`` names the split applied before BPE (llama.cpp's regex sets).
# "smollm" (as StarCoder) puts every digit in a word of its own before the GPT-2 split.
_PRE_TOKENIZERS = {
    "gpt-2": _byte_level,
    "smollm": lambda: pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), _byte_level()]),
}


class Tokenizer:
    """``encode(text) -> list[int]`` and ``decode(ids) -> str`` around a ``tokenizers``
    backend; ``bos_id``/``eos_id`` are the checkpoint's, ``add_bos`` says whether ``encode``
    starts a sequence with BOS (SmolLM2 does not). Special tokens written in the text (chat
    markers) are recognised and kept whole."""

    def __init__(self, backend, *, bos_id=None, eos_id=None, add_bos=False):
        self.backend = backend
        self.bos_id = bos_id
        self.eos_id = eos_id
        self.add_bos = add_bos

    def encode(self, text):
        ids = self.backend.encode(text, add_special_tokens=False).ids
        return [self.bos_id, *ids] if self.add_bos and self.bos_id is not None else ids

    def decode(self, ids):
        return self.backend.decode([int(i) for i in ids], skip_special_tokens=False)

    @property
    def vocab_size(self):
        return self.backend.get_vocab_size(with_added_tokens=True)


def from_gguf_metadata(metadata):
    """The tokenizer a GGUF file describes, or None when it holds no vocabulary."""
    if "tokenizer.ggml.tokens" not in metadata:
        return None
    kind = metadata.get("tokenizer.ggml.model")
    if kind != "gpt2":
        raise ModelError(f"GGUF tokenizer model {kind!r} is not supported (only byte-level "
                         f"BPE, 'gpt2')")
    pre = metadata.get("tokenizer.ggml.pre", "gpt-2")
    if pre not in _PRE_TOKENIZERS:
        raise ModelError(f"GGUF pre-tokenizer {pre!r} is not supported "
                         f"(known: {', '.join(sorted(_PRE_TOKENIZERS))})")
    tokens = list(metadata["tokenizer.ggml.tokens"])
    merges = [tuple(m.split(" ", 1)) for m in metadata.get("tokenizer.ggml.merges", [])]
    if any(len(m) != 2 for m in merges):
        raise ModelError("GGUF merge list has an entry that is not two tokens")
    vocab = {token: i for i, token in enumerate(tokens)}
    if len(vocab) != len(tokens):
        raise ModelError("GGUF vocabulary lists a token twice")
    backend = Backend(models.BPE(vocab=vocab, merges=merges, fuse_unk=False))
    backend.pre_tokenizer = _PRE_TOKENIZERS[pre]()
    backend.decoder = decoders.ByteLevel()
    types = metadata.get("tokenizer.ggml.token_type", [])
    special = [tokens[i] for i, t in enumerate(types) if t in _SPECIAL_TOKEN_TYPES]
    backend.add_special_tokens([AddedToken(t, special=True, normalized=False)
                                for t in special])
    return Tokenizer(backend, bos_id=metadata.get("tokenizer.ggml.bos_token_id"),
                     eos_id=metadata.get("tokenizer.ggml.eos_token_id"),
                     add_bos=bool(metadata.get("tokenizer.ggml.add_bos_token", False)))


def from_tokenizer_json(path, *, bos_id=None, eos_id=None, add_bos=False):
    """The tokenizer of a Hugging Face ``tokenizer.json``; its post-processor (which may add
    BOS) is not used: ``add_bos`` decides, as for GGUF."""
    path = Path(path)
    try:
        backend = Backend.from_file(str(path))
    except Exception as exc:  # the library reports a malformed file as a bare Exception
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelError(f"{path}: not a readable tokenizer.json ({first})") from None
    return Tokenizer(backend, bos_id=bos_id, eos_id=eos_id, add_bos=add_bos)
