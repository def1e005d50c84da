"""The integer model the compiler consumes, and the frontends that produce it.

The compiler's input is an :class:`IntegerModel`: typed blocks whose weights and constants
are already integers (the golden functions of :mod:`ita.golden` define their arithmetic bit
for bit). It holds no activations: the tokens a program runs on are written into L2 by
whoever runs it, at the input slot the program's manifest names.

A *frontend* is anything that yields an integer model (:class:`Frontend`). Today's one is
:class:`RandomEncoder`, a layer drawn and calibrated by
:func:`ita.golden.encoder.random_encoder`; real checkpoints reach the same form through a
model description and a quantiser, so the compiler does not change when they arrive.
:class:`RandomLlama` does that for a decoder: a tiny random Llama through
:mod:`ita.quant.llama` into :class:`IntegerDecoderLayer` blocks.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar, Protocol

import numpy as np

from ita.config import DEFAULT_CONFIG, ITAConfig
from ita.golden.encoder import EncoderParams, EncoderShape, random_encoder
from ita.models.ir import (
    Attention,
    DecoderLayer,
    Embedding,
    GatedFeedForward,
    LMHead,
    Model,
    RMSNorm,
    RoPE,
)
from ita.quant import llama as ql
from ita.quant.integer import IntegerLayer
from ita.quant.integer import IntegerModel as QuantisedModel

from .ir import TensorSpec

__all__ = ["IntegerEncoderLayer", "IntegerModel", "Frontend", "RandomEncoder",
           "encoder_model", "layer_macs", "DecoderShape", "IntegerDecoderLayer", "RandomLlama",
           "IntegerBertLayer", "bert_layer_model", "bert_model"]


def layer_macs(shape):
    """Multiply-accumulates of one encoder layer: H (4 S E P + 2 S^2 P) + 2 S E F."""
    S, E, P, H, F = shape.S, shape.E, shape.P, shape.H, shape.F
    return H * (4 * S * E * P + 2 * S * S * P) + 2 * S * E * F


@dataclass(frozen=True)
class IntegerEncoderLayer:
    """One Transformer encoder layer in integer form (``ita.golden.encoder.encoder_layer``).

    Multi-head attention, head sum, residual add, LayerNorm, FFN, residual add, LayerNorm on
    ``shape.S`` int8 tokens of ``shape.E``; ``causal`` and ``valid_keys`` mask the softmax.
    """

    kind: ClassVar[str] = "encoder_layer"
    #: Tensors the layer computes on the way to ``out``, in order (``EncoderResult`` names).
    INTERMEDIATES: ClassVar[tuple] = ("attn", "add1", "ln1", "f1", "f2", "add2")

    shape: EncoderShape
    params: EncoderParams
    causal: bool = False
    valid_keys: int | None = None

    @property
    def input(self):
        return TensorSpec("x", (self.shape.S, self.shape.E))

    def tensor(self, name):
        """The TensorSpec of the output ``out`` or of an intermediate."""
        cols = self.shape.F if name == "f1" else self.shape.E
        if name != "out" and name not in self.INTERMEDIATES:
            raise KeyError(name)
        return TensorSpec(name, (self.shape.S, cols))

    @property
    def macs(self):
        return layer_macs(self.shape)


@dataclass(frozen=True)
class IntegerModel:
    """A program's worth of integer blocks (one encoder layer today)."""

    blocks: tuple
    name: str = "model"

    @property
    def macs(self):
        return sum(block.macs for block in self.blocks)


class Frontend(Protocol):
    """A source of integer models: a random layer today, checkpoints through a quantiser."""

    def integer_model(self) -> IntegerModel: ...


def encoder_model(params: EncoderParams, seq: int, *, causal=False, valid_keys=None,
                  name="encoder_layer") -> IntegerModel:
    """The integer model of one encoder layer with ``params`` on ``seq`` tokens."""
    layer = IntegerEncoderLayer(params.shape(seq), params, causal, valid_keys)
    return IntegerModel((layer,), name)


@dataclass(frozen=True)
class RandomEncoder:
    """The random-encoder frontend: a layer of ``shape`` drawn with ``seed``.

    Its constants are calibrated on the tokens drawn with it; :meth:`draw` returns those
    tokens too, for a harness that wants inputs the layer was calibrated for.
    """

    shape: EncoderShape
    seed: int = 1
    config: ITAConfig = DEFAULT_CONFIG

    def draw(self):
        """(integer model, tokens x)."""
        x, params = random_encoder(self.shape, self.seed, self.config)
        return encoder_model(params, self.shape.S), x

    def integer_model(self) -> IntegerModel:
        return self.draw()[0]


# --- the Llama decoder layer -----------------------------------------------------------------


@dataclass(frozen=True)
class DecoderShape:
    """Sizes of one decoder layer: S new positions of E after ``past`` cached ones, H query
    heads and KV key/value heads of P, the gated FFN's F (``P``/``H`` as the encoder names
    them, for the manifest)."""

    S: int
    E: int
    P: int
    H: int
    KV: int
    F: int
    past: int = 0

    @property
    def macs(self):
        """Q, K, V, QK^T, A.V, O, gate, up, down (QK and A.V of the S new rows over all
        past + S keys)."""
        S, E, P, H, KV, F = self.S, self.E, self.P, self.H, self.KV, self.F
        return (S * E * P * (2 * H + 2 * KV) + 2 * S * (self.past + S) * P * H
                + 3 * S * E * F)


@dataclass(frozen=True, eq=False)
class IntegerDecoderLayer:
    """Layer ``index`` of an integer Llama (:class:`ita.quant.llama.IntegerLlama`) on ``S``
    new positions after ``past`` cached ones: int32 residual rows in, int32 rows out, and the
    layer's int8 cache (rotated keys, values) extended by the new rows. ``past = 0`` is a
    prefill (:func:`ita.quant.llama.prefill_layer` is its value); a decoding step is
    ``S = 1`` against a cache in L2 of ``capacity`` positions (the model's context)
    (:func:`ita.quant.llama.cached_layer`)."""

    kind: ClassVar[str] = "decoder_layer"

    model: object
    index: int
    S: int
    past: int = 0
    #: decoding steps of one row each, run one after the other (the cache grows in place)
    steps: int = 1

    @property
    def T(self):
        """Positions in the cache after the layer: past + S * steps."""
        return self.past + self.S * self.steps

    @property
    def capacity(self):
        """Positions the cache holds: the model's context, at least T."""
        return max(self.model.context or 0, self.T)

    @property
    def layer(self):
        return self.model.layers[self.index]

    @property
    def shape(self):
        m = self.model
        return DecoderShape(self.S, m.tokens.shape[1], m.head_dim, m.heads, m.kv_heads,
                            self.layer.gate.w.shape[1], self.past)

    @property
    def input(self):
        """The int32 rows of every step, one after the other."""
        return TensorSpec("x", (self.S * self.steps, self.shape.E), "int32")

    def tensor(self, name):
        """``out`` / ``mid`` (int32 residual rows after the layer / after attention),
        ``k_cache<g>`` (T x P rotated keys) and ``v_cache<g>`` (P x T: V transposed, as the
        engine reads it) of KV head g."""
        s = self.shape
        if name in ("out", "mid"):
            return TensorSpec(name, (s.S * self.steps, s.E), "int32")
        for prefix, dims in (("k_cache", (self.T, s.P)), ("v_cache", (s.P, self.T))):
            if name.startswith(prefix) and name[len(prefix):].isdigit() and \
                    int(name[len(prefix):]) < s.KV:
                return TensorSpec(name, dims)
        raise KeyError(name)

    @property
    def macs(self):
        return sum(replace(self.shape, past=self.past + i * self.S).macs
                   for i in range(self.steps))


@dataclass(frozen=True)
class RandomLlama:
    """A tiny random Llama (one layer, GQA) quantised by :mod:`ita.quant.llama`, for the
    cluster's decoder layer: :meth:`draw` gives the integer model of its prefill and the
    embedded rows of ``S`` random tokens.

    The quantiser runs the default recipe (with the decomposition: the cores correct
    clipped GEMM inputs and saturated outputs); ``decompose=False`` gives the integer model
    that clips, as the engine alone does. ``context`` is the cache's capacity for decoding.
    """

    E: int = 64
    heads: int = 2
    kv_heads: int = 1
    head_dim: int = 32
    F: int = 128
    S: int = 16
    vocab: int = 64
    seed: int = 1
    decompose: bool = True
    context: int = 64
    #: layers of the model (the first is the same for any count; :meth:`draw` runs it)
    layers: int = 1

    def float_model(self):
        rng = np.random.default_rng(self.seed)
        E, H, KV, D, F = self.E, self.heads, self.kv_heads, self.head_dim, self.F

        def w(*shape):
            return (rng.standard_normal(shape) / np.sqrt(shape[0])).astype(np.float32)

        def norm():
            return RMSNorm(gamma=(1 + 0.1 * rng.standard_normal(E)).astype(np.float32),
                           eps=1e-5)

        def layer():
            return DecoderLayer(
                norm1=norm(), attention=Attention(
                    wq=w(E, H * D), wk=w(E, KV * D), wv=w(E, KV * D), wo=w(H * D, E),
                    heads=H, kv_heads=KV, head_dim=D, causal=True,
                    rope=RoPE(theta=1e4, head_dim=D)),
                norm2=norm(), ffn=GatedFeedForward(w_gate=w(E, F), w_up=w(E, F),
                                                   w_down=w(F, E)))
        first = layer()
        tokens = rng.standard_normal((self.vocab, E)).astype(np.float32)
        head = LMHead(norm=norm(), weight=tokens.T, tied=True)
        return Model(family="llama", name="tiny_llama", embedding=Embedding(tokens=tokens),
                     layers=(first, *(layer() for _ in range(self.layers - 1))), head=head,
                     hyper={"context_length": self.context})

    def draw(self, past=0, steps=1):
        """(integer model, int32 residual rows x of S random tokens); with ``past`` the model
        is ``steps`` decoding steps of one token each from position ``past`` and ``x`` holds
        the rows of all ``past + steps`` tokens (the cached ones first)."""
        rng = np.random.default_rng([self.seed, 1])
        calibration = [rng.integers(0, self.vocab, self.S) for _ in range(6)]
        imodel = ql.quantise(self.float_model(), calibration,
                             ql.LlamaQuantOptions(decompose=self.decompose))
        last = past + steps - 1
        if not 0 <= past <= last < self.context:
            raise ValueError(f"position {last} lies outside the context of {self.context}")
        if steps > 1 and not past:
            raise ValueError("decoding steps follow a cache: the first position must be > 0")
        count = past + steps if past else self.S
        x = ql.embed(imodel, rng.integers(0, self.vocab, max(count, self.S))[:count])
        layer = IntegerDecoderLayer(imodel, 0, 1, past, steps) if past else \
            IntegerDecoderLayer(imodel, 0, self.S)
        return IntegerModel((layer,), "decoder_layer"), x

    def integer_model(self) -> IntegerModel:
        return self.draw()[0]


# --- a layer of a quantised BERT checkpoint (ita.quant) ----------------------------------------


@dataclass(frozen=True, eq=False)
class IntegerBertLayer:
    """One layer of a quantised BERT encoder (:class:`ita.quant.integer.IntegerLayer`, the
    contract of :func:`ita.quant.integer.run`) on ``S`` int8 rows, of which the first
    ``valid`` are tokens (the rest are padding whose keys every softmax masks; None: all).

    Unlike :class:`IntegerEncoderLayer` the residual adds take per-column constants and
    write 13-bit int16 rows (``add1``, ``add2``), the LayerNorms read them, and the FFN is a
    sum of parts. ``pool``: the program also stores the column sums of the output's valid
    rows (``pooled``, int32), the mean pooling's integer part. ``embed_norm``: the block
    first normalises its input, the host's int16 embedding rows
    (:func:`ita.quant.integer.embed_rows`), with these constants
    (:class:`ita.quant.integer.NormConstants`): the first layer of a whole model.
    """

    kind: ClassVar[str] = "bert_layer"
    #: Tensors on the way to ``out``: int8 ``attn`` (the head sum; absent when the residual
    #: add sums the heads) and ``ln1``, int16 ``add1`` and ``add2``.
    INTERMEDIATES: ClassVar[tuple] = ("ln0", "attn", "add1", "ln1", "add2")

    layer: IntegerLayer
    S: int
    valid: int | None = None
    pool: bool = False
    index: int = 0
    embed_norm: object = None

    @property
    def shape(self):
        L = self.layer
        H, E, P = np.asarray(L.wq).shape
        return EncoderShape(self.S, E, P, H, sum(int(part.w1.shape[1]) for part in L.ffn))

    @property
    def tokens(self):
        return self.S if self.valid is None else self.valid

    @property
    def input(self):
        return TensorSpec("x", (self.S, self.shape.E),
                          "int8" if self.embed_norm is None else "int16")

    def tensor(self, name):
        """The TensorSpec of ``out``, ``pooled`` (with ``pool``) or an intermediate."""
        E = self.shape.E
        if name == "ln0" and self.embed_norm is not None:
            return TensorSpec(name, (self.S, E))
        if name == "pooled" and self.pool:
            return TensorSpec(name, (1, E), "int32")
        if name in ("add1", "add2"):
            return TensorSpec(name, (self.S, E), "int16")
        if name == "out" or name == "ln1" or (name == "attn" and self.layer.rq_sum is not None):
            return TensorSpec(name, (self.S, E))
        raise KeyError(name)

    @property
    def macs(self):
        return layer_macs(self.shape)


def bert_layer_model(model: QuantisedModel, index: int, S: int, *, valid=None, pool=None,
                     name=None) -> IntegerModel:
    """Layer ``index`` of the quantised encoder ``model`` as a one-block integer model on
    ``S`` rows (``valid`` of them tokens); ``pool`` defaults to the last layer's."""
    if not 0 <= index < len(model.layers):
        raise ValueError(f"layer {index} does not exist: {model.name} has "
                         f"{len(model.layers)} layers (0..{len(model.layers) - 1})")
    last = index == len(model.layers) - 1
    block = IntegerBertLayer(model.layers[index], int(S), valid,
                             last if pool is None else bool(pool), index)
    return IntegerModel((block,), name or f"{model.name}_layer{index}")


def bert_model(model: QuantisedModel, S: int, *, valid=None, name=None) -> IntegerModel:
    """The whole quantised encoder after the host's embedding lookup, one block a layer on
    ``S`` rows: the first normalises the int16 embedding rows, the last pools."""
    last = len(model.layers) - 1
    blocks = tuple(IntegerBertLayer(layer, int(S), valid, index == last, index,
                                    model.embed_norm if index == 0 else None)
                   for index, layer in enumerate(model.layers))
    return IntegerModel(blocks, name or model.name)
