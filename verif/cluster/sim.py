"""Programs on the whole cluster: model build, runs, and the ``make sim`` cluster tests."""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np

from hw import toolchain
from ita.cli import SEED, WAVES, Key, UsageError, choice_key, flag_key, int_key, text_key
from ita.deploy import CompileError
from ita.deploy.search import CHAINS
from ita.deploy.target import WEIGHT_HOMES
from ita.models.ir import ModelError
from sw.build import build_app
from verif.cluster.attention import prepare
from verif.cluster.bert_layer import DEFAULT_TEXT, REAL_MODEL, run_real_layer
from verif.cluster.encoder import MODELS, run_layer
from verif.cluster.generate import KV_CAPACITY, run_generate
from verif.cluster.kernel_tests import KERNELS, SIZES, format_table, run_cases, select
from verif.cluster.kernels import run_barrier, run_dma, run_gemm
from verif.cluster.minilm import CLOCK_MHZ, run_sentences
from verif.cluster.model import DEFAULT_MAX_CYCLES, run_program
from verif.console import SUMMARY_FIELD
from verif.sim import register

_CYCLES = int_key("MAX_CYCLES", DEFAULT_MAX_CYCLES, minimum=1, help="give up after this many")

#: Record the run's timeline (verif/cluster/trace.py, docs/trace.md) on the cocotb model.
TRACE = flag_key("TRACE", help="write the run's timeline, trace.json next to its log "
                 "(Chrome trace events for Perfetto; docs/trace.md)")


def _trace_summary(options, fields) -> list[str]:
    """The summary line that says where the timeline is (or how to get one)."""
    if fields.get("trace"):
        return [f"trace          {fields['trace']}"]
    return [] if options.get("TRACE") else ["trace          none (TRACE=1 writes one)"]


@register("hello", "sw/apps/hello on the 8-core cluster: every core prints in turn",
          keys=(_CYCLES, WAVES, TRACE))
def _run_hello(options):
    run = run_program(build_app("hello"), test_name="hello", waves=bool(options["WAVES"]),
                      max_cycles=options["MAX_CYCLES"], trace=bool(options["TRACE"]))
    fields = dict(run.fields)
    fields[SUMMARY_FIELD] = _trace_summary(options, fields)
    return run.status, fields


#: Named shapes of attention_head; S=, E=, P=, H= given on the command line override one
#: field. The default has two heads of a 128-token layer, so that the run shows the cores'
#: head sums and the DMA next to the engine's work in about a minute of simulation (of the
#: shapes measured it kept the engine busiest: P=128 with two heads rather than P=64 with
#: four); the small one is the quick check (one 64 x 64 head).
ATTENTION_SHAPES = {
    "default": {"S": 128, "E": 128, "P": 128, "H": 2},
    "small": {"S": 64, "E": 64, "P": 64, "H": 1},
}
_DIMS = ("S", "E", "P", "H")


def attention_shape(options) -> dict[str, int]:
    """S, E, P, H of a run: the named SHAPE with the dimensions given explicitly."""
    shape = dict(ATTENTION_SHAPES[options["SHAPE"]])
    shape.update({k: options[k] for k in _DIMS if options.get(k) is not None})
    return shape


def _engine_summary(fields) -> list[str]:
    """The summary line of a cluster run that drove the engine: how busy it was."""
    busy, total = fields.get("ita_cycles"), fields.get("total_cycles")
    if not busy or not total:
        return []
    line = (f"engine busy    {int(busy):,} of {int(total):,} program cycles "
            f"({100.0 * int(busy) / int(total):.1f} %)")
    if fields.get("ita_utilization") is not None:
        line += f", at {fields['ita_utilization']} % of its peak while busy"
    return [line]


@register("attention_head", "the ITA computes every head of a multi-head attention layer "
          "programmed by core 0 (data moved by the DMA); the 8 cores sum and requantize the "
          "heads; outputs compared with the golden model",
          keys=(choice_key("SHAPE", "default", ATTENTION_SHAPES, help=", ".join(
                    f"{name}: " + " ".join(f"{k}={v}" for k, v in dims.items())
                    for name, dims in ATTENTION_SHAPES.items())),
                int_key("S", None, minimum=1, maximum=1024, help="overrides SHAPE"),
                int_key("E", None, minimum=1, help="overrides SHAPE"),
                int_key("P", None, minimum=1, help="overrides SHAPE"),
                int_key("H", None, minimum=1, maximum=8, help="overrides SHAPE"),
                flag_key("CAUSAL"), SEED, _CYCLES, WAVES, TRACE))
def _run_attention(options):

    shape = attention_shape(options)
    tag = "S{S}_E{E}_P{P}_H{H}".format(**shape) + "_C{CAUSAL:d}_seed{SEED}".format(**options)
    work = toolchain.BUILD_ROOT / "sw" / "attention_head" / tag
    include, data, check, ideal = prepare(work, **shape, causal=bool(options["CAUSAL"]),
                                          seed=options["SEED"])
    app = build_app("attention_head", out_dir=work, include_dirs=(include,))
    run = run_program(app, test_name=f"attention_head-{tag}", data=data, check=check,
                      ideal=ideal, waves=bool(options["WAVES"]),
                      max_cycles=options["MAX_CYCLES"], trace=bool(options["TRACE"]))
    fields = dict(run.fields)
    fields["seed"] = options["SEED"]
    dims = " ".join(f"{k}={v}" for k, v in shape.items())
    fields[SUMMARY_FIELD] = [f"shape          {dims} (SHAPE={options['SHAPE']})",
                             *_engine_summary(fields), *_trace_summary(options, fields)]
    return run.status, fields


# --- Kernel programs: barrier, dma, gemm (verif/cluster/kernels.py) --------------------------


@register("barrier", "sw/apps/barrier: ROUNDS rounds of unequal work + event-unit barrier on "
          "8 cores, checked in C (no core leaves before all arrived); RESULT barrier_cycles = "
          "latency for the last arriving core, barrier_wait, barrier_b2b",
          keys=(int_key("ROUNDS", 100, minimum=1, maximum=1000), _CYCLES, WAVES))
def _run_barrier(options):
    status, fields, _ = run_barrier(rounds=options["ROUNDS"], max_cycles=options["MAX_CYCLES"],
                                    waves=bool(options["WAVES"]))
    return status, fields


@register("dma", "sw/apps/dma: 1-D and 2-D DMA copies L2->L1 and L1->L2 (one core, then all "
          "8 at once) of testbench data, checked in C and against check.npz; RESULT bytes per "
          "cycle l2_l1_1d l2_l1_2d l1_l2_1d l1_l2_2d all_cores",
          keys=(SEED, _CYCLES, WAVES))
def _run_dma(options):
    status, fields, _ = run_dma(seed=options["SEED"], max_cycles=options["MAX_CYCLES"],
                                waves=bool(options["WAVES"]))
    return status, fields


#: The matrix sizes of the gemm program: C (M x N) = A (M x K) @ B (K x N).
GEMM_SIZES = (int_key("M", 64, minimum=1, help="rows of A and C"),
              int_key("K", 64, minimum=1, help="columns of A, rows of B"),
              int_key("N", 64, minimum=1, help="columns of B and C (a matrix size here)"))


@register("gemm", "sw/apps/gemm: int8 C = requant(A @ B + bias) on 8 cores with cv.sdotsp.b, "
          "bit-exact against ita.golden; RESULT cycles = kernel cycles, ideal_cycles = "
          "MACs / (8 cores x 4), macs_per_cycle, total_cycles",
          keys=(*GEMM_SIZES, SEED, _CYCLES, WAVES))
def _run_gemm(options):
    try:
        status, fields, _ = run_gemm(M=options["M"], K=options["K"], N=options["N"],
                                     seed=options["SEED"], max_cycles=options["MAX_CYCLES"],
                                     waves=bool(options["WAVES"]))
    except ValueError as exc:  # a shape the program cannot hold (checked before building)
        raise UsageError(str(exc)) from None
    return status, fields


# --- Encoder kernels: sw/kernels in sw/apps/kernels (verif/cluster/kernel_tests.py) --------


def _kernel_keys():
    return (choice_key("KERNEL", "all", ("all", *KERNELS)),
            choice_key("SIZE", "large", (*SIZES, "all"), help="small: the make test set"),
            SEED, _CYCLES)


@register("kernels", "sw/kernels (GEMM+requant, residual add, head sum, LayerNorm, ITAmax, "
          "GELU) on 8 cores in the C++ harness, every output byte checked against ita.golden "
          "in C; prints cycles per element per kernel and size; RESULT cycles = sum of the "
          "kernels' cycles", keys=_kernel_keys())
def _run_kernels(options):

    cases = select(options["SIZE"], options["KERNEL"], options["SEED"])
    tag = "{SIZE}_{KERNEL}_seed{SEED}".format(**options)
    run = run_cases(cases, tag=tag, max_cycles=options["MAX_CYCLES"], stream=True)
    print(format_table(run.rows, cases), flush=True)
    if run.mismatch:
        print(f"sim: kernels: mismatch: {run.mismatch}", flush=True)
    fields = dict(run.fields)
    fields["seed"] = options["SEED"]
    return run.status, fields


# --- One encoder layer from the layer compiler (verif/cluster/encoder.py) -------------------


def _model(text):
    """A model of verif.cluster.encoder, imported only when MODEL= is given (the compiler)."""

    if text not in (*MODELS, REAL_MODEL):
        raise ValueError(text)
    return text


@register("encoder_layer", "Transformer encoder layers (one, or LAYERS=n chained) "
          "compiled by ita.deploy (DMA, ITA jobs, core kernels; double-buffered) and run "
          "from L2 on the C++ harness; every "
          "output byte checked in C against ita.golden.encoder; cycle breakdown, RESULT "
          "ops_per_cycle and ita_busy_pct. MODEL=tiny|mobilebert|minilm (random layers of "
          "their shapes); S/E/P/H/F override its sizes (0: keep); MODEL=minilm-real: layer "
          "LAYER of the quantised all-MiniLM-L6-v2 checkpoint on the sentence TEXT, checked "
          "against ita.quant.integer (the last layer also pools); "
          "DEBUG=1 also stores and checks every intermediate; "
          "WEIGHTS=l3 keeps the weights in off-chip L3 (read over its link) instead of L2; "
          "LAYERS=n chains n random layers of the shape in one program (each layer's output "
          "the next one's input; CHAIN=l2 keeps the activations in L2 between layers, "
          "PREFETCH=0 lets no layer's loads start before its own phases); "
          "TRACE=1 also runs the same image on the cocotb model to record its timeline",
          keys=(Key("MODEL", "tiny", _model, "tiny, mobilebert, minilm or minilm-real"),
                int_key("LAYER", 0, minimum=0, help="MODEL=minilm-real: the layer, 0..5"),
                text_key("TEXT", DEFAULT_TEXT, expect="a sentence",
                         help="MODEL=minilm-real: the sentence whose rows the layer gets"),
                int_key("S", 0, minimum=0), int_key("E", 0, minimum=0),
                int_key("P", 0, minimum=0), int_key("H", 0, minimum=0),
                int_key("F", 0, minimum=0),
                flag_key("DEBUG", help="also store and check every intermediate"),
                choice_key("WEIGHTS", "l2", WEIGHT_HOMES, help="where the weights live"),
                int_key("LAYERS", 1, minimum=1, help="layers chained in one program"),
                choice_key("CHAIN", "auto", CHAINS, help="where an activation waits between "
                           "layers: auto (L1 when it fits, else L2), l1, l2"),
                flag_key("PREFETCH", True, help="load a layer's first weights during the "
                         "layer before"),
                SEED, int_key("MAX_CYCLES", 20_000_000, minimum=1), TRACE))
def _run_encoder_layer(options):

    model = options["MODEL"]
    sizes = {k: options[k] for k in ("S", "E", "P", "H", "F") if options[k]}
    weights = options["WEIGHTS"]
    if options["TRACE"] and weights != "l2":
        raise UsageError("TRACE=1 needs WEIGHTS=l2: the traced rerun on the cocotb model "
                         "loads L2 only")
    layers = options["LAYERS"]
    tag = "_".join([model, *(f"{k}{v}" for k, v in sizes.items()), f"seed{options['SEED']}",
                    *([f"weights_{weights}"] if weights != "l2" else []),
                    *([f"layers{layers}"] if layers > 1 else []),
                    *([f"chain_{options['CHAIN']}"] if options["CHAIN"] != "auto" else []),
                    *(["noprefetch"] if not options["PREFETCH"] else [])])
    if model == REAL_MODEL:
        if sizes or layers != 1:
            raise UsageError("MODEL=minilm-real takes its sizes from the checkpoint and the "
                             "sentence and runs one layer; S/E/P/H/F and LAYERS do not apply")
        digest = hashlib.sha256(options["TEXT"].encode()).hexdigest()[:8]
        tag = "_".join([model, f"layer{options['LAYER']}", f"text{digest}",
                        *([f"weights_{weights}"] if weights != "l2" else [])])
    work = toolchain.BUILD_ROOT / "deploy" / tag
    try:
        if model == REAL_MODEL:
            status, result, output, breakdown, prepared = run_real_layer(
                work, layer=options["LAYER"], text=options["TEXT"],
                debug=bool(options["DEBUG"]), max_cycles=options["MAX_CYCLES"], stream=True,
                weights=weights)
        else:
            status, result, output, breakdown, prepared = run_layer(
                work, model=model, seed=options["SEED"], sizes=sizes,
                debug=bool(options["DEBUG"]), max_cycles=options["MAX_CYCLES"], stream=True,
                weights=weights, layers=layers, chain=options["CHAIN"],
                prefetch=bool(options["PREFETCH"]))
    except (CompileError, ValueError) as exc:  # a layer the compiler or the model refuses
        raise UsageError(str(exc).splitlines()[0]) from None
    print(breakdown, flush=True)
    result["seed"] = options["SEED"]
    result.pop("estimate", None)
    if options["TRACE"]:
        status = _trace_encoder_layer(status, result, prepared, tag, options["MAX_CYCLES"])
    result[SUMMARY_FIELD] = _trace_summary(options, result)
    return status, result


def _trace_encoder_layer(status, result, prepared, tag, max_cycles) -> str:
    """The timeline of an encoder layer: the C++ harness has no monitor, so the same L2 image
    runs once more on the cocotb model with TRACE on. Both models come from the same Verilog
    and must count the same cycles; a difference fails the run."""
    app = dataclasses.replace(prepared.app, hex=prepared.image)
    run = run_program(app, test_name=f"encoder_layer-{tag}", max_cycles=max_cycles, trace=True)
    if run.fields.get("trace"):
        result["trace"] = run.fields["trace"]
    if run.status != "PASS":
        result["error"] = f"trace_run_{run.fields.get('outcome') or run.fields.get('error')}"
        return "FAIL"
    if run.fields.get("cycles") != result.get("cycles"):
        result["error"] = (f"trace_run_cycles_{run.fields.get('cycles')}"
                           f"_not_{result.get('cycles')}")
        return "FAIL"
    return status


# --- The whole all-MiniLM-L6-v2 (verif/cluster/minilm.py) --------------------------------------


@register("minilm", "the whole all-MiniLM-L6-v2 on the cluster: the host tokenizes TEXT and "
          "looks up its embedding rows; one compiled program runs the embedding LayerNorm, the "
          "six layers and the pooling's column sums with the weights in L3, checked in C "
          "against ita.quant.integer; prints the embedding's cosine against the float model, "
          "cycles, share of the ITA's peak and the latency at 500 MHz; TEXT2 adds the two "
          "sentences' similarity, float and integer",
          keys=(text_key("TEXT", DEFAULT_TEXT, expect="a sentence", help="the sentence"),
                text_key("TEXT2", "", expect="a sentence", empty=True,
                         help="a second sentence: their cosine similarity, float and integer"),
                choice_key("WEIGHTS", "l3", WEIGHT_HOMES, help="where the weights live "
                           "(10.6 MB: more than L2 holds)"),
                flag_key("DEBUG", help="also check every layer's intermediates"),
                int_key("MAX_CYCLES", 60_000_000, minimum=1, help="watchdog per sentence")))
def _run_minilm(options):
    texts = [options["TEXT"], *([options["TEXT2"]] if options["TEXT2"] else [])]
    try:
        runs = run_sentences(texts, weights=options["WEIGHTS"], debug=bool(options["DEBUG"]),
                             max_cycles=options["MAX_CYCLES"], stream=True)
    except (CompileError, ModelError, ValueError) as exc:
        raise UsageError(str(exc).splitlines()[0]) from None
    status = "PASS" if all(run[0] == "PASS" for run in runs) else "FAIL"
    _, fields, breakdown, (float_emb, int_emb) = runs[0]
    print(breakdown, flush=True)
    fields = dict(fields)
    summary = [f"model          all-MiniLM-L6-v2, {fields['layers']} layers, "
               f"{fields['tokens']} tokens, weights in {fields['weights'].upper()}",
               f"accuracy       cosine {fields['cos']} against the float model",
               f"latency        {fields['latency_ms']} ms at {fields['clock_mhz']} MHz"]
    if fields["truncated"]:
        summary.append(f"note           TEXT was cut to {fields['tokens']} tokens")
    if len(runs) > 1:
        f2, i2 = runs[1][3]
        sim_float = float(float_emb @ f2 / (np.linalg.norm(float_emb) * np.linalg.norm(f2)))
        sim_int = float(int_emb @ i2 / (np.linalg.norm(int_emb) * np.linalg.norm(i2)))
        fields.update(similarity_float=f"{sim_float:.4f}", similarity_integer=f"{sim_int:.4f}",
                      cos2=runs[1][1]["cos"], mismatches=fields["mismatches"]
                      + runs[1][1]["mismatches"], cycles2=runs[1][1]["cycles"])
        summary.append(f"similarity     float {sim_float:.4f}, integer {sim_int:.4f} "
                       f"(TEXT2: {runs[1][1]['tokens']} tokens, cosine {runs[1][1]['cos']})")
    fields[SUMMARY_FIELD] = summary
    return status, fields


# --- SmolLM2-135M generates text (verif/cluster/generate.py) ---------------------------------


def _thousands(values):
    """``1234,56`` -> ``1,234; 56``: a list of counts for the summary."""
    return "; ".join(f"{int(v):,}" if v.isdigit() else v for v in values.split(","))


@register("generate", "SmolLM2-135M continues PROMPT on the cluster: the prefill of the "
          "prompt, then TOKENS decoding steps against the KV cache, every layer's rows and "
          "cache checked in C against the integer model (ita.quant.llama), weights streamed "
          "from L3; the final RMSNorm, the tied head and the greedy pick run on the host's "
          "integer reference; prints the integer and the float model's greedy texts, the "
          "prefill's and a step's cycles, the step's bound (weight bytes / L3 bytes per "
          f"cycle) and tokens/s at {CLOCK_MHZ} MHz. LAYERS=k runs the first k layers only (a "
          "subset: the text is then not meaningful)",
          keys=(text_key("PROMPT", "Once upon a time", expect="some text",
                         help="the text to continue"),
                int_key("TOKENS", 8, minimum=1, help=f"decoding steps; the prompt and the "
                        f"steps fill at most the {KV_CAPACITY} positions of the KV cache"),
                int_key("LAYERS", None, minimum=1, help="the first k layers only (default: "
                        "all)"),
                int_key("MAX_CYCLES", 400_000_000, minimum=1, help="watchdog per program")))
def _run_generate(options):
    try:
        status, fields, text, (prefill, decode) = run_generate(
            options["PROMPT"], options["TOKENS"], options["LAYERS"],
            max_cycles=options["MAX_CYCLES"], stream=True)
    except (CompileError, ModelError, ValueError) as exc:
        raise UsageError(str(exc).splitlines()[0]) from None
    print("prefill program\n" + prefill, flush=True)
    if decode:
        print("decoding program\n" + decode, flush=True)
    for line in text["bad"][:10]:
        print(f"sim: generate: {line}", flush=True)
    fields = dict(fields)
    subset = (", a subset: the text is not meaningful" if fields["subset"] else "")
    summary = [
        f"model          SmolLM2-135M, {fields['layers']} "
        f"layer{'s' if fields['layers'] > 1 else ''}{subset}; weights in L3",
        f"prompt         {text['prompt']!r} ({fields['prompt_tokens']} tokens)",
        f"integer        {text['integer']!r} (the cluster's rows, the host's head)",
        f"float          {text['float']!r} (the float model, same layers)",
        f"generated      {text['generated']} tokens: the prefill's pick, then one per "
        f"decoding step; the first {fields['same_as_float']} equal the float model's",
        f"prefill        {fields['prefill_cycles']:,} cycles",
        f"decoding       {fields['decode_cycles']:,} cycles per step ({fields['tokens']} "
        f"steps, {fields['decode_total_cycles']:,} cycles), bound {fields['bound_cycles']:,} "
        f"({fields['bound_pct']} % of a step)",
        f"steps          {_thousands(fields['step_cycles'])} cycles (all layers, "
        f"step by step; the first loads what the steps share)",
        f"speed          {fields['tokens_per_s']} tokens/s at {fields['clock_mhz']} MHz",
        "head           final RMSNorm, tied head and argmax on the host (integer reference)"]
    fields[SUMMARY_FIELD] = summary
    return status, fields
