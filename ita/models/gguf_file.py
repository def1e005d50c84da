"""Reading a GGUF file: its metadata and its tensors dequantised to float32.

This module knows the container and nothing about model families: the Llama frontend
(:mod:`ita.models.llama`) gives the tensors their meaning. Parsing and dequantisation are the
``gguf`` package's (llama.cpp's own reader), so every block format it implements is accepted.

GGUF lists a tensor's shape innermost dimension first (GGML order); the arrays returned here
are in numpy order, the reverse, so a linear layer stored as ``[in, out]`` arrives as an
``(out, in)`` array, as in PyTorch checkpoints.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np

from ita.models.ir import ModelError

__all__ = ["GGUFContents", "read"]

# Integer tensors hold indices or counts, never weights a float model can use.
_INTEGER_TYPES = {"I8", "I16", "I32", "I64"}


@dataclass(frozen=True)
class GGUFContents:
    """``metadata``: key -> Python value (strings, numbers, lists); ``tensors``: name ->
    float32 array in numpy order; ``types``: name -> the stored type (``Q4_1``, ``F32``...)."""

    metadata: dict
    tensors: dict
    types: dict

    def type_counts(self):
        """How many tensors of each stored type, for reports: ``{"Q4_1": 210, ...}``."""
        return dict(Counter(self.types.values()))


def _value(field):
    try:
        return field.contents()
    except Exception as exc:  # a malformed field: name it rather than fail deep inside gguf
        raise ModelError(f"GGUF field {field.name} cannot be read: {exc}") from None


def _dequantize(tensor):
    kind = tensor.tensor_type.name
    if kind in _INTEGER_TYPES:
        raise ModelError(f"tensor {tensor.name} has type {kind}, which holds no float weights")
    try:
        values = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
    except NotImplementedError:
        raise ModelError(f"tensor {tensor.name} has type {kind}, which the gguf package "
                         f"cannot dequantise") from None
    shape = tuple(int(d) for d in reversed(tensor.shape))
    return np.ascontiguousarray(values, dtype=np.float32).reshape(shape)


def read(path):
    """All of a GGUF file, dequantised: a :class:`GGUFContents`.

    A file that is not GGUF, or a tensor whose type cannot become float32, is a
    :class:`~ita.models.ir.ModelError`.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: no such file")
    try:
        reader = gguf.GGUFReader(path)
    except (ValueError, OSError) as exc:
        raise ModelError(f"{path}: not a readable GGUF file ({exc})") from None
    metadata = {name: _value(field) for name, field in reader.fields.items()
                if not name.startswith("GGUF.")}
    tensors = {t.name: _dequantize(t) for t in reader.tensors}
    types = {t.name: t.tensor_type.name for t in reader.tensors}
    return GGUFContents(metadata=metadata, tensors=tensors, types=types)
