"""``make sim TEST=encoder_layer MODEL=minilm-real [LAYER=0..5] [TEXT="..."]``: one layer of
the real all-MiniLM-L6-v2, quantised by :mod:`ita.quant`, on the cluster.

:func:`quantised_minilm` reads the installed checkpoint (:func:`ita.models.bert.load_minilm`)
and calibrates and quantises it on the repository's calibration set (about a minute; the
integer model is kept in ``build/quant/`` under a hash of everything it depends on, so later
runs load it in a second). :func:`prepare_real` tokenizes the sentence, runs the integer model
(:func:`ita.quant.integer.run`) to get the layer's input rows (the embedding LayerNorm's
output for layer 0, the previous layer's output otherwise), compiles the layer
(:class:`ita.deploy.IntegerBertLayer`: S = the sentence's tokens, no padding) and makes it
self-checking against :func:`verif.deploy.expected_bert_tensors`, whose ``out`` is the
integer model's next hidden state; the last layer also stores the pooling's column sums.
The run, its breakdown and its RESULT fields are the random layer's
(:mod:`verif.cluster.encoder`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from hw import toolchain
from ita.config import DEFAULT_CONFIG
from ita.deploy import bert_layer_model, compile_model
from ita.deploy.emit import C_DIR, C_SOURCES
from ita.models import bert
from ita.models.ir import ModelError
from ita.quant import integer as qi
from ita.quant.calibration import CALIBRATION_FILE, calibrate, read_sentences
from ita.quant.quantiser import quantise
from sw.build import KERNEL_SOURCES, build_app
from verif.cluster.encoder import (
    Prepared,
    cluster_spec,
    combined_image,
    format_breakdown,
    job_table,
    parse,
)
from verif.deploy import C_DIR as CHECK_DIR
from verif.deploy import C_SOURCES as CHECK_SOURCES
from verif.deploy import expected_bert_tensors, self_checking_bert
from verif.harness.run import l3_image, run_image

__all__ = ["REAL_MODEL", "DEFAULT_TEXT", "quantised_minilm", "layer_input", "prepare_real",
           "prepare_block", "run_prepared", "run_real_layer"]

#: The MODEL= name of the real checkpoint's layers.
REAL_MODEL = "minilm-real"
DEFAULT_TEXT = "A man is playing a guitar."

_QUANT_SOURCES = tuple(sorted((Path(qi.__file__).parent).glob("*.py")))


def _cache_key() -> str:
    """A hash of what the integer model depends on: the checkpoint's files, the calibration
    sentences and the quantiser's sources."""
    digest = hashlib.sha256()
    folder = bert.minilm_folder()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        stat = path.stat()
        digest.update(f"{path.relative_to(folder)} {stat.st_size}".encode())
    for path in (CALIBRATION_FILE, *_QUANT_SOURCES):
        digest.update(Path(path).read_bytes())
    return digest.hexdigest()[:16]


def quantised_minilm():
    """(float model, integer model) of all-MiniLM-L6-v2 with the default quantiser options."""
    model = bert.load_minilm()
    integer = toolchain.cached_object(
        toolchain.BUILD_ROOT / "quant" / f"minilm-{_cache_key()}.pkl",
        lambda: quantise(model, calibrate(model, read_sentences(CALIBRATION_FILE))))
    return model, integer


def layer_input(model, integer, text, layer):
    """(token ids, whether the text was cut, the integer run, the layer's int8 input rows)."""
    if not text.strip():
        raise ModelError("TEXT is empty: give a sentence")
    if not text.isascii():
        raise ModelError("TEXT must be ASCII text")
    if not 0 <= layer < len(integer.layers):
        raise ModelError(f"LAYER={layer}: the model has layers 0..{len(integer.layers) - 1}")
    ids, cut = model.tokenizer.encode_full(text)
    result = qi.run(integer, ids)
    return ids, cut, result, result.hidden[layer]


def prepare_real(work, *, layer=0, text=DEFAULT_TEXT, debug=False, corrupt=None,
                 config=DEFAULT_CONFIG, weights="l2"):
    """Compile and build layer ``layer`` of the real model on ``text`` into ``work``;
    returns (Prepared, info) with the token count and whether the text was truncated."""
    model, integer = quantised_minilm()
    ids, cut, result, x = layer_input(model, integer, text, layer)
    imodel = bert_layer_model(integer, layer, len(ids))
    prepared = prepare_block(work, imodel, x, debug=debug, corrupt=corrupt, config=config,
                             weights=weights, reference=result)
    return prepared, {"tokens": len(ids), "truncated": int(cut), "layer": layer}


def prepare_block(work, imodel, x, *, debug=False, corrupt=None, config=DEFAULT_CONFIG,
                  weights="l2", reference=None):
    """Compile the BERT model ``imodel`` (one layer, or several chained) for its input rows
    ``x``, make it self-checking and build it into ``work``. ``reference`` (an
    :class:`ita.quant.integer.IntegerResult` of the whole model) must agree with the
    expected output and column sums."""
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    spec = cluster_spec(config, weights=weights)
    blocks = imodel.blocks
    last = blocks[-1]
    pooled = "pooled" if len(blocks) == 1 else f"b{len(blocks) - 1}_pooled"
    probes = ("out", *((pooled,) if last.pool else ()))
    if debug:
        names = [n for n in last.INTERMEDIATES if _has(last, n)]
        probes = (*(n for n in names if len(blocks) == 1),
                  *(f"b{k}_{n}" for k, b in enumerate(blocks) if len(blocks) > 1
                    for n in (*b.INTERMEDIATES, "out") if _has(b, n)
                    and not (n == "out" and k == len(blocks) - 1)), *probes)
    program = compile_model(imodel, spec, probes=probes)
    expected = expected_bert_tensors(imodel, x, program.manifest["outputs"], config)
    if reference is not None:
        if not np.array_equal(expected["out"][:last.tokens],
                              reference.hidden[last.index + 1][:last.tokens]):
            raise AssertionError("the program's expected output is not the integer model's")
        if last.pool and not np.array_equal(expected[pooled][0], reference.pooled_sum):
            raise AssertionError("the expected column sums are not the integer model's")
    if corrupt:
        tensor, row, col = corrupt
        expected[tensor] = expected[tensor].copy()
        expected[tensor][row, col] ^= 1
    checked = self_checking_bert(program, x, expected, spec)
    checked.write(work)
    app = build_app("encoder_layer", out_dir=work, include_dirs=(C_DIR, CHECK_DIR),
                    extra_sources=(work / "encoder_layer.c", *C_SOURCES, *CHECK_SOURCES,
                                   *KERNEL_SOURCES, work / "checks.c"))
    image = combined_image(app, checked.image, spec, work / "encoder_layer.l2.hex")
    l3 = l3_image(program.l3_image, work / "encoder_layer.l3.hex") if program.l3_image else None
    return Prepared(program, checked, app, image, work, l3)


def run_prepared(prepared, *, max_cycles=20_000_000, stream=False):
    """Run a prepared program on the C++ harness: (status, run output, breakdown, fields)."""
    run = run_image("encoder_layer", prepared.image, max_cycles=max_cycles, stream=stream,
                    l3_hex=prepared.l3_hex)
    rows, fields, _checks = parse(run.output, prepared.program.manifest)
    status = run.status if fields else "FAIL"
    breakdown = format_breakdown(rows, fields.get("layer_cycles", 0))
    if fields:
        breakdown += "\n" + job_table(run.output, prepared.program.manifest)
    return status, run, breakdown, fields


def _has(block, name):
    try:
        block.tensor(name)
    except KeyError:
        return False
    return True


def run_real_layer(work, *, layer=0, text=DEFAULT_TEXT, debug=False, corrupt=None,
                   max_cycles=20_000_000, stream=False, weights="l2"):
    """Prepare and run on the C++ harness; returns (status, fields, output, breakdown,
    prepared), as :func:`verif.cluster.encoder.run_layer`."""
    prepared, info = prepare_real(work, layer=layer, text=text, debug=debug, corrupt=corrupt,
                                  weights=weights)
    status, run, breakdown, fields = run_prepared(prepared, max_cycles=max_cycles,
                                                  stream=stream)
    manifest = prepared.program.manifest
    shape = manifest["shape"]
    result = {"model": REAL_MODEL, **info, **{k: shape[k] for k in ("S", "E", "P", "H", "F")},
              "weights": weights, "cycles": run.fields.get("cycles"), **fields,
              "estimate": manifest["estimate"]["cycles"], "outcome": run.fields["outcome"]}
    (Path(work) / "breakdown.txt").write_text(breakdown + "\n")
    (Path(work) / "result.json").write_text(json.dumps(result, indent=1) + "\n")
    return status, result, run.output, breakdown, prepared
