"""Enumerations and payload layouts shared by the engine's components.

The encodings of :class:`Mode`, :class:`Activation` and :class:`Step` follow the reference
(``layer_e``, ``activation_e``, ``step_e``) so that register values carry over.
"""

import enum

from amaranth.hdl import signed, unsigned
from amaranth.lib import data
from amaranth.lib import enum as hdl_enum

from ita.config import DEFAULT_CONFIG, ITAConfig

__all__ = ["Mode", "ActivationKind", "Step", "ErrorCode", "RequantLayout",
           "engine_config_layout", "REQUANT_SET", "REQUANT_SETS", "DIM_BITS"]

#: Width of every dimension field; 2047 is the largest size the arithmetic allows.
DIM_BITS = 16


class Mode(enum.IntEnum):
    ATTENTION = 0   #: Q, K, V, {QK, AV} per row block, OW
    FFN = 1         #: F1 with activation, F2
    LINEAR = 2      #: one GEMM S x E -> S x P with activation
    QKAV = 3        #: {QK, AV} per row block on given Q, K, V (single attention)


class ActivationKind(hdl_enum.Enum, shape=2):
    """Activation encoding, in the order of :data:`ita.golden.ACTIVATIONS`; 3 is illegal."""

    IDENTITY = 0
    GELU = 1
    RELU = 2


class Step(enum.IntEnum):
    IDLE = 0
    Q = 1
    K = 2
    V = 3
    QK = 4
    AV = 5
    OW = 6
    F1 = 7
    F2 = 8
    MATMUL = 9


class ErrorCode(enum.IntEnum):
    NONE = 0
    ZERO_DIMENSION = 1      #: a dimension the mode uses is 0
    DIMENSION_TOO_LARGE = 2  #: the accumulator or the softmax sum could overflow
    BAD_VALID_KEYS = 3      #: valid_keys larger than S
    BAD_ACTIVATION = 4      #: activation encoding 3
    SOFTMAX_OVERFLOW = 5    #: a softmax row sum overflowed (unreachable with checked sizes)


#: Requantization set used by each step (Linear reuses set 0, as in the reference).
REQUANT_SET = {Step.Q: 0, Step.K: 1, Step.V: 2, Step.QK: 3, Step.AV: 4, Step.OW: 5,
               Step.F1: 6, Step.F2: 7, Step.MATMUL: 0}
REQUANT_SETS = 8

RequantLayout = data.StructLayout({
    "mult": unsigned(8),
    "shift": unsigned(8),
    "add": signed(8),
})


def engine_config_layout(config: ITAConfig = DEFAULT_CONFIG):
    """Run-time configuration of one engine job: everything that is not a hardware size."""
    return data.StructLayout({
        "mode": Mode,
        "activation": unsigned(2),
        "bias_enable": unsigned(1),
        "causal": unsigned(1),
        "seq_len": unsigned(DIM_BITS),
        "embed": unsigned(DIM_BITS),
        "proj": unsigned(DIM_BITS),
        "ffn": unsigned(DIM_BITS),
        "valid_keys": unsigned(DIM_BITS),  # 0 means all S keys
        "logit_frac": unsigned(config.logit_frac_bits),  # ITAmax logit step ln 2 / 2**k
        "requant": data.ArrayLayout(RequantLayout, REQUANT_SETS),
        "gelu_b": signed(config.gelu_const_width),
        "gelu_c": signed(config.gelu_const_width),
        "act_requant": RequantLayout,
    })
