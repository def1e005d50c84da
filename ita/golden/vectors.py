"""Random test vectors for a whole layer set and their export.

:func:`generate` draws inputs, weights, biases and constants from one
``numpy.random.Generator`` seeded per call (never the global RNG) and runs the golden
model on them. :func:`write` stores the arrays in a byte-reproducible ``vectors.npz`` and
describes every tensor in ``manifest.json`` (shape, dtype, role) so harnesses need no
file-name conventions of their own.
"""

import io
import json
import math
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ita.config import DEFAULT_CONFIG, ITAConfig

from .arith import ACTIVATIONS
from .layers import ffn, multi_head_attention
from .quant import REFERENCE_GELU, reference_requant_shift

__all__ = ["LayerShape", "generate", "write", "INPUT_KEYS", "OUTPUT_KEYS", "FORMAT"]

FORMAT = "ita-vectors/1"

INPUT_KEYS = ("q_in", "kv_in", "wq", "wk", "wv", "wo", "bq", "bk", "bv", "bo", "ff_in", "w1",
              "b1", "w2", "b2", "rq_attn", "rq_ffn", "rq_sum", "gelu_b", "gelu_c", "act_rq",
              "activation", "causal", "valid_keys", "logit_frac")
OUTPUT_KEYS = ("qp", "kp", "vp", "a", "a_soft", "o", "out", "out_sum", "f1", "f2")


@dataclass(frozen=True)
class LayerShape:
    """Sizes of one attention + feed-forward layer set and its options."""

    S: int = 64
    E: int = 64
    P: int = 64
    F: int = 64
    H: int = 1
    activation: str = "gelu"
    bias: bool = True
    causal: bool = False
    valid_keys: int | None = None
    logit_frac: int = 0

    def validate(self, config: ITAConfig = DEFAULT_CONFIG):
        """Raise ValueError naming the first size the hardware cannot compute exactly."""
        for name in ("S", "E", "P", "F", "H"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}; expected one of "
                             f"{', '.join(ACTIVATIONS)}")
        inner = config.max_inner_with_bias
        for name in ("E", "P", "F"):
            if getattr(self, name) > inner:
                raise ValueError(
                    f"{name}={getattr(self, name)} can overflow the {config.acc_width}-bit "
                    f"accumulator (at most {inner} int8 products plus a 24-bit bias fit)")
        if self.S > config.max_keys:
            raise ValueError(f"S={self.S} can overflow the {config.softmax_sum_width}-bit "
                             f"softmax sum (at most {config.max_keys} keys)")
        if self.valid_keys is not None and not 1 <= self.valid_keys <= self.S:
            raise ValueError(f"valid_keys must be in 1..S={self.S}, got {self.valid_keys}")
        config.exp_table(self.logit_frac)  # a step the engine takes


def _cauchy(rng, shape, bits, dtype):
    """Heavy-tailed integers like the reference generator's: many small, some saturated."""
    top = 2 ** (bits - 1)
    values = np.clip(rng.standard_cauchy(shape) * top / 4, -top, top - 1)
    return values.astype(dtype)


def _rq_set(rng, inner, extra_bits):
    mult = int(rng.integers(64, 127))
    return [mult, max(0, reference_requant_shift(mult, inner, extra_bits)), 0]


def generate(shape: LayerShape, seed: int, config: ITAConfig = DEFAULT_CONFIG):
    """Draw a layer set for ``shape`` with ``seed`` and run the golden model on it."""
    shape.validate(config)
    rng = np.random.default_rng(seed)
    S, E, P, F, H = shape.S, shape.E, shape.P, shape.F, shape.H

    def bias(shape_, inner):
        if not shape.bias:
            return np.zeros(shape_, dtype=np.int32)
        bits = min(int(math.log2(inner)) + 8, config.bias_width)
        return _cauchy(rng, shape_, bits, np.int32)

    v = {
        "q_in": _cauchy(rng, (S, E), 8, np.int8),
        "kv_in": _cauchy(rng, (S, E), 8, np.int8),
        "wq": _cauchy(rng, (H, E, P), 8, np.int8),
        "wk": _cauchy(rng, (H, E, P), 8, np.int8),
        "wv": _cauchy(rng, (H, E, P), 8, np.int8),
        "wo": _cauchy(rng, (H, P, E), 8, np.int8),
        "bq": bias((H, P), P),
        "bk": bias((H, P), P),
        "bv": bias((H, P), P),
        "bo": bias((H, E), E),
        "ff_in": _cauchy(rng, (S, E), 8, np.int8),
        "w1": _cauchy(rng, (E, F), 8, np.int8),
        "b1": bias((F,), F),
        "w2": _cauchy(rng, (F, E), 8, np.int8),
        "b2": bias((E,), E),
    }
    v["rq_attn"] = np.array([[_rq_set(rng, E, 9), _rq_set(rng, E, 9), _rq_set(rng, E, 9),
                              _rq_set(rng, P, 8), _rq_set(rng, S, 5), _rq_set(rng, E, 9)]
                             for _ in range(H)], dtype=np.int32)
    v["rq_ffn"] = np.array([_rq_set(rng, E, 9), _rq_set(rng, F, 9)], dtype=np.int32)
    v["rq_sum"] = np.array(_rq_set(rng, H, 7), dtype=np.int32)
    gelu = REFERENCE_GELU
    v["gelu_b"], v["gelu_c"] = np.int32(gelu.b), np.int32(gelu.c)
    v["act_rq"] = np.array(gelu.act_rq if shape.activation == "gelu" else (1, 0, 0),
                           dtype=np.int32)
    v["activation"] = np.str_(shape.activation)
    v["causal"] = np.bool_(shape.causal)
    v["valid_keys"] = np.int32(S if shape.valid_keys is None else shape.valid_keys)
    v["logit_frac"] = np.int32(shape.logit_frac)

    attn = multi_head_attention(v["q_in"], v["kv_in"], v["wq"], v["wk"], v["wv"], v["wo"],
                                v["bq"], v["bk"], v["bv"], v["bo"], rq=v["rq_attn"],
                                rq_sum=v["rq_sum"], causal=shape.causal,
                                valid_keys=shape.valid_keys, logit_frac=shape.logit_frac,
                                config=config)
    ff = ffn(v["ff_in"], v["w1"], v["b1"], v["w2"], v["b2"], rq=v["rq_ffn"],
             activation=shape.activation, gelu_b=gelu.b, gelu_c=gelu.c, act_rq=v["act_rq"],
             config=config)
    for key in ("qp", "kp", "vp", "a", "a_soft", "o", "out", "out_sum"):
        v[key] = getattr(attn, key)
    v["f1"], v["f2"] = ff.f1, ff.f2
    return v


def write(vectors, out_dir, *, shape: LayerShape, seed: int,
          config: ITAConfig = DEFAULT_CONFIG):
    """Write ``vectors.npz`` and ``manifest.json`` into ``out_dir``; return both paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    npz_path, manifest_path = out_dir / "vectors.npz", out_dir / "manifest.json"
    # A fixed timestamp per entry keeps the archive identical for identical contents.
    with zipfile.ZipFile(npz_path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for key in INPUT_KEYS + OUTPUT_KEYS:
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.asarray(vectors[key]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, buffer.getvalue())
    manifest = {
        "format": FORMAT,
        "seed": seed,
        "shape": asdict(shape),
        "config": asdict(config),
        "file": npz_path.name,
        "tensors": {key: {"role": "input" if key in INPUT_KEYS else "output",
                          "shape": list(np.shape(vectors[key])),
                          "dtype": str(np.asarray(vectors[key]).dtype)}
                    for key in INPUT_KEYS + OUTPUT_KEYS},
    }
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    return npz_path, manifest_path
