"""``make sim TEST=generate PROMPT="..." TOKENS=n [LAYERS=k]``: SmolLM2-135M generates text on
the cluster.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path

from hw import toolchain
from ita.models import llama as llama_models
from ita.quant import llama as ql
from ita.quant import llama_eval

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
    path = toolchain.BUILD_ROOT / "quant" / f"smollm2-{_cache_key()}.pkl"
    if path.exists():
        return model, pickle.loads(path.read_bytes())
    calibration = ql._sequences(model.tokenizer,
                                llama_eval.read_paragraphs(ql.CALIBRATION_TEXT))
    integer = ql.quantise(model, calibration, ql.LlamaQuantOptions())
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")   # parallel test workers write their own
    tmp.write_bytes(pickle.dumps(integer))
    tmp.replace(path)
    return model, integer
