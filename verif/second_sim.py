"""Second-simulator smoke runs (issue 19): the engine and HWPE Verilog of ``make verilog`` on
Icarus Verilog, driven by the same testbenches and golden vectors as on Verilator
(``verif/engine/tb_engine.py``, the pyuvm HWPE test ``HwpeJobs``).

Registers ``icarus_engine`` and ``icarus_hwpe`` with ``make sim``. Icarus is about a hundred
times slower than Verilator, so the defaults are the ``small`` configuration and shapes that
still span several tiles in every dimension, two heads back to back and stalls on.
"""

from dataclasses import replace

from hw import icarus
from hw.configs import get as get_config
from hw.verilog import config_key
from ita.cli import SEED, choice_key, flag_key, int_key
from verif.channel import publish
from verif.engine import ACTIVATIONS, LOGIT_FRAC, engine_options
from verif.engine import TB_MODULE as ENGINE_TB
from verif.hwpe.sim import JOBS_TESTCASE, MODES, hwpe_options
from verif.hwpe.sim import TB_MODULE as HWPE_TB
from verif.sim import cocotb_result, register
from verif.uvm.runner import run_test

DEFAULT_CONFIG = "small"
#: Two tiles of M in every dimension of the default configuration's engine (M / N row
#: blocks each), two heads.
_TWO_TILES = 2 * get_config(DEFAULT_CONFIG).ita.M
DEFAULT_SHAPE = {"S": _TWO_TILES, "E": _TWO_TILES, "P": _TWO_TILES, "F": _TWO_TILES, "H": 2}


def build(top: str, config: str):
    """``make verilog TOP=<top> CONFIG=<config>`` compiled for Icarus (both cached)."""
    output = icarus.make_verilog(top, config)
    return icarus.build(output.sources, top)


def _keys(*extra):
    dims = [int_key(name, default, minimum=1, maximum=4095)
            for name, default in DEFAULT_SHAPE.items() if name != "H"]
    return (config_key(DEFAULT_CONFIG), *extra, *dims,
            int_key("H", DEFAULT_SHAPE["H"], minimum=1, maximum=16,
                    help="heads, run as back-to-back jobs"),
            choice_key("ACT", "gelu", ACTIVATIONS, help="activation of F1 / linear"),
            flag_key("BIAS", True), flag_key("CAUSAL"),
            int_key("VALID_KEYS", 0, minimum=0, help="keys seen by the softmax (0: all S)"),
            LOGIT_FRAC,
            flag_key("STALLS", True, help="random idle cycles, back-pressure, grant stalls"),
            SEED)


def _tagged(status, fields, config):
    return status, {**fields, "simulator": icarus.SIMULATOR, "config": config}


@register("icarus_engine", "engine Verilog of make verilog TOP=ita on Icarus: one attention "
          "job per head, checked beat by beat", keys=_keys())
def run_engine(options, *, inject=""):
    """``inject`` ("lsb", "drop") makes tb_engine's negative runs, which must FAIL."""
    config = options["CONFIG"]
    ita = get_config(config).ita
    handle = build("ita", config)
    opts = {**options, "ARRAY_N": ita.N, "ARRAY_M": ita.M}
    env = publish(engine_options("icarus_engine", "attention", opts, inject=inject))
    name = f"icarus_engine{'-' + inject if inject else ''}-seed{options['SEED']}"
    return _tagged(*cocotb_result(handle, ENGINE_TB, seed=options["SEED"], extra_env=env,
                                  results_name=name), config)


@register("icarus_hwpe", "HWPE Verilog of make verilog TOP=ita_hwpe on Icarus: jobs through "
          "the registers, results compared in TCDM memory",
          keys=_keys(choice_key("MODE", "attention", MODES, help="operation of the job")))
def run_hwpe(options):
    config = options["CONFIG"]
    ita = get_config(config).ita
    handle = build("ita_hwpe", config)
    job = hwpe_options({**options, "ARRAY_N": ita.N, "ARRAY_M": ita.M}, JOBS_TESTCASE)
    env = publish(replace(job, test_name="icarus_hwpe"))
    outcome = run_test(handle, HWPE_TB, JOBS_TESTCASE, seed=options["SEED"], extra_env=env,
                       results_name=f"icarus_hwpe-seed{options['SEED']}")
    return _tagged(*outcome.as_sim_result(), config)
