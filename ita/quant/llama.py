"""Quantiser and integer reference of a Llama-family decoder for ITA arithmetic.

The integer model is the bit-exact contract for the cluster: every GEMM the engine can run is
an :mod:`ita.golden` step (Q, K, V per head, QK^T with the causal mask and ITAmax, A.V, O per
head, gate, up, down; int8 in, int8 out through the requantizer); RMSNorm, RoPE, SiLU x up,
the residual stream and the per-channel dequantisation are the cores' integer kernels of
:mod:`ita.golden.decoder`. Only the host's two ends are float: the embedding lookup (rows
times ``2**F``, rounded) and the logits' per-token scale.

What a real decoder needs (SmolLM2-135M, ``docs/decoder.md`` has the measurements):

* **per-output-channel weight scales on every GEMM.** The engine requantizes with one scalar
  per job, so each output column keeps its weight's scale; the cores undo it where they touch
  the values anyway (RoPE for Q/K, SiLU for gate/up, the residual add for O/down), and V's
  column scales fold into the rows of O's weights;
* **calibration without position 0**: the first token is an attention sink whose activations
  are hundreds of times larger than the others; its scales would waste every other token's
  bits. The residual's format still covers it;
* **decomposition** (:func:`ita.golden.decoder.decomposed_gemm`): activations beyond int8
  reach the engine clipped; the cores add the clipped excess and recompute saturated outputs,
  with int16 weight rows for the few input channels that calibration saw beyond int8 (one
  such input can carry a whole output: the sink's residual of 17,000 is cancelled to 3,000
  by one down projection). Since the cores repair what the scale clips, the wide tensors
  (GEMM inputs from the cores, GEMM outputs) take the 99.8th percentile, the tensors that stay
  int8 between engine steps (V, rotated Q/K, A.V) the 99.99th.

Reductions: Llama has no GEMM biases, so a job may reduce over
``ITAConfig.max_inner_without_bias`` (2047) inputs; SmolLM2's longest is 1536 (down), so no
GEMM is cut into chunks.

``python -m ita.quant.llama --positions N`` prints the EVAL line of the integer SmolLM2.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ita.config import DEFAULT_CONFIG, ITAConfig
from ita.golden import decoder as dec
from ita.golden import gemm_step, itamax, requant_constants
from ita.golden.quant import SOFTMAX_LOGIT_SCALE
from ita.golden.softmax import causal_mask
from ita.models import llama_reference as ref
from ita.models.ir import DecoderLayer, Model
from ita.models.llama import load_smollm2

from . import llama_eval
from .calibration import percentile_scale
from .quantiser import QuantError, logit_frac_for

__all__ = ["CALIBRATION_TEXT", "VARIANTS", "LlamaQuantOptions", "Gemm", "Norm",
           "IntegerDecoderLayer", "IntegerLlama", "IntegerCache", "IntegerOutput",
           "quantise", "embed", "empty_cache", "forward", "head", "candidate", "evaluate", "main"]

# English prose written for calibration; shares nothing with llama_eval.EVALUATION_TEXT.
CALIBRATION_TEXT = Path(__file__).parent / "data" / "llama_calibration.txt"

# The residual's int32 range holds this many times the calibrated maximum.
_RESIDUAL_MARGIN = 4
# Most input channels of a GEMM with fine weight rows (SmolLM2 has a handful per layer).
_FINE_ROWS = 16
# Bits of the per-channel fixed-point multipliers of the cores.
_MULT_BITS = 16
# ITAmax's probability of one: 65280 // 256 = 255 (a single key gets 255).
_PROB_ONE = DEFAULT_CONFIG.softmax_scalar // 256
_INT32 = (1 << 31) - 1


@dataclass(frozen=True)
class LlamaQuantOptions:
    """Calibration choices; the defaults are the recipe that works on SmolLM2.

    ``per_channel``: one weight scale per output column (False: one per job);
    ``decompose``: the cores correct clipped inputs and saturated outputs; ``skip_first``:
    position 0 stays out of the activation statistics; ``percentile`` of ``|x|`` maps to
    127 (100: the maximum); ``narrow_percentile`` serves the tensors that stay int8 (V,
    rotated Q/K, A.V: no core corrects them); ``smooth_alpha`` is SmoothQuant's migration
    strength for the GEMM inputs the cores produce (the norms, SiLU x up; None: none);
    ``logit_frac`` is the ITAmax logit step ln 2 / 2**logit_frac of the attention jobs
    (None: per query head, the finest step whose int8 range holds its calibrated logits).
    """

    per_channel: bool = True
    decompose: bool = True
    skip_first: bool = True
    percentile: float = 99.8
    narrow_percentile: float = 99.99
    smooth_alpha: float | None = None
    logit_frac: int | None = None


#: The study's steps, each adding one ingredient.
VARIANTS = {
    "naive": LlamaQuantOptions(per_channel=False, decompose=False, skip_first=False,
                               percentile=100.0, narrow_percentile=100.0, logit_frac=0),
    "per-channel": LlamaQuantOptions(decompose=False, skip_first=False, percentile=99.99,
                                     logit_frac=0),
    "decomposition": LlamaQuantOptions(skip_first=False, logit_frac=0),
    "best": LlamaQuantOptions(),
}


@dataclass(frozen=True)
class Gemm:
    """One engine job: int8 weights (K, N) and the requantizer's (mult, shift); ``fine``
    the cores' (rows, int16 weights) for the outlier input channels, or None."""

    w: np.ndarray
    rq: tuple
    fine: tuple | None = None


@dataclass(frozen=True)
class Norm:
    """Integer RMSNorm constants: per-column (mult, shift) and epsilon in LSB^2 * n."""

    mult: np.ndarray
    shift: np.ndarray
    eps: int


@dataclass(frozen=True)
class IntegerDecoderLayer:
    """Weights and constants of one decoder layer (int8 weights, integer constants).

    ``q_rope``/``k_rope`` are (mult, shift) arrays (heads, D) for :func:`ita.golden.decoder.
    rope`; ``o_add`` (mult, shift) arrays (H, E) and ``down_add`` (E,) bring the outputs to
    the residual's LSB; ``gated`` (gate_mult, gate_shift, out_mult, out_shift) of (F,).
    """

    norm1: Norm
    q: tuple             #: per query head
    k: tuple             #: per KV head
    v: tuple             #: per KV head
    q_rope: tuple
    k_rope: tuple
    rq_qk: tuple         #: per query head
    rq_av: tuple         #: per query head
    logit_frac: tuple    #: per query head, the QKAV job's ITAmax step ln 2 / 2**k
    o: tuple             #: per query head, V's column scales folded into the rows
    o_add: tuple
    norm2: Norm
    gate: Gemm
    up: Gemm
    gated: tuple
    down: Gemm
    down_add: tuple


@dataclass(frozen=True)
class IntegerLlama:
    """A quantised decoder. ``tokens`` is the float embedding (the host's lookup);
    ``residual_bits`` the fraction bits of the int32 residual; ``head_scale`` (V,) the real
    value of one unit of each integer logit."""

    name: str
    tokens: np.ndarray
    residual_bits: int
    layers: tuple
    head_norm: Norm
    head_w: np.ndarray
    head_scale: np.ndarray
    heads: int
    kv_heads: int
    head_dim: int
    rope_theta: float
    context: int | None
    options: LlamaQuantOptions = LlamaQuantOptions()
    config: ITAConfig = DEFAULT_CONFIG


@dataclass(frozen=True)
class IntegerCache:
    """int8 keys (after RoPE) and values per layer, (kv_heads, length, D) each."""

    keys: tuple
    values: tuple

    @property
    def length(self):
        return self.keys[0].shape[1] if self.keys else 0


@dataclass(frozen=True)
class IntegerOutput:
    """Integer logits (T, V) int64, the extended cache, the MACs of the layers by where they
    run, and those of the head (on the cores: the engine has no int32 output)."""

    logits: np.ndarray
    cache: IntegerCache
    count: dec.GemmCount = field(default_factory=dec.GemmCount)
    head_macs: int = 0


# --- calibration: the float model's intermediates --------------------------------------------


def _softmax(s):
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _float_layer(layer: DecoderLayer, x):
    """One float layer on a sequence (T, E) from position 0, as :mod:`ita.models.
    llama_reference` computes it, keeping every tensor that gets a scale."""
    att, ffn = layer.attention, layer.ffn
    T, H, KV, D = x.shape[0], att.heads, att.kv_heads, att.head_dim
    n1 = ref.rms_norm(x, layer.norm1)
    q, k, v = n1 @ att.wq, n1 @ att.wk, n1 @ att.wv
    cos, sin = ref.rope_tables(att.rope, np.arange(T))
    qr = ref.apply_rope(q.reshape(T, H, D).transpose(1, 0, 2), cos, sin)
    kr = ref.apply_rope(k.reshape(T, KV, D).transpose(1, 0, 2), cos, sin)
    G = H // KV
    scores = qr.reshape(KV, G, T, D) @ kr[:, None].swapaxes(-1, -2) / np.float32(np.sqrt(D))
    scores = np.where(causal_mask(T), scores, -np.inf)
    logit_max = np.abs(np.where(causal_mask(T), scores, 0)).reshape(H, T * T).max(axis=1)
    o = (_softmax(scores) @ v.reshape(T, KV, D).transpose(1, 0, 2)[:, None]).reshape(H, T, D)
    head_out = o @ att.wo.reshape(H, D, -1)
    x = x + head_out.sum(axis=0)
    n2 = ref.rms_norm(x, layer.norm2)
    g, u = n2 @ ffn.w_gate, n2 @ ffn.w_up
    h = g / (1.0 + np.exp(-g)) * u
    d = h @ ffn.w_down
    return x + d, dict(n1=n1, q=q, k=k, v=v, qr=qr, kr=kr, o=o, head_out=head_out, n2=n2,
                       g=g, u=u, h=h, d=d, mid=x, logit_max=logit_max)


# --- quantisation helpers --------------------------------------------------------------------


def _weight(w, per_channel):
    """int8 weights and their scale per column (the same for all when not per channel)."""
    top = np.abs(w).max(axis=0) if per_channel else np.full(w.shape[1], np.abs(w).max())
    scale = np.maximum(top, np.finfo(np.float32).tiny) / 127
    return np.clip(np.rint(w / scale), -127, 127).astype(np.int8), scale


def _requant(ratio, name):
    try:
        return requant_constants(float(ratio))
    except ValueError as error:
        raise QuantError(f"{name}: {error}") from None


def _multiplier(ratio, name):
    try:
        return dec.fixed_multiplier(ratio, _MULT_BITS)
    except ValueError as error:
        raise QuantError(f"{name}: {error}") from None


class _Quantiser:
    """Scales from the float statistics of the calibration rows."""

    def __init__(self, options):
        self.options = options

    def scale(self, values, narrow=False):
        """Real LSB that maps the percentile of ``|values|`` to 127; ``narrow`` tensors stay
        int8 (no wide excess) and take ``narrow_percentile``."""
        o = self.options
        return percentile_scale(values, o.narrow_percentile if narrow else o.percentile)

    def gemm(self, x_scale, w, y, name, narrow=False, x=None):
        """An engine job on inputs of scale ``x_scale`` (real per int unit, scalar or per
        input row of ``w``) whose float outputs are ``y``: the job and its output column
        scales (the realised requantizer, not the target). ``x``, the float inputs at every
        position, names the outlier channels that get fine weight rows."""
        scaled = np.asarray(x_scale, np.float64).reshape(-1, 1) * w
        w8, s_w = _weight(scaled, self.options.per_channel)
        acc_units = self.scale(y / s_w, narrow)   # accumulator units per int8 LSB
        mult, shift = _requant(1.0 / acc_units, name)
        fine = None
        if x is not None and self.options.decompose:
            top = np.abs(x / np.broadcast_to(x_scale, (x.shape[1],))).max(axis=0)
            largest = np.argsort(-top)[:_FINE_ROWS]
            rows = np.sort(largest[top[largest] > 127])      # beyond int8 at some position
            if rows.size:
                one = s_w / 2.0**dec.FINE_BITS
                fine = (rows, np.clip(np.rint(scaled[rows] / one), -32767, 32767)
                        .astype(np.int16))
        return Gemm(w=w8, rq=(mult, shift), fine=fine), s_w * 2.0**shift / mult

    def smoothing(self, x, w):
        """SmoothQuant factors (Xiao et al. 2023) per input channel of ``w`` (rows) from
        activations ``x`` (T, K): ``max|x_j|**alpha / max|w_j|**(1 - alpha)``, normalised to
        a geometric mean of 1. The cores apply them for free (their per-channel
        multipliers), the weights' rows take the inverse."""
        alpha = self.options.smooth_alpha
        if alpha is None:
            return np.ones(x.shape[1])
        tiny = np.finfo(np.float32).tiny
        a = np.maximum(np.abs(x).max(axis=0), tiny)
        b = np.maximum(np.abs(w).max(axis=1), tiny)
        factor = a**alpha / b ** (1.0 - alpha)
        return factor / np.exp(np.log(factor).mean())

    def norm(self, gamma, out_scale):
        """Constants of :func:`ita.golden.decoder.rms_norm` for an output at ``out_scale``;
        ``t`` has 15 fraction bits of ``x / sqrt(sum x^2) = x / (rms * sqrt(n))``."""
        n = gamma.shape[0]
        ratio = gamma * math.sqrt(n) / 2.0**dec.NORM_FRACTION_BITS / out_scale
        mult, shift = dec.fixed_multiplier(ratio, _MULT_BITS - 1)
        return mult, shift


def _rows(arrays, axis, skip_first):
    """Calibration rows of every sequence along ``axis`` (position 0 left out if asked)."""
    start = 1 if skip_first else 0
    picked = [np.take(a, np.arange(start, a.shape[axis]), axis=axis) for a in arrays]
    return np.concatenate(picked, axis=axis)


def _projection(q, s_in, w, y, rotated, D, name, x):
    """Per-head jobs of a Q, K or V projection, with the RoPE constants that take each
    head's columns to one int8 scale when ``rotated`` (its float values, heads first) is
    given; returns the jobs, the RoPE (mult, shift) pairs and the output scales (per head:
    rotated, else per column)."""
    jobs, rope_consts, scales = [], [], []
    for h in range(w.shape[1] // D):
        cols = slice(h * D, (h + 1) * D)
        job, s_out = q.gemm(s_in, w[:, cols], y[:, cols], f"{name}{h}", rotated is None, x)
        jobs.append(job)
        if rotated is None:
            scales.append(s_out)
            continue
        s_rot = q.scale(rotated[h], narrow=True)
        rope_consts.append(_multiplier(s_out / s_rot * 2.0**dec.ROPE_EXTRA_BITS,
                                       f"{name}{h} RoPE"))
        scales.append(s_rot)
    return jobs, rope_consts, scales


def quantise(model: Model, sequences, options: LlamaQuantOptions = LlamaQuantOptions(),
             config: ITAConfig = DEFAULT_CONFIG) -> IntegerLlama:
    """Integer constants for every step of ``model`` from token-id ``sequences``."""
    if model.family != "llama":
        raise QuantError(f"{model.name}: the decoder quantiser handles Llama models, not "
                         f"{model.family!r}")
    sequences = [np.asarray(s, np.int64) for s in sequences if len(s) > 1]
    if not sequences:
        raise QuantError("calibration needs a sequence of at least two tokens")
    q = _Quantiser(options)
    skip = options.skip_first
    if options.logit_frac is not None:
        config.exp_table(options.logit_frac)  # refuses a step the engine cannot take
    xs = [model.embedding.tokens[s].astype(np.float32) for s in sequences]
    residual_max = max(float(np.abs(x).max()) for x in xs)
    layers, pending = [], []
    for index, layer in enumerate(model.layers):
        name = f"layer {index}"
        att = layer.attention
        if att.rope is None or att.rope.interleaved or any(
                b is not None for b in (att.bq, att.bk, att.bv, att.bo)):
            raise QuantError(f"{name}: expected half-split RoPE and no biases")
        outs = [_float_layer(layer, x) for x in xs]
        xs = [o[0] for o in outs]
        tr = {k: [o[1][k] for o in outs] for k in outs[0][1]}
        logit_max = np.max(tr.pop("logit_max"), axis=0)
        residual_max = max(residual_max, *(float(np.abs(t).max()) for t in tr["mid"]),
                           *(float(np.abs(x).max()) for x in xs))
        H, KV, D = att.heads, att.kv_heads, att.head_dim
        G = H // KV
        rows = {k: _rows(tr[k], 1 if k in ("qr", "kr", "o", "head_out") else 0, skip)
                for k in tr}
        full = {k: _rows(tr[k], 0, False) for k in ("n1", "n2", "h")}

        sm1 = q.smoothing(rows["n1"], np.concatenate([att.wq, att.wk, att.wv], axis=1))
        s_n1 = q.scale(rows["n1"] / sm1)
        norm1 = q.norm(layer.norm1.gamma / sm1, s_n1)
        s_n1 = s_n1 * sm1                                  # per input channel

        q_jobs, q_rope, s_qr = _projection(q, s_n1, att.wq, rows["q"], rows["qr"], D,
                                           f"{name} Q", full["n1"])
        k_jobs, k_rope, s_kr = _projection(q, s_n1, att.wk, rows["k"], rows["kr"], D,
                                           f"{name} K", full["n1"])
        v_jobs, _, s_v = _projection(q, s_n1, att.wv, rows["v"], None, D, f"{name} V",
                                     full["n1"])
        rq_qk, rq_av, o_jobs, o_scales = [], [], [], []
        logit_frac = tuple(logit_frac_for(float(m), config) for m in logit_max) \
            if options.logit_frac is None else (options.logit_frac,) * H
        for h in range(H):
            g = h // G
            logit_step = SOFTMAX_LOGIT_SCALE / 2**logit_frac[h]
            rq_qk.append(_requant(s_qr[h] * s_kr[g] / math.sqrt(D) / logit_step,
                                  f"{name} QK{h}"))
            acc = s_v[g] / _PROB_ONE                       # per column of V
            mult, shift = _requant(1.0 / q.scale(rows["o"][h] / acc, narrow=True),
                                   f"{name} AV{h}")
            rq_av.append((mult, shift))
            s_o = acc * 2.0**shift / mult
            job, s_out = q.gemm(s_o, att.wo[h * D:(h + 1) * D], rows["head_out"][h],
                                f"{name} O{h}")
            o_jobs.append(job)
            o_scales.append(s_out)

        ffn = layer.ffn
        sm2 = q.smoothing(rows["n2"], np.concatenate([ffn.w_gate, ffn.w_up], axis=1))
        s_n2 = q.scale(rows["n2"] / sm2)
        norm2 = q.norm(layer.norm2.gamma / sm2, s_n2)
        s_n2 = s_n2 * sm2
        gate, s_g = q.gemm(s_n2, ffn.w_gate, rows["g"], f"{name} gate", x=full["n2"])
        up, s_u = q.gemm(s_n2, ffn.w_up, rows["u"], f"{name} up", x=full["n2"])
        sm_h = q.smoothing(rows["h"], ffn.w_down)
        s_h = q.scale(rows["h"] / sm_h) * sm_h
        gated = (*_multiplier(s_g * 2.0**dec.SILU_FRACTION_BITS, f"{name} SiLU"),
                 *_multiplier(s_u / 2.0**dec.SILU_FRACTION_BITS / s_h, f"{name} SiLU x up"))
        down, s_d = q.gemm(s_h, ffn.w_down, rows["d"], f"{name} down", x=full["h"])
        layers.append(dict(q=tuple(q_jobs), k=tuple(k_jobs), v=tuple(v_jobs),
                           q_rope=tuple(np.stack(c) for c in zip(*q_rope, strict=True)),
                           k_rope=tuple(np.stack(c) for c in zip(*k_rope, strict=True)),
                           rq_qk=tuple(rq_qk), rq_av=tuple(rq_av),
                           logit_frac=logit_frac, o=tuple(o_jobs),
                           gate=gate, up=up, gated=gated, down=down))
        pending.append((norm1, layer.norm1.eps, norm2, layer.norm2.eps, np.stack(o_scales),
                        s_d))

    head = model.head
    final = [ref.rms_norm(x, head.norm) for x in xs]
    s_f = q.scale(_rows(final, 0, skip))
    head_w, s_wh = _weight(head.weight, options.per_channel)
    # The residual's fraction bits: the calibrated maximum, sink included, with a margin.
    F = int(math.floor(math.log2(_INT32 / (_RESIDUAL_MARGIN * residual_max))))
    if not 0 <= F <= 30:
        raise QuantError(f"residual maximum {residual_max:g} gives {F} fraction bits")
    E = model.embed_dim

    def norm(consts, eps):
        return Norm(mult=consts[0], shift=consts[1], eps=int(round(eps * E * 4.0**F)))

    int_layers = []
    for consts, (n1, e1, n2, e2, s_o, s_d) in zip(layers, pending, strict=True):
        int_layers.append(IntegerDecoderLayer(
            norm1=norm(n1, e1), norm2=norm(n2, e2),
            o_add=_multiplier(s_o * 2.0**F, "O dequantisation"),
            down_add=_multiplier(s_d * 2.0**F, "down dequantisation"), **consts))
    att = model.layers[0].attention
    return IntegerLlama(
        name=model.name, tokens=model.embedding.tokens, residual_bits=F,
        layers=tuple(int_layers), head_norm=norm(q.norm(head.norm.gamma, s_f),
                                                 head.norm.eps),
        head_w=head_w, head_scale=(s_f * s_wh).astype(np.float64), heads=att.heads,
        kv_heads=att.kv_heads, head_dim=att.head_dim, rope_theta=att.rope.theta,
        context=model.hyper.get("context_length"), options=options, config=config)


# --- the integer model -----------------------------------------------------------------------


def embed(model: IntegerLlama, ids):
    """The host's part: the residual's int32 rows ``round(embedding * 2**F)``."""
    rows = np.asarray(model.tokens[ids], np.float64) * 2.0**model.residual_bits
    return np.clip(np.rint(rows), -_INT32 - 1, _INT32).astype(np.int64)


def empty_cache(model: IntegerLlama):
    """The cache before the first token."""
    empty = tuple(np.zeros((model.kv_heads, 0, model.head_dim), np.int8)
                  for _ in model.layers)
    return IntegerCache(keys=empty, values=empty)


def _norm(x, norm: Norm):
    return dec.rms_norm(x, norm.mult, norm.shift, norm.eps)


def _layer(m: IntegerLlama, L: IntegerDecoderLayer, x, cos, sin, past_k, past_v):
    """One integer layer on rows ``x`` (T, E) int32 after ``past_k.shape[1]`` cached ones."""
    opt, cfg = m.options, m.config
    T, H, KV, D = x.shape[0], m.heads, m.kv_heads, m.head_dim
    count = dec.GemmCount()

    def gemm(a, job, step):
        nonlocal count
        y, c = dec.decomposed_gemm(a, job.w, job.rq, fine=job.fine, decompose=opt.decompose,
                                   step=step, config=cfg)
        count += c
        return y

    n1 = _norm(x, L.norm1)
    q = np.stack([gemm(n1, j, "Q") for j in L.q])
    k = np.stack([gemm(n1, j, "K") for j in L.k])
    v = np.stack([dec.saturate(gemm(n1, j, "V"), 127) for j in L.v]).astype(np.int8)
    keys = np.concatenate([past_k, dec.rope(k, *L.k_rope, cos, sin)], axis=1)
    values = np.concatenate([past_v, v], axis=1)
    qr = dec.rope(q, *L.q_rope, cos, sin)
    past = past_k.shape[1]
    mask = causal_mask(T, past + T, offset=past)
    G = H // KV
    for h in range(H):
        g = h // G
        logits = gemm_step("QK", qr[h], keys[g].T, None, (*L.rq_qk[h], 0), cfg)
        probs = itamax(logits, cfg.N, mask, logit_frac=L.logit_frac[h], config=cfg)
        o = gemm_step("AV", probs, values[g], None, (*L.rq_av[h], 0), cfg)
        count += dec.GemmCount(engine=T * D * (past + T) * 2)
        x = dec.dequantise_add(x, gemm(o, L.o[h], "O"), L.o_add[0][h], L.o_add[1][h])
    n2 = _norm(x, L.norm2)
    h = dec.gated(gemm(n2, L.gate, "gate"), gemm(n2, L.up, "up"), *L.gated)
    x = dec.dequantise_add(x, gemm(h, L.down, "down"), *L.down_add)
    return x, keys, values, count


def forward(model: IntegerLlama, ids, cache: IntegerCache | None = None) -> IntegerOutput:
    """Integer logits of ``ids`` following the tokens in ``cache`` (None: empty): a prefill
    from an empty cache, a decoding step with one id; nothing is updated in place."""
    cache = empty_cache(model) if cache is None else cache
    ids = np.asarray(ids, np.int64).reshape(-1)
    if ids.size == 0:
        raise ValueError("no tokens to run")
    if ids.min() < 0 or ids.max() >= model.tokens.shape[0]:
        raise ValueError(f"a token id lies outside the vocabulary of {model.tokens.shape[0]}")
    positions = cache.length + np.arange(ids.size)
    if model.context is not None and positions[-1] >= model.context:
        raise ValueError(f"{positions[-1] + 1} tokens exceed the context of {model.context}")
    cos, sin = dec.rope_table(model.rope_theta, model.head_dim, positions)
    x = embed(model, ids)
    keys, values, count = [], [], dec.GemmCount()
    for L, pk, pv in zip(model.layers, cache.keys, cache.values, strict=True):
        x, k, v, c = _layer(model, L, x, cos, sin, pk, pv)
        keys.append(k)
        values.append(v)
        count += c
    logits = head(model, x)
    return IntegerOutput(logits=logits, cache=IntegerCache(tuple(keys), tuple(values)),
                         count=count, head_macs=x.size * model.head_w.shape[1])


def head(model: IntegerLlama, x):
    """The int64 logits of the last layer's int32 rows ``x``: the final RMSNorm, then the
    exact product with the int8 head rows."""
    f = _norm(np.asarray(x, np.int64), model.head_norm)
    if not model.options.decompose:
        f = np.clip(f, -128, 127)
    return np.rint(f.astype(np.float64) @ model.head_w.astype(np.float64)).astype(np.int64)


def candidate(model: IntegerLlama):
    """``ids -> (T, V)`` float logits of the integer model, for :mod:`ita.quant.llama_eval`."""
    def run(ids):
        return (forward(model, ids).logits * model.head_scale).astype(np.float32)
    return run


# --- command line ----------------------------------------------------------------------------


def _sequences(tokenizer, paragraphs, positions=None):
    """Token ids per paragraph, cut so that at most ``positions`` predictions remain."""
    out, left = [], positions
    for text in paragraphs:
        ids = tokenizer.encode(text)
        if left is not None:
            ids = ids[:left + 1]
            left -= max(len(ids) - 1, 0)
        if len(ids) > 1:
            out.append(ids)
        if left == 0:
            break
    return out


def evaluate(fmodel: Model, imodel: IntegerLlama, sequences):
    """:class:`ita.quant.llama_eval.Comparison` of the integer model on token sequences;
    also returns the layers' summed :class:`ita.golden.decoder.GemmCount` and the head's
    MACs."""
    refs, cands, targets, count, head = [], [], [], dec.GemmCount(), 0
    for ids in sequences:
        refs.append(ref.forward(fmodel, ids[:-1])[0])
        out = forward(imodel, ids[:-1])
        cands.append((out.logits * imodel.head_scale).astype(np.float32))
        targets.append(ids[1:])
        count += out.count
        head += out.head_macs
    return llama_eval.compare(np.concatenate(refs), np.concatenate(cands),
                              np.concatenate(targets)), count, head


def _command(args):
    if args.positions is not None and args.positions < 1:
        raise ValueError(f"--positions must be positive, got {args.positions}")
    if args.percentile is not None and not 50 < args.percentile <= 100:
        raise ValueError(f"--percentile must lie in (50, 100], got {args.percentile}")
    text = llama_eval.read_paragraphs(args.text)
    calibration = llama_eval.read_paragraphs(args.calibration)
    model = load_smollm2()
    options = VARIANTS[args.variant]
    if args.percentile is not None:
        options = replace(options, percentile=args.percentile)
    if args.logit_frac is not None:
        options = replace(options, logit_frac=None if args.logit_frac == "auto"
                          else args.logit_frac)
    imodel = quantise(model, _sequences(model.tokenizer, calibration), options)
    comparison, count, head = evaluate(model, imodel, _sequences(model.tokenizer, text,
                                                           args.positions))
    print(comparison.line("smollm2"))
    share = count.cores / max(count.engine + count.cores, 1)
    print(f"MACS variant={args.variant} engine={count.engine} decomposition={count.cores} "
          f"decomposition_share={share:.5f} head={head} clipped_inputs={count.clipped} "
          f"recomputed_outputs={count.recomputed} residual_bits={imodel.residual_bits}")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m ita.quant.llama",
                                     description="EVAL line of the integer SmolLM2 against "
                                                 "its float reference")
    parser.add_argument("--positions", type=int, help="at most this many positions "
                                                      "(default: the whole text)")
    parser.add_argument("--variant", choices=sorted(VARIANTS), default="best",
                        help="quantisation recipe (default best)")
    parser.add_argument("--percentile", type=float,
                        help="percentile of the wide activations' scales (default: the "
                             "variant's)")
    parser.add_argument("--text", type=Path, default=llama_eval.EVALUATION_TEXT,
                        help="evaluation paragraphs (default ita/quant/data/"
                             "llama_evaluation.txt)")
    parser.add_argument("--calibration", type=Path, default=CALIBRATION_TEXT,
                        help="calibration paragraphs (default ita/quant/data/"
                             "llama_calibration.txt)")
    parser.add_argument("--logit-frac", type=lambda v: "auto" if v == "auto" else int(v),
                        help="ITAmax logit step ln 2 / 2**K for every head, or 'auto': per "
                             "head the finest that holds its logits (default: the variant's)")
    args = parser.parse_args(argv)
    try:
        _command(args)
    except ValueError as exc:  # ModelError and QuantError included: one line
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())


def prefill_layer(model: IntegerLlama, index, x):
    """Layer ``index`` of a prefill on int32 residual rows ``x`` (positions 0 .. T-1, empty
    cache): ``(rows out, keys, values)``, the unit a compiled layer is checked against."""
    empty = np.zeros((model.kv_heads, 0, model.head_dim), np.int8)
    return cached_layer(model, index, x, empty, empty)


def cached_layer(model: IntegerLlama, index, x, keys, values):
    """Layer ``index`` on int32 rows ``x`` after the layer's cached ``keys`` and ``values``
    (kv_heads, past, D) int8 (positions past ..): ``(rows out, keys, values)`` extended by
    the new rows; a decoding step is one row."""
    x = np.asarray(x, np.int64)
    past = keys.shape[1]
    cos, sin = dec.rope_table(model.rope_theta, model.head_dim, past + np.arange(x.shape[0]))
    out, keys, values, _ = _layer(model, model.layers[index], x, cos, sin, keys, values)
    return out, keys, values
