"""A quantised BERT layer's program made self-checking, against :mod:`ita.quant.integer`.

:func:`expected_bert_tensors` computes the layer's tensors with the integer model's own
functions, step for step as :func:`ita.quant.integer.run` composes them (and checks that its
``out`` is that function's layer output); :func:`self_checking_bert` writes the int8 input
rows and the expected outputs into the image, the int32 column sums (``pooled``) compared
as int32 elements (``dl_check32``), the int16 rows (``add1``, ``add2``) byte by byte.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np

from ita.golden import attention_head, multi_head_attention
from ita.quant import integer as qi

from .harness import self_checking

__all__ = ["expected_bert_tensors", "self_checking_bert", "as_bytes"]


def _block_tensors(block, x, config):
    """Every tensor of one BERT layer block on its input ``x`` (int16 embedding rows for a
    block with ``embed_norm``, else int8 rows)."""
    L, x = block.layer, np.asarray(x)
    valid = block.valid if block.valid is not None and block.valid < block.S else None
    t = {}
    if block.embed_norm is not None:
        x = t["ln0"] = block.embed_norm.rows(x)
    if L.rq_sum is None:
        heads = [attention_head(x, x, L.wq[h], L.wk[h], L.wv[h], L.wo[h], L.bq[h], L.bk[h],
                                L.bv[h], L.bo[h], rq=L.rq_attn[h], valid_keys=valid,
                                logit_frac=L.head_logit_frac(h), config=config).out
                 for h in range(len(L.wq))]
    else:
        t["attn"] = multi_head_attention(x, x, L.wq, L.wk, L.wv, L.wo, L.bq, L.bk, L.bv, L.bo,
                                         rq=L.rq_attn, rq_sum=L.rq_sum, valid_keys=valid,
                                         logit_frac=[L.head_logit_frac(h)
                                                     for h in range(len(L.wq))],
                                         config=config).out_sum
        heads = t["attn"]
    t["add1"] = qi.residual_add_rows(x, heads, L.add1)
    t["ln1"] = L.norm1.rows(t["add1"])
    t["add2"] = qi.residual_add_rows(t["ln1"], [part(t["ln1"], config) for part in L.ffn],
                                     L.add2)
    t["out"] = L.norm2.rows(t["add2"])
    reference = qi._layer(x, L, valid, config)
    if not np.array_equal(t["out"], reference):
        raise AssertionError("expected_bert_tensors drifted from ita.quant.integer")
    t["pooled"] = t["out"][:block.tokens].astype(np.int64).sum(axis=0)[None].astype(np.int32)
    return t


def expected_bert_tensors(model, x, names, config):
    """The integer model's value of every tensor in ``names`` for the BERT layer blocks of
    ``model`` on rows ``x``, each block on the output of the one before: ``out``, ``pooled``
    and the intermediates for one block; ``out`` (the last block's) and ``b<k>_<name>``
    (block k's tensor) for several (:func:`ita.deploy.search.block_probes`)."""
    blocks, found = model.blocks, []
    for block in blocks:
        found.append(_block_tensors(block, x, config))
        x = found[-1]["out"]
    if len(blocks) == 1:
        return {name: found[0][name] for name in names}
    tensors = {}
    for name in names:
        if name == "out":
            tensors[name] = found[-1]["out"]
        else:
            head, _, tensor = name.partition("_")
            tensors[name] = found[int(head[1:])][tensor]
    return tensors


def as_bytes(array):
    """An int8 / int16 / int32 array as the int8 bytes of its rows (little-endian)."""
    array = np.asarray(array)
    if array.dtype in (np.int16, np.int32):
        return np.ascontiguousarray(array).view(np.int8)
    return array.astype(np.int8)


_CHECK = re.compile(r'dl_check\(core, "(?P<name>\w+)", \(const int8_t \*\)(?P<got>\w+), '
                    r'\(const int8_t \*\)(?P<want>\w+), (?P<rows>\d+), (?P<cols>\d+), '
                    r'(?P<pitch>\d+)\)')


def self_checking_bert(program, x, expected, spec):
    """``program`` with the rows ``x`` (int8, or the int16 embedding rows of a first block
    that normalises them) in its input slot and checks of every output against ``expected``
    (name -> int8, int16 or int32 array)."""
    wide = {name for name, value in expected.items() if np.asarray(value).dtype == np.int32}
    x = np.asarray(x)
    checked = self_checking(program, {"x": as_bytes(x if x.dtype == np.int16 else
                                                    x.astype(np.int8))},
                            {name: as_bytes(value) for name, value in expected.items()}, spec)

    def word_check(match):
        if match["name"] not in wide:
            return match[0]
        return (f'dl_check32(core, "{match["name"]}", (const int32_t *){match["got"]}, '
                f'(const int32_t *){match["want"]}, {match["rows"]}, '
                f'{int(match["cols"]) // 4}, {int(match["pitch"]) // 4})')

    source = _CHECK.sub(word_check, checked.check_source)
    placed = {name: (address, np.asarray(expected[name]))
              for name, (address, _) in checked.expected.items()}
    return dataclasses.replace(checked, check_source=source, expected=placed)
