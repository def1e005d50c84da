"""The integer model the compiler consumes, and the frontends that produce it.

The compiler's input is an :class:`IntegerModel`: typed blocks whose weights and constants
are already integers (the golden functions of :mod:`ita.golden` define their arithmetic bit
for bit). It holds no activations: the tokens a program runs on are written into L2 by
whoever runs it, at the input slot the program's manifest names.

A *frontend* is anything that yields an integer model (:class:`Frontend`). Today's one is
:class:`RandomEncoder`, a layer drawn and calibrated by
:func:`ita.golden.encoder.random_encoder`; real checkpoints reach the same form through a
model description and a quantiser, so the compiler does not change when they arrive.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Protocol

from ita.config import DEFAULT_CONFIG, ITAConfig
from ita.golden.encoder import EncoderParams, EncoderShape, random_encoder

from .ir import TensorSpec

__all__ = ["IntegerEncoderLayer", "IntegerModel", "Frontend", "RandomEncoder",
           "encoder_model", "layer_macs"]


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
