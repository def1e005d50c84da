"""A checkpoint's ``tokenizer.json`` as the model description needs it.

Hugging Face tokenizer files may carry fixed padding and truncation (all-MiniLM-L6-v2's pads
and truncates every text to 128 tokens). Sentence embedding models see the sentence itself,
so padding is switched off and truncation set to the model's own maximum length; a caller
can ask whether a text was cut.
"""

from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer

from .ir import ModelError

__all__ = ["TextTokenizer"]


class TextTokenizer:
    """``encode(text) -> list[int]`` without padding, truncated to ``max_length`` tokens."""

    def __init__(self, path: Path | str, max_length: int):
        path = Path(path)
        try:
            self._tok = Tokenizer.from_file(str(path))
        except Exception as error:  # the library raises a bare Exception on a bad file
            first = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise ModelError(f"{path}: not a readable tokenizer file ({first})") from None
        if max_length < 2:
            raise ModelError(f"maximum sequence length {max_length} leaves no room for text")
        self.max_length = int(max_length)
        self._tok.no_padding()
        self._tok.enable_truncation(self.max_length)

    def encode_full(self, text: str) -> tuple[list[int], bool]:
        """Token ids and whether the text was truncated to ``max_length``."""
        encoding = self._tok.encode(text)
        return list(encoding.ids), bool(encoding.overflowing)

    def encode(self, text: str) -> list[int]:
        return self.encode_full(text)[0]

    def decode(self, ids) -> str:
        return self._tok.decode(list(ids))

    def token_to_id(self, token: str) -> int | None:
        return self._tok.token_to_id(token)
