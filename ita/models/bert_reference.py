"""Float forward of a BERT encoder description in numpy, as sentence-transformers runs it.

Embedding rows (token + position + token type 0) -> LayerNorm -> post-norm encoder layers
(exact erf GELU, LayerNorm with the checkpoint's epsilon) -> mean over the sentence's
tokens -> L2 normalisation. One sentence is one unpadded sequence, so no attention mask is
needed. Arithmetic is float64: the result is a reference, and float64 keeps its own error
far below the float32 checkpoint's.

``trace`` (a list) receives one dict per encoder layer with every intermediate the
quantiser calibrates on; the names are those of the integer model (``ita.quant``).
"""

from __future__ import annotations

import math

import numpy as np

from .ir import Embedding, EncoderLayer, LayerNorm, MeanPooling, Model, ModelError

__all__ = ["embedding_sum", "layer_norm", "gelu", "encoder_layer", "forward", "pool",
           "embed", "encode_texts"]


def embedding_sum(emb: Embedding, ids) -> np.ndarray:
    """(S, E) sum of token, position and token-type-0 rows: the embedding LayerNorm's input."""
    ids = np.asarray(ids, dtype=np.int64)
    vocab = emb.tokens.shape[0]
    if ids.ndim != 1 or ids.size == 0:
        raise ModelError("a sequence needs at least one token id")
    if ids.min() < 0 or ids.max() >= vocab:
        raise ModelError(f"token ids must be in 0..{vocab - 1}")
    x = emb.tokens[ids].astype(np.float64)
    if emb.positions is not None:
        if len(ids) > len(emb.positions):
            raise ModelError(f"{len(ids)} tokens exceed the {len(emb.positions)} positions")
        x = x + emb.positions[: len(ids)]
    if emb.token_types is not None:
        x = x + emb.token_types[0]
    return x


def layer_norm(x, norm: LayerNorm) -> np.ndarray:
    d = x - x.mean(axis=-1, keepdims=True)
    var = (d * d).mean(axis=-1, keepdims=True)
    return d / np.sqrt(var + norm.eps) * norm.gamma + norm.beta


_erf = np.vectorize(math.erf, otypes=[np.float64])


def gelu(x) -> np.ndarray:
    """Exact (erf) GELU, as BERT's ``hidden_act = "gelu"``."""
    return x * (1.0 + _erf(x / math.sqrt(2.0))) / 2.0


def _softmax(logits):
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def encoder_layer(x, layer: EncoderLayer, trace: list | None = None) -> np.ndarray:
    """One post-norm layer on (S, E) float rows; appends its intermediates to ``trace``."""
    att, ffn = layer.attention, layer.ffn
    S, H, P = x.shape[0], att.heads, att.head_dim

    def heads(w, b):  # (S, H * P) -> (H, S, P)
        return (x @ w + b).reshape(S, H, P).transpose(1, 0, 2)

    q, k, v = heads(att.wq, att.bq), heads(att.wk, att.bk), heads(att.wv, att.bv)
    logits = q @ k.transpose(0, 2, 1) / math.sqrt(P)
    probs = _softmax(logits)
    o = probs @ v                                                     # (H, S, P)
    wo = att.wo.reshape(H, P, -1)
    head_out = np.einsum("hsp,hpe->hse", o, wo) + att.bo / H          # bias shared by heads
    attn = head_out.sum(axis=0)
    add1 = x + attn
    ln1 = layer_norm(add1, layer.norm1)
    u = ln1 @ ffn.w1 + ffn.b1
    f1 = gelu(u) if ffn.activation == "gelu" else np.maximum(u, 0.0)
    f2 = f1 @ ffn.w2 + ffn.b2
    add2 = ln1 + f2
    out = layer_norm(add2, layer.norm2)
    if trace is not None:
        trace.append({"x": x, "q": q, "k": k, "v": v, "logits": logits, "o": o,
                      "head_out": head_out, "attn": attn, "add1": add1, "ln1": ln1, "u": u,
                      "f1": f1, "f2": f2, "add2": add2, "out": out})
    return out


def forward(model: Model, ids, trace: list | None = None) -> np.ndarray:
    """(S, E) last hidden state of one unpadded sequence of token ids."""
    x = embedding_sum(model.embedding, ids)
    if model.embedding.norm is not None:
        x = layer_norm(x, model.embedding.norm)
    for layer in model.layers:
        x = encoder_layer(x, layer, trace)
    return x


def pool(model: Model, hidden) -> np.ndarray:
    """Mean over the tokens, L2-normalised when the model says so."""
    if not isinstance(model.head, MeanPooling):
        raise ModelError(f"{model.name}: pooling head {type(model.head).__name__} is not "
                         "mean pooling")
    vector = np.asarray(hidden, dtype=np.float64).mean(axis=0)
    if model.head.normalize:
        vector = vector / max(float(np.linalg.norm(vector)), 1e-12)
    return vector


def embed(model: Model, ids) -> np.ndarray:
    """Sentence embedding (E,) float64 of one sequence of token ids."""
    return pool(model, forward(model, ids))


def encode_texts(model: Model, texts) -> np.ndarray:
    """(n, E) float32 sentence embeddings of ``texts``, as ``SentenceTransformer.encode``."""
    return np.stack([embed(model, model.tokenizer.encode(t)) for t in texts]).astype(np.float32)
