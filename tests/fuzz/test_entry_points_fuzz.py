"""Random ``KEY=VALUE`` command lines against every ``make`` entry point's own ``main``.

``tests/fuzz/test_cli_fuzz.py`` fuzzes :mod:`ita.cli` alone; here each tool of
``tests/cli/test_entry_points.py`` runs its real ``main`` in-process on random words built
from its own keys (and from keys it does not have), with its checks after parsing (a
configuration, an app name, a test's keys) in place. Only the work that follows is replaced
by a stop, so an accepted command line ends there without building or simulating anything.
Every run must either reach that stop, answer ``HELP=1`` (or ``TEST=list``) with status 0,
or refuse with status 2 and exactly one ``<tool>: error: ...`` line on stderr; any other
exception, a traceback or another status fails.
"""

import contextlib
import dataclasses
import importlib
import io
import re
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ita import cli
from tests.cli.test_entry_points import ENTRY_POINTS

SETTINGS = settings(derandomize=True, max_examples=40, deadline=None)
ERROR_LINE = re.compile(r"^[\w.]+: error: \S")

#: Per tool: (module, attribute) of the work that follows a parsed command line.
WORK = {
    "verif.regress": [("verif.regress", "regress")],
    "verif.coverage_cli": [("verif.regress", "regress")],
    "hw.verilog": [("hw.verilog", "generate")],
    "hw.fpga_cli": [("hw.fpga_cli", "run_core"), ("hw.board", "main")],
    "verif.harness.engine": [("verif.harness.engine", "run_engine")],
    "verif.harness.run": [("verif.harness.run", "run_app")],
    "bench": [("bench.__main__", "Bench")],
    "bench.cluster_image": [("bench.cluster_image", "run_gemm_image")],
    "bench.dma_rate": [("bench.dma_rate", "copy_cycles"), ("bench.dma_rate", "arbitration")],
    "ita.golden": [("ita.golden.__main__", "generate")],
    "sw.build": [("sw.build", "build_app")],
    "ita.quant.evaluate": [("ita.quant.evaluate", "evaluate_minilm"),
                           ("ita.quant.evaluate", "evaluate_smollm2")],
    "verif.sim": [],   # every registered test's run function (see _stopped)
}


class Reached(BaseException):
    """The command line was accepted: the tool got to its work (a BaseException, so that no
    ``except Exception`` of the tool turns it into a status)."""


def _stop(*_args, **_kwargs):
    raise Reached


def _entry(module):
    for name in (f"{module}.__main__", module):
        try:
            entry = importlib.import_module(name)
        except ImportError:
            continue
        if hasattr(entry, "main"):
            return entry
    raise AssertionError(f"{module} has no main")


def _keys(module):
    """The Key objects a tool accepts (for sim: TEST and every test's keys)."""
    if module == "verif.sim":
        from verif import sim

        tests = sim.load_tests()
        keys = {k.name: k for t in tests.values() for k in t.keys}
        return [cli.choice_key("TEST", "smoke", tuple(tests)), *keys.values()]
    if module == "verif.coverage_cli":
        from verif import coverage_cli

        return list(coverage_cli.keys())
    return list(_entry(module).KEYS)


@contextlib.contextmanager
def _stopped(module):
    with contextlib.ExitStack() as stack:
        for target, attribute in WORK[module]:
            stack.enter_context(mock.patch.object(importlib.import_module(target), attribute,
                                                  _stop))
        if module == "verif.sim":
            from verif import sim

            for name, test in sim.load_tests().items():
                stack.enter_context(mock.patch.dict(
                    sim.REGISTRY, {name: dataclasses.replace(test, run=_stop)}))
        yield


def _values(key):
    """Texts for one key: its default as typed, the words of what it expects, and noise."""
    expect = re.findall(r"[\w.,/-]+", key.expect)
    return st.one_of(st.just(key.show_default()), st.sampled_from(expect or [""]),
                     st.integers(-3, 70000).map(str),
                     st.sampled_from(["0", "1", "", "x", "1,1", "01", " 2", "0x10", "-0"]),
                     st.text(max_size=6))


@st.composite
def _words(draw, module):
    keys = _keys(module)
    chosen = draw(st.lists(st.sampled_from(keys), max_size=4, unique_by=lambda k: k.name))
    words = [f"{k.name}={draw(_values(k))}" for k in chosen]
    noise = st.one_of(st.from_regex(r"[A-Z][A-Z0-9_]{0,6}=[a-z0-9]{0,3}", fullmatch=True),
                      st.text(max_size=6))
    words += draw(st.lists(noise, max_size=2 if draw(st.booleans()) else 0))
    if draw(st.booleans()):   # the words that get the tool as far as its keys
        given = {w.partition("=")[0] for w in words}
        words = [w for w in ENTRY_POINTS[module] if w.partition("=")[0] not in given] + words
    return draw(st.permutations(words))


def _outcome(module, words):
    """("reached" | status, stdout, stderr) of the tool's main on ``words``."""
    main = _entry(module).main
    out, err = io.StringIO(), io.StringIO()
    with _stopped(module), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = main(list(words))
        except Reached:
            status = "reached"
    return status, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("module", sorted(WORK))
def test_random_words_reach_the_work_or_give_one_error_line(module):
    assert set(WORK) == set(ENTRY_POINTS), "a new entry point needs its work named in WORK"

    @SETTINGS
    @given(_words(module))
    def check(words):
        status, out, err = _outcome(module, words)
        if status == "reached":
            return
        if status == 0:   # the key listing (HELP=1, help, TEST=list), nothing run
            assert any(w in cli.HELP_WORDS for w in words) or "TEST=list" in words, \
                (words, out, err)
            assert err == "", err
            return
        assert status == 2, (words, status, out, err)
        lines = err.splitlines()
        assert len(lines) == 1 and ERROR_LINE.match(lines[0]), (words, err)
        assert out == "", (words, out)

    check()


def test_the_stop_is_reached_by_a_valid_command_line():
    """The fuzz test above can tell acceptance from refusal: the words that get each tool
    as far as its keys are accepted, an unknown key is refused."""
    for module in WORK:
        assert _outcome(module, ENTRY_POINTS[module])[0] == "reached", module
        status, _, err = _outcome(module, [*ENTRY_POINTS[module], "NO_SUCH_KEY=1"])
        assert status == 2 and "unknown key NO_SUCH_KEY" in err, (module, err)
