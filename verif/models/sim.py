"""``make sim TEST=decoder_layer``: one Llama decoder layer's prefill on the cluster, from L2.

:func:`prepare` draws a tiny random Llama (:class:`ita.deploy.frontend.RandomLlama`: one
layer, GQA, quantised by :mod:`ita.quant.llama` without the decomposition) and the int32
residual rows of random tokens, compiles the layer (:mod:`ita.deploy.lower_decoder`), makes
it self-checking against the integer model (:mod:`verif.deploy.decoder`: the output rows as
int32, the rotated keys and V^T of every KV head as int8) and builds it with the deployed-
layer program (``sw/apps/encoder_layer``, which runs any compiled layer). The run prints the
cycle breakdown and the RESULT line of the encoder layer's test (:mod:`verif.cluster.encoder`
parses both).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from hw import toolchain
from ita.cli import SEED, Key, UsageError, int_key
from ita.config import DEFAULT_CONFIG
from ita.deploy import CompileError, compile_model
from ita.deploy.emit import C_DIR, C_SOURCES
from ita.deploy.frontend import RandomLlama
from sw.build import KERNEL_SOURCES, build_app
from verif.cluster.encoder import cluster_spec, combined_image, format_breakdown, job_table, parse
from verif.deploy import C_DIR as CHECK_DIR
from verif.deploy import C_SOURCES as CHECK_SOURCES
from verif.deploy import expected_decoder_tensors, self_checking_decoder
from verif.harness.run import run_image
from verif.sim import register

__all__ = ["MODELS", "Prepared", "prepare", "run_decoder_layer"]

#: MODEL=... frontends; "tiny" is small enough for the test suite.
MODELS = {"tiny": RandomLlama}


@dataclass(frozen=True)
class Prepared:
    program: object      #: ita.deploy.Program
    checked: object      #: verif.deploy.SelfChecking
    image: Path          #: the combined L2 image for +L2_HEX
    work: Path


def prepare(work, *, model="tiny", seed=1, corrupt=None, config=DEFAULT_CONFIG) -> Prepared:
    """Compile, make self-checking and build one decoder layer into ``work``. ``corrupt`` =
    (tensor, row, col) flips one expected value's low bit (to show that the check bites)."""
    if model not in MODELS:
        raise ValueError(f"unknown MODEL {model!r}; known: {', '.join(MODELS)}")
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    spec = cluster_spec(config)
    integer_model, x = MODELS[model](seed=seed).draw()
    (layer,) = integer_model.blocks
    kv = layer.shape.KV
    probes = ("out", *(f"k_cache{g}" for g in range(kv)), *(f"v_cache{g}" for g in range(kv)))
    program = compile_model(integer_model, spec, probes=probes)
    expected = expected_decoder_tensors(integer_model, x, program.manifest["outputs"])
    if corrupt:
        tensor, row, col = corrupt
        expected[tensor] = expected[tensor].copy()
        expected[tensor][row, col] ^= 1
    checked = self_checking_decoder(program, x, expected, spec)
    checked.write(work)
    app = build_app("encoder_layer", out_dir=work, include_dirs=(C_DIR, CHECK_DIR),
                    extra_sources=(work / "encoder_layer.c", *C_SOURCES, *CHECK_SOURCES,
                                   *KERNEL_SOURCES, work / "checks.c"))
    image = combined_image(app, checked.image, spec, work / "decoder_layer.l2.hex")
    return Prepared(program, checked, image, work)


def run_decoder_layer(work, *, model="tiny", seed=1, corrupt=None, max_cycles=20_000_000,
                      stream=False):
    """Prepare and run on the C++ harness: (status, RESULT fields, output, breakdown)."""
    prepared = prepare(work, model=model, seed=seed, corrupt=corrupt)
    run = run_image("encoder_layer", prepared.image, max_cycles=max_cycles, stream=stream)
    manifest = prepared.program.manifest
    rows, fields, checks = parse(run.output, manifest)
    mismatches = sum(int(line.rsplit("mismatches=", 1)[1]) for line in checks
                     if line.startswith("check:"))
    shape = prepared.program.schedule.model.shape
    result = {"model": model, **{k: getattr(shape, k) for k in ("S", "E", "P", "H", "KV", "F")},
              "cycles": run.fields.get("cycles"), **fields, "mismatches": mismatches,
              "outcome": run.fields["outcome"]}
    status = run.status if fields else "FAIL"
    breakdown = format_breakdown(rows, fields.get("layer_cycles", 0))
    if fields:
        breakdown += "\n" + job_table(run.output, manifest)
    (Path(work) / "breakdown.txt").write_text(breakdown + "\n")
    (Path(work) / "result.json").write_text(json.dumps(result, indent=1) + "\n")
    return status, result, run.output, breakdown


def _model(value):
    if value not in MODELS:
        raise ValueError(value)
    return value


@register("decoder_layer", "one Llama decoder layer's prefill (RMSNorm, Q/K/V per head, RoPE "
          "on the cores, causal QK+AV from memory with GQA reuse, O, SiLU x up, residuals) "
          "compiled by ita.deploy and run from L2 on the C++ harness; the int32 output rows "
          "and the int8 KV cache checked in C against the integer Llama (ita.quant.llama); "
          "cycle breakdown, RESULT ops_per_cycle and ita_busy_pct. MODEL=tiny",
          keys=(Key("MODEL", "tiny", _model, "tiny: E=64, 2 query heads, 1 KV head of 32, "
                    "F=128, S=16"),
                SEED, int_key("MAX_CYCLES", 20_000_000, minimum=1)))
def _run(options):
    work = toolchain.BUILD_ROOT / "deploy" / f"decoder_{options['MODEL']}_seed{options['SEED']}"
    try:
        status, result, _output, breakdown = run_decoder_layer(
            work, model=options["MODEL"], seed=options["SEED"],
            max_cycles=options["MAX_CYCLES"], stream=True)
    except (CompileError, ValueError) as exc:
        raise UsageError(str(exc).splitlines()[0]) from None
    print(breakdown, flush=True)
    result["seed"] = options["SEED"]
    return status, result
