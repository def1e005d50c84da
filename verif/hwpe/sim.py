"""HWPE-level simulation: builds the Verilator model of the ITA HWPE and registers the
``ita_hwpe`` test with ``make sim``."""

from ita.config import ITAConfig
from verif.sim import SEED, WAVES, cocotb_result, flag_key, int_key, register

TB_MODULE = "verif.hwpe.tb_hwpe"
ACTIVATIONS = ("identity", "gelu", "relu")
MODES = ("attention", "ffn", "linear", "qkav")


def toplevel_name(config, width):
    return f"ita_hwpe_n{config.N}_m{config.M}_w{width}"


def build_hwpe(config, *, width=1024, waves=False):
    """Emit the HWPE's Verilog and build (or reuse) its Verilator model."""
    from cluster_integration.hwpe.ita_hwpe import ItaHwpe
    from hw import toolchain

    top = toplevel_name(config, width)
    key = toolchain.source_digest("ita", "cluster_integration", extra=f"{config!r} {width}")
    verilog = toolchain.emit_verilog_cached(
        lambda: ItaHwpe(config=config, data_width=width), top,
        toolchain.BUILD_ROOT / "gen" / f"{top}.v", key=key)
    return toolchain.build([verilog], top, waves=waves)


def run_hwpe_test(options, test_name="ita_hwpe"):
    config = ITAConfig(N=options["N"], M=options["M"])
    handle = build_hwpe(config, waves=bool(options["WAVES"]))
    env = {"HWPE_TEST_NAME": test_name, "HWPE_MODE": options["MODE"],
           "HWPE_ACT": options["ACT"]}
    for key in ("N", "M", "S", "E", "P", "F", "H", "SEED", "VALID_KEYS"):
        env[f"HWPE_{key}"] = str(options[key])
    for key in ("BIAS", "CAUSAL", "STALLS"):
        env[f"HWPE_{key}"] = str(int(options[key]))
    return cocotb_result(handle, TB_MODULE, seed=options["SEED"], waves=bool(options["WAVES"]),
                         extra_env=env, results_name=f"{test_name}-seed{options['SEED']}")


def _choice(name, default, choices, help_text):
    from verif.sim import Key

    def parse(text):
        if text not in choices:
            raise ValueError(text)
        return text
    return Key(name, default, parse, " or ".join(choices), help_text)


@register("ita_hwpe", "ITA as an HWPE on Verilator: registers, streamers, TCDM memory; "
          "heads run as queued jobs in two contexts",
          keys=(_choice("MODE", "attention", MODES, "operation of the job"),
                *(int_key(name, 64, minimum=1, maximum=4095) for name in "SEPF"),
                int_key("H", 1, minimum=1, maximum=16, help="heads: one job each"),
                _choice("ACT", "gelu", ACTIVATIONS, "activation of F1 / linear"),
                flag_key("BIAS", True), flag_key("CAUSAL"),
                int_key("VALID_KEYS", 0, minimum=0, help="keys seen by the softmax (0: all S)"),
                flag_key("STALLS", True, help="random TCDM grant stalls"),
                int_key("N", 16, minimum=1), int_key("M", 64, minimum=1), SEED, WAVES))
def _run(options):
    return run_hwpe_test(options)
