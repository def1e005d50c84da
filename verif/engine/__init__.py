"""Engine-level simulation: builds the Verilator model of :class:`ita.rtl.engine.Engine`
and registers the ``ita_attention``, ``ita_ffn``, ``ita_linear`` and ``ita_qkav`` tests."""

from dataclasses import dataclass

from ita.cli import SEED, WAVES, array_keys, choice_key, flag_key, int_key
from ita.config import ITAConfig
from verif.channel import publish
from verif.sim import cocotb_result, register

TB_MODULE = "verif.engine.tb_engine"
ACTIVATIONS = ("identity", "gelu", "relu")


def toplevel_name(config: ITAConfig) -> str:
    return f"ita_engine_n{config.N}_m{config.M}"


def build_engine(config: ITAConfig, *, waves=False):
    """Emit the engine's Verilog for ``config`` and build (or reuse) its Verilator model."""
    from hw import toolchain
    from ita.rtl.engine import Engine

    top = toplevel_name(config)
    key = toolchain.source_digest("ita", extra=repr(config))
    verilog = toolchain.emit_verilog_cached(lambda: Engine(config=config), top,
                                            toolchain.BUILD_ROOT / "gen" / f"{top}.v", key=key)
    return toolchain.build([verilog], top, waves=waves)


@dataclass(frozen=True)
class EngineOptions:
    """What tb_engine runs: the engine's geometry, the layer, the stalls (the channel's
    schema, :mod:`verif.channel`)."""

    test_name: str
    mode: str
    N: int
    M: int
    S: int
    E: int
    P: int
    F: int
    H: int
    activation: str
    bias: bool
    causal: bool
    valid_keys: int   #: 0: every key
    stalls: bool
    inject: str = ""  #: "lsb" or "drop": a negative run


def engine_options(test_name, mode, options, *, inject=""):
    """The tb_engine options of one ``make sim`` run."""
    return EngineOptions(test_name=test_name, mode=mode, N=options["ARRAY_N"],
                         M=options["ARRAY_M"], S=options["S"], E=options["E"], P=options["P"],
                         F=options["F"], H=options["H"], activation=options["ACT"],
                         bias=bool(options["BIAS"]), causal=bool(options["CAUSAL"]),
                         valid_keys=options["VALID_KEYS"], stalls=bool(options["STALLS"]),
                         inject=inject)


def run_engine_test(test_name, mode, options, *, inject=""):
    config = ITAConfig(N=options["ARRAY_N"], M=options["ARRAY_M"])
    handle = build_engine(config, waves=bool(options["WAVES"]))
    return cocotb_result(handle, TB_MODULE, seed=options["SEED"], waves=bool(options["WAVES"]),
                         extra_env=publish(engine_options(test_name, mode, options, inject=inject)),
                         results_name=f"{test_name}-seed{options['SEED']}")


def _keys(S=64, E=64, P=64, F=64, act="gelu"):
    dims = [int_key(name, default, minimum=1, maximum=4095) for name, default in
            (("S", S), ("E", E), ("P", P), ("F", F))]
    return (*dims, int_key("H", 1, minimum=1, maximum=16, help="heads, run as back-to-back jobs"),
            choice_key("ACT", act, ACTIVATIONS, help="activation of F1 / linear"),
            flag_key("BIAS", True), flag_key("CAUSAL"),
            int_key("VALID_KEYS", 0, minimum=0, help="keys seen by the softmax (0: all S)"),
            flag_key("STALLS", True, help="random idle cycles and back-pressure on every stream"),
            *array_keys(), SEED, WAVES)


for _name, _mode, _description, _act in (
        ("ita_attention", "attention", "one attention head (Q, K, V, QK, softmax, AV, OW)",
         "gelu"),
        ("ita_ffn", "ffn", "feed-forward block (F1 with activation, F2)", "gelu"),
        ("ita_linear", "linear", "a single linear layer with activation", "relu"),
        ("ita_qkav", "qkav", "single attention: QK, softmax and AV on given Q, K, V", "gelu")):
    def _run(options, _name=_name, _mode=_mode):
        return run_engine_test(_name, _mode, options)
    register(_name, f"engine on Verilator: {_description}", keys=_keys(act=_act))(_run)
