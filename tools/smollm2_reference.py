"""Record what a second implementation computes for SmolLM2-135M-Instruct, for the tests.

transformers loads the same GGUF file (its own reader, dequantisation and RoPE un-permutation)
and runs its PyTorch Llama. This script stores, for a few fixed prompts, the token ids, the
top logits of every position, the full logits of one position, and a greedy continuation;
and, for a few texts, the token ids of transformers' tokenizer. ``tests/models/test_llama.py``
compares the numpy reference against the stored table, so the tests need neither torch nor
transformers.

It runs in an environment of its own (torch, transformers, accelerate, gguf), not the
project's::

    python3 -m venv <venv> && <venv>/bin/pip install torch transformers accelerate gguf
    <venv>/bin/python tools/smollm2_reference.py --gguf "$(.venv/bin/python -c \
        'from ita.models.llama import smollm2_path; print(smollm2_path())')"
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parents[1] / "tests" / "models" / "data" / "smollm2_transformers.npz"

PROMPTS = (
    "Once upon a time, there was a little robot who",
    "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n",
    "def fibonacci(n):\n    if n < 2:\n        return n\n    return",
    "In 1969, 3 astronauts flew 384,400 km to the Moon; the trip took",
)
TOKENIZER_TEXTS = (
    "Hello world",
    "  leading spaces, trailing  \n\n\tand tabs\t",
    "It's 12345 o'clock; I'LL pay $3.50 (or 4,000 yen).",
    "Ünïcödé: naïve café, Straße, 東京, Москва, 🙂👍🏽",
    "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>",
    "x = [i ** 2 for i in range(10)]  # squares\r\n",
)
NEW_TOKENS = 12
TOP = 64


def _flat(lists, dtype):
    values = np.concatenate([np.asarray(x, dtype) for x in lists])
    offsets = np.cumsum([0] + [len(x) for x in lists]).astype(np.int64)
    return values, offsets


def _greedy(model, torch, ids):
    """NEW_TOKENS argmax tokens with transformers' KV cache, past EOS too (``generate`` would
    stop there or, told not to, suppress EOS)."""
    out = model(torch.tensor([ids]), use_cache=True)
    new = []
    for _ in range(NEW_TOKENS):
        new.append(int(out.logits[0, -1].argmax()))
        out = model(torch.tensor([new[-1:]]), past_key_values=out.past_key_values, use_cache=True)
    return np.array(new)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gguf", type=Path, required=True, help="the SmolLM2 GGUF file")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)

    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(args.gguf.parent), args.gguf.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    model.eval()

    def encode(text):
        return tokenizer(text, add_special_tokens=False).input_ids

    prompt_ids, top_ids, top_logits, greedy = [], [], [], []
    last_logits = None
    with torch.no_grad():
        for text in PROMPTS:
            ids = encode(text)
            logits = model(torch.tensor([ids])).logits[0].float()
            top = torch.topk(logits, TOP, dim=-1)
            prompt_ids.append(ids)
            top_ids.append(top.indices.numpy())
            top_logits.append(top.values.numpy())
            if last_logits is None:
                last_logits = logits[-1].numpy()
            greedy.append(_greedy(model, torch, ids))
    ids_flat, offsets = _flat(prompt_ids, np.int32)
    text_ids, text_offsets = _flat([encode(t) for t in TOKENIZER_TEXTS], np.int32)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        args.out, prompts=np.array(PROMPTS), prompt_ids=ids_flat, prompt_offsets=offsets,
        top_ids=np.concatenate(top_ids).astype(np.int32),
        top_logits=np.concatenate(top_logits).astype(np.float32),
        last_logits=last_logits.astype(np.float32), greedy_ids=np.stack(greedy).astype(np.int32),
        tokenizer_texts=np.array(TOKENIZER_TEXTS), tokenizer_ids=text_ids,
        tokenizer_offsets=text_offsets,
        versions=np.array(f"transformers {transformers.__version__}, torch {torch.__version__}"))
    print(f"{args.out}: {len(PROMPTS)} prompts, {len(ids_flat)} positions, "
          f"{len(TOKENIZER_TEXTS)} tokenizer texts")
    return 0


if __name__ == "__main__":
    sys.exit(main())
