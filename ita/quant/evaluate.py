"""``make evaluate``: the quantised model against its float model on the user's own text.

    make evaluate MODEL=minilm IN=<sentences.txt> [PAIRS=<pairs.tsv>] [OUT=<file.npz>]
    make evaluate MODEL=smollm2 IN=<paragraphs.txt> [POSITIONS=<n>]

No RTL runs: the float reference and the integer model (the bytes the cluster reproduces,
see ``docs/models.md``) are compared directly, so a few hundred sentences take seconds.

* ``MODEL=minilm``: one sentence a line of ``IN`` (blank lines skipped). ``PAIRS`` is a
  tab-separated file of two line indices a line (0-based lines of ``IN``, each naming a
  non-blank line): their similarities, float and integer, are rank-correlated as
  ``spearman_pairs``; ``spearman_all`` ranks every pair of sentences. ``OUT`` saves arrays
  ``float`` and ``integer`` (one pooled, L2-normalised embedding per sentence, float32; the
  integer one dequantised) and ``sentences``. Prints
  ``EVAL model=minilm sentences=<n> cos_mean=<x> cos_min=<x> spearman_pairs=<x>
  spearman_all=<x>``.
* ``MODEL=smollm2``: each blank-line separated paragraph of ``IN`` is one sequence,
  tokenized without BOS, every position predicting the next token (teacher forcing);
  prints ``EVAL model=smollm2 positions=<n> top1_agreement=<x> top5=<x> ppl_float=<x>
  ppl_integer=<x> kl=<x>``.

Both calibrate on the repository's calibration sets, which the evaluation text should not
repeat. Bad input (a missing or unreadable file, no sentences, a malformed pair line, an
index past the file) is one line on stderr and exit status 2.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from ita import cli
from ita.cli import UsageError, choice_key, int_key, parse, path_key, usage
from ita.models import bert
from ita.models.ir import ModelError

from . import llama, llama_eval
from .calibration import CALIBRATION_FILE, calibrate, read_sentences
from .minilm import evaluate
from .quantiser import quantise

__all__ = ["MODELS", "KEYS", "read_index_pairs", "evaluate_minilm", "evaluate_smollm2",
           "main"]

TOOL = "evaluate"
MODELS = ("minilm", "smollm2")
KEYS = (
    choice_key("MODEL", None, MODELS, required=True, help="the checkpoint to evaluate"),
    path_key("IN", None, help="minilm: one sentence a line; smollm2: blank-line "
                              "separated paragraphs"),
    path_key("PAIRS", None, help="minilm: two tab-separated line indices of IN a line"),
    path_key("OUT", None, help="minilm: .npz with arrays float, integer, sentences"),
    int_key("POSITIONS", None, minimum=1, help="smollm2: at most this many positions"),
)


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise ModelError(f"{path}: cannot read ({error})") from None


def read_index_pairs(path: Path, lines: list[str]) -> list[tuple[int, int]]:
    """Pairs of 0-based line indices of ``lines`` from a tab-separated file; each index
    must name a non-blank line."""
    pairs = []
    for number, line in enumerate(_lines(path), 1):
        if not line.strip():
            continue
        parts = line.strip().split("\t")
        try:
            a, b = (int(p) for p in parts)
        except ValueError:
            raise ModelError(f"{path}: line {number} is not two tab-separated line "
                             f"indices: {line.strip()!r}") from None
        for index in (a, b):
            if not 0 <= index < len(lines) or not lines[index].strip():
                raise ModelError(f"{path}: line {number}: index {index} is not a sentence "
                                 f"of IN (0-based, {len(lines)} lines)")
        pairs.append((a, b))
    if not pairs:
        raise ModelError(f"{path}: no pairs")
    return pairs


def evaluate_minilm(in_path: Path, pairs_path: Path | None = None,
                    out_path: Path | None = None):
    """The :class:`ita.quant.minilm.Accuracy` of the integer MiniLM on ``in_path``."""
    lines = _lines(in_path)
    rows = [i for i, line in enumerate(lines) if line.strip()]
    if not rows:
        raise ModelError(f"{in_path}: no sentences")
    texts = [lines[i].strip() for i in rows]
    position = {line: k for k, line in enumerate(rows)}
    pairs = ([(position[a], position[b]) for a, b in read_index_pairs(pairs_path, lines)]
             if pairs_path is not None else [])
    model = bert.load_minilm()
    cut = sum(model.tokenizer.encode_full(t)[1] for t in texts)
    if cut:
        print(f"note: {cut} sentence(s) longer than {model.tokenizer.max_length} tokens, "
              f"truncated")
    qmodel = quantise(model, calibrate(model, read_sentences(CALIBRATION_FILE)))
    accuracy = evaluate(model, qmodel, texts, pairs=pairs)
    if out_path is not None:
        try:
            np.savez(out_path, float=accuracy.float_emb, integer=accuracy.integer_emb,
                     sentences=np.array(texts))
        except OSError as error:
            raise ModelError(f"{out_path}: cannot write ({error})") from None
    return accuracy, texts


def evaluate_smollm2(in_path: Path, positions: int | None = None):
    """The :class:`ita.quant.llama_eval.Comparison` of the integer SmolLM2 on ``in_path``."""
    paragraphs = llama_eval.read_paragraphs(in_path)
    model = llama.load_smollm2()
    sequences = llama._sequences(model.tokenizer, paragraphs, positions)
    if not sequences:
        raise ModelError(f"{in_path}: no paragraph has two tokens or more")
    calibration = llama._sequences(model.tokenizer,
                                   llama_eval.read_paragraphs(llama.CALIBRATION_TEXT))
    imodel = llama.quantise(model, calibration, llama.VARIANTS["best"])
    return llama.evaluate(model, imodel, sequences)[0]


def _command(words) -> int:
    options = parse(words, KEYS)
    model, in_path = options["MODEL"], options["IN"]
    if in_path is None:
        raise UsageError("missing IN=<file>")
    wrong = [k for k in (("PAIRS", "OUT") if model == "smollm2" else ("POSITIONS",))
             if options[k] is not None]
    if wrong:
        raise UsageError(f"{', '.join(wrong)} does not apply to MODEL={model}")
    try:
        if model == "minilm":
            acc, texts = evaluate_minilm(in_path, options["PAIRS"], options["OUT"])
            for text, cos in zip(texts, acc.cos, strict=True):
                print(f"{cos:.4f}  {text[:70]}")
            print(f"EVAL model=minilm sentences={len(texts)} cos_mean={acc.cos_mean:.4f} "
                  f"cos_min={acc.cos_min:.4f} spearman_pairs={acc.spearman_pairs:.4f} "
                  f"spearman_all={acc.spearman_all:.4f}")
            if options["OUT"] is not None:
                print(f"wrote {options['OUT']}")
        else:
            print(evaluate_smollm2(in_path, options["POSITIONS"]).line("smollm2"))
    except (ModelError, ValueError, ArithmeticError) as error:
        raise UsageError(str(error)) from None
    return 0


USAGE = usage("make evaluate MODEL=<m> IN=<file> [KEY=VALUE]", KEYS,
              note=__doc__.split("\n\n")[1])


def main(argv=None) -> int:
    return cli.main(TOOL, _command, argv, usage_text=USAGE)


if __name__ == "__main__":
    sys.exit(main())
