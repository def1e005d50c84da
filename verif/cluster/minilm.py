"""``make sim TEST=minilm TEXT="..." [TEXT2="..."]``: the whole all-MiniLM-L6-v2 on the cluster.

The host tokenizes the sentence and looks up its embedding rows (:func:`ita.quant.integer.
embed_rows`, int16); everything after that runs on the cluster as one program of six blocks
(:func:`ita.deploy.bert_model`): the embedding LayerNorm inside the first, the six layers,
the pooling's int32 column sums inside the last. The weights live in L3 (10.6 MB do not fit
in L2) and stream through L1; the activations pass from layer to layer in L1 or
L2. The program checks the last layer's output and the column sums (every intermediate of
every layer with ``DEBUG=1``) against :mod:`ita.quant.integer`; the host then divides the
sums by the token count, scales and normalises them (:func:`ita.quant.integer.dequantise`)
and compares the embedding with the float model's. ``TEXT2`` runs a second sentence and
prints the two sentences' cosine similarity, float and integer.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from hw import toolchain
from ita.config import DEFAULT_CONFIG
from ita.deploy import bert_model
from ita.models import bert, bert_reference
from ita.models.ir import ModelError
from ita.quant import integer as qi
from verif.cluster.bert_layer import prepare_block, quantised_minilm, run_prepared

__all__ = ["CLOCK_MHZ", "prepare_minilm", "run_minilm", "run_sentences"]

#: The clock at which latencies are stated (the cluster's cycles are exact; the time is not).
CLOCK_MHZ = 500


def _checked(text, model):
    if not text.strip():
        raise ModelError("TEXT is empty: give a sentence")
    if not text.isascii():
        raise ModelError("TEXT must be ASCII text (the tokenizer would accept it, the "
                         "console output of the run would not)")
    ids, cut = model.tokenizer.encode_full(text)
    return ids, cut


def prepare_minilm(work, text, *, weights="l3", debug=False, corrupt=None,
                   config=DEFAULT_CONFIG):
    """Compile and build the whole model on ``text`` into ``work``: (Prepared, info)."""
    model, integer = quantised_minilm()
    ids, cut = _checked(text, model)
    result = qi.run(integer, ids)
    imodel = bert_model(integer, len(ids))
    prepared = prepare_block(work, imodel, result.embed, debug=debug, corrupt=corrupt,
                             config=config, weights=weights, reference=result)
    return prepared, {"model": model, "integer": integer, "ids": ids, "cut": cut,
                      "result": result}


def run_minilm(work, text, *, weights="l3", debug=False, corrupt=None, max_cycles=60_000_000,
               stream=False):
    """Run the whole model on one sentence: (status, fields, breakdown, embeddings)."""
    prepared, info = prepare_minilm(work, text, weights=weights, debug=debug, corrupt=corrupt)
    status, run, breakdown, fields = run_prepared(prepared, max_cycles=max_cycles,
                                                  stream=stream)
    mismatches = sum(int(pair.split("=")[1]) for line in run.output.splitlines()
                     if line.startswith("check:") for pair in line.split()
                     if pair.startswith("mismatches="))
    checks = sum(1 for line in run.output.splitlines() if line.startswith("check:"))
    if status == "PASS" and (mismatches or not checks):
        status = "FAIL"
    model, integer, ids = info["model"], info["integer"], info["ids"]
    integer_embedding = qi.dequantise(integer, info["result"])
    float_embedding = bert_reference.embed(model, ids)
    cos = float(integer_embedding @ float_embedding
                / (np.linalg.norm(integer_embedding) * np.linalg.norm(float_embedding)))
    cycles = fields.get("layer_cycles", 0)
    out = {"mismatches": mismatches, "tokens": len(ids), "cycles": cycles,
           "ops_per_cycle": fields.get("ops_per_cycle"), "peak_pct": fields.get("peak_pct"),
           "cos": f"{cos:.4f}",
           "latency_ms": f"{cycles / (CLOCK_MHZ * 1e3):.3f}", "clock_mhz": CLOCK_MHZ,
           "weights": weights, "layers": len(integer.layers), "truncated": int(info["cut"]),
           "ita_busy_pct": fields.get("ita_busy_pct"), "dma_bytes": fields.get("dma_bytes"),
           "block_cycles": fields.get("block_cycles"), "sim_cycles": run.fields.get("cycles"),
           "outcome": run.fields.get("outcome")}
    (Path(work) / "breakdown.txt").write_text(breakdown + "\n")
    (Path(work) / "result.json").write_text(json.dumps(out, indent=1) + "\n")
    return status, out, breakdown, (float_embedding, integer_embedding)


def run_sentences(texts, *, weights="l3", debug=False, max_cycles=60_000_000, stream=False):
    """Run each sentence in its own work folder: a list of run_minilm results (every text
    is checked before the first runs)."""
    model = bert.load_minilm()
    for text in texts:
        _checked(text, model)
    runs = []
    for text in texts:
        digest = hashlib.sha256(text.encode()).hexdigest()[:8]
        work = toolchain.BUILD_ROOT / "deploy" / f"minilm_text{digest}_{weights}" \
            f"{'_debug' if debug else ''}"
        runs.append(run_minilm(work, text, weights=weights, debug=debug,
                               max_cycles=max_cycles, stream=stream))
    return runs
