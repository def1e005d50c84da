"""``make sim TEST=decoder_layer``: one Llama decoder layer's prefill or decoding step on the
cluster, from L2.

:func:`prepare` draws a tiny random Llama (:class:`ita.deploy.frontend.RandomLlama`: one
layer, GQA, quantised by :mod:`ita.quant.llama` with the decomposition, or without it with
``DECOMPOSE=0``) and the int32 residual rows of random tokens, compiles the layer's prefill
or, with ``MODE=decode POS=p``, its decoding step of the token at position p against the KV
cache of the p before (in L2, as the prefill of those rows leaves it) with
:mod:`ita.deploy.lower_decoder`, makes it self-checking against the integer model
(:mod:`verif.deploy.decoder`: the output rows as int32, the rotated keys and V^T of every KV
head as int8) and builds it with the deployed-layer program (``sw/apps/encoder_layer``, which
runs any compiled layer). The run prints the cycle breakdown and the RESULT line of the
encoder layer's test (:mod:`verif.cluster.encoder` parses both); a decoding step adds its
bound, the weight bytes over the DMA's bytes per cycle.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from hw import toolchain
from ita.cli import SEED, Key, UsageError, choice_key, flag_key, int_key
from ita.config import DEFAULT_CONFIG
from ita.deploy import CompileError, compile_model
from ita.deploy.emit import C_DIR, C_SOURCES
from ita.deploy.frontend import RandomLlama
from ita.deploy.lower_decoder import GEMVS
from sw.build import KERNEL_SOURCES, build_app
from verif.cluster.encoder import cluster_spec, combined_image, format_breakdown, job_table, parse
from verif.deploy import C_DIR as CHECK_DIR
from verif.deploy import C_SOURCES as CHECK_SOURCES
from verif.deploy import expected_decoder_tensors, self_checking_decoder
from verif.deploy.decoder import decoder_inputs
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


def prepare(work, *, model="tiny", seed=1, corrupt=None, decompose=True, pos=0, steps=1,
            gemv=None, config=DEFAULT_CONFIG) -> Prepared:
    """Compile, make self-checking and build one decoder layer into ``work``: its prefill, or
    with ``pos`` > 0 ``steps`` decoding steps from that position (``gemv``: the GEMVs the
    cores run, None: the compiler's choice). ``corrupt`` = (tensor, row, col) flips one expected
    value's low bit (to show that the check bites)."""
    if model not in MODELS:
        raise ValueError(f"unknown MODEL {model!r}; known: {', '.join(MODELS)}")
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    spec = cluster_spec(config)
    integer_model, x = MODELS[model](seed=seed, decompose=decompose).draw(pos, steps)
    (layer,) = integer_model.blocks
    kv = layer.shape.KV
    probes = ("out", *(f"k_cache{g}" for g in range(kv)), *(f"v_cache{g}" for g in range(kv)))
    forced = {} if gemv is None else {"gemv": tuple(gemv)}
    program = compile_model(integer_model, spec, probes=probes, **forced)
    expected = expected_decoder_tensors(integer_model, x, program.manifest["outputs"])
    if corrupt:
        tensor, row, col = corrupt
        expected[tensor] = expected[tensor].copy()
        expected[tensor][row, col] ^= 1
    checked = self_checking_decoder(program, decoder_inputs(integer_model, x), expected, spec)
    checked.write(work)
    app = build_app("encoder_layer", out_dir=work, include_dirs=(C_DIR, CHECK_DIR),
                    extra_sources=(work / "encoder_layer.c", *C_SOURCES, *CHECK_SOURCES,
                                   *KERNEL_SOURCES, work / "checks.c"))
    image = combined_image(app, checked.image, spec, work / "decoder_layer.l2.hex")
    return Prepared(program, checked, image, work)


def weight_bytes(schedule):
    """Bytes of the weights a run moves from L2 or L3 (the int8 rows with their fine rows)."""
    return sum(t.size for t in schedule.l2.values()
               if t.role == "const" and t.name.startswith("w_"))


def run_decoder_layer(work, *, model="tiny", seed=1, corrupt=None, decompose=True, pos=0,
                      steps=1, gemv=None, max_cycles=20_000_000, stream=False):
    """Prepare and run on the C++ harness: (status, RESULT fields, output, breakdown)."""
    prepared = prepare(work, model=model, seed=seed, corrupt=corrupt, decompose=decompose,
                       pos=pos, steps=steps, gemv=gemv)
    run = run_image("encoder_layer", prepared.image, max_cycles=max_cycles, stream=stream)
    manifest = prepared.program.manifest
    rows, fields, checks = parse(run.output, manifest)
    mismatches = sum(int(line.rsplit("mismatches=", 1)[1]) for line in checks
                     if line.startswith("check:"))
    schedule = prepared.program.schedule
    shape = schedule.model.shape
    result = {"model": model, "mode": "decode" if pos else "prefill",
              **({"pos": pos, "steps": steps} if pos else {}), "decompose": int(decompose),
              **{k: getattr(shape, k) for k in ("S", "E", "P", "H", "KV", "F")},
              "cycles": run.fields.get("cycles"), **fields}
    if pos and fields:
        weights = weight_bytes(schedule)
        bound = weights / schedule.spec.rate(schedule.spec.weights)
        on_cores = schedule.choices.get("gemv", ())
        per_step = round(fields["layer_cycles"] / steps)
        result.update(decode_cycles=per_step, weight_bytes=weights, bound_cycles=round(bound),
                      bound_pct=f"{100 * bound / per_step:.1f}",
                      gemv_cores=",".join(on_cores) or "none")
    result.update(mismatches=mismatches, outcome=run.fields["outcome"])
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


def _gemv(value):
    if value == "auto":
        return None
    if value == "engine":
        return ()
    if value == "cores":
        return GEMVS
    names = tuple(value.split(","))
    if not set(names) <= set(GEMVS):
        raise ValueError(value)
    return names


@register("decoder_layer", "one Llama decoder layer's prefill (RMSNorm, Q/K/V per head, RoPE "
          "on the cores, causal QK+AV from memory with GQA reuse, O, SiLU x up, residuals, "
          "the decomposition's corrections after every GEMM) or, with MODE=decode POS=p, its "
          "decoding step against the KV cache in L2; compiled by ita.deploy and run from L2 "
          "on the C++ harness; the int32 output rows and the int8 KV cache checked in C "
          "against the integer Llama (ita.quant.llama); cycle breakdown, RESULT "
          "ops_per_cycle, ita_busy_pct, for a decoding step decode_cycles and bound_cycles. "
          "MODEL=tiny",
          keys=(Key("MODEL", "tiny", _model, "tiny: E=64, 2 query heads, 1 KV head of 32, "
                    "F=128, S=16, context 64"),
                choice_key("MODE", "prefill", ("prefill", "decode"),
                           help="prefill: S positions from 0; decode: one token at POS"),
                int_key("POS", 16, minimum=1, help="decode: the first token's position (the "
                        "cache holds the POS before it), below the context"),
                int_key("STEPS", 1, minimum=1, help="decode: steps run one after the other "
                        "in one program (the cache grows in place), within one tile of "
                        "the cache"),
                flag_key("DECOMPOSE", True, help="0: the recipe without the decomposition "
                         "(prefill only)"),
                Key("GEMV", "auto", _gemv, "auto, engine, cores or a list of "
                    + ",".join(GEMVS), "decode: the GEMVs the cores run (auto: the "
                    "compiler's measured choice)"),
                SEED, int_key("MAX_CYCLES", 20_000_000, minimum=1)))
def _run(options):
    decode = options["MODE"] == "decode"
    pos = options["POS"] if decode else 0
    steps = options["STEPS"] if decode else 1
    tag = f"_pos{pos}" + (f"x{steps}" if steps > 1 else "") if decode else ""
    tag += "" if options["DECOMPOSE"] else "_nodecomp"
    gemv = options["GEMV"] if decode and options["GEMV"] != "auto" else None  # the default
    if gemv is not None:
        tag += "_gemv-" + ("-".join(gemv) or "engine")
    work = (toolchain.BUILD_ROOT / "deploy"
            / f"decoder_{options['MODEL']}{tag}_seed{options['SEED']}")
    try:
        status, result, _output, breakdown = run_decoder_layer(
            work, model=options["MODEL"], seed=options["SEED"],
            decompose=options["DECOMPOSE"], pos=pos, steps=steps, gemv=gemv,
            max_cycles=options["MAX_CYCLES"], stream=True)
    except (CompileError, ValueError) as exc:
        raise UsageError(str(exc).splitlines()[0]) from None
    print(breakdown, flush=True)
    result["seed"] = options["SEED"]
    return status, result
