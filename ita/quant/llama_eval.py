"""Teacher-forced comparison of a decoder against its float reference.

Greedy texts of a quantised model leave the float model's path after a few tokens even when
the model is good, so quality is measured position by position instead: every paragraph of
a text is one sequence (no BOS), every position predicts the next token, and the candidate's
next-token distribution is compared with the float model's at the same position.

The measures, over all positions: ``top1_agreement`` (both pick the same token), ``top5``
(the float model's pick is among the candidate's five best), the perplexity of each on the
actual next tokens, and the mean KL divergence ``KL(float || candidate)`` in nats.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ita.models import llama_reference
from ita.models.ir import ModelError

__all__ = ["EVALUATION_TEXT", "Comparison", "read_paragraphs", "compare", "evaluate"]

# English prose the repository holds, written for this purpose and never used to calibrate.
EVALUATION_TEXT = Path(__file__).parent / "data" / "llama_evaluation.txt"
TOP = 5


@dataclass(frozen=True)
class Comparison:
    positions: int
    top1_agreement: float
    top5: float
    ppl_float: float
    ppl_integer: float
    kl: float

    def line(self, model):
        """The one line scripts parse."""
        return (f"EVAL model={model} positions={self.positions} "
                f"top1_agreement={self.top1_agreement:.4f} top5={self.top5:.4f} "
                f"ppl_float={self.ppl_float:.3f} ppl_integer={self.ppl_integer:.3f} "
                f"kl={self.kl:.4f}")


def read_paragraphs(path=EVALUATION_TEXT):
    """Blank-line separated paragraphs of a UTF-8 text file, each joined into one line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelError(f"{path}: cannot read the text ({exc})") from None
    paragraphs = [" ".join(p.split()) for p in text.replace("\r\n", "\n").split("\n\n")]
    paragraphs = [p for p in paragraphs if p]
    if not paragraphs:
        raise ModelError(f"{path}: no paragraphs")
    return paragraphs


def _log_softmax(logits):
    """In float32: a 600 x 49152 table in float64 costs seconds, and on SmolLM2's logits
    float32 is within 4e-6 of it."""
    z = np.asarray(logits, np.float32)
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def compare(float_logits, candidate_logits, targets):
    """The :class:`Comparison` of two ``(positions, V)`` logit arrays, ``targets`` being the
    token that actually follows each position."""
    ref = _log_softmax(float_logits)
    cand = ref if candidate_logits is float_logits else _log_softmax(candidate_logits)
    targets = np.asarray(targets).reshape(-1)
    if ref.shape != cand.shape or ref.shape[0] != targets.size or targets.size == 0:
        raise ValueError(f"logits {ref.shape} and {cand.shape} do not match {targets.size} "
                         f"targets")
    rows = np.arange(targets.size)
    pick = ref.argmax(axis=-1)
    cand_top = np.argpartition(-cand, TOP - 1, axis=-1)[:, :TOP]
    kl = (np.exp(ref) * (ref - cand)).sum(axis=-1, dtype=np.float64)
    return Comparison(
        positions=int(targets.size),
        top1_agreement=float(np.mean(pick == cand.argmax(axis=-1))),
        top5=float(np.mean((cand_top == pick[:, None]).any(axis=-1))),
        ppl_float=float(np.exp(-ref[rows, targets].mean(dtype=np.float64))),
        ppl_integer=float(np.exp(-cand[rows, targets].mean(dtype=np.float64))),
        kl=float(kl.mean()))


def evaluate(model, paragraphs, candidate=None):
    """Compare ``candidate`` (token ids -> ``(len(ids), V)`` logits; None: the float
    reference itself) with the float reference of ``model`` on ``paragraphs``."""
    if model.tokenizer is None:
        raise ModelError(f"{model.name}: the checkpoint has no tokenizer")

    refs, cands, targets = [], [], []
    for text in paragraphs:
        ids = model.tokenizer.encode(text)
        if len(ids) < 2:
            continue
        refs.append(llama_reference.forward(model, ids[:-1])[0])
        cands.append(refs[-1] if candidate is None else candidate(ids[:-1]))
        targets.append(ids[1:])
    if not targets:
        raise ValueError("no paragraph has two tokens")
    return compare(np.concatenate(refs), np.concatenate(cands), np.concatenate(targets))
