"""The decoder layer's program made self-checking: int32 residual rows and the int8 cache.

As :func:`verif.deploy.self_checking` for the encoder, with the integer Llama
(:func:`ita.quant.llama.prefill_layer`, for a decoding step
:func:`ita.quant.llama.cached_layer` after the prefill of the cached rows) as the reference
and the int32 tensors (the input rows, ``out``) compared as int32 elements (``dl_check32``),
so a mismatch names the tensor, its row and its column.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np

from ita.quant.llama import cached_layer, prefill_layer

from .harness import self_checking

__all__ = ["decoder_inputs", "expected_decoder_tensors", "self_checking_decoder"]


def _cache(layer, x):
    """The prefill of the ``past`` cached rows of ``x``: (keys, values) (kv_heads, past, D)."""
    _, keys, values = prefill_layer(layer.model, layer.index, x[:layer.past])
    return keys, values


def _name(blocks, k, name):
    """Tensor ``name`` of block k as a program of ``blocks`` names it."""
    return name if len(blocks) == 1 else f"b{k}_{name}"


def _layers(model, x):
    """Per block (rows out, keys, values, all rows out): each layer on the rows the one
    before gives; a block of decoding steps after the prefill of its cached rows, then the
    new rows one by one against the grown cache."""
    results = []
    x = np.asarray(x)
    for layer in model.blocks:
        if layer.past:
            keys, values = _cache(layer, x)
            rows = []
            for r in range(layer.past, x.shape[0]):
                row, keys, values = cached_layer(layer.model, layer.index, x[r:r + 1], keys,
                                                 values)
                rows.append(row)
            new = np.concatenate(rows)
            full = np.concatenate([prefill_layer(layer.model, layer.index,
                                                 x[:layer.past])[0], new])
            results.append((new, keys, values, full))
        else:
            out, keys, values = prefill_layer(layer.model, layer.index, x)
            results.append((out, keys, values, out))
        x = results[-1][3]
    return results


def decoder_inputs(model, x):
    """The program's inputs: the new rows of ``x`` (all rows of a prefill, those after
    ``past`` for decoding steps) and, for decoding, every layer's cache the prefill of the
    rows before leaves (``k_cache<g>`` past x P, ``v_cache<g>`` P x past; ``b<k>_...`` for
    layer k of several)."""
    x = np.asarray(x)
    blocks = model.blocks
    if not any(block.past for block in blocks):   # prefills, one layer or chained
        return {"x": x}
    past = blocks[0].past
    inputs = {"x": x[past:]}
    rows = x
    for k, layer in enumerate(blocks):
        _, keys, values = prefill_layer(layer.model, layer.index, rows[:past])
        for g in range(layer.shape.KV):
            inputs[_name(blocks, k, f"k_cache{g}")] = keys[g]
            inputs[_name(blocks, k, f"v_cache{g}")] = values[g].T
        if k < len(blocks) - 1:
            rows = _layers(type(model)((layer,), model.name), rows)[0][3]
    return inputs


def expected_decoder_tensors(model, x, names):
    """The integer model's value of ``out``, ``k_cache<g>`` (T x P) and ``v_cache<g>``
    (P x T) for the decoder layers of ``model`` on int32 rows ``x``, each layer on the rows
    the one before gives (for decoding steps: the cached rows first, then the new ones,
    decoded one by one); with several layers ``out`` is the last one's and ``b<k>_<name>``
    layer k's tensor (:func:`ita.deploy.search.block_probes`)."""
    blocks = model.blocks
    if len({layer.past for layer in blocks}) > 1:
        raise ValueError("the layers of one program run the same positions")
    results = _layers(model, x)
    tensors = {}
    for name in names:
        k, tensor = len(blocks) - 1, name
        if len(blocks) > 1 and name != "out":
            head, _, tensor = name.partition("_")
            k = int(head[1:])
        out, keys, values, _ = results[k]
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


def self_checking_decoder(program, inputs, expected, spec):
    """``program`` with ``inputs`` (:func:`decoder_inputs`: the int32 rows ``x``, a decoding
    step's cache) in its input slots and checks of every output against ``expected`` (name
    -> int32 or int8 array)."""
    wide = {name for name, value in expected.items() if np.asarray(value).dtype == np.int32}
    inputs = {name: _bytes(np.asarray(value, np.int32) if name == "x" else value)
              for name, value in inputs.items()}
    checked = self_checking(program, inputs,
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
