"""``make evaluate``: the user's own text through the float and the integer model."""

import numpy as np
import pytest

from ita.quant import evaluate
from ita.quant.minilm import spearman


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def _run(capsys, *words):
    status = evaluate.main(list(words))
    out, err = capsys.readouterr()
    return status, out, err


def _fields(line):
    return dict(word.split("=", 1) for word in line.split()[1:])


def test_minilm_eval_line_pairs_and_arrays(tmp_path, capsys):
    sentences = _write(tmp_path / "in.txt", "A man is playing a guitar.\nSomeone plays the "
                       "guitar.\n\nThe stock market fell today.\nA cat sleeps on the sofa.\n"
                       "Le chat dort sur le canapé.\n")
    pairs = _write(tmp_path / "pairs.tsv", "0\t1\n0\t3\n1\t4\n3\t5\n4\t5\n")
    out_file = tmp_path / "emb.npz"
    status, out, err = _run(capsys, "MODEL=minilm", f"IN={sentences}", f"PAIRS={pairs}",
                            f"OUT={out_file}")
    assert status == 0, err
    line = [x for x in out.splitlines() if x.startswith("EVAL ")][-1]
    f = _fields(line)
    assert f["model"] == "minilm" and f["sentences"] == "5"
    saved = np.load(out_file)
    fl, it = saved["float"], saved["integer"]
    assert fl.shape == it.shape == (5, 384) and fl.dtype == it.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(fl, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(it, axis=1), 1, atol=1e-5)
    cos = np.sum(fl * it, axis=1)
    assert float(f["cos_mean"]) == pytest.approx(cos.mean(), abs=1e-4)
    assert float(f["cos_min"]) == pytest.approx(cos.min(), abs=1e-4)
    assert float(f["cos_min"]) > 0.95
    # the pairs are line indices of the file: line 2 is blank, line 3 is sentence 2
    a, b = np.array([0, 0, 1, 2, 3]), np.array([1, 2, 3, 4, 4])
    expected = spearman(np.sum(fl[a] * fl[b], 1), np.sum(it[a] * it[b], 1))
    assert float(f["spearman_pairs"]) == pytest.approx(expected, abs=1e-4)
    upper = np.triu_indices(5, 1)
    expected_all = spearman((fl @ fl.T)[upper], (it @ it.T)[upper])
    assert float(f["spearman_all"]) == pytest.approx(expected_all, abs=1e-4)
    assert list(saved["sentences"])[2] == "The stock market fell today."


@pytest.mark.parametrize("words, message", [
    (["MODEL=minilm"], "missing IN=<file>"),
    (["IN=x.txt"], "missing MODEL="),
    (["MODEL=minilm", "IN={missing}"], "cannot read"),
    (["MODEL=minilm", "IN={empty}"], "no sentences"),
    (["MODEL=minilm", "IN={sentences}", "PAIRS={sentences}"], "not two tab-separated"),
    (["MODEL=minilm", "IN={sentences}", "PAIRS={far}"], "index 7 is not a sentence"),
    (["MODEL=minilm", "IN={sentences}", "POSITIONS=3"], "POSITIONS does not apply"),
    (["MODEL=smollm2", "IN={sentences}", "OUT=x.npz"], "OUT does not apply"),
    (["MODEL=smollm2", "IN={empty}"], "no paragraphs"),
    (["MODEL=minilm", "IN={latin1}"], "cannot read"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, words, message):
    files = {"missing": tmp_path / "none.txt", "empty": _write(tmp_path / "e.txt", "\n\n"),
             "sentences": _write(tmp_path / "s.txt", "One.\nTwo.\n"),
             "far": _write(tmp_path / "p.tsv", "0\t7\n"),
             "latin1": tmp_path / "l.txt"}
    files["latin1"].write_bytes("caf\xe9\n".encode("latin-1"))
    status, out, err = _run(capsys, *[w.format(**files) for w in words])
    assert status == 2 and out == ""
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("evaluate: error: ") and message in lines[0]


def test_smollm2_eval_line(tmp_path, capsys):
    text = _write(tmp_path / "t.txt", "The little dog ran across the garden to find its "
                  "ball.\n\nShe opened the window and the cold air came in.\n")
    status, out, err = _run(capsys, "MODEL=smollm2", f"IN={text}", "POSITIONS=12")
    assert status == 0, err
    f = _fields(out.strip().splitlines()[-1])
    assert f["model"] == "smollm2" and f["positions"] == "12"
    assert 0 <= float(f["top1_agreement"]) <= 1 and float(f["top5"]) >= 0.5
    assert float(f["ppl_float"]) > 1 and float(f["kl"]) >= 0
