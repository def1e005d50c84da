"""Quantisation of real models for ITA arithmetic: calibration, the quantiser and the
integer model composed from :mod:`ita.golden` functions."""

from .calibration import (
    CALIBRATION_FILE,
    EVALUATION_FILE,
    EVALUATION_FILES,
    PAIRS_FILE,
    Calibration,
    calibrate,
    percentile_scale,
    read_pairs,
    read_sentences,
)
from .integer import (
    IntegerLayer,
    IntegerModel,
    IntegerResult,
    NormConstants,
    dequantise,
    embed_rows,
    layer_norm_rows,
    residual_add_rows,
    run,
)
from .quantiser import QuantError, QuantOptions, quantise

__all__ = [
    "CALIBRATION_FILE",
    "EVALUATION_FILE",
    "EVALUATION_FILES",
    "PAIRS_FILE",
    "Calibration",
    "IntegerLayer",
    "IntegerModel",
    "IntegerResult",
    "NormConstants",
    "QuantError",
    "QuantOptions",
    "calibrate",
    "dequantise",
    "embed_rows",
    "layer_norm_rows",
    "percentile_scale",
    "quantise",
    "read_pairs",
    "read_sentences",
    "residual_add_rows",
    "run",
]
