"""The engine's pyuvm environment and tests (``verif.engine_uvm.tests``).

Registers one ``make sim`` test per pyuvm test when imported::

    make sim TEST=uvm_engine_attention SEED=7 [COUNT=5] [WAVES=1] [COVERAGE=1]
             [ARRAY_N=8 ARRAY_M=32]

``COVERAGE=1`` runs on the Verilator model built with line and toggle coverage (see
``verif.coverage``); the run directory then also holds ``coverage.dat``. Every run writes its
functional coverage to :data:`FUNCOV_FILE` in its run directory.
"""

from __future__ import annotations

from dataclasses import dataclass

from ita.cli import SEED, WAVES, array_keys, flag_key, int_key
from ita.config import DEFAULT_CONFIG, ITAConfig
from verif.channel import publish
from verif.coverage import build_coverage_model
from verif.engine import build_engine
from verif.sim import register
from verif.uvm.runner import Outcome, UvmTest, run_test

__all__ = ["TESTS", "TB_MODULE", "FUNCOV_FILE", "EngineUvmOptions", "build_engine_model",
           "run_engine_uvm", "UvmTest"]

TB_MODULE = "verif.engine_uvm.tests"
#: The functional coverage of a run, in its run directory (merged by the regression).
FUNCOV_FILE = "funcov.yml"


@dataclass(frozen=True)
class EngineUvmOptions:
    """What the engine's pyuvm tests read through :mod:`verif.channel`."""

    N: int        #: the engine geometry the model was built for
    M: int
    count: int    #: jobs per run (0: the test's default)
    funcov: str   #: where to export the functional coverage


TESTS = {t.name: t for t in (
    UvmTest("uvm_engine_attention", "EngineRandomAttention",
            "pyuvm: constrained-random attention jobs aimed at the coverage cross"),
    UvmTest("uvm_engine_qkav", "EngineRandomQkav",
            "pyuvm: constrained-random single-attention jobs (QK, softmax, AV)"),
    UvmTest("uvm_engine_ffn", "EngineRandomFfn", "pyuvm: constrained-random FFN jobs"),
    UvmTest("uvm_engine_linear", "EngineRandomLinear", "pyuvm: constrained-random linear jobs"),
    UvmTest("uvm_engine_b2b", "EngineBackToBack",
            "pyuvm: mixed jobs with no idle cycle between them, some prefetching"),
    UvmTest("uvm_engine_clear", "EngineClear",
            "pyuvm: clear mid-job and when idle, each followed by a checked job"),
    UvmTest("uvm_engine_illegal", "EngineIllegal",
            "pyuvm: illegal configurations raise error without hanging; a job follows"),
    UvmTest("uvm_engine_corners", "EngineCorners",
            "pyuvm: requantization, data and shape corners on every mode"),
    UvmTest("uvm_engine_inject_lsb", "EngineNegativeLsb",
            "pyuvm negative test: one expected LSB wrong (FAIL expected)", expect_fail=True),
    UvmTest("uvm_engine_inject_drop", "EngineNegativeDrop",
            "pyuvm negative test: one output beat lost (FAIL expected)", expect_fail=True),
    UvmTest("uvm_engine_inject_hang", "EngineNegativeHang",
            "pyuvm negative test: input never sent, the watchdog must fire (FAIL expected)",
            expect_fail=True),
)}


def build_engine_model(config: ITAConfig, *, coverage: bool = False, waves: bool = False):
    """The engine's Verilator model: the regular one, or the coverage build."""
    if coverage:
        return build_coverage_model(config, waves=waves)
    return build_engine(config, waves=waves)


def run_engine_uvm(name: str, seed: int, *, count: int = 0, N: int = DEFAULT_CONFIG.N,
                   M: int = DEFAULT_CONFIG.M,
                   waves: bool = False, coverage: bool = False) -> Outcome:
    """Run registered test ``name`` with ``seed``; its run directory is
    ``<model build dir>/runs/<name>-seed<seed>``."""
    test = TESTS[name]
    config = ITAConfig(N=N, M=M)
    handle = build_engine_model(config, coverage=coverage, waves=waves)
    env = publish(EngineUvmOptions(N=N, M=M, count=count, funcov=FUNCOV_FILE))
    return run_test(handle, TB_MODULE, test.testcase, seed=seed, waves=waves, extra_env=env,
                    results_name=f"{name}-seed{seed}")


def _register(test: UvmTest):
    keys = (SEED, WAVES,
            int_key("COUNT", 0, minimum=0, maximum=1000, help="jobs (0: the test's default)"),
            flag_key("COVERAGE", help="run on the line/toggle coverage build"),
            *array_keys())

    def run(options):
        return run_engine_uvm(test.name, options["SEED"], count=options["COUNT"],
                              N=options["ARRAY_N"], M=options["ARRAY_M"],
                              waves=bool(options["WAVES"]),
                              coverage=bool(options["COVERAGE"])).as_sim_result()

    register(test.name, test.description, keys=keys)(run)


for _test in TESTS.values():
    _register(_test)
