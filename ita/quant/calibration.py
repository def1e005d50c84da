"""Calibration: the float model's intermediates on a set of sentences.

The quantiser derives every int8 scale from these statistics of the float reference
(:mod:`ita.models.bert_reference`), never from the evaluation sentences. The repository's
sentence sets live in ``data/`` (one sentence a line): ``calibration.txt``, and the
evaluation sentences ``evaluation.txt`` (whose sentence-transformers embeddings are stored
for the float reference's test) and ``evaluation_more.txt``; no sentence is in both sets.
``evaluation_pairs.tsv`` holds hand-made pairs of evaluation sentences, similar and
unrelated, one pair a line, tab-separated.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ita.models import bert_reference
from ita.models.ir import Model, ModelError

__all__ = ["DATA", "CALIBRATION_FILE", "EVALUATION_FILE", "EVALUATION_FILES", "PAIRS_FILE",
           "read_sentences", "read_pairs", "Calibration", "calibrate", "percentile_scale"]

DATA = Path(__file__).parent / "data"
CALIBRATION_FILE = DATA / "calibration.txt"
EVALUATION_FILE = DATA / "evaluation.txt"
EVALUATION_FILES = (EVALUATION_FILE, DATA / "evaluation_more.txt")
PAIRS_FILE = DATA / "evaluation_pairs.tsv"

# Largest int8 magnitude a calibrated scale maps to.
_INT8_MAX = 127

# Trace entries of (H, S, X) shape (per head); the others are (S, X). Attention logits
# (H, S, S) are kept only as each head's largest magnitude, ``logit_max`` (H,): their scale
# is the softmax's fixed step, and the largest logit says how fine that step may be.
_PER_HEAD = ("q", "k", "v", "o", "head_out")
_SKIPPED = ("logits",)


def read_sentences(path) -> list[str]:
    """Non-empty lines of a UTF-8 text file."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise ModelError(f"{path}: cannot read sentences ({error})") from None
    sentences = [line.strip() for line in lines if line.strip()]
    if not sentences:
        raise ModelError(f"{path}: no sentences")
    return sentences


def read_pairs(path) -> list[tuple[str, str]]:
    """Sentence pairs of a UTF-8 file, two tab-separated sentences a line."""
    pairs = []
    for number, line in enumerate(read_sentences(path), 1):
        parts = [part.strip() for part in line.split("\t")]
        if len(parts) != 2 or not all(parts):
            raise ModelError(f"{path}: pair {number} is not two tab-separated sentences")
        pairs.append((parts[0], parts[1]))
    return pairs


def percentile_scale(values, percentile: float) -> float:
    """Scale that maps the ``percentile``-th percentile of ``|values|`` to 127."""
    top = float(np.percentile(np.abs(values), percentile))
    return max(top, np.finfo(np.float32).tiny) / _INT8_MAX


@dataclass(frozen=True)
class Calibration:
    """Float intermediates of every calibration sentence, tokens concatenated.

    ``embed`` is the (T, E) embedding sum (the host's int8 input); ``layers[l]`` maps the
    trace names of :func:`ita.models.bert_reference.encoder_layer` to arrays with all T
    tokens along the token axis (axis 1 for per-head arrays, else axis 0), and
    ``logit_max`` (H,) to each head's largest attention logit magnitude (nats).
    """

    embed: np.ndarray
    layers: tuple
    sentences: int

    @property
    def tokens(self) -> int:
        return self.embed.shape[0]


def calibrate(model: Model, texts) -> Calibration:
    """Run the float model on ``texts`` and keep what the quantiser needs."""
    texts = list(texts)
    if not texts:
        raise ModelError("calibration needs at least one sentence")
    embeds, traces = [], []
    for text in texts:
        ids = model.tokenizer.encode(text)
        trace: list = []
        embeds.append(bert_reference.embedding_sum(model.embedding, ids))
        bert_reference.forward(model, ids, trace)
        traces.append(trace)
    layers = []
    for index in range(len(model.layers)):
        entries = {}
        for name in traces[0][index]:
            if name in _SKIPPED:
                continue
            axis = 1 if name in _PER_HEAD else 0
            entries[name] = np.concatenate([t[index][name] for t in traces], axis=axis)
        entries["logit_max"] = np.max([np.abs(t[index]["logits"]).max(axis=(1, 2))
                                       for t in traces], axis=0)
        layers.append(entries)
    return Calibration(embed=np.concatenate(embeds), layers=tuple(layers),
                       sentences=len(texts))
