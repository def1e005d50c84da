"""Bit-exact numpy model of the engine's arithmetic: the contract the RTL must meet."""

from .arith import (
    ACTIVATIONS,
    AccumulatorOverflowError,
    activate,
    check_accumulator,
    i_gelu,
    i_gelu_poly,
    relu,
    requant,
)
from .layers import (
    ATTENTION_STEPS,
    AttentionResult,
    FFNResult,
    MultiHeadResult,
    attention_head,
    attention_mask,
    ffn,
    gemm_step,
    linear,
    multi_head_attention,
)
from .quant import REFERENCE_GELU, GeluConstants, gelu_constants, requant_constants
from .softmax import causal_mask, itamax, key_mask

__all__ = [
    "ACTIVATIONS",
    "ATTENTION_STEPS",
    "AccumulatorOverflowError",
    "AttentionResult",
    "FFNResult",
    "GeluConstants",
    "MultiHeadResult",
    "REFERENCE_GELU",
    "activate",
    "attention_head",
    "attention_mask",
    "causal_mask",
    "check_accumulator",
    "ffn",
    "gelu_constants",
    "gemm_step",
    "i_gelu",
    "i_gelu_poly",
    "itamax",
    "key_mask",
    "linear",
    "multi_head_attention",
    "relu",
    "requant",
    "requant_constants",
]
