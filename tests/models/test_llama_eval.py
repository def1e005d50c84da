"""Teacher-forced comparison measures, on hand-made logits and on SmolLM2's float model."""

import numpy as np
import pytest

from ita.models import llama
from ita.quant import llama_eval


def test_identical_logits_agree_everywhere():
    logits = np.random.default_rng(0).standard_normal((7, 11))
    targets = np.arange(7)
    c = llama_eval.compare(logits, logits, targets)
    assert (c.positions, c.top1_agreement, c.top5) == (7, 1.0, 1.0)
    assert c.ppl_float == c.ppl_integer and abs(c.kl) < 1e-12


def test_measures_on_a_worked_example():
    # Position 0: the candidate swaps the two best tokens; position 1: it ranks the float
    # model's pick sixth of six.
    ref = np.log(np.array([[0.5, 0.3, 0.1, 0.05, 0.03, 0.02],
                           [0.6, 0.2, 0.1, 0.05, 0.03, 0.02]]))
    cand = np.log(np.array([[0.3, 0.5, 0.1, 0.05, 0.03, 0.02],
                            [0.01, 0.2, 0.15, 0.24, 0.2, 0.2]]))
    c = llama_eval.compare(ref, cand, [1, 0])
    assert (c.top1_agreement, c.top5) == (0.0, 0.5)
    assert c.ppl_float == pytest.approx(np.sqrt(1 / (0.3 * 0.6)))
    assert c.ppl_integer == pytest.approx(np.sqrt(1 / (0.5 * 0.01)))
    p, q = np.exp(ref), np.exp(cand)
    assert c.kl == pytest.approx(np.mean((p * np.log(p / q)).sum(axis=1)))
    assert c.line("x").startswith("EVAL model=x positions=2 top1_agreement=0.0000 top5=0.5000")


def test_mismatched_shapes_are_one_error():
    with pytest.raises(ValueError, match="do not match 3 targets"):
        llama_eval.compare(np.zeros((2, 4)), np.zeros((2, 4)), [0, 1, 2])


def test_paragraphs(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("one\ntwo lines\r\n\r\nsecond\n\n\n\nthird  paragraph\n")
    assert llama_eval.read_paragraphs(path) == ["one two lines", "second", "third paragraph"]
    assert len(llama_eval.read_paragraphs()) == 8


def test_smollm2_on_the_evaluation_text():
    """The text has the positions the quality goals need; the float model against itself on
    two paragraphs (the whole text takes several seconds more: docs/decoder.md has its figure)."""
    model = llama.load_smollm2()
    paragraphs = llama_eval.read_paragraphs()
    assert sum(len(model.tokenizer.encode(p)) - 1 for p in paragraphs) >= 400
    c = llama_eval.evaluate(model, paragraphs[:2])
    assert c.top1_agreement == 1.0 and c.kl == 0.0
    assert 3 < c.ppl_float < 30
