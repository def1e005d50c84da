"""Float reference forward of a decoder :class:`~ita.models.ir.Model` (Llama family), numpy.

This is what the integer model is measured against, so it follows the Hugging Face
computation step by step in float32 (RMSNorm, RoPE, grouped-query attention with the causal
mask, SiLU-gated FFN, final norm and head) and does nothing clever.

One code path serves the prompt and the generated tokens: :func:`forward` runs ``n`` new
tokens at positions ``cache.length ..`` against the keys and values already in the
:class:`KVCache` and returns the cache extended by them. A prefill is ``forward`` from an
empty cache; a decoding step is ``forward`` of one token. Nothing is updated in place.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ita.models.ir import DecoderLayer

__all__ = ["KVCache", "empty_cache", "rms_norm", "rope_tables", "apply_rope", "forward",
           "generate"]


@dataclass(frozen=True)
class KVCache:
    """Keys (after RoPE) and values of every layer for positions ``0 .. length - 1``: one
    ``(kv_heads, length, head_dim)`` float32 array per layer in each tuple."""

    keys: tuple
    values: tuple

    @property
    def length(self):
        return self.keys[0].shape[1] if self.keys else 0


def empty_cache(model):
    """The cache before the first token."""
    shapes = [(layer.attention.kv_heads, 0, layer.attention.head_dim) for layer in model.layers]
    empty = tuple(np.zeros(s, np.float32) for s in shapes)
    return KVCache(keys=empty, values=empty)


def rms_norm(x, norm):
    """``x / sqrt(mean(x^2) + eps) * gamma`` over the last axis."""
    scale = 1.0 / np.sqrt(np.mean(np.square(x), axis=-1, keepdims=True) + np.float32(norm.eps))
    return (x * scale * norm.gamma).astype(np.float32)


def rope_tables(rope, positions):
    """``cos``, ``sin`` of shape ``(len(positions), head_dim / 2)``: angle ``p * theta^(-2i/D)``
    for pair ``i``. The angles are formed in float64 so that long positions stay exact."""
    D = rope.head_dim
    inv_freq = rope.theta ** (-np.arange(0, D, 2, dtype=np.float64) / D)
    angles = np.asarray(positions, np.float64)[:, None] * inv_freq[None, :]
    return np.cos(angles).astype(np.float32), np.sin(angles).astype(np.float32)


def apply_rope(x, cos, sin, interleaved=False):
    """Rotate ``x`` of shape ``(heads, T, D)``; pair ``i`` is ``(i, i + D/2)`` (half split) or
    ``(2i, 2i + 1)`` when ``interleaved``."""
    if interleaved:
        a, b = x[..., 0::2], x[..., 1::2]
    else:
        a, b = np.split(x, 2, axis=-1)
    ra, rb = a * cos - b * sin, a * sin + b * cos
    if interleaved:
        return np.stack([ra, rb], axis=-1).reshape(x.shape)
    return np.concatenate([ra, rb], axis=-1)


def _softmax(s):
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _attention(att, x, positions, past_k, past_v):
    """Output rows for ``x`` (T, E) at ``positions`` and this layer's extended K/V."""
    T, H, KV, D = x.shape[0], att.heads, att.kv_heads, att.head_dim

    def project(w, b, heads):
        y = x @ w if b is None else x @ w + b
        return y.reshape(T, heads, D).transpose(1, 0, 2)

    q, k, v = project(att.wq, att.bq, H), project(att.wk, att.bk, KV), project(att.wv, att.bv, KV)
    if att.rope is not None:
        cos, sin = rope_tables(att.rope, positions)
        q = apply_rope(q, cos, sin, att.rope.interleaved)
        k = apply_rope(k, cos, sin, att.rope.interleaved)
    keys = np.concatenate([past_k, k], axis=1)
    values = np.concatenate([past_v, v], axis=1)
    # Query head h reads KV head h // G: group the query heads under their KV head.
    G = H // KV
    scores = q.reshape(KV, G, T, D) @ keys[:, None].swapaxes(-1, -2) / np.float32(np.sqrt(D))
    if att.causal:
        key_pos = np.arange(keys.shape[1])
        scores = np.where(key_pos[None, :] > positions[:, None], -np.inf, scores)
    out = (_softmax(scores) @ values[:, None]).reshape(H, T, D).transpose(1, 0, 2)
    y = out.reshape(T, H * D) @ att.wo
    return (y if att.bo is None else y + att.bo), keys, values


def _ffn(ffn, x):
    gate = x @ ffn.w_gate
    return ((gate / (1.0 + np.exp(-gate))) * (x @ ffn.w_up)) @ ffn.w_down


def forward(model, ids, cache=None, *, all_logits=True):
    """Logits for the tokens ``ids`` following the ones in ``cache`` (None: an empty cache),
    and the extended cache.

    Returns ``(logits, cache)``; logits are ``(len(ids), V)`` float32, or only the last
    position's ``(V,)`` when ``all_logits`` is False (the head is a fifth of a token's work).
    """
    cache = empty_cache(model) if cache is None else cache
    ids = np.asarray(ids, dtype=np.int64).reshape(-1)
    if ids.size == 0:
        raise ValueError("no tokens to run")
    bad = ids[(ids < 0) | (ids >= model.vocab_size)]
    if bad.size:
        raise ValueError(f"token id {int(bad[0])} outside the vocabulary of {model.vocab_size}")
    positions = cache.length + np.arange(ids.size)
    context = model.hyper.get("context_length")
    if context is not None and positions[-1] >= context:
        raise ValueError(f"{positions[-1] + 1} tokens exceed the context of {context}")
    x = model.embedding.tokens[ids].astype(np.float32)
    keys, values = [], []
    for layer, past_k, past_v in zip(model.layers, cache.keys, cache.values, strict=True):
        if not isinstance(layer, DecoderLayer):
            raise ValueError(f"{type(layer).__name__} is not a decoder layer")
        a, k, v = _attention(layer.attention, rms_norm(x, layer.norm1), positions, past_k,
                             past_v)
        x = x + a
        x = x + _ffn(layer.ffn, rms_norm(x, layer.norm2))
        keys.append(k)
        values.append(v)
    h = rms_norm(x if all_logits else x[-1], model.head.norm)
    return (h @ model.head.weight).astype(np.float32), KVCache(tuple(keys), tuple(values))


def generate(model, prompt, tokens, *, stop=()):
    """Greedy continuation of ``prompt`` (token ids): prefill once, then one cached decoding
    step per new token. Returns up to ``tokens`` new ids, ending early after an id in
    ``stop``."""
    if tokens < 0:
        raise ValueError(f"cannot generate {tokens} tokens")
    out = []
    logits, cache = forward(model, prompt, all_logits=False)
    while len(out) < tokens:
        out.append(int(np.argmax(logits)))
        if out[-1] in stop or len(out) == tokens:
            break
        logits, cache = forward(model, out[-1:], cache, all_logits=False)
    return out
