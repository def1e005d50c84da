"""Constrained-random engine jobs: specification, constraints, golden vectors, classification.

A :class:`JobSpec` is everything that varies between engine jobs: mode, shapes, activation,
masks, the eight requantization sets plus the activation's, i-GELU constants, the data
distribution and the stall profile the streams use while the job runs. :func:`random_spec`
draws one under the constraints below; :func:`build_job` turns it into the ``EngineJob`` and
``TensorMemory`` of :mod:`ita.rtl.job` with golden results from :mod:`ita.golden`.

Constraints (shapes in units of the tile edge M):

* ``one_tile``: every dimension the mode uses equals M;
* ``multi_tile``: every used dimension is M or 2M, at least one is 2M;
* ``padded``: used dimensions in 1 .. 2.5 M, at least one not a multiple of M (a quarter of
  the draws include a dimension smaller than N);
* masks (attention, single attention): ``valid_keys`` in 1 .. S-1, causal, or both;
* requantization per step: ``typical`` (the reference generator's shift +-1), ``saturate``
  (2-5 bits less shift and a random offset: clips at -128 and 127), ``quiet`` (4-7 bits more
  shift, and for AV at least log2(255 mult): stays inside the int8 range), plus corner draws
  of shift 0, shifts 24..255, mult 0 and 255, add -128 and 127;
* data: ``cauchy`` (the reference's heavy-tailed generator), ``uniform`` int8, ``extreme``
  (only -128 and 127: the accumulator's worst case), ``small`` (-3..3), ``constant`` (one
  value per tensor: all-equal softmax rows).

Coverage closure: :func:`target_bins` enumerates the cross bins of a mode (shape class x
stall profile x saturation x activation or mask kind) in a fixed shuffled order, and job
``j`` of seed ``s`` aims at bin ``(s - 1) * jobs + j``; seeds 1..n thus walk through
different bins instead of re-drawing the common ones.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field, replace

import numpy as np

from ita.config import DEFAULT_CONFIG, ITAConfig
from ita.golden import REFERENCE_GELU, ffn, gelu_constants, multi_head_attention
from ita.golden.quant import reference_requant_shift
from ita.golden.vectors import LayerShape, generate
from ita.rtl.job import MODE_NAMES, EngineJob, TensorMemory, job_from_vectors
from ita.rtl.layouts import ErrorCode, Mode

__all__ = ["MODES", "SHAPE_CLASSES", "STALL_PROFILES", "MASK_KINDS", "ACTIVATIONS",
           "DATA_KINDS", "JobSpec", "random_spec", "build_job", "target_bins", "shape_class",
           "mask_kind", "used_dims", "illegal_spec", "ILLEGAL_KINDS", "spec_for_bin",
           "activation_bin", "config_fields", "illegal_job", "NOT_APPLICABLE"]

MODES = ("attention", "qkav", "ffn", "linear")
SHAPE_CLASSES = ("one_tile", "multi_tile", "padded")
STALL_PROFILES = ("none", "random", "bursty", "long")
MASK_KINDS = ("none", "valid_keys", "causal", "causal_valid_keys")
ACTIVATIONS = ("identity", "gelu", "relu")
DATA_KINDS = ("cauchy", "uniform", "extreme", "small", "constant")
NOT_APPLICABLE = "n/a"

#: Which dimensions each mode uses.
MODE_DIMS = {"attention": ("S", "E", "P"), "qkav": ("S", "P"), "ffn": ("S", "E", "F"),
             "linear": ("S", "E", "P")}
#: Requantization sets each mode uses (index into the 8 sets) and the reference generator's
#: extra bits for the shift, per set.
MODE_SETS = {"attention": (0, 1, 2, 3, 4, 5), "qkav": (0, 1, 2, 3, 4), "ffn": (6, 7),
             "linear": (0,)}
EXTRA_BITS = (9, 9, 9, 8, 5, 9, 9, 9)


@dataclass(frozen=True)
class JobSpec:
    """One engine job before its data is drawn."""

    mode: str
    S: int
    E: int = 0
    P: int = 0
    F: int = 0
    activation: str = "identity"
    bias: bool = True
    causal: bool = False
    valid_keys: int | None = None
    requant: tuple = ((1, 0, 0),) * 8
    act_requant: tuple = (1, 0, 0)
    gelu: tuple = (REFERENCE_GELU.b, REFERENCE_GELU.c)
    data: str = "cauchy"
    stall: str = "none"
    sat_target: bool | None = None
    requant_kind: str = "typical"
    #: cycles after the job's start at which ``clear`` aborts it (None: runs to the end)
    clear_at: int | None = None
    #: the error code an illegal configuration must raise (None: a legal job)
    expect_error: int | None = None
    #: raw config fields that override the legal ones (illegal configurations)
    raw_fields: dict = field(default_factory=dict)
    label: str = ""
    logit_frac: int = 0  #: ITAmax logit step (attention modes)

    @property
    def dims(self) -> dict:
        return {d: getattr(self, d) for d in MODE_DIMS[self.mode]}

    def describe(self) -> str:
        dims = " ".join(f"{k}={v}" for k, v in self.dims.items())
        extra = [f"act={self.activation}" if self.mode in ("ffn", "linear") else
                 f"mask={mask_kind(self)}", f"data={self.data}", f"rq={self.requant_kind}",
                 f"stall={self.stall}", f"bias={int(self.bias)}"]
        if self.logit_frac:
            extra.append(f"logit_frac={self.logit_frac}")
        if self.clear_at is not None:
            extra.append(f"clear_at={self.clear_at}")
        if self.expect_error is not None:
            extra.append(f"expect_error={ErrorCode(self.expect_error).name}")
        return f"{self.mode} {dims} " + " ".join(extra)


def used_dims(spec: JobSpec) -> dict:
    return spec.dims


def shape_class(spec: JobSpec, config: ITAConfig = DEFAULT_CONFIG) -> str:
    dims = list(spec.dims.values())
    m = config.M
    if any(d % m for d in dims):
        return "padded"
    return "one_tile" if all(d == m for d in dims) else "multi_tile"


def mask_kind(spec: JobSpec) -> str:
    if spec.mode not in ("attention", "qkav"):
        return NOT_APPLICABLE
    vk = spec.valid_keys is not None and spec.valid_keys < spec.S
    if spec.causal:
        return "causal_valid_keys" if vk else "causal"
    return "valid_keys" if vk else "none"


def activation_bin(spec: JobSpec) -> str:
    return spec.activation if spec.mode in ("ffn", "linear") else NOT_APPLICABLE


def target_bins(mode: str) -> list[tuple]:
    """The cross bins of ``mode`` (shape, stall, saturated, activation, mask), shuffled."""
    if mode in ("ffn", "linear"):
        kinds = [(a, NOT_APPLICABLE) for a in ACTIVATIONS]
    else:
        kinds = [(NOT_APPLICABLE, k) for k in MASK_KINDS]
    bins = [(shape, stall, sat, act, mask) for shape, stall, sat, (act, mask)
            in itertools.product(SHAPE_CLASSES, STALL_PROFILES, (True, False), kinds)]
    random.Random(f"engine-cross-{mode}").shuffle(bins)
    return bins


# --- drawing ------------------------------------------------------------------------------------


def _draw_dims(rng: random.Random, mode: str, shape: str, config: ITAConfig) -> dict:
    m, n = config.M, config.N
    names = MODE_DIMS[mode]
    if shape == "one_tile":
        dims = dict.fromkeys(names, m)
    elif shape == "multi_tile":
        dims = {d: rng.choice((m, 2 * m)) for d in names}
        if all(v == m for v in dims.values()):
            dims[rng.choice(names)] = 2 * m
    else:
        tiny = rng.random() < 0.25
        dims = {}
        for d in names:
            if tiny and rng.random() < 0.5:
                dims[d] = rng.randint(1, max(1, n - 1))
            else:
                dims[d] = rng.randint(1, 2 * m + m // 2)
        if all(v % m == 0 for v in dims.values()):
            d = rng.choice(names)
            dims[d] = max(1, dims[d] - rng.randint(1, m - 1))
    return dims


def _requant_set(rng: random.Random, inner: int, extra_bits: int, kind: str) -> tuple:
    mult = rng.randint(32, 255)
    base = max(0, reference_requant_shift(mult, max(inner, 1), extra_bits))
    add = 0
    if kind == "saturate":
        shift = max(0, base - rng.randint(2, 5))
        add = rng.choice((0, rng.randint(-64, 64)))
    elif kind == "quiet":
        shift = base + rng.randint(4, 7)
        if extra_bits == 5:  # AV: a one-hot probability row passes 255 * v through
            shift = max(shift, (mult * 255).bit_length())
    elif kind == "corner":
        choice = rng.choice(("shift0", "large", "mult0", "mult255", "add_min", "add_max"))
        shift = base + rng.randint(-1, 1)
        if choice == "shift0":
            shift, mult = 0, rng.randint(1, 4)
        elif choice == "large":
            shift = rng.choice((24, 25, 31, 32, 33, 34, 35, 40, 62, 63, 64, 100, 200, 255))
        elif choice == "mult0":
            mult = 0
        elif choice == "mult255":
            mult = 255
        elif choice == "add_min":
            add = -128
        else:
            add = 127
        if rng.random() < 0.3:
            add = rng.randint(-128, 127)
    else:
        shift = max(0, base + rng.randint(-1, 1))
        if rng.random() < 0.25:
            add = rng.randint(-16, 16)
    return (mult, max(0, min(255, shift)), add)


def _requant_sets(rng, mode, dims, kind):
    S, E, P, F = (dims.get(d, 1) for d in "SEPF")
    inner = {0: E, 1: E, 2: E, 3: P, 4: S, 5: P, 6: E, 7: F}
    sets = []
    for index in range(8):
        if index in MODE_SETS[mode]:
            sets.append(_requant_set(rng, inner[index], EXTRA_BITS[index], kind))
        else:
            sets.append((1, 0, 0))
    return tuple(sets)


def _activation_constants(rng, activation, kind):
    gelu = (REFERENCE_GELU.b, REFERENCE_GELU.c)
    if activation == "gelu":
        act_rq = REFERENCE_GELU.act_rq
        if rng.random() < 0.5:
            try:
                g = gelu_constants(rng.uniform(1 / 80, 1 / 4), shift=None)
                gelu, act_rq = (g.b, g.c), g.act_rq
            except ValueError:
                pass
        if kind == "saturate":
            act_rq = (act_rq[0], max(0, act_rq[1] - rng.randint(3, 6)), rng.randint(-32, 32))
        elif kind == "corner" or rng.random() < 0.2:
            act_rq = (act_rq[0], act_rq[1], rng.randint(-32, 32))
        return gelu, tuple(act_rq)
    if activation == "relu":
        if kind == "saturate":
            return gelu, (rng.randint(2, 255), rng.randint(0, 2), rng.randint(-8, 8))
        if kind == "quiet":
            return gelu, (1, rng.randint(1, 3), 0)
        return gelu, rng.choice(((1, 0, 0), (rng.randint(1, 255), rng.randint(0, 8),
                                              rng.randint(-4, 4))))
    return gelu, (1, 0, 0)


def random_spec(rng: random.Random, mode: str, config: ITAConfig = DEFAULT_CONFIG, *,
                shape: str | None = None, stall: str | None = None, saturate: bool | None = None,
                activation: str | None = None, mask: str | None = None,
                requant_kind: str | None = None, data: str | None = None,
                bias: bool | None = None) -> JobSpec:
    """A job of ``mode``; every keyword left None is drawn at random."""
    shape = shape or rng.choice(SHAPE_CLASSES)
    dims = _draw_dims(rng, mode, shape, config)
    if requant_kind is None:
        if saturate is None:
            requant_kind = rng.choice(("typical", "typical", "saturate", "quiet", "corner"))
        else:
            requant_kind = "saturate" if saturate else "quiet"
    if data is None:
        if saturate is None:
            data = rng.choice(DATA_KINDS[:4])
        elif saturate:
            data = rng.choice(("cauchy", "uniform", "extreme"))
        else:
            data = rng.choice(("small", "small", "cauchy", "uniform"))
    activation = activation or (rng.choice(ACTIVATIONS) if mode in ("ffn", "linear")
                                else "identity")
    causal, valid_keys = False, None
    if mode in ("attention", "qkav"):
        mask = mask or rng.choice(MASK_KINDS)
        if "valid_keys" in mask:
            if dims["S"] < 2:
                dims["S"] = rng.randint(2, config.M)
            valid_keys = rng.randint(1, dims["S"] - 1)
        causal = mask.startswith("causal")
    gelu, act_rq = _activation_constants(rng, activation, requant_kind)
    return JobSpec(
        mode=mode, **dims, activation=activation,
        bias=rng.random() < 0.8 if bias is None else bias, causal=causal, valid_keys=valid_keys,
        requant=_requant_sets(rng, mode, dims, requant_kind), act_requant=act_rq, gelu=gelu,
        data=data, stall=stall or rng.choice(STALL_PROFILES), sat_target=saturate,
        requant_kind=requant_kind,
        logit_frac=rng.randint(0, config.logit_frac_max) if mode in ("attention", "qkav")
        else 0)


def spec_for_bin(rng, mode, bin_, config=DEFAULT_CONFIG) -> JobSpec:
    """A random job aimed at one cross bin from :func:`target_bins`."""
    shape, stall, sat, act, mask = bin_
    return random_spec(rng, mode, config, shape=shape, stall=stall, saturate=sat,
                       activation=None if act == NOT_APPLICABLE else act,
                       mask=None if mask == NOT_APPLICABLE else mask)


# --- illegal configurations ---------------------------------------------------------------------

ILLEGAL_KINDS = ("zero_dimension", "dimension_too_large", "bad_valid_keys", "bad_activation")


def illegal_spec(rng: random.Random, kind: str, config: ITAConfig = DEFAULT_CONFIG,
                 mode: str | None = None) -> JobSpec:
    """A configuration of ``mode`` (random if None) the engine must refuse with the matching
    error code."""
    mode = mode or rng.choice(MODES)
    base = random_spec(rng, mode, config, shape="one_tile", stall="none")
    dims = list(base.dims)
    fields = {}
    if kind == "zero_dimension":
        fields[rng.choice(dims)] = 0
        code = ErrorCode.ZERO_DIMENSION
    elif kind == "dimension_too_large":
        inner = rng.choice([d for d in dims if d != "S"] or ["S"])
        fields[inner] = rng.choice((config.max_inner_with_bias + 1, 4000, 65535))
        if mode in ("attention", "qkav") and rng.random() < 0.5:
            fields = {"S": config.max_keys + rng.randint(1, 100)}
        code = ErrorCode.DIMENSION_TOO_LARGE
    elif kind == "bad_valid_keys":
        fields["valid_keys"] = base.S + rng.randint(1, 50)
        code = ErrorCode.BAD_VALID_KEYS
    elif kind == "bad_activation":
        fields["activation"] = 3
        code = ErrorCode.BAD_ACTIVATION
    else:
        raise ValueError(kind)
    return replace(base, expect_error=int(code), raw_fields=fields, label=f"illegal:{kind}")


# --- vectors ------------------------------------------------------------------------------------


def _data(np_rng, kind, shape, fallback):
    if kind == "cauchy":
        return fallback
    if kind == "uniform":
        return np_rng.integers(-128, 128, size=shape, dtype=np.int64).astype(np.int8)
    if kind == "extreme":
        return np_rng.choice(np.array([-128, 127], dtype=np.int8), size=shape)
    if kind == "constant":
        return np.full(shape, np_rng.integers(-128, 128), dtype=np.int8)
    return np_rng.integers(-3, 4, size=shape, dtype=np.int64).astype(np.int8)


def build_job(spec: JobSpec, seed: int, config: ITAConfig = DEFAULT_CONFIG
              ) -> tuple[EngineJob, TensorMemory]:
    """Draw the data of ``spec`` from ``seed`` and run the golden model on it."""
    dims = {"S": spec.S, "E": spec.E or 16, "P": spec.P or 16, "F": spec.F or 16}
    shape = LayerShape(**dims, H=1, activation=spec.activation, bias=spec.bias,
                       causal=spec.causal, valid_keys=spec.valid_keys)
    v = generate(shape, seed, config)
    np_rng = np.random.default_rng([seed, 1])
    for key in ("q_in", "kv_in", "wq", "wk", "wv", "wo", "ff_in", "w1", "w2"):
        v[key] = _data(np_rng, spec.data, v[key].shape, v[key])
    rq = np.asarray(spec.requant, dtype=np.int32)
    v["rq_attn"] = rq[None, :6]
    v["rq_ffn"] = rq[6:8]
    v["gelu_b"], v["gelu_c"] = np.int32(spec.gelu[0]), np.int32(spec.gelu[1])
    v["act_rq"] = np.asarray(spec.act_requant, dtype=np.int32)
    v["logit_frac"] = np.int32(spec.logit_frac)
    attn = multi_head_attention(v["q_in"], v["kv_in"], v["wq"], v["wk"], v["wv"], v["wo"],
                                v["bq"], v["bk"], v["bv"], v["bo"], rq=v["rq_attn"],
                                rq_sum=v["rq_sum"], causal=spec.causal,
                                valid_keys=spec.valid_keys, logit_frac=spec.logit_frac,
                                config=config)
    ff = ffn(v["ff_in"], v["w1"], v["b1"], v["w2"], v["b2"], rq=v["rq_ffn"],
             activation=spec.activation, gelu_b=spec.gelu[0], gelu_c=spec.gelu[1],
             act_rq=v["act_rq"], config=config)
    for key in ("qp", "kp", "vp", "a", "a_soft", "o", "out", "out_sum"):
        v[key] = getattr(attn, key)
    v["f1"], v["f2"] = ff.f1, ff.f2
    job, memory = job_from_vectors(spec.mode, v, config=config)
    if job.bias != spec.bias:  # job_from_vectors infers bias from the data
        job = replace(job, bias=spec.bias)
    return job, memory


def config_fields(spec: JobSpec, job: EngineJob | None) -> dict:
    """The engine's config fields for ``spec`` (raw overrides applied for illegal ones)."""
    fields = job.config_fields() if job is not None else {}
    mapping = {"S": "seq_len", "E": "embed", "P": "proj", "F": "ffn"}
    for key, value in spec.raw_fields.items():
        fields[mapping.get(key, key)] = value
    return fields


def illegal_job(spec: JobSpec) -> EngineJob:
    """An EngineJob carrying the legal part of an illegal spec (no data is needed)."""
    return EngineJob(Mode(MODE_NAMES[spec.mode]), spec.S, spec.E, spec.P, spec.F,
                     activation=spec.activation, bias=spec.bias, causal=spec.causal,
                     valid_keys=spec.valid_keys, requant=spec.requant, gelu_b=spec.gelu[0],
                     gelu_c=spec.gelu[1], act_requant=spec.act_requant,
                     logit_frac=spec.logit_frac)
