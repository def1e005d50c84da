"""The decoder layer's program made self-checking: int32 residual rows and the int8 cache.

As :func:`verif.deploy.self_checking` for the encoder, with the integer Llama
(:func:`ita.quant.llama.prefill_layer`) as the reference and the int32 tensors (the input
rows, ``out``) compared as int32 elements (``dl_check32``), so a mismatch names the tensor,
its row and its column.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np

from ita.quant.llama import prefill_layer

from .harness import self_checking

__all__ = ["expected_decoder_tensors", "self_checking_decoder"]


def expected_decoder_tensors(model, x, names):
    """The integer model's value of ``out``, ``k_cache<g>`` (S x P) and ``v_cache<g>``
    (P x S) for the decoder layers of ``model`` on int32 rows ``x``, each layer on the rows
    the one before gives; with several layers ``out`` is the last one's and ``b<k>_<name>``
    layer k's tensor (:func:`ita.deploy.search.block_probes`)."""
    blocks = model.blocks
    results = []
    for layer in blocks:
        results.append(prefill_layer(layer.model, layer.index, x))
        x = results[-1][0]
    tensors = {}
    for name in names:
        k, tensor = len(blocks) - 1, name
        if len(blocks) > 1 and name != "out":
            head, _, tensor = name.partition("_")
            k = int(head[1:])
        out, keys, values = results[k]
        if tensor == "out":
            tensors[name] = out.astype(np.int32)
        elif tensor.startswith("k_cache"):
            tensors[name] = keys[int(tensor[len("k_cache"):])]
        elif tensor.startswith("v_cache"):
            tensors[name] = values[int(tensor[len("v_cache"):])].T
        else:
            raise KeyError(name)
    return tensors


def _bytes(array):
    array = np.asarray(array)
    if array.dtype == np.int32:
        return np.ascontiguousarray(array).view(np.int8)
    return array.astype(np.int8)


_CHECK = re.compile(r'dl_check\(core, "(?P<name>\w+)", \(const int8_t \*\)(?P<got>\w+), '
                    r'\(const int8_t \*\)(?P<want>\w+), (?P<rows>\d+), (?P<cols>\d+), '
                    r'(?P<pitch>\d+)\)')


def self_checking_decoder(program, x, expected, spec):
    """``program`` with the int32 rows ``x`` in its input slot and checks of every output
    against ``expected`` (name -> int32 or int8 array)."""
    wide = {name for name, value in expected.items() if np.asarray(value).dtype == np.int32}
    checked = self_checking(program, {"x": _bytes(np.asarray(x, np.int32))},
                            {name: _bytes(value) for name, value in expected.items()}, spec)

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
