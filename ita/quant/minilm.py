"""How close the integer all-MiniLM-L6-v2 comes to the float model, on sentences of a file.

    python -m ita.quant.minilm [--sentences FILE ...] [--pairs FILE] [--calibration FILE]
                               [--pad-to N]

calibrates on ``--calibration`` (default: the repository's calibration set), runs the float
reference and the integer model on every line of ``--sentences`` (default: the evaluation
sets, which share no sentence with the calibration set) and on the sentences of
``--pairs`` (tab-separated pairs; default: the repository's hand-made pairs when the
sentences are the default ones, else none), and prints the cosine of each sentence's two
embeddings, their mean and minimum, and Spearman rank correlations of sentence
similarities, float against integer: over the pairs, and over all pairs of sentences. The
last line is

    RESULT test=minilm_accuracy status=PASS|FAIL cos_mean=<x> cos_min=<x>
    spearman_pairs=<x> spearman_all=<x> pairs=<n> sentences=<n> tokens=<n>

``status`` compares with the accuracy goals below. Exit status: 0 PASS, 1 FAIL, 2 for bad
input (one line on stderr).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

import numpy as np

from ita.models import bert, bert_reference
from ita.models.ir import Model, ModelError

from .calibration import (
    CALIBRATION_FILE,
    EVALUATION_FILES,
    PAIRS_FILE,
    calibrate,
    read_pairs,
    read_sentences,
)
from .integer import IntegerModel, dequantise, run
from .quantiser import QuantOptions, quantise

__all__ = ["COS_MEAN_GOAL", "COS_MIN_GOAL", "SPEARMAN_PAIRS_GOAL", "SPEARMAN_ALL_GOAL",
           "Accuracy", "spearman", "evaluate", "with_pairs", "main"]

#: Accuracy goals against the float model: mean and worst sentence cosine, and the rank
#: correlations of similarities over the hand-made pairs and over all sentence pairs.
COS_MEAN_GOAL = 0.985
COS_MIN_GOAL = 0.95
SPEARMAN_PAIRS_GOAL = 0.99
SPEARMAN_ALL_GOAL = 0.97


def _ranks(values):
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(len(values))
    return ranks


def spearman(a, b) -> float:
    """Spearman rank correlation of two equally long vectors (ties ranked by position)."""
    ra, rb = _ranks(np.asarray(a)), _ranks(np.asarray(b))
    ra, rb = ra - ra.mean(), rb - rb.mean()
    return float(ra @ rb / np.sqrt((ra @ ra) * (rb @ rb)))


@dataclass(frozen=True)
class Accuracy:
    """Per-sentence cosines and the pairwise-similarity rank correlation."""

    cos: np.ndarray          #: (n,) float vs integer embedding of each sentence
    spearman_all: float      #: over all n (n - 1) / 2 sentence pairs
    spearman_pairs: float    #: over the given pairs (nan without)
    pairs: int
    float_emb: np.ndarray    #: (n, E)
    integer_emb: np.ndarray  #: (n, E)
    tokens: int

    def passes(self) -> bool:
        """Whether the accuracy goals hold (the pairs' goal only when there are pairs)."""
        ok = (self.cos_mean >= COS_MEAN_GOAL and self.cos_min >= COS_MIN_GOAL
              and self.spearman_all >= SPEARMAN_ALL_GOAL)
        return ok and (not self.pairs or self.spearman_pairs >= SPEARMAN_PAIRS_GOAL)

    @property
    def cos_mean(self) -> float:
        return float(self.cos.mean())

    @property
    def cos_min(self) -> float:
        return float(self.cos.min())


def with_pairs(texts, pairs):
    """``texts`` followed by the pairs' sentences it lacks, and each pair as two indices."""
    texts = list(texts)
    index = {text: i for i, text in reversed(list(enumerate(texts)))}
    for text in (t for pair in pairs for t in pair):
        if text not in index:
            index[text] = len(texts)
            texts.append(text)
    return texts, [(index[a], index[b]) for a, b in pairs]


def evaluate(model: Model, qmodel: IntegerModel, texts, *, pairs=(), pad_to=None) -> Accuracy:
    """Float and integer embeddings of ``texts`` and how far apart they are; ``pairs`` are
    (i, j) indices of sentence pairs whose similarities are ranked."""
    floats, ints, tokens = [], [], 0
    for text in texts:
        ids = model.tokenizer.encode(text)
        tokens += len(ids)
        floats.append(bert_reference.embed(model, ids))
        ints.append(dequantise(qmodel, run(qmodel, ids, pad_to=pad_to)))
    f, i = np.stack(floats), np.stack(ints)
    cos = np.sum(f * i, axis=1) / (np.linalg.norm(f, axis=1) * np.linalg.norm(i, axis=1))
    upper = np.triu_indices(len(f), 1)
    rho = spearman((f @ f.T)[upper], (i @ i.T)[upper]) if len(f) > 2 else float("nan")
    a, b = (np.array([p[k] for p in pairs], dtype=np.int64) for k in (0, 1))
    rho_pairs = (spearman(np.sum(f[a] * f[b], axis=1), np.sum(i[a] * i[b], axis=1))
                 if len(pairs) > 2 else float("nan"))
    return Accuracy(cos=cos, spearman_all=rho, spearman_pairs=rho_pairs, pairs=len(pairs),
                    float_emb=f.astype(np.float32), integer_emb=i.astype(np.float32),
                    tokens=tokens)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ita.quant.minilm",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", nargs="+", default=None,
                        help="files of one sentence a line (default: the evaluation sets)")
    parser.add_argument("--pairs", default=None,
                        help="two tab-separated sentences a line (default: the hand-made "
                             "pairs with the default sentences)")
    parser.add_argument("--calibration", default=str(CALIBRATION_FILE),
                        help="one sentence a line (default: the calibration set)")
    parser.add_argument("--pad-to", type=int, default=None,
                        help="run every sentence in a buffer of this many rows, padded keys "
                             "masked (the result must not change)")
    defaults = QuantOptions()
    parser.add_argument("--percentile", type=float, default=defaults.percentile)
    parser.add_argument("--alpha", type=float, default=defaults.smooth_alpha,
                        help="SmoothQuant strength before F1; a negative value turns that "
                             "smoothing off")
    parser.add_argument("--alpha-qkv", type=float, default=defaults.qkv_alpha,
                        help="SmoothQuant strength before Q, K, V; negative: off")
    parser.add_argument("--weight-ratio", type=float, default=defaults.weight_ratio,
                        help="F1 weight columns wider than this times the median run as their "
                             "own FFN part; negative: no such part")
    parser.add_argument("--gelu-floor", type=float, default=defaults.gelu_floor,
                        help="GELU inputs below minus this count as it for F1's output scale; "
                             "negative: a symmetric scale")
    parser.add_argument("--per-tensor", action="store_true",
                        help="one weight scale per tensor for OW and F2")
    parser.add_argument("--logit-frac", default=defaults.logit_frac,
                        type=lambda v: None if v == "auto" else int(v),
                        help="ITAmax logit step ln 2 / 2**K for every head, or 'auto' (the "
                             "default): per head the finest that holds its logits")
    args = parser.parse_args(argv)
    options = QuantOptions(percentile=args.percentile,
                           smooth_alpha=None if args.alpha < 0 else args.alpha,
                           qkv_alpha=None if args.alpha_qkv < 0 else args.alpha_qkv,
                           gelu_floor=None if args.gelu_floor < 0 else args.gelu_floor,
                           weight_ratio=None if args.weight_ratio < 0 else args.weight_ratio,
                           per_channel=not args.per_tensor, logit_frac=args.logit_frac)
    try:
        own = args.sentences is not None
        texts = [t for path in (args.sentences if own else EVALUATION_FILES)
                 for t in read_sentences(path)]
        pairs_file = args.pairs if args.pairs is not None or own else PAIRS_FILE
        texts, pairs = with_pairs(texts, read_pairs(pairs_file) if pairs_file else [])
        calibration_texts = read_sentences(args.calibration)
        model = bert.load_minilm()
        lengths = [len(model.tokenizer.encode(t)) for t in texts]
        if args.pad_to is not None and args.pad_to < max(lengths):
            raise ModelError(f"--pad-to {args.pad_to} is shorter than the longest sentence "
                             f"({max(lengths)} tokens)")
        cut = sum(model.tokenizer.encode_full(t)[1] for t in texts)
        if cut:
            print(f"note: {cut} sentence(s) truncated to {model.tokenizer.max_length} tokens")
        qmodel = quantise(model, calibrate(model, calibration_texts), options)
        acc = evaluate(model, qmodel, texts, pairs=pairs, pad_to=args.pad_to)
    except (ModelError, ValueError, ArithmeticError) as error:
        print(f"minilm: {error}", file=sys.stderr)
        return 2
    for text, cos, n in zip(texts, acc.cos, lengths, strict=True):
        print(f"{cos:.4f}  {n:3d} tokens  {text[:70]}")
    ok = acc.passes()
    print(f"goals: cos_mean >= {COS_MEAN_GOAL}, cos_min >= {COS_MIN_GOAL}, spearman_pairs >= "
          f"{SPEARMAN_PAIRS_GOAL}, spearman_all >= {SPEARMAN_ALL_GOAL}; calibrated on "
          f"{len(calibration_texts)} sentences; {options}")
    print(f"RESULT test=minilm_accuracy status={'PASS' if ok else 'FAIL'} "
          f"cos_mean={acc.cos_mean:.4f} cos_min={acc.cos_min:.4f} "
          f"spearman_pairs={acc.spearman_pairs:.4f} spearman_all={acc.spearman_all:.4f} "
          f"pairs={acc.pairs} sentences={len(texts)} tokens={acc.tokens}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
