"""The model description: what a frontend reads out of a checkpoint.

A frontend knows one file format and nothing about the hardware; the quantiser and the
compiler know the hardware and nothing about file formats. Between them sits this
description: a model as a list of typed blocks with float32 weights in the natural
orientation ``y = x @ w`` (inputs along the rows of ``w``), plus the hyperparameters and the
tokenizer the blocks need. Encoder (BERT) and decoder (Llama) models use the same block
types where they share a computation, so one quantiser and one compiler serve both.

Residual structure is a property of the layer type: :class:`EncoderLayer` is post-norm
(``x = norm(x + attn(x))``, as BERT), :class:`DecoderLayer` pre-norm
(``x = x + attn(norm(x))``, as Llama).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["ModelError", "LayerNorm", "RMSNorm", "RoPE", "Attention", "FeedForward",
           "GatedFeedForward", "EncoderLayer", "DecoderLayer", "Embedding", "MeanPooling",
           "LMHead", "Model"]


class ModelError(ValueError):
    """A checkpoint that cannot be described: the message is one line naming what is wrong."""


def _check(name, array, shape):
    if array is None:
        return
    if tuple(array.shape) != tuple(shape):
        raise ModelError(f"{name} has shape {tuple(array.shape)}, expected {tuple(shape)}")


@dataclass(frozen=True)
class LayerNorm:
    """``(x - mean) / sqrt(var + eps) * gamma + beta`` over the last axis."""

    gamma: np.ndarray
    beta: np.ndarray
    eps: float


@dataclass(frozen=True)
class RMSNorm:
    """``x / sqrt(mean(x^2) + eps) * gamma`` over the last axis."""

    gamma: np.ndarray
    eps: float


@dataclass(frozen=True)
class RoPE:
    """Rotary position embedding of Q and K, applied per head after the projections.

    ``interleaved`` names the pair convention: False rotates element ``i`` with ``i + D/2``
    (Hugging Face Llama), True rotates ``2i`` with ``2i + 1`` (the original paper, GGUF's
    stored order).
    """

    theta: float
    head_dim: int
    interleaved: bool = False


@dataclass(frozen=True)
class Attention:
    """Multi-head (or grouped-query) attention.

    ``wq`` is (E, heads * head_dim), ``wk``/``wv`` (E, kv_heads * head_dim), ``wo``
    (heads * head_dim, E); head ``h`` owns columns ``h * head_dim .. (h + 1) * head_dim`` and
    shares K/V head ``h // (heads // kv_heads)``. Biases are None when the model has none.
    Scores are scaled by ``1 / sqrt(head_dim)``.
    """

    wq: np.ndarray
    wk: np.ndarray
    wv: np.ndarray
    wo: np.ndarray
    heads: int
    kv_heads: int
    head_dim: int
    bq: np.ndarray | None = None
    bk: np.ndarray | None = None
    bv: np.ndarray | None = None
    bo: np.ndarray | None = None
    causal: bool = False
    rope: RoPE | None = None

    def __post_init__(self):
        if self.heads % self.kv_heads:
            raise ModelError(f"{self.heads} query heads cannot share {self.kv_heads} KV heads")
        E = self.wq.shape[0]
        q, kv = self.heads * self.head_dim, self.kv_heads * self.head_dim
        for name, shape in (("wq", (E, q)), ("wk", (E, kv)), ("wv", (E, kv)), ("wo", (q, E)),
                            ("bq", (q,)), ("bk", (kv,)), ("bv", (kv,)), ("bo", (E,))):
            _check(name, getattr(self, name), shape)

    @property
    def embed_dim(self):
        return self.wq.shape[0]


@dataclass(frozen=True)
class FeedForward:
    """``act(x @ w1 + b1) @ w2 + b2``; ``activation`` is ``gelu`` (erf form) or ``relu``."""

    w1: np.ndarray
    w2: np.ndarray
    b1: np.ndarray | None = None
    b2: np.ndarray | None = None
    activation: str = "gelu"

    def __post_init__(self):
        E, F = self.w1.shape
        for name, shape in (("w2", (F, E)), ("b1", (F,)), ("b2", (E,))):
            _check(name, getattr(self, name), shape)


@dataclass(frozen=True)
class GatedFeedForward:
    """``(act(x @ w_gate) * (x @ w_up)) @ w_down``; ``activation`` is ``silu`` (Llama)."""

    w_gate: np.ndarray
    w_up: np.ndarray
    w_down: np.ndarray
    activation: str = "silu"

    def __post_init__(self):
        E, F = self.w_gate.shape
        _check("w_up", self.w_up, (E, F))
        _check("w_down", self.w_down, (F, E))


@dataclass(frozen=True)
class EncoderLayer:
    """Post-norm: ``x = norm1(x + attention(x)); x = norm2(x + ffn(x))``."""

    attention: Attention
    norm1: LayerNorm
    ffn: FeedForward
    norm2: LayerNorm


@dataclass(frozen=True)
class DecoderLayer:
    """Pre-norm: ``x = x + attention(norm1(x)); x = x + ffn(norm2(x))``."""

    norm1: RMSNorm
    attention: Attention
    norm2: RMSNorm
    ffn: GatedFeedForward


@dataclass(frozen=True)
class Embedding:
    """Token rows (V, E), optional learned positions (P, E) and token types (T, E), and an
    optional norm applied to their sum (BERT's embedding LayerNorm)."""

    tokens: np.ndarray
    positions: np.ndarray | None = None
    token_types: np.ndarray | None = None
    norm: LayerNorm | None = None


@dataclass(frozen=True)
class MeanPooling:
    """Mean over the valid tokens, then L2 normalisation when ``normalize``."""

    normalize: bool = True


@dataclass(frozen=True)
class LMHead:
    """Final norm and the vocabulary projection ``weight`` (E, V); tied to the token
    embedding when ``tied``."""

    norm: RMSNorm
    weight: np.ndarray
    tied: bool = False


@dataclass(frozen=True)
class Model:
    """A whole model: ``family`` is ``bert`` or ``llama``; ``hyper`` the checkpoint's own
    hyperparameters (for error messages and reports); ``tokenizer`` an object with
    ``encode(text) -> list[int]`` and ``decode(ids) -> str``."""

    family: str
    name: str
    embedding: Embedding
    layers: tuple
    head: MeanPooling | LMHead
    tokenizer: object = None
    hyper: dict = field(default_factory=dict)

    @property
    def embed_dim(self):
        return self.embedding.tokens.shape[1]

    @property
    def vocab_size(self):
        return self.embedding.tokens.shape[0]
