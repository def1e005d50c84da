"""Engine-level simulation: builds the Verilator model of :class:`ita.rtl.engine.Engine`
and registers the ``ita_attention``, ``ita_ffn``, ``ita_linear`` and ``ita_qkav`` tests."""

from dataclasses import dataclass

from hw import toolchain
from ita.cli import SEED, WAVES, array_keys, choice_key, flag_key, int_key
from ita.config import DEFAULT_CONFIG, ITAConfig
from ita.golden.vectors import LayerShape, generate
from ita.rtl.engine import Engine
from ita.rtl.job import EngineJob, TensorMemory, job_from_vectors
from verif.channel import publish
from verif.sim import cocotb_result, register

TB_MODULE = "verif.engine.tb_engine"
ACTIVATIONS = ("identity", "gelu", "relu")
#: Modes whose layer has heads (one job each).
HEAD_MODES = ("attention", "qkav")


def toplevel_name(config: ITAConfig) -> str:
    return f"ita_engine_n{config.N}_m{config.M}"


def build_engine(config: ITAConfig, *, waves=False):
    """Emit the engine's Verilog for ``config`` and build (or reuse) its Verilator model."""
    top = toplevel_name(config)
    key = toolchain.source_digest("ita", extra=repr(config))
    verilog = toolchain.emit_verilog_cached(lambda: Engine(config=config), top,
                                            toolchain.BUILD_ROOT / "gen" / f"{top}.v", key=key)
    return toolchain.build([verilog], top, waves=waves)


@dataclass(frozen=True, kw_only=True)
class LayerOptions:
    """One layer of golden vectors: the job of the command line of the plain engine bench
    and of ``ita_hwpe`` (part of their channel schemas, :mod:`verif.channel`)."""

    mode: str
    S: int
    E: int
    P: int
    F: int
    H: int
    activation: str
    bias: bool
    causal: bool
    valid_keys: int  #: 0: every key
    logit_frac: int = 0  #: ITAmax logit step ln 2 / 2**logit_frac

    def shape(self) -> LayerShape:
        return LayerShape(S=self.S, E=self.E, P=self.P, F=self.F, H=self.H,
                          activation=self.activation, bias=self.bias, causal=self.causal,
                          valid_keys=self.valid_keys or None, logit_frac=self.logit_frac)

    def jobs(self, seed: int, config: ITAConfig) -> list[tuple[EngineJob, TensorMemory]]:
        """The layer's engine jobs: one per head in the attention modes, else one."""
        vectors = generate(self.shape(), seed, config)
        heads = self.H if self.mode in HEAD_MODES else 1
        return [job_from_vectors(self.mode, vectors, head=h, config=config)
                for h in range(heads)]


def layer_options(mode: str, options) -> dict:
    """The :class:`LayerOptions` fields of ``make sim`` keys (S, E, P, F, H, ACT, BIAS,
    CAUSAL, VALID_KEYS, LOGIT_FRAC)."""
    return {"mode": mode, "S": options["S"], "E": options["E"], "P": options["P"],
            "F": options["F"], "H": options["H"], "activation": options["ACT"],
            "bias": bool(options["BIAS"]), "causal": bool(options["CAUSAL"]),
            "valid_keys": options["VALID_KEYS"], "logit_frac": options["LOGIT_FRAC"]}


@dataclass(frozen=True, kw_only=True)
class EngineOptions(LayerOptions):
    """What tb_engine runs: the layer, the engine's geometry, the stalls."""

    test_name: str
    N: int
    M: int
    stalls: bool
    inject: str = ""  #: "lsb" or "drop": a negative run


def engine_options(test_name, mode, options, *, inject=""):
    """The tb_engine options of one ``make sim`` run."""
    return EngineOptions(test_name=test_name, N=options["ARRAY_N"], M=options["ARRAY_M"],
                         stalls=bool(options["STALLS"]), inject=inject,
                         **layer_options(mode, options))


def run_engine_test(test_name, mode, options, *, inject=""):
    config = ITAConfig(N=options["ARRAY_N"], M=options["ARRAY_M"])
    handle = build_engine(config, waves=bool(options["WAVES"]))
    return cocotb_result(handle, TB_MODULE, seed=options["SEED"], waves=bool(options["WAVES"]),
                         extra_env=publish(engine_options(test_name, mode, options, inject=inject)),
                         results_name=f"{test_name}-seed{options['SEED']}")


#: The ITAmax logit step of the attention modes' jobs.
LOGIT_FRAC = int_key("LOGIT_FRAC", 0, minimum=0, maximum=DEFAULT_CONFIG.logit_frac_max,
                     help="softmax logit step ln 2 / 2**LOGIT_FRAC (0: the reference's)")


def _keys(S=64, E=64, P=64, F=64, act="gelu"):
    dims = [int_key(name, default, minimum=1, maximum=4095) for name, default in
            (("S", S), ("E", E), ("P", P), ("F", F))]
    return (*dims, int_key("H", 1, minimum=1, maximum=16, help="heads, run as back-to-back jobs"),
            choice_key("ACT", act, ACTIVATIONS, help="activation of F1 / linear"),
            flag_key("BIAS", True), flag_key("CAUSAL"),
            int_key("VALID_KEYS", 0, minimum=0, help="keys seen by the softmax (0: all S)"),
            LOGIT_FRAC,
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
