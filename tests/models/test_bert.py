"""BERT frontend and float reference: the real checkpoint, its stored embeddings, and small
synthetic checkpoints for every way a folder can be wrong."""

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file
from tokenizers import Tokenizer, models, pre_tokenizers

from ita.models import bert, bert_reference
from ita.models.ir import MeanPooling, ModelError

DATA = Path(__file__).parent / "data"
EVALUATION = Path(bert.__file__).parent.parent / "quant" / "data" / "evaluation.txt"

# Measured: 1.3e-7 (float64 numpy against torch float32 on CPU).
FLOAT_TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def minilm():
    return bert.load_minilm()


def test_minilm_description(minilm):
    assert minilm.family == "bert" and len(minilm.layers) == 6
    assert (minilm.vocab_size, minilm.embed_dim) == (30522, 384)
    att = minilm.layers[0].attention
    assert (att.heads, att.head_dim, att.wq.shape) == (12, 32, (384, 384))
    assert minilm.layers[0].ffn.w1.shape == (384, 1536)
    assert minilm.layers[0].norm1.eps == 1e-12
    assert minilm.head == MeanPooling(normalize=True)
    assert minilm.hyper["max_length"] == 256


def test_tokenizer_neither_pads_nor_truncates_at_128(minilm):
    tok = minilm.tokenizer
    ids = tok.encode("A man is playing a guitar.")
    assert ids[0] == tok.token_to_id("[CLS]") and ids[-1] == tok.token_to_id("[SEP]")
    assert len(ids) == 9
    ids, cut = tok.encode_full("word " * 200)
    assert (len(ids), cut) == (202, False)
    ids, cut = tok.encode_full("word " * 300)
    assert (len(ids), cut) == (256, True)


def test_float_forward_matches_sentence_transformers(minilm):
    table = np.load(DATA / "minilm_reference.npz")
    sentences = [s for s in EVALUATION.read_text().splitlines() if s.strip()]
    assert list(table["sentences"]) == sentences, "regenerate with tools/minilm_reference.py"
    assert [len(minilm.tokenizer.encode(s)) for s in sentences] == list(table["tokens"])
    ours = bert_reference.encode_texts(minilm, sentences)
    assert np.abs(ours - table["embeddings"]).max() <= FLOAT_TOLERANCE


# --- synthetic checkpoints -------------------------------------------------------------------

TINY = {"model_type": "bert", "architectures": ["BertModel"], "hidden_size": 8,
        "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 16,
        "vocab_size": 12, "max_position_embeddings": 16, "type_vocab_size": 2,
        "layer_norm_eps": 1e-12, "hidden_act": "gelu"}
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "the", "cat", "sat", "on", "a", "mat", ".", "dog"]


def tiny_tensors(config, seed=0):
    rng = np.random.default_rng(seed)
    E, F = config["hidden_size"], config["intermediate_size"]

    def r(*shape):
        return rng.standard_normal(shape).astype(np.float32) * 0.3

    t = {"embeddings.word_embeddings.weight": r(config["vocab_size"], E),
         "embeddings.position_embeddings.weight": r(config["max_position_embeddings"], E),
         "embeddings.token_type_embeddings.weight": r(config["type_vocab_size"], E),
         "embeddings.LayerNorm.weight": 1 + r(E), "embeddings.LayerNorm.bias": r(E)}
    for i in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        for name, out, inp in (("attention.self.query", E, E), ("attention.self.key", E, E),
                               ("attention.self.value", E, E), ("attention.output.dense", E, E),
                               ("intermediate.dense", F, E), ("output.dense", E, F)):
            t[p + name + ".weight"], t[p + name + ".bias"] = r(out, inp), r(out)
        for name in ("attention.output.LayerNorm", "output.LayerNorm"):
            t[p + name + ".weight"], t[p + name + ".bias"] = 1 + r(E), r(E)
    return t


def write_checkpoint(folder, config=TINY, tensors=None, pooling=True):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config))
    save_file(tiny_tensors(TINY) if tensors is None else tensors,
              str(folder / "model.safetensors"))
    tok = Tokenizer(models.WordPiece({w: i for i, w in enumerate(VOCAB)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.save(str(folder / "tokenizer.json"))
    if pooling:
        (folder / "1_Pooling").mkdir(exist_ok=True)
        (folder / "1_Pooling" / "config.json").write_text(json.dumps(
            {"pooling_mode_mean_tokens": True, "pooling_mode_cls_token": False}))
        (folder / "modules.json").write_text(json.dumps(
            [{"type": "sentence_transformers.models.Pooling"},
             {"type": "sentence_transformers.models.Normalize"}]))
    return folder


def test_synthetic_checkpoint_loads_and_runs(tmp_path):
    model = bert.load(write_checkpoint(tmp_path / "tiny"))
    assert len(model.layers) == 2 and model.layers[1].attention.head_dim == 4
    assert model.hyper["max_length"] == TINY["max_position_embeddings"]
    ids = model.tokenizer.encode("the cat sat on a mat.")
    assert len(ids) == 7 and max(ids) < len(VOCAB)  # the tiny tokenizer adds no [CLS]
    vector = bert_reference.embed(model, ids)
    assert vector.shape == (8,) and np.isclose(np.linalg.norm(vector), 1.0)


def test_weights_are_transposed_to_x_at_w(tmp_path):
    tensors = tiny_tensors(TINY)
    model = bert.load(write_checkpoint(tmp_path / "tiny", tensors=tensors))
    torch_weight = tensors["encoder.layer.0.intermediate.dense.weight"]   # (out, in)
    assert np.array_equal(model.layers[0].ffn.w1, torch_weight.T)


def test_prefixed_checkpoint_loads(tmp_path):
    tensors = {"bert." + k: v for k, v in tiny_tensors(TINY).items()}
    tensors["cls.predictions.bias"] = np.zeros(12, np.float32)
    model = bert.load(write_checkpoint(tmp_path / "tiny", tensors=tensors))
    assert len(model.layers) == 2


def one_line_error(folder):
    with pytest.raises(ModelError) as error:
        bert.load(folder)
    message = str(error.value)
    assert "\n" not in message
    return message


def test_other_architecture(tmp_path):
    config = dict(TINY, model_type="llama", architectures=["LlamaForCausalLM"])
    message = one_line_error(write_checkpoint(tmp_path / "m", config=config))
    assert "'llama' checkpoint, not a BERT encoder" in message


def test_missing_tensor(tmp_path):
    tensors = tiny_tensors(TINY)
    del tensors["encoder.layer.1.attention.self.value.bias"]
    message = one_line_error(write_checkpoint(tmp_path / "m", tensors=tensors))
    assert message.endswith("missing tensor encoder.layer.1.attention.self.value.bias")


def test_shape_contradicting_config(tmp_path):
    config = dict(TINY, intermediate_size=24)
    message = one_line_error(write_checkpoint(tmp_path / "m", config=config))
    assert "encoder.layer.0.intermediate.dense.weight has shape (16, 8)" in message
    assert "(hidden_size, intermediate_size) gives (24, 8)" in message


def test_heads_must_divide_hidden_size(tmp_path):
    message = one_line_error(write_checkpoint(tmp_path / "m", config=dict(
        TINY, num_attention_heads=3)))
    assert "not a multiple of num_attention_heads 3" in message


def test_missing_files(tmp_path):
    assert "no such checkpoint folder" in one_line_error(tmp_path / "absent")
    folder = write_checkpoint(tmp_path / "m")
    (folder / "tokenizer.json").unlink()
    assert one_line_error(folder).endswith("no tokenizer.json (the tokenizer)")
    (folder / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}")
    assert "not a readable safetensors file" in one_line_error(folder)
    (folder / "config.json").unlink()
    assert one_line_error(folder).endswith("no config.json (the model configuration)")


def test_unsupported_pooling(tmp_path):
    folder = write_checkpoint(tmp_path / "m")
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(
        {"pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False}))
    assert "pooling cls_token is not supported" in one_line_error(folder)
