"""Llama frontend and float reference: small synthetic checkpoints in both formats, and
SmolLM2-135M-Instruct against the table tools/smollm2_reference.py recorded with transformers.
"""

import json
from pathlib import Path

import gguf
import numpy as np
import pytest
from safetensors.numpy import save_file
from tokenizers import pre_tokenizers

from ita.models import llama
from ita.models import llama_reference as ref
from ita.models.ir import ModelError, RoPE

DATA = Path(__file__).parent / "data" / "smollm2_transformers.npz"

# A tiny Llama: GQA with 2 query heads per KV head, dims a multiple of the GGUF block (32).
TINY = dict(layers=2, embed_dim=64, ffn_dim=96, heads=4, kv_heads=2, context=32, eps=1e-5,
            theta=10000.0)
HEAD_DIM = TINY["embed_dim"] // TINY["heads"]
# Byte-level vocabulary: the 256 byte symbols, two merges, two control tokens.
ALPHABET = sorted(pre_tokenizers.ByteLevel.alphabet())
MERGES = ["Ġ t", "Ġt h"]
SPECIALS = ["<|start|>", "<|end|>"]
VOCAB = ALPHABET + ["Ġt", "Ġth"] + SPECIALS


def _hf_weights(seed, tied=True):
    """Random Hugging Face-named weights, ``(out, in)`` as PyTorch stores them."""
    rng = np.random.default_rng(seed)
    vocab = len(VOCAB)
    E, F = TINY["embed_dim"], TINY["ffn_dim"]
    q, kv = TINY["heads"] * HEAD_DIM, TINY["kv_heads"] * HEAD_DIM

    def w(*shape):
        return (rng.standard_normal(shape) / np.sqrt(shape[-1])).astype(np.float32)

    out = {"model.embed_tokens.weight": w(vocab, E),
           "model.norm.weight": (1 + 0.1 * rng.standard_normal(E)).astype(np.float32)}
    if not tied:
        out["lm_head.weight"] = w(vocab, E)
    for i in range(TINY["layers"]):
        p = f"model.layers.{i}."
        out.update({p + "input_layernorm.weight": out["model.norm.weight"] * 0.9,
                    p + "self_attn.q_proj.weight": w(q, E), p + "self_attn.k_proj.weight": w(kv, E),
                    p + "self_attn.v_proj.weight": w(kv, E), p + "self_attn.o_proj.weight": w(E, q),
                    p + "post_attention_layernorm.weight": out["model.norm.weight"] * 1.1,
                    p + "mlp.gate_proj.weight": w(F, E), p + "mlp.up_proj.weight": w(F, E),
                    p + "mlp.down_proj.weight": w(E, F)})
    return out


def _converter_permute(w, heads):
    """What llama.cpp's converter does to q/k rows (convert_hf_to_gguf.py, LlamaModel)."""
    return (w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2)
            .reshape(w.shape))


_GGUF_NAMES = {"input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q",
               "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
               "self_attn.o_proj": "attn_output", "post_attention_layernorm": "ffn_norm",
               "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}


def _to_gguf(hf):
    out = {}
    for key, a in hf.items():
        if key == "model.embed_tokens.weight":
            out["token_embd.weight"] = a
        elif key == "model.norm.weight":
            out["output_norm.weight"] = a
        elif key == "lm_head.weight":
            out["output.weight"] = a
        else:
            _, _, i, role = key.split(".", 3)
            role = role.removesuffix(".weight")
            if role == "self_attn.q_proj":
                a = _converter_permute(a, TINY["heads"])
            if role == "self_attn.k_proj":
                a = _converter_permute(a, TINY["kv_heads"])
            out[f"blk.{i}.{_GGUF_NAMES[role]}.weight"] = a
    return out


def write_gguf(path, tensors, *, arch="llama", metadata=(), tokenizer=True, quantize=()):
    """A GGUF file as llama.cpp's converter writes one; ``quantize`` names tensors stored as
    Q8_0, ``metadata`` overrides ``(setter name, value)`` pairs of the writer."""
    w = gguf.GGUFWriter(path, arch)
    w.add_name("tiny llama")
    settings = dict(add_block_count=TINY["layers"], add_context_length=TINY["context"],
                    add_embedding_length=TINY["embed_dim"],
                    add_feed_forward_length=TINY["ffn_dim"], add_head_count=TINY["heads"],
                    add_head_count_kv=TINY["kv_heads"], add_layer_norm_rms_eps=TINY["eps"],
                    add_rope_freq_base=TINY["theta"], add_rope_dimension_count=HEAD_DIM)
    settings.update(dict(metadata))
    for setter, value in settings.items():
        getattr(w, setter)(value)
    if tokenizer:
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre("smollm")
        w.add_token_list(VOCAB)
        w.add_token_merges(MERGES)
        w.add_token_types([1] * (len(VOCAB) - len(SPECIALS)) + [3] * len(SPECIALS))
        w.add_bos_token_id(VOCAB.index(SPECIALS[0]))
        w.add_eos_token_id(VOCAB.index(SPECIALS[1]))
    for name, a in tensors.items():
        if name in quantize:
            w.add_tensor(name, gguf.quants.quantize(a, gguf.GGMLQuantizationType.Q8_0),
                         raw_dtype=gguf.GGMLQuantizationType.Q8_0)
        else:
            w.add_tensor(name, a)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def write_hf(folder, tensors, **config):
    folder.mkdir(parents=True, exist_ok=True)
    base = {"architectures": ["LlamaForCausalLM"], "model_type": "llama",
            "hidden_size": TINY["embed_dim"], "intermediate_size": TINY["ffn_dim"],
            "num_hidden_layers": TINY["layers"], "num_attention_heads": TINY["heads"],
            "num_key_value_heads": TINY["kv_heads"], "rms_norm_eps": TINY["eps"],
            "rope_theta": TINY["theta"], "vocab_size": len(VOCAB),
            "max_position_embeddings": TINY["context"], "tie_word_embeddings": True,
            "hidden_act": "silu"}
    (folder / "config.json").write_text(json.dumps({**base, **config}))
    save_file(tensors, str(folder / "model.safetensors"))
    return folder


@pytest.fixture(scope="module")
def tiny_weights():
    return _hf_weights(seed=5)


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory, tiny_weights):
    return write_gguf(tmp_path_factory.mktemp("gguf") / "tiny.gguf", _to_gguf(tiny_weights))


# --- the two formats describe the same model ------------------------------------------------

def test_gguf_and_safetensors_give_the_same_model(tmp_path, tiny_gguf, tiny_weights):
    a = llama.load(tiny_gguf)
    b = llama.load(write_hf(tmp_path / "hf", tiny_weights))
    assert a.hyper["layers"] == b.hyper["layers"] == TINY["layers"]
    assert a.head.tied and b.head.tied
    for la, lb in zip(a.layers, b.layers, strict=True):
        for name in ("wq", "wk", "wv", "wo"):  # wq/wk: GGUF's RoPE permutation undone
            np.testing.assert_array_equal(getattr(la.attention, name),
                                          getattr(lb.attention, name))
        assert la.attention.rope == lb.attention.rope == RoPE(TINY["theta"], HEAD_DIM)
        np.testing.assert_array_equal(la.ffn.w_down, lb.ffn.w_down)
    ids = [3, 70, 250, 1, 9]
    np.testing.assert_allclose(ref.forward(a, ids)[0], ref.forward(b, ids)[0], atol=1e-5)


def test_stored_gguf_order_runs_with_the_interleaved_rotation(tiny_gguf):
    """The permutation and the pair convention are two views of one rotation."""
    model = llama.load(tiny_gguf)
    att = model.layers[0].attention
    x = np.random.default_rng(1).standard_normal((6, TINY["embed_dim"])).astype(np.float32)
    cos, sin = ref.rope_tables(att.rope, np.arange(6))

    def rotated(w, heads, interleaved):
        y = (x @ w).reshape(6, heads, HEAD_DIM).transpose(1, 0, 2)
        return ref.apply_rope(y, cos, sin, interleaved)

    stored = _converter_permute(att.wq.T, att.heads).T
    scores_hf = rotated(att.wq, att.heads, False) @ rotated(att.wq, att.heads, False).swapaxes(1, 2)
    scores_gguf = rotated(stored, att.heads, True) @ rotated(stored, att.heads, True).swapaxes(1, 2)
    np.testing.assert_allclose(scores_gguf, scores_hf, rtol=1e-5, atol=1e-5)


def test_untied_head_and_quantised_tensors(tmp_path):
    weights = _hf_weights(seed=2, tied=False)
    tensors = _to_gguf(weights)
    model = llama.load(write_gguf(tmp_path / "q.gguf", tensors,
                                  quantize={"token_embd.weight", "blk.0.ffn_up.weight"}))
    assert not model.head.tied
    np.testing.assert_array_equal(model.head.weight, weights["lm_head.weight"].T)
    assert model.hyper["weight_types"] == {"Q8_0": 2, "F32": len(tensors) - 2}
    # Q8_0: one float16 scale per 32 values: half a step plus the scale's rounding (127 steps
    # times 2^-11).
    emb = weights["model.embed_tokens.weight"]
    step = np.abs(emb.reshape(-1, 32)).max(axis=1, keepdims=True) / 127
    err = np.abs(model.embedding.tokens - emb).reshape(-1, 32)
    assert (err <= (0.5 + 127 * 2.0 ** -11) * step).all()


def _write_bfloat16_safetensors(path, tensors):
    """A safetensors file of BF16 tensors (the format's layout; numpy has no bfloat16)."""
    header, blobs, offset = {}, [], 0
    for name, a in tensors.items():
        blob = (a.astype(np.float32).view(np.uint32) >> 16).astype("<u2").tobytes()
        header[name] = {"dtype": "BF16", "shape": list(a.shape),
                        "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header).encode()
    path.write_bytes(len(text).to_bytes(8, "little") + text + b"".join(blobs))


def test_safetensors_bfloat16_untied_and_tokenizer_json(tmp_path, tiny_gguf):
    weights = _hf_weights(seed=3, tied=False)
    folder = write_hf(tmp_path / "hf", {}, tie_word_embeddings=False, bos_token_id=258)
    (folder / "model.safetensors").unlink()
    _write_bfloat16_safetensors(folder / "model.safetensors", weights)
    llama.load(tiny_gguf).tokenizer.backend.save(str(folder / "tokenizer.json"))
    model = llama.load(folder / "config.json")
    truncated = (weights["lm_head.weight"].view(np.uint32) & 0xFFFF0000).view(np.float32)
    np.testing.assert_array_equal(model.head.weight, truncated.T)
    assert not model.head.tied and model.hyper["weight_types"] == {"bfloat16": len(weights)}
    assert model.tokenizer.encode("the end") == llama.load(tiny_gguf).tokenizer.encode("the end")
    assert model.tokenizer.bos_id == 258


# --- the float reference ---------------------------------------------------------------------

def test_prefill_and_cached_decoding_equal_the_full_forward(tiny_gguf):
    model = llama.load(tiny_gguf)
    ids = [5, 80, 200, 33, 7, 259, 12]
    full, _ = ref.forward(model, ids)
    logits, cache = ref.forward(model, ids[:3])
    steps = [logits]
    for token in ids[3:]:
        logits, cache = ref.forward(model, [token], cache)
        steps.append(logits)
    assert cache.length == len(ids)
    np.testing.assert_allclose(np.concatenate(steps), full, atol=1e-5)
    last, _ = ref.forward(model, ids, all_logits=False)
    np.testing.assert_allclose(last, full[-1], atol=1e-6)


def test_causal_mask_hides_later_tokens(tiny_gguf):
    model = llama.load(tiny_gguf)
    a, _ = ref.forward(model, [1, 2, 3, 4])
    b, _ = ref.forward(model, [1, 2, 3, 99])
    np.testing.assert_array_equal(a[:3], b[:3])
    assert np.abs(a[3] - b[3]).max() > 1e-3


def test_reference_rejects_what_it_cannot_run(tiny_gguf):
    model = llama.load(tiny_gguf)
    with pytest.raises(ValueError, match=f"exceed the context of {TINY['context']}"):
        ref.forward(model, [1] * (TINY["context"] + 1))
    with pytest.raises(ValueError, match="outside the vocabulary"):
        ref.forward(model, [len(VOCAB)])
    with pytest.raises(ValueError, match="no tokens"):
        ref.forward(model, [])


def test_tiny_tokenizer_from_gguf(tiny_gguf):
    tok = llama.load(tiny_gguf).tokenizer
    text = "<|start|>the thing 42<|end|>"
    ids = tok.encode(text)
    assert ids[0] == VOCAB.index("<|start|>") and ids[-1] == tok.eos_id
    assert VOCAB.index("Ġth") in ids
    assert tok.decode(ids) == text


def test_cli_generates_and_reports_bad_input_in_one_line(tiny_gguf, capsys):
    assert llama.main(["generate", "--checkpoint", str(tiny_gguf), "--prompt", "the",
                       "--tokens", "3"]) == 0
    assert capsys.readouterr().out.startswith("the")
    for argv, message in ((["--prompt", ""], "the prompt is empty"),
                          (["--prompt", "x", "--tokens", "40"], "exceed the context")):
        assert llama.main(["generate", "--checkpoint", str(tiny_gguf), *argv]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1


# --- errors: one line naming the problem ------------------------------------------------------

def _one_line_error(path, match):
    with pytest.raises(ModelError, match=match) as info:
        llama.load(path)
    assert "\n" not in str(info.value)


def test_gguf_errors(tmp_path, tiny_weights):
    t = _to_gguf(tiny_weights)
    _one_line_error(write_gguf(tmp_path / "a.gguf", t, arch="gpt2"),
                    "architecture 'gpt2' is not supported")
    missing = {k: v for k, v in t.items() if k != "blk.1.ffn_up.weight"}
    _one_line_error(write_gguf(tmp_path / "m.gguf", missing),
                    "tensor blk.1.ffn_up.weight is missing")
    _one_line_error(write_gguf(tmp_path / "s.gguf", t, metadata={"add_feed_forward_length": 128}),
                    r"blk.0.ffn_gate.weight has shape \(96, 64\), the metadata implies \(128, 64\)")
    bias = {**t, "blk.0.attn_q.bias": t["output_norm.weight"]}
    _one_line_error(write_gguf(tmp_path / "x.gguf", bias),
                    "tensor blk.0.attn_q.bias is not part of a Llama model")
    ints = {**t, "blk.0.ffn_norm.weight": np.zeros(TINY["embed_dim"], np.int32)}
    _one_line_error(write_gguf(tmp_path / "i.gguf", ints),
                    "blk.0.ffn_norm.weight has type I32")
    _one_line_error(write_gguf(tmp_path / "r.gguf", t, metadata={
        "add_rope_scaling_type": gguf.RopeScalingType.LINEAR}), "RoPE scaling")
    (tmp_path / "junk.gguf").write_bytes(b"not a gguf file at all")
    _one_line_error(tmp_path / "junk.gguf", "not a readable GGUF file")
    _one_line_error(tmp_path / "absent.gguf", "no such file")


def test_safetensors_errors(tmp_path, tiny_weights):
    _one_line_error(write_hf(tmp_path / "a", tiny_weights, architectures=["MistralForCausalLM"]),
                    "architecture 'MistralForCausalLM' is not supported")
    _one_line_error(write_hf(tmp_path / "r", tiny_weights,
                             rope_scaling={"rope_type": "llama3", "factor": 8.0}), "RoPE scaling")
    missing = {k: v for k, v in tiny_weights.items() if "layers.0.mlp.up" not in k}
    _one_line_error(write_hf(tmp_path / "m", missing),
                    "tensor model.layers.0.mlp.up_proj.weight is missing")
    _one_line_error(write_hf(tmp_path / "s", tiny_weights, num_key_value_heads=1),
                    r"k_proj.weight has shape \(32, 64\), the metadata implies \(16, 64\)")
    _one_line_error(write_hf(tmp_path / "c", tiny_weights, hidden_act="gelu"), "hidden_act")
    (tmp_path / "empty").mkdir()
    _one_line_error(tmp_path / "empty", "no config.json")


# --- SmolLM2-135M against transformers ---------------------------------------------------------

@pytest.fixture(scope="module")
def smollm2():
    return llama.load_smollm2()


@pytest.fixture(scope="module")
def table():
    with np.load(DATA) as d:
        return {k: d[k] for k in d.files}


def _split(values, offsets):
    return [values[a:b] for a, b in zip(offsets[:-1], offsets[1:], strict=True)]


def test_smollm2_description(smollm2):
    h = smollm2.hyper
    assert (h["layers"], h["embed_dim"], h["heads"], h["kv_heads"], h["head_dim"]) == \
        (30, 576, 9, 3, 64)
    assert smollm2.head.tied and h["rope_theta"] == 100000.0
    assert h["weight_types"] == {"Q4_1": 210, "F32": 61, "Q8_0": 1}


def test_smollm2_tokenizer_matches_transformers(smollm2, table):
    tok = smollm2.tokenizer
    texts = [*table["prompts"], *table["tokenizer_texts"]]
    ids = [*_split(table["prompt_ids"], table["prompt_offsets"]),
           *_split(table["tokenizer_ids"], table["tokenizer_offsets"])]
    for text, want in zip(texts, ids, strict=True):
        got = tok.encode(str(text))
        assert got == want.tolist(), text
        assert tok.decode(got) == text


# Measured: 9.0e-5 over the top-64 logits of 72 positions, 3.0e-5 over a full last position
# (logits span about -17 .. 23); argmax 72/72. Float32 on both sides, different summation order.
LOGIT_TOLERANCE = 2e-4


def test_smollm2_logits_match_transformers(smollm2, table):
    prompts = _split(table["prompt_ids"], table["prompt_offsets"])
    top_ids = _split(table["top_ids"], table["prompt_offsets"])
    top_logits = _split(table["top_logits"], table["prompt_offsets"])
    for i, (ids, want_ids, want) in enumerate(zip(prompts, top_ids, top_logits, strict=True)):
        logits, _ = ref.forward(smollm2, ids)
        np.testing.assert_allclose(np.take_along_axis(logits, want_ids, axis=1), want,
                                   atol=LOGIT_TOLERANCE, rtol=0)
        np.testing.assert_array_equal(logits.argmax(axis=1), want_ids[:, 0])
        if i == 0:
            np.testing.assert_allclose(logits[-1], table["last_logits"], atol=LOGIT_TOLERANCE,
                                       rtol=0)


def test_smollm2_greedy_decoding_with_the_cache_matches_transformers(smollm2, table):
    prompts = _split(table["prompt_ids"], table["prompt_offsets"])
    for ids, want in zip(prompts, table["greedy_ids"], strict=True):
        assert ref.generate(smollm2, ids, len(want)) == want.tolist()
