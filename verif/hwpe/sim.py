"""HWPE-level simulation: builds the Verilator model of the ITA HWPE and registers its pyuvm
tests (``verif/hwpe/tests.py``) with ``make sim``: ``ita_hwpe`` (the job of the command line)
and the ``uvm_hwpe_*`` scenarios."""

from dataclasses import dataclass

from cluster_integration.hwpe.ita_hwpe import ItaHwpe
from hw import toolchain
from ita.cli import SEED, WAVES, array_keys, choice_key, flag_key, int_key
from ita.config import ITAConfig
from verif.channel import publish
from verif.engine import LOGIT_FRAC, LayerOptions, layer_options
from verif.sim import register
from verif.uvm.runner import UvmTest, run_test
from verif.uvm.stall import PROFILES

TB_MODULE = "verif.hwpe.tests"
ACTIVATIONS = ("identity", "gelu", "relu")
MODES = ("attention", "ffn", "linear", "qkav")
#: The pyuvm test of ``make sim TEST=ita_hwpe``: the job of the command line.
JOBS_TESTCASE = "HwpeJobs"


@dataclass(frozen=True, kw_only=True)
class HwpeOptions:
    """What every HWPE pyuvm test reads through :mod:`verif.channel`."""

    N: int
    M: int
    stalls: bool              #: random TCDM grant stalls (when stall_profile is auto)
    count: int = 0            #: jobs (0: the test's default)
    stall_profile: str = "auto"


@dataclass(frozen=True, kw_only=True)
class HwpeJobOptions(HwpeOptions, LayerOptions):
    """The command-line job of ``ita_hwpe``: one layer's golden vectors."""

    test_name: str


def hwpe_options(options, testcase=JOBS_TESTCASE) -> HwpeOptions:
    """The testbench options of one ``make sim`` run of ``testcase``."""
    common = {"N": options["ARRAY_N"], "M": options["ARRAY_M"],
              "stalls": bool(options["STALLS"])}
    if "COUNT" in options:
        common["count"] = options["COUNT"]
    if "STALL_PROFILE" in options:
        common["stall_profile"] = options["STALL_PROFILE"]
    if testcase != JOBS_TESTCASE:
        return HwpeOptions(**common)
    return HwpeJobOptions(**common, test_name="ita_hwpe",
                          **layer_options(options["MODE"], options))


#: The HWPE's pyuvm scenarios besides ``ita_hwpe`` (regression names -> pyuvm classes).
TESTS = {t.name: t for t in (
    UvmTest("uvm_hwpe_random", "HwpeRandom",
                "pyuvm HWPE: constrained-random jobs of every mode from two contending cores"),
    UvmTest("uvm_hwpe_clear", "HwpeClear",
                "pyuvm HWPE: soft clear mid-job and while idle, then a checked job"),
    UvmTest("uvm_hwpe_illegal", "HwpeIllegal",
                "pyuvm HWPE: illegal configurations reported in ERROR, no hang, no access"),
    UvmTest("uvm_hwpe_inject_lsb", "HwpeNegativeLsb",
                "pyuvm HWPE negative test: one expected LSB wrong (FAIL expected)",
                expect_fail=True),
)}


def toplevel_name(config, width):
    return f"ita_hwpe_n{config.N}_m{config.M}_w{width}"


def build_hwpe(config, *, width=1024, waves=False, clock_gate=True):
    """Emit the HWPE's Verilog and build (or reuse) its Verilator model (with the clock
    gate the cluster uses, unless ``clock_gate`` is false)."""
    top = toplevel_name(config, width) + ("" if clock_gate else "_free")
    key = toolchain.source_digest("ita", "cluster_integration",
                                  extra=f"{config!r} {width} {clock_gate}")
    verilog = toolchain.emit_verilog_cached(
        lambda: ItaHwpe(config=config, data_width=width, clock_gate=clock_gate), top,
        toolchain.BUILD_ROOT / "gen" / f"{top}.v", key=key)
    return toolchain.build([verilog], top, waves=waves)


def run_hwpe_test(options, test_name="ita_hwpe", testcase=JOBS_TESTCASE, *, clock_gate=True):
    """Run one pyuvm test of ``verif.hwpe.tests``; ``options`` are the ``make sim`` keys."""
    config = ITAConfig(N=options["ARRAY_N"], M=options["ARRAY_M"])
    handle = build_hwpe(config, waves=bool(options["WAVES"]), clock_gate=clock_gate)
    outcome = run_test(handle, TB_MODULE, testcase, seed=options["SEED"],
                       waves=bool(options["WAVES"]),
                       extra_env=publish(hwpe_options(options, testcase)),
                       results_name=f"{test_name}-seed{options['SEED']}")
    return outcome.as_sim_result()


@register("ita_hwpe", "ITA as an HWPE on Verilator: registers, streamers, TCDM memory; "
          "heads run as queued jobs in two contexts",
          keys=(choice_key("MODE", "attention", MODES, help="operation of the job"),
                *(int_key(name, 64, minimum=1, maximum=4095) for name in "SEPF"),
                int_key("H", 1, minimum=1, maximum=16, help="heads: one job each"),
                choice_key("ACT", "gelu", ACTIVATIONS, help="activation of F1 / linear"),
                flag_key("BIAS", True), flag_key("CAUSAL"),
                int_key("VALID_KEYS", 0, minimum=0, help="keys seen by the softmax (0: all S)"),
                LOGIT_FRAC,
                flag_key("STALLS", True, help="random TCDM grant stalls"),
                *array_keys(), SEED, WAVES))
def _run(options):
    return run_hwpe_test(options)


def _register_uvm(test: UvmTest):
    keys = (SEED, WAVES,
            int_key("COUNT", 0, minimum=0, maximum=200, help="jobs (0: the test's default)"),
            flag_key("STALLS", True, help="random TCDM grant stalls (p = 0.2)"),
            choice_key("STALL_PROFILE", "auto", ("auto", *PROFILES),
                       help="TCDM grant stall profile (auto: as STALLS says)"),
            *array_keys())

    def run(options):
        return run_hwpe_test(options, test.name, test.testcase)

    register(test.name, test.description, keys=keys)(run)


for _test in TESTS.values():
    _register_uvm(_test)
