"""``make sim TEST=generate PROMPT="..." TOKENS=n [LAYERS=k]``: SmolLM2-135M generates text on
the cluster.

The host tokenizes the prompt, runs the integer model (:mod:`ita.quant.llama`) for the greedy
tokens and embeds the rows; the cluster runs two compiled programs with the weights in L3:
the prefill of the prompt through the first ``k`` layers, then ``TOKENS`` decoding steps of
one row each against every layer's KV cache (layer by layer: the fed tokens are the integer
model's picks, known before the program starts). Both check in C every output row and every
layer's cache against the integer model; the host's head (final RMSNorm, tied head, argmax,
:func:`ita.quant.llama.head`) turns the checked rows into tokens. ``docs/decoder.md`` has
the why of each choice.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from hw import toolchain
from ita.config import DEFAULT_CONFIG
from ita.deploy import CompileError, compile_model
from ita.deploy.emit import C_DIR, C_SOURCES
from ita.deploy.frontend import IntegerDecoderLayer, IntegerModel
from ita.deploy.ir import pad
from ita.models import llama as llama_models
from ita.models import llama_reference
from ita.models.ir import ModelError
from ita.quant import llama as ql
from ita.quant import llama_eval
from sw.build import KERNEL_SOURCES, build_app, read_hex
from verif.cluster.encoder import cluster_spec, combined_image, format_breakdown, job_table, parse
from verif.cluster.minilm import CLOCK_MHZ
from verif.deploy import C_DIR as CHECK_DIR
from verif.deploy import C_SOURCES as CHECK_SOURCES
from verif.deploy import expected_decoder_tensors, self_checking_decoder
from verif.deploy.decoder import decoder_inputs
from verif.harness.run import l3_image, run_image

_QUANT_SOURCES = tuple(sorted(Path(ql.__file__).parent.glob("llama*.py"))) + (
    Path(ql.__file__).parent.parent / "golden" / "decoder.py",)


def _cache_key() -> str:
    """A hash of what the integer SmolLM2 depends on: the checkpoint file (name and size),
    the calibration text and the quantiser's sources."""
    digest = hashlib.sha256()
    path = llama_models.smollm2_path()
    digest.update(f"{path.name} {path.stat().st_size}".encode())
    for source in (ql.CALIBRATION_TEXT, *_QUANT_SOURCES):
        digest.update(Path(source).read_bytes())
    return digest.hexdigest()[:16]


def quantised_smollm2():
    """(float model, integer model) of SmolLM2-135M with the default recipe, calibrated on
    ``llama_calibration.txt``; the integer model is kept in ``build/quant`` (quantising
    takes about half a minute)."""
    model = llama_models.load_smollm2()

    def make():
        calibration = ql._sequences(model.tokenizer,
                                    llama_eval.read_paragraphs(ql.CALIBRATION_TEXT))
        return ql.quantise(model, calibration, ql.LlamaQuantOptions())

    integer = toolchain.cached_object(
        toolchain.BUILD_ROOT / "quant" / f"smollm2-{_cache_key()}.pkl", make)
    return model, integer


# --- the run ---------------------------------------------------------------------------------

#: Positions the cluster's KV cache holds: one row tile of the engine (the decoding steps of
#: one program lie in one tile of the cache, :func:`ita.deploy.lower_decoder.decoder_tilings`).
KV_CAPACITY = DEFAULT_CONFIG.M


@dataclass(frozen=True)
class Plan:
    """What a run does, checked before anything is compiled: the prompt's ids, the decoding
    steps, the layers, the integer model of those layers and its greedy tokens."""

    prompt: str
    ids: tuple
    tokens: int
    layers: int
    total: int           #: the model's layers
    integer: object      #: ita.quant.llama.IntegerLlama of the first ``layers`` layers
    fed: tuple           #: the ids the decoding steps take (the first: the prefill's pick)
    generated: tuple     #: the integer model's greedy ids: the prefill's pick, then a step's
    float_generated: tuple


def plan_generation(prompt, tokens, layers=None):
    """The :class:`Plan` of a run; bad input raises ModelError with one line."""
    model = llama_models.load_smollm2()   # bad input is refused before quantising
    total = len(model.layers)
    layers = total if layers is None else layers
    if not 1 <= layers <= total:
        raise ModelError(f"LAYERS={layers}: SmolLM2 has layers 1..{total}")
    if not prompt.strip():
        raise ModelError("PROMPT is empty: give some text to continue")
    if not prompt.isascii():
        raise ModelError("PROMPT must be ASCII text (the console output of the run would "
                         "not show other text)")
    if tokens < 1:
        raise ModelError(f"TOKENS={tokens}: run at least one decoding step")
    ids = tuple(model.tokenizer.encode(prompt))
    if len(ids) >= KV_CAPACITY:
        raise ModelError(f"the prompt has {len(ids)} tokens: longer than the context of "
                         f"{KV_CAPACITY} positions the cluster's KV cache holds, less one "
                         f"for a decoding step")
    if len(ids) + tokens > KV_CAPACITY:
        raise ModelError(f"TOKENS={tokens} after {len(ids)} prompt tokens: the KV cache holds "
                         f"{KV_CAPACITY} positions, so at most {KV_CAPACITY - len(ids)} "
                         f"decoding steps")
    _, integer = quantised_smollm2()
    integer = replace(integer, layers=integer.layers[:layers], context=KV_CAPACITY)
    out = ql.forward(integer, ids)
    generated = [int(np.argmax(out.logits[-1]))]
    cache = out.cache
    for _ in range(tokens):
        out = ql.forward(integer, generated[-1:], cache)
        cache = out.cache
        generated.append(int(np.argmax(out.logits[-1])))
    subset = replace(model, layers=model.layers[:layers])
    float_generated = tuple(llama_reference.generate(subset, list(ids), tokens + 1))
    return Plan(prompt, ids, tokens, layers, total, integer, tuple(generated[:-1]),
                tuple(generated), float_generated)


def _programs(p: Plan):
    """(prefill model, its rows), (decoding model, all rows): the layers chained, the
    decoding steps of one layer after the other (the fed ids are known, see the docs)."""
    n, k = len(p.ids), p.layers
    prefill = IntegerModel(tuple(IntegerDecoderLayer(p.integer, j, n) for j in range(k)),
                           "generate_prefill")
    decode = IntegerModel(tuple(IntegerDecoderLayer(p.integer, j, 1, n, p.tokens)
                                for j in range(k)), "generate_decode")
    x_prompt = ql.embed(p.integer, list(p.ids))
    x_all = ql.embed(p.integer, [*p.ids, *p.fed])
    return (prefill, x_prompt), (decode, x_all)


def _build(work, imodel, x, probes, spec, corrupt=None):
    """Compile ``imodel``, make it self-checking against the integer model and build it:
    (program, expected tensors, image, l3 image). The decoding program holds the code of
    every step of every layer, which may outgrow the room below the default data offset in
    L2: then it is compiled again with its data above the code."""
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    while True:
        program = compile_model(imodel, spec, probes=probes)
        expected = expected_decoder_tensors(imodel, x, program.manifest["outputs"])
        if corrupt and corrupt[0] in expected:
            tensor, row, col = corrupt
            expected[tensor] = expected[tensor].copy()
            expected[tensor][row, col] ^= 1
        checked = self_checking_decoder(program, decoder_inputs(imodel, x), expected, spec)
        checked.write(work)
        app = build_app("encoder_layer", out_dir=work, include_dirs=(C_DIR, CHECK_DIR),
                        extra_sources=(work / "encoder_layer.c", *C_SOURCES, *CHECK_SOURCES,
                                       *KERNEL_SOURCES, work / "checks.c"))
        code = 4 * len(read_hex(app.hex)[1])
        if code <= spec.l2_data_offset:
            break
        spec = replace(spec, l2_data_offset=pad(code, _DATA_ALIGN))
    image = combined_image(app, checked.image, spec, work / "generate.l2.hex")
    l3 = l3_image(program.l3_image, work / "generate.l3.hex") if program.l3_image else None
    return program, expected, image, l3


#: Alignment of a moved data offset in L2.
_DATA_ALIGN = 64 * 1024


def _run(program, image, l3, max_cycles, stream):
    """(status, fields, breakdown, mismatch lines) of one program on the C++ harness."""
    run = run_image("encoder_layer", image, max_cycles=max_cycles, stream=stream, l3_hex=l3)
    rows, fields, checks = parse(run.output, program.manifest)
    mismatches = sum(int(line.rsplit("mismatches=", 1)[1]) for line in checks
                     if line.startswith("check:"))
    status = run.status if fields and any(c.startswith("check:") for c in checks) else "FAIL"
    if mismatches:
        status = "FAIL"
    breakdown = format_breakdown(rows, fields.get("layer_cycles", 0))
    if fields:
        breakdown += "\n" + job_table(run.output, program.manifest)
    fields["outcome"] = run.fields.get("outcome")
    fields["step_cycles"] = _step_cycles(run.output)
    return status, fields, breakdown, mismatches, [c for c in checks
                                                   if c.startswith("mismatch:")]


def _step_cycles(output):
    """Cycles of each decoding step, summed over the layers, from the program's ``steps:``
    line (``<block>:<step>:<cycles>`` per layer and step; none for a single step)."""
    per = {}
    for line in output.splitlines():
        if line.startswith("steps:"):
            for item in line.split()[1:]:
                _, step, cycles = (int(v) for v in item.split(":"))
                per[step] = per.get(step, 0) + cycles
    return [per[k] for k in sorted(per)]


def _named_step(line, prompt):
    """A decoding program's mismatch line with its step: row r of ``out`` is step r, row r of
    a key cache (column r of V^T) position r."""
    match = re.search(r"tensor=(\S+) row=(\d+) col=(\d+)", line)
    if not match:
        return f"decoding {line}"
    tensor, row, col = match[1], int(match[2]), int(match[3])
    if tensor == "out" or tensor.endswith("_out"):
        step = row
    elif "k_cache" in tensor:
        step = row - prompt
    else:
        step = col - prompt
    where = f"step={step}" if step >= 0 else "cached position"
    return f"decoding {where} {line.removeprefix('mismatch: ')}"


def _common_prefix(a, b):
    """How many leading tokens two greedy continuations share."""
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def weight_bytes(schedule):
    """Bytes of the weights one decoding step moves from L3: every layer's weight
    constants (int8 rows padded to the tile edge, the zero biases the jobs read, the fine
    rows), once per step."""
    return sum(t.size for t in schedule.l2.values()
               if t.role == "const" and re.match(r"(b\d+_)?w_", t.name))


def run_generate(prompt, tokens, layers=None, *, max_cycles=400_000_000, stream=False,
                 corrupt=None, config=DEFAULT_CONFIG):
    """Plan, build and run the prefill and the decoding steps: (status, fields, text lines,
    breakdowns). ``corrupt`` = (tensor, row, col) flips one expected value of the decoding
    program (``out`` or ``b<k>_k_cache<g>``...), to show that the check bites."""
    p = plan_generation(prompt, tokens, layers)
    spec = cluster_spec(config, weights="l3")
    (prefill, x_prompt), (decode, x_all) = _programs(p)
    k = p.layers
    cache_probes = [f"{'' if k == 1 else f'b{j}_'}{kind}{g}" for j in range(k)
                    for kind in ("k_cache", "v_cache") for g in range(p.integer.kv_heads)]
    digest = hashlib.sha256(prompt.encode()).hexdigest()[:8]
    root = toolchain.BUILD_ROOT / "deploy" / f"generate_{digest}_t{tokens}_l{k}"
    try:
        pre = _build(root / "prefill", prefill, x_prompt, ("out", *cache_probes), spec)
    except CompileError as exc:
        raise CompileError(f"the prefill of {len(p.ids)} tokens: {exc}") from None
    dec = _build(root / "decode", decode, x_all, ("out", *cache_probes), spec, corrupt)
    # the programs check against the whole integer model: its logits from their rows
    reference = ql.forward(p.integer, [*p.ids, *p.fed]).logits
    if not (np.array_equal(ql.head(p.integer, pre[1]["out"][-1:]), reference[len(p.ids) - 1:
                                                                            len(p.ids)])
            and np.array_equal(ql.head(p.integer, dec[1]["out"]), reference[len(p.ids):])):
        raise AssertionError("the programs' expected rows are not the integer model's")
    s1, f1, b1, m1, bad1 = _run(pre[0], pre[2], pre[3], max_cycles, stream)
    s2, f2, b2, m2, bad2 = (_run(dec[0], dec[2], dec[3], max_cycles, stream)
                            if s1 == "PASS" else ("FAIL", {}, "", 0, []))
    status = "PASS" if s1 == s2 == "PASS" else "FAIL"
    bad = [f"prefill {line}" for line in bad1] + [_named_step(line, len(p.ids))
                                                 for line in bad2]
    prefill_cycles = f1.get("layer_cycles", 0)
    decode_total = f2.get("layer_cycles", 0)
    per_step = round(decode_total / tokens) if decode_total else 0
    steps = f2.get("step_cycles") or ([decode_total] if decode_total and tokens == 1 else [])
    weights = weight_bytes(dec[0].schedule)
    per_step_weights = weights   # every step loads all of them again
    bound = per_step_weights / spec.rate("l3")
    fields = {
        "mismatches": m1 + m2, "prompt_tokens": len(p.ids), "tokens": tokens, "layers": k,
        "subset": int(k < p.total), "prefill_cycles": prefill_cycles, "decode_cycles": per_step,
        "bound_cycles": round(bound),
        "bound_pct": f"{100 * bound / per_step:.1f}" if per_step else "0",
        "weight_bytes": per_step_weights,
        "tokens_per_s": f"{CLOCK_MHZ * 1e6 / per_step:.2f}" if per_step else "0",
        "clock_mhz": CLOCK_MHZ, "head": "host",
        "prefill_peak_pct": f1.get("peak_pct"), "decode_total_cycles": decode_total,
        "step_cycles": ",".join(str(c) for c in steps) or "none",
        "layer_decode_cycles": f2.get("block_cycles", decode_total),
        "same_as_float": _common_prefix(p.generated, p.float_generated),
        "outcome": f2.get("outcome") or f1.get("outcome")}
    tokenizer = llama_models.load_smollm2().tokenizer
    text = {"prompt": prompt, "integer": tokenizer.decode(p.generated),
            "float": tokenizer.decode(p.float_generated), "bad": bad,
            "generated": len(p.generated)}
    (root / "result.json").write_text(json.dumps(fields, indent=1) + "\n")
    return status, fields, text, (b1, b2)
