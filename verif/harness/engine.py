"""Fast pure-software runs of the engine: ``python -m verif.harness.engine [KEY=VALUE ...]``.

The job is the one ``make sim TEST=ita_<mode> ... STALLS=0`` runs (same golden vectors for the
same seed, :func:`ita.rtl.job.job_from_vectors`), but the per-cycle loop is the C++ main
``verif/harness/engine_main.cpp`` on a plain Verilator model: no VPI, no cocotb, no Python per
cycle. Python writes the job directory (stream beats, the engine output each beat waits for,
expected outputs; see the C++ file's header) and parses the summary. Both flows count the same
cycles for the same job, which ``tests/bench`` checks.

Keys (:data:`KEYS`; ``HELP=1`` lists them): ``MODE`` (attention, ffn, linear, qkav),
``S E P F``, ``ACT``, ``BIAS``, ``CAUSAL``, ``VALID_KEYS``, ``SEED``, ``ARRAY_N``, ``ARRAY_M``,
``MAX_CYCLES``; one head, no stalls. The RESULT line::

    RESULT test=ita_<mode> status=PASS|FAIL cycles=<n> ideal_cycles=<n> utilization=<pct>
           seed=<n> flow=cpp ... sim_cycles_per_s=<n> cpu_cycles_per_s=<n> mismatches=<n>

Models are cached by content hash under ``build/harness/engine-<hash>/`` (first build about
30 s on 2 cores). Exit status: 0 on PASS, 1 on FAIL, 2 on bad arguments or a failed build.
"""

from __future__ import annotations

import hashlib
import math
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from amaranth.hdl import Shape

from hw import toolchain
from ita import cli
from ita.cli import UsageError
from ita.config import ITAConfig
from ita.golden.vectors import LayerShape, generate
from ita.rtl.engine import Engine
from ita.rtl.job import job_from_vectors, pack_bias, pack_fields, stream_plans
from ita.rtl.layouts import Step, engine_config_layout
from verif.engine import toplevel_name
from verif.harness.run import VERILATOR_ARGS, run_model, verilate_cached
from verif.result import format_result

__all__ = ["EngineHarnessBuild", "EngineHarnessRun", "UsageError", "KEYS", "MODES",
           "build_engine_harness", "write_job", "run_engine", "parse_args", "main"]

HARNESS_DIR = Path(__file__).resolve().parent
MAIN_CPP = HARNESS_DIR / "engine_main.cpp"
BUILD_DIR = toolchain.BUILD_ROOT / "harness"
SUMMARY = "engine_main: summary "
MODES = ("attention", "ffn", "linear", "qkav")
ACTIVATIONS = ("identity", "gelu", "relu")
DEFAULT_MAX_CYCLES = 50_000_000


@dataclass(frozen=True)
class EngineHarnessBuild:
    build_dir: Path
    executable: Path
    digest: str
    rebuilt: bool
    seconds: float


@dataclass(frozen=True)
class EngineHarnessRun:
    status: str
    fields: dict
    report: dict  # the summary line, parsed
    output: str
    returncode: int
    result_line: str


# --- the model --------------------------------------------------------------------------------


def _engine_verilog(config: ITAConfig) -> tuple[Path, str]:
    """The engine's Verilog as :func:`verif.engine.build_engine` emits it (same file, same key)."""

    top = toplevel_name(config)
    key = toolchain.source_digest("ita", extra=repr(config))
    path = toolchain.emit_verilog_cached(lambda: Engine(config=config), top,
                                         toolchain.BUILD_ROOT / "gen" / f"{top}.v", key=key)
    return path, top


def _bias_bytes(config: ITAConfig) -> int:
    return math.ceil(config.N * config.bias_width / 8)


def build_engine_harness(config: ITAConfig) -> EngineHarnessBuild:
    """Build (or reuse) the C++ engine model for ``config``; BuildFailed on errors.

    The hash covers the Verilog, the harness main, the arguments, the make variables and
    Verilator's version; concurrent callers of the same hash wait on an flock.
    """
    t0 = time.monotonic()
    verilog, top = _engine_verilog(config)
    exe = f"V{top}"
    # --prefix fixes the model's class name (Vengine) whatever the configuration is called.
    defines = {"ENGINE_M": config.M, "ENGINE_N": config.N,
               "ENGINE_BIAS_BYTES": _bias_bytes(config)}
    args = [*VERILATOR_ARGS, "--prefix", "Vengine"]
    for key, value in defines.items():
        args += ["-CFLAGS", f"-D{key}={value}"]
    h = hashlib.sha256()
    for part in (top, "\0".join(args), toolchain.VERILATOR_MAKEFLAGS,
                 toolchain.verilator_version()):
        h.update(part.encode() + b"\0\1")
    for src in (verilog, MAIN_CPP):
        h.update(src.name.encode() + b"\0" + src.read_bytes() + b"\0\1")
    digest = h.hexdigest()[:12]
    build_dir = BUILD_DIR / f"engine-{digest}"
    rebuilt = verilate_cached(build_dir, top, exe, args, [verilog, MAIN_CPP],
                              what="C++ engine harness")
    return EngineHarnessBuild(build_dir, build_dir / exe, digest, rebuilt,
                              time.monotonic() - t0)


# --- the job directory ------------------------------------------------------------------------


def write_job(job_dir: str | Path, *, mode: str = "attention", S: int = 64, E: int = 64,
              P: int = 64, F: int = 64, act: str = "gelu", bias: bool = True,
              causal: bool = False, valid_keys: int = 0, seed: int = 1,
              config: ITAConfig | None = None) -> dict:
    """Write the files ``engine_main`` reads for one job; returns counts and ideal cycles.

    The vectors and the job are those of ``verif/engine/tb_engine.py`` for the same keys.
    """


    config = config or ITAConfig()
    job_dir = Path(job_dir)
    job_dir.mkdir(parents=True, exist_ok=True)
    shape = LayerShape(S=S, E=E, P=P, F=F, H=1, activation=act, bias=bias, causal=causal,
                       valid_keys=valid_keys or None)
    vectors = generate(shape, seed, config)
    job, memory = job_from_vectors(mode, vectors, head=0, config=config)
    plans = stream_plans(job, config)
    m, n = config.M, config.N

    # Output beat k writes n lanes; a source beat may be offered once every element it reads
    # has been written, i.e. after output beat max(first write) has left the engine.
    first = {name: np.full(mask.shape, -1, dtype=np.int64) for name, mask in memory.written.items()}
    out_map = np.zeros((len(plans["output"]), 3), dtype="<i4")
    expected = np.zeros((len(plans["output"]), n), dtype=np.int8)
    for index, (plan, tensor, row, col) in enumerate(plans["output"]):
        cells = first[tensor][row, col:col + n]
        cells[cells < 0] = index
        out_map[index] = (int(plan.step), row, col)
        expected[index] = memory.expected[tensor][row, col:col + n]

    def source(name):
        beats = plans[name]
        data = np.zeros((len(beats), m), dtype=np.int8)
        deps = np.zeros(len(beats), dtype="<i4")
        for index, (plan, tensor, row, col) in enumerate(beats):
            if tensor in first:
                writers = first[tensor][row, col:col + m]
                if (writers < 0).any():
                    raise ValueError(f"{name} beat {index} (step {plan.step.name}) reads "
                                     f"{tensor}[{row}, {col}:{col + m}], which no output writes")
                deps[index] = int(writers.max()) + 1
                data[index] = memory.expected[tensor][row, col:col + m]
            else:
                data[index] = memory.tensors[tensor][row, col:col + m]
        (job_dir / f"{name}.bin").write_bytes(data.tobytes())
        (job_dir / f"{name}.dep").write_bytes(deps.tobytes())

    source("input")
    source("weight")
    width = _bias_bytes(config)
    blob = bytearray()
    for _plan, tensor, start in plans["bias"]:
        word = pack_bias(memory.read_vector(tensor, start, n), config.bias_width)
        blob += word.to_bytes(width, "little")
    (job_dir / "bias.bin").write_bytes(bytes(blob))
    (job_dir / "output.bin").write_bytes(expected.tobytes())
    (job_dir / "output.map").write_bytes(out_map.tobytes())
    layout = engine_config_layout(config)
    config_bits = Shape.cast(layout).width
    word = pack_fields(layout, job.config_fields())
    (job_dir / "config.bin").write_bytes(word.to_bytes(math.ceil(config_bits / 8), "little"))
    names = ["?"] * (max(int(s) for s in Step) + 1)
    for step in Step:
        names[int(step)] = step.name
    (job_dir / "steps.txt").write_text("\n".join(names) + "\n")
    return {"beats": {k: len(v) for k, v in plans.items()},
            "ideal_cycles": job.ideal_cycles(config)}


# --- running ----------------------------------------------------------------------------------


def _parse_summary(line: str) -> dict:
    report: dict[str, object] = {}
    for word in line[len(SUMMARY):].split():
        key, _, value = word.partition("=")
        for conv in (int, float, str):
            try:
                report[key] = conv(value)
                break
            except ValueError:
                continue
    return report


def run_engine(options: Mapping[str, object], *, work: str | Path | None = None,
               stream: bool = False) -> EngineHarnessRun:
    """Write the job for ``options`` (the keys of :data:`KEYS`), run it on the C++ model."""

    config = ITAConfig(N=int(options["ARRAY_N"]), M=int(options["ARRAY_M"]))
    handle = build_engine_harness(config)
    mode = str(options["MODE"])
    tag = ("{MODE}_S{S}_E{E}_P{P}_F{F}_{ACT}_B{BIAS:d}_C{CAUSAL:d}_V{VALID_KEYS}_N{ARRAY_N}"
           "_M{ARRAY_M}_seed{SEED}").format(**options)
    job_dir = Path(work) if work else handle.build_dir / "jobs" / tag
    info = write_job(job_dir, mode=mode, S=int(options["S"]), E=int(options["E"]),
                     P=int(options["P"]), F=int(options["F"]), act=str(options["ACT"]),
                     bias=bool(options["BIAS"]), causal=bool(options["CAUSAL"]),
                     valid_keys=int(options["VALID_KEYS"]), seed=int(options["SEED"]),
                     config=config)
    cmd = [str(handle.executable), f"+JOB={job_dir}", f"+MAX_CYCLES={options['MAX_CYCLES']}"]
    returncode, lines, report = run_model(cmd, stream=stream, summary=SUMMARY,
                                          parse=_parse_summary)
    ok = returncode == 0 and report.get("status") == "PASS"
    fields: dict[str, object] = {}
    if report:
        fields["cycles"] = report["cycles"]
        fields["ideal_cycles"] = round(info["ideal_cycles"])
    fields["seed"] = int(options["SEED"])
    fields["flow"] = "cpp"
    fields.update(mode=mode, S=options["S"], E=options["E"], P=options["P"], F=options["F"],
                  H=1, act=options["ACT"], stalls=0, N=config.N, M=config.M)
    if report:
        fields["sim_cycles_per_s"] = round(report["cycles_per_s"])
        fields["cpu_cycles_per_s"] = round(report["cpu_cycles_per_s"])
        fields["mismatches"] = report["mismatches"]
    else:
        fields["outcome"] = f"harness_exit_{returncode}"
    status = "PASS" if ok else "FAIL"
    line = format_result(f"ita_{mode}", status, **fields)
    return EngineHarnessRun(status, fields, report, "".join(lines), returncode, line)


# --- command line -----------------------------------------------------------------------------


KEYS = (cli.choice_key("MODE", "attention", MODES, help="the job"),
        *(cli.int_key(name, 64, minimum=1, maximum=4095) for name in "SEPF"),
        cli.choice_key("ACT", "gelu", ACTIVATIONS, help="activation of F1 / linear"),
        cli.flag_key("BIAS", True), cli.flag_key("CAUSAL"),
        cli.int_key("VALID_KEYS", 0, minimum=0, help="keys seen by the softmax (0: all S)"),
        cli.SEED, *cli.array_keys(),
        cli.int_key("MAX_CYCLES", DEFAULT_MAX_CYCLES, minimum=1, help="give up after this many"))
USAGE = cli.usage("python -m verif.harness.engine [KEY=VALUE ...]", KEYS)


def parse_args(argv: Sequence[str]) -> dict[str, object]:
    """Options with defaults filled in; UsageError on anything unknown or malformed."""
    return cli.parse(argv, KEYS)


def _command(argv: list[str]) -> int:
    run = run_engine(parse_args(argv), stream=True)
    print(run.result_line, flush=True)
    return 0 if run.status == "PASS" else 1


def main(argv: Sequence[str] | None = None) -> int:
    return cli.main("engine", _command, argv, usage_text=USAGE,
                    failures=(toolchain.BuildFailed, ValueError))


if __name__ == "__main__":
    sys.exit(main())
