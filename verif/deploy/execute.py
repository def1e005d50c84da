"""A compiled plan run in numpy: every transfer, engine job and kernel on byte images of L1
and L2, each computed with ``ita.golden``.

:func:`execute` interprets a :class:`ita.deploy.Program`'s schedule the way the cluster runs
it, but from memory alone: the L2 image with the input written into its slot, an L1 arena
that starts with garbage (as ``L1_NOINIT`` memory does), DMA copies of the bytes the
transfers name, engine jobs that read their operands at their pointers and write every padded
output (step by step, so a step reads what an earlier one wrote), and core kernels that read
and write at their arguments. The outputs read back from L2 are the plan's results, so a plan
whose buffers collide, whose transfers miss a row or whose pointers are off gives values
different from the integer model. :func:`check_plan` compares them with it for an encoder
layer, :func:`check_decoder_plan` with the integer Llama for a decoder layer.

A phase runs its transfers concurrently with its job, and its kernels concurrently with the
job unless they wait for it (``after_ita``). The interpreter runs a phase in every order the
program allows and requires the same memory afterwards: a phase whose result depends on the
order (a transfer or kernel touching bytes the job reads or writes) is a race, reported with
its index.
"""

from __future__ import annotations

from itertools import permutations

import numpy as np

from cluster_integration.hwpe.regmap import TENSOR_POINTERS
from ita.deploy.ir import Ref
from ita.golden import decoder as dec
from ita.golden import linear
from ita.golden.arith import requant
from ita.golden.encoder import layer_norm, residual_add
from ita.golden.layers import attention_mask, gemm_step
from ita.golden.softmax import itamax
from ita.quant import integer as qi
from ita.rtl.layouts import Mode
from ita.rtl.schedule import tensor_shapes
from verif.deploy.bert import expected_bert_tensors
from verif.deploy.decoder import decoder_inputs, expected_decoder_tensors
from verif.deploy.harness import expected_tensors

__all__ = ["ExecutionError", "execute", "check_plan", "check_decoder_plan", "check_bert_plan",
           "first_mismatch"]

#: What a byte of L1 holds before anything writes it (any value but zero would do).
GARBAGE_SEED = 0xA5


class ExecutionError(AssertionError):
    """The plan cannot run as written: an access outside its memory, or a race."""


class _Memory:
    """The L1 arena and the L2 data image as byte arrays, with typed views by address."""

    def __init__(self, program, inputs):
        schedule = program.schedule
        self.schedule = schedule
        rng = np.random.default_rng(GARBAGE_SEED)
        self.l1 = rng.integers(0, 256, schedule.spec.arena_bytes, dtype=np.uint8)
        size = max(len(program.image), -(-schedule.l2_bytes // 4) * 4)
        self.l2 = np.zeros(size, np.uint8)
        self.l2[:len(program.image)] = np.frombuffer(program.image, np.uint8)
        # Constants kept off chip (ClusterSpec.weights == "l3"); never written by a plan.
        self.l3 = np.frombuffer(program.l3_image, np.uint8).copy()
        for name, entry in program.manifest["inputs"].items():
            if name not in inputs:
                raise ValueError(f"no value for input {name}")
            value = np.asarray(inputs[name])
            if value.shape != (entry["rows"], entry["cols"]):
                raise ValueError(f"input {name} must have shape ({entry['rows']}, "
                                 f"{entry['cols']}), got {value.shape}")
            for r in range(entry["rows"]):
                start = entry["offset"] + r * entry["pitch"]
                self.l2[start:start + entry["cols"]] = value[r].astype(np.int8).view(np.uint8)

    def copy(self):
        other = object.__new__(_Memory)
        other.schedule, other.l1, other.l2 = self.schedule, self.l1.copy(), self.l2.copy()
        other.l3 = self.l3
        return other

    def same(self, other):
        return np.array_equal(self.l1, other.l1) and np.array_equal(self.l2, other.l2)

    def address(self, ref):
        """The arena offset of a kernel or job pointer (Ref)."""
        return self.schedule.buffers[ref.buffer].offset + ref.offset

    def _span(self, memory, start, nbytes, what):
        if start < 0 or start + nbytes > len(memory):
            where = ("L1 arena" if memory is self.l1 else
                     "L3 data image" if memory is self.l3 else "L2 data image")
            raise ExecutionError(f"{what}: bytes {start}..{start + nbytes - 1} outside the "
                                 f"{len(memory)}-byte {where}")
        return memory[start:start + nbytes]

    def read(self, start, count, dtype, what, memory=None):
        dtype = np.dtype(dtype)
        raw = self._span(self.l1 if memory is None else memory, start, count * dtype.itemsize,
                         what)
        return raw.view(dtype).astype(np.int64)

    def write(self, start, values, dtype, what, memory=None):
        raw = np.ascontiguousarray(np.asarray(values).astype(dtype)).view(np.uint8).ravel()
        self._span(self.l1 if memory is None else memory, start, raw.size, what)[:] = raw


# --- the actors of a phase -------------------------------------------------------------------


def _transfers(mem, phase):
    for d in phase.stores + phase.loads:
        l2_base = mem.schedule.l2[d.l2].offset + d.l2_offset
        far = mem.l3 if mem.schedule.l2[d.l2].memory == "l3" else mem.l2
        l1_base = mem.schedule.buffers[d.buffer].offset + d.l1_offset
        l2_stride = d.l2_stride if d.rows > 1 else d.row_bytes
        l1_stride = d.l1_stride if d.rows > 1 else d.row_bytes
        what = f"phase {phase.index} {'load' if d.load else 'store'} {d.l2} / {d.buffer}"
        for r in range(d.rows):
            src = mem._span(far if d.load else mem.l1,
                            (l2_base + r * l2_stride) if d.load else (l1_base + r * l1_stride),
                            d.row_bytes, what)
            dst = mem._span(mem.l1 if d.load else far,
                            (l1_base + r * l1_stride) if d.load else (l2_base + r * l2_stride),
                            d.row_bytes, what)
            dst[:] = src


def _tensor_names(mode):
    """ITA pointer name (without PTR_) -> the tensor it points at in ``mode``."""
    shapes = tensor_shapes(mode, S=1, E=1, P=1, F=1)
    names = {}
    for pointer, tensors in TENSOR_POINTERS.items():
        for tensor in tensors:
            if tensor in shapes:
                names[pointer.removeprefix("PTR_")] = tensor
    return names


def _job(mem, job, config):
    """One engine job from memory: inputs read at their pointers (padded, row-major; biases
    int32 words), each step's padded output written at its pointer before the next step
    reads it."""
    mode = {"attention": Mode.ATTENTION, "linear": Mode.LINEAR, "qkav": Mode.QKAV}.get(job.mode)
    if mode is None:
        raise ExecutionError(f"{job.name}: no interpreter for engine mode {job.mode!r}")
    d = job.dims
    S, E, P = d["S"], d["E"], d["P"]
    shapes = tensor_shapes(mode, S=S, E=E, P=P, F=d["F"], config=config)
    names = _tensor_names(mode)
    where = {}
    for pointer, ref in job.pointers.items():
        if pointer not in names:
            raise ExecutionError(f"{job.name}: pointer {pointer} is not used in mode {mode}")
        where[names[pointer]] = mem.address(ref)
    missing = sorted(set(shapes) - set(where))
    if missing:
        raise ExecutionError(f"{job.name}: no pointer for tensor {missing[0]}")

    def load(name, rows, cols, dtype=np.int8):
        shape = shapes[name]
        if len(shape) == 1:
            return mem.read(where[name], shape[0], np.int32, f"{job.name} {name}")[:rows]
        full = mem.read(where[name], shape[0] * shape[1], dtype, f"{job.name} {name}")
        return full.reshape(shape)[:rows, :cols]

    def store(name, value):
        full = np.zeros(shapes[name], np.int64)
        full[:value.shape[0], :value.shape[1]] = value
        mem.write(where[name], full, np.uint8 if name == "a" else np.int8, f"{job.name} {name}")

    rq = [tuple(int(v) for v in row) for row in job.requant]
    if mode == Mode.LINEAR:
        x, w_t, b = load("x", S, E), load("w_t", P, E), load("b", P, 0)
        store("y", linear(x, w_t.T, b, rq=rq[0], activation=job.activation,
                          gelu_b=job.gelu[0], gelu_c=job.gelu[1], act_rq=job.act_rq,
                          config=config))
        return
    if mode == Mode.QKAV:   # Q and K (rotated) and V^T come from the cores
        _qk_av(load, store, job, S, P, rq, config)
        return
    store("qp", gemm_step("Q", load("q_in", S, E), load("wq_t", P, E).T, load("bq", P, 0),
                          rq[0], config))
    store("kp", gemm_step("K", load("kv_in", S, E), load("wk_t", P, E).T, load("bk", P, 0),
                          rq[1], config))
    store("vp_t", gemm_step("V", load("kv_in", S, E), load("wv_t", P, E).T, load("bv", P, 0),
                            rq[2], config).T)
    _qk_av(load, store, job, S, P, rq, config)
    store("out", gemm_step("OW", load("o", S, P), load("wo_t", E, P).T, load("bo", E, 0),
                           rq[5], config))


def _qk_av(load, store, job, S, P, rq, config):
    """Steps QK (with the softmax) and AV of a job, from and to memory."""
    a = gemm_step("QK", load("qp", S, P), load("kp", S, P).T, None, rq[3], config)
    mask = attention_mask(S, causal=job.causal, valid_keys=job.valid_keys or None)
    store("a", itamax(a, config.N, mask, logit_frac=job.logit_frac, config=config))
    store("o", gemm_step("AV", load("a", S, S, np.uint8), load("vp_t", P, S).T, None, rq[4],
                         config))


def _args(mem, kernel):
    """Arena offsets for pointers, None for a null pointer (the literal 0 where a pointer
    may be absent), the integers as they are."""
    pointer = {"head_final": (0,), "add_layernorm": (15,),
               "decomposed_gemm": (7, 8), "layer_norm_rows": (9,)}.get(kernel.kind, ())
    return [mem.address(a) if isinstance(a, Ref)
            else [mem.address(r) for r in a] if isinstance(a, tuple)
            else None if i in pointer and int(a) == 0 else int(a)
            for i, a in enumerate(kernel.args)]


def _head_pairs(values):
    """Groups of four in the int16 accumulator's order (0, 2, 1, 3), see deploy_rt.c."""
    return values.reshape(-1, 4)[:, [0, 2, 1, 3]].ravel()


def _kernel(mem, kernel):
    what = f"kernel {kernel.name}"
    a = _args(mem, kernel)
    if kernel.kind == "head_acc":
        acc, out, count, first = a
        if count % 4:
            raise ExecutionError(f"{what}: count {count} is not a multiple of 4")
        value = mem.read(out, count, np.int8, what)
        if not first:
            value = value + _head_pairs(mem.read(acc, count, np.int16, what))
        mem.write(acc, _head_pairs(value), np.int16, what)
    elif kernel.kind == "head_final":
        acc, out, res, count, mult, shift, add = a
        value = mem.read(out, count, np.int8, what)
        if acc is not None:   # a null pointer: one head, no accumulator
            value = value + _head_pairs(mem.read(acc, count, np.int16, what))
        mem.write(res, requant(value, mult, shift, add), np.int8, what)
    elif kernel.kind == "relayout":
        src, src_pitch, dst, dst_pitch, rows, cols = a
        for r in range(rows):
            mem.write(dst + r * dst_pitch, mem.read(src + r * src_pitch, cols, np.int8, what),
                      np.int8, what)
    elif kernel.kind == "add_layernorm":
        (x, y, total, out, rows, cols, mult_x, mult_y, shift_a, add_a, gamma, beta, mult, shift,
         add, scratch) = a
        xs = mem.read(x, rows * cols, np.int8, what).reshape(rows, cols)
        ys = mem.read(y, rows * cols, np.int8, what).reshape(rows, cols)
        s = residual_add(xs, ys, mult_x=mult_x, mult_y=mult_y, shift=shift_a, add=add_a)
        g = mem.read(gamma, cols, np.int8, what)
        b = mem.read(beta, cols, np.int32, what)
        if scratch is not None:   # the per-column constants the kernel may keep there (ln_coef)
            coef = np.stack([g * mult, b * mult + (add << min(shift, 31))], axis=1)
            mem.write(scratch, (coef & 0xFFFFFFFF).astype(np.uint32), np.uint32, what)
        mem.write(total, s, np.int8, what)
        mem.write(out, layer_norm(s, g, b, mult=mult, shift=shift, add=add), np.int8, what)
    elif kernel.kind in _DECODER_KERNELS:
        _DECODER_KERNELS[kernel.kind](mem, a, what)
    elif kernel.kind in _BERT_KERNELS:
        _BERT_KERNELS[kernel.kind](mem, a, what)
    else:
        raise ExecutionError(f"{what}: no interpreter for kernel kind {kernel.kind!r}")


def _rows(mem, start, pitch, rows, cols, dtype, what):
    """``rows`` rows of ``cols`` elements, ``pitch`` bytes apart."""
    return np.stack([mem.read(start + r * pitch, cols, dtype, what) for r in range(rows)]) \
        if rows else np.zeros((0, cols), np.int64)


def _put_rows(mem, start, pitch, values, dtype, what):
    for r, row in enumerate(values):
        mem.write(start + r * pitch, row, dtype, what)


def _clip8(v):
    return np.clip(v, -128, 127)


def _rmsnorm(mem, a, what):
    x, out, rows, cols, pitch, consts, eps = a
    xs = mem.read(x, rows * cols, np.int32, what).reshape(rows, cols)
    c = mem.read(consts, 2 * cols, np.int32, what)
    _put_rows(mem, out, pitch, _clip8(dec.rms_norm(xs, c[:cols], c[cols:], eps)), np.int8, what)


def _rope(mem, a, what):
    x, x_pitch, out, out_pitch, rows, dim, consts, cos, sin = a
    xs = _rows(mem, x, x_pitch, rows, dim, np.int8, what)
    c = mem.read(consts, 2 * dim, np.int32, what)
    half = dim // 2
    cs = mem.read(cos, rows * half, np.int16, what).reshape(rows, half)
    sn = mem.read(sin, rows * half, np.int16, what).reshape(rows, half)
    y = dec.rope(xs[None], c[:dim][None], c[dim:][None], cs, sn)[0]
    _put_rows(mem, out, out_pitch, y, np.int8, what)


def _silu_mul(mem, a, what):
    gate, up, in_pitch, out, out_pitch, rows, cols, consts, table = a
    g = _rows(mem, gate, in_pitch, rows, cols, np.int8, what)
    u = _rows(mem, up, in_pitch, rows, cols, np.int8, what)
    c = mem.read(consts, 4 * cols, np.int32, what).reshape(4, cols)
    want = dec.sigmoid_table()
    if not np.array_equal(mem.read(table, want.size, np.int32, what), want):
        raise ExecutionError(f"{what}: the sigmoid table in L1 is not "
                             "ita.golden.decoder.sigmoid_table()")
    _put_rows(mem, out, out_pitch, _clip8(dec.gated(g, u, *c)), np.int8, what)


def _dequant_add(mem, a, what):
    residual, y, y_pitch, out, rows, cols, consts = a
    res = mem.read(residual, rows * cols, np.int32, what).reshape(rows, cols)
    ys = _rows(mem, y, y_pitch, rows, cols, np.int8, what)
    c = mem.read(consts, 2 * cols, np.int32, what)
    mem.write(out, dec.dequantise_add(res, ys, c[:cols], c[cols:]), np.int32, what)


def _rmsnorm_wide(mem, a, what):
    x, out, pitch, wide, rows, cols, consts, eps = a
    xs = mem.read(x, rows * cols, np.int32, what).reshape(rows, cols)
    c = mem.read(consts, 2 * cols, np.int32, what)
    v = dec.rms_norm(xs, c[:cols], c[cols:], eps)
    _put_rows(mem, out, pitch, _clip8(v), np.int8, what)
    mem.write(wide, v, np.int32, what)


def _rope32(mem, a, what):
    x, x_pitch, out, out_pitch, rows, dim, consts, cos, sin = a
    xs = _rows(mem, x, 4 * x_pitch, rows, dim, np.int32, what)
    c = mem.read(consts, 2 * dim, np.int32, what)
    half = dim // 2
    cs = mem.read(cos, rows * half, np.int16, what).reshape(rows, half)
    sn = mem.read(sin, rows * half, np.int16, what).reshape(rows, half)
    y = dec.rope(xs[None], c[:dim][None], c[dim:][None], cs, sn)[0]
    _put_rows(mem, out, out_pitch, y, np.int8, what)


def _silu_mul_wide(mem, a, what):
    gate, up, in_pitch, out, out_pitch, wide, rows, cols, consts, table = a
    g = _rows(mem, gate, 4 * in_pitch, rows, cols, np.int32, what)
    u = _rows(mem, up, 4 * in_pitch, rows, cols, np.int32, what)
    c = mem.read(consts, 4 * cols, np.int32, what).reshape(4, cols)
    want = dec.sigmoid_table()
    if not np.array_equal(mem.read(table, want.size, np.int32, what), want):
        raise ExecutionError(f"{what}: the sigmoid table in L1 is not "
                             "ita.golden.decoder.sigmoid_table()")
    v = dec.gated(g, u, *c)
    _put_rows(mem, out, out_pitch, _clip8(v), np.int8, what)
    mem.write(wide, v, np.int32, what)


def _dequant_add32(mem, a, what):
    residual, y, y_pitch, out, rows, cols, consts = a
    res = mem.read(residual, rows * cols, np.int32, what).reshape(rows, cols)
    ys = _rows(mem, y, 4 * y_pitch, rows, cols, np.int32, what)
    c = mem.read(consts, 2 * cols, np.int32, what)
    mem.write(out, dec.dequantise_add(res, ys, c[:cols], c[cols:]), np.int32, what)


def _strided(mem, start, row, col, rows, cols, dtype, what):
    """Elements (r, c) at ``start + (r * row + c * col) * size``: a (rows, cols) array."""
    index = np.arange(rows)[:, None] * row + np.arange(cols)[None, :] * col
    return mem.read(start, int(index.max()) + 1, dtype, what)[index]


def _decomposed_gemm(mem, a, what):
    """``k_decomposed_gemm_ex`` from the engine's y8 in memory: corrections of the clipped
    excess, saturated outputs recomputed (as ita.golden.decoder.decomposed_gemm does)."""
    (x, x_wide, x_pitch, k, w, w_row, w_col, fine_map, wf, wf_row, wf_col, y8, y8_row, y8_col,
     y, y_wide, y_row, y_col, rows, n, mult, shift) = a
    xs = _rows(mem, x, (4 if x_wide else 1) * x_pitch, rows, k,
               np.int32 if x_wide else np.int8, what)
    if np.abs(xs).max(initial=0) > dec.WIDE + 1:
        raise ExecutionError(f"{what}: a wide input beyond 24 bits")
    ws = _strided(mem, w, w_row, w_col, k, n, np.int8, what)
    fine = ws << dec.FINE_BITS
    if fine_map is not None:
        index = mem.read(fine_map, k, np.int16, what)
        for i in np.flatnonzero(index >= 0):
            fine[i] = _strided(mem, wf, wf_row, wf_col, int(index[i]) + 1, n, np.int16,
                               what)[-1]
    elif wf is not None:
        fine = _strided(mem, wf, wf_row, wf_col, k, n, np.int16, what)
    engine = _strided(mem, y8, y8_row, y8_col, rows, n, np.int8, what)
    x8 = np.clip(xs, -128, 127)
    c = (xs - x8) @ fine
    clipped = np.any(xs != x8, axis=1)[:, None]
    wide = dec.scale_round((x8 @ ws << dec.FINE_BITS) + c, mult, shift + dec.FINE_BITS)
    fixed = engine + np.where(clipped, dec.scale_round(c, mult, shift + dec.FINE_BITS), 0)
    v = np.where((engine == 127) | (engine == -128), wide, fixed)
    size = 4 if y_wide else 1
    for r in range(rows):
        for col in range(n):
            at = y + size * (r * y_row + col * y_col)
            value = dec.saturate(v[r, col], (1 << 31) - 1) if y_wide else _clip8(v[r, col])
            mem.write(at, [value], np.int32 if y_wide else np.int8, what)


def _gemv(mem, a, what, unsigned=False):
    x, bt, pitch, out, k, n, mult, shift, add = a
    xs = mem.read(x, k, np.uint8 if unsigned else np.int8, what)
    ws = _rows(mem, bt, pitch, n, k, np.int8, what)
    mem.write(out, requant(ws @ xs, mult, shift, add), np.int8, what)


def _itamax(mem, a, what):
    x, out, rows, cols, valid, causal, logit_frac = a
    logits = mem.read(x, rows * cols, np.int8, what).reshape(rows, cols)
    keep = np.arange(cols)[None, :] < valid
    if causal:
        keep = keep & (np.arange(cols)[None, :] <= np.arange(rows)[:, None])
    config = mem.schedule.spec.config
    if not 0 <= logit_frac <= config.logit_frac_max:   # the kernel's K_ERR_LOGIT_FRAC
        raise ExecutionError(f"{what}: logit step ln 2 / 2^{logit_frac} outside "
                             f"0..{config.logit_frac_max}")
    mem.write(out, itamax(logits, config.N, np.broadcast_to(keep, (rows, cols)),
                          logit_frac=logit_frac, config=config), np.uint8, what)


#: The decoder's kernels (``sw/kernels/kernels.h``), with ``ita.golden.decoder``.
_DECODER_KERNELS = {"rmsnorm": _rmsnorm, "rope": _rope, "silu_mul": _silu_mul,
                    "dequant_add": _dequant_add, "rmsnorm_wide": _rmsnorm_wide,
                    "rope32": _rope32, "silu_mul_wide": _silu_mul_wide,
                    "dequant_add32": _dequant_add32, "decomposed_gemm": _decomposed_gemm,
                    "gemv": _gemv, "gemv_u8": lambda m, a, w: _gemv(m, a, w, True),
                    "itamax": _itamax}


def _residual_add_rows(mem, a, what):
    ops, n, out, rows, cols, consts, coef = a
    if len(ops) != n:
        raise ExecutionError(f"{what}: {len(ops)} operand pointers for {n} operands")
    xs = [mem.read(o, rows * cols, np.int8, what).reshape(rows, cols) for o in ops]
    c = mem.read(consts, 2 * n * cols, np.int32, what).reshape(2 * n, cols)
    try:
        value = qi.residual_add_rows(xs[0], xs[1:], c)
    except ValueError as exc:   # the kernel's K_ERR_RESIDUAL
        raise ExecutionError(f"{what}: {exc}") from None
    mem.write(coef, c[:n] << c[n:], np.int32, what)   # the kernel's coefficients
    mem.write(out, value, np.int16, what)


def _layer_norm_rows(mem, a, what):
    x, out, rows, cols, gamma, beta, mult, shift, add, scratch = a
    xs = mem.read(x, rows * cols, np.int16, what).reshape(rows, cols)
    g = mem.read(gamma, cols, np.int8, what)
    b = mem.read(beta, cols, np.int32, what)
    try:
        value = qi.layer_norm_rows(xs, g, b, mult=mult, shift=shift, add=add)
    except ValueError as exc:   # the kernel's K_ERR_ROW_RANGE
        raise ExecutionError(f"{what}: {exc}") from None
    if scratch is not None:   # the per-column constants the kernel may keep there (ln_coef)
        coef = np.stack([g * mult, b * mult + (add << min(shift, 31))], axis=1)
        mem.write(scratch, (coef & 0xFFFFFFFF).astype(np.uint32), np.uint32, what)
    mem.write(out, value, np.int8, what)


def _col_sums(mem, a, what):
    x, rows, cols, pitch, out = a
    xs = _rows(mem, x, pitch, rows, cols, np.int8, what)
    mem.write(out, xs.sum(axis=0), np.int32, what)


#: The quantised BERT layer's kernels, with ``ita.quant.integer``.
_BERT_KERNELS = {"residual_add_rows": _residual_add_rows, "layer_norm_rows": _layer_norm_rows,
                 "col_sums": _col_sums}


def _run_phase(mem, phase, config):
    """The phase in every order the program allows; the memory after it, the same in all."""
    actors = {"dma": lambda m: _transfers(m, phase)}
    if phase.job:
        actors["job"] = lambda m: _job(m, phase.job, config)
    if phase.kernels:
        actors["kernels"] = lambda m: [_kernel(m, k) for k in phase.kernels]
    waits = phase.job is not None and phase.after_ita
    orders = [o for o in permutations(actors)
              if not (waits and "kernels" in o and o.index("kernels") < o.index("job"))
              and not (waits and phase.defer_dma and o.index("dma") < o.index("job"))]
    results = []
    for order in orders:
        m = mem.copy()
        for name in order:
            actors[name](m)
        results.append((order, m))
    first_order, first = results[0]
    for order, other in results[1:]:
        if not other.same(first):
            raise ExecutionError(f"phase {phase.index} ({phase.label}): the result depends on "
                                 f"the order of {' / '.join(first_order)} and "
                                 f"{' / '.join(order)} (a race)")
    return first


def execute(program, inputs: dict) -> dict:
    """Run ``program`` on ``inputs`` (name -> int8 array) in numpy; the outputs it stores
    (name -> int8 array of the manifest's rows x cols)."""
    config = program.schedule.spec.config
    mem = _Memory(program, inputs)
    for phase in program.schedule.phases:
        mem = _run_phase(mem, phase, config)
    outputs = {}
    for name, entry in program.manifest["outputs"].items():
        rows = [mem.read(entry["offset"] + r * entry["pitch"], entry["cols"], np.int8,
                         f"output {name}", memory=mem.l2) for r in range(entry["rows"])]
        outputs[name] = np.stack(rows).astype(np.int8)
    return outputs


def first_mismatch(got: dict, expected: dict) -> str | None:
    """None if every tensor of ``expected`` equals ``got``'s, else the first difference as
    ``tensor=<t> row=<r> col=<c> got=<g> expected=<e>``."""
    for name, want in expected.items():
        value = got[name]
        want = np.asarray(want)
        if value.shape != want.shape:
            return f"tensor={name} shape got={value.shape} expected={want.shape}"
        bad = np.argwhere(value != want)
        if bad.size:
            r, c = (int(v) for v in bad[0])
            return (f"tensor={name} row={r} col={c} got={int(value[r, c])} "
                    f"expected={int(want[r, c])}")
    return None


def check_plan(program, model, x) -> str | None:
    """Run the encoder-layer ``program`` of ``model`` on tokens ``x`` and compare every
    output with the integer model (:func:`ita.golden.encoder.encoder_layer`): None when all
    are equal, else the first mismatch."""
    names = list(program.manifest["outputs"])
    expected = expected_tensors(model, x, names, program.schedule.spec.config)
    return first_mismatch(execute(program, {"x": x}), expected)


def check_decoder_plan(program, model, x) -> str | None:
    """As :func:`check_plan` for a decoder-layer ``program`` on int32 rows ``x``, against the
    integer Llama (:func:`verif.deploy.decoder.expected_decoder_tensors`); int32 tensors are
    compared element by element."""
    names = list(program.manifest["outputs"])
    expected = expected_decoder_tensors(model, x, names)
    inputs = {name: np.ascontiguousarray(np.asarray(value, np.int32)).view(np.int8)
              if name == "x" else np.asarray(value, np.int8)
              for name, value in decoder_inputs(model, x).items()}
    got = execute(program, inputs)
    as_stored = {}
    for name, want in expected.items():
        want = np.asarray(want)
        value = got[name]
        if want.dtype == np.int32:
            value = np.ascontiguousarray(value).view(np.int32)
        as_stored[name] = value
    return first_mismatch(as_stored, expected)


def check_bert_plan(program, model, x) -> str | None:
    """As :func:`check_plan` for a quantised BERT layer's ``program`` on int8 rows ``x``,
    against :mod:`ita.quant.integer` (:func:`verif.deploy.bert.expected_bert_tensors`); int16
    and int32 tensors are compared element by element. ``x`` is int16 embedding rows for a
    model whose first block normalises them."""
    names = list(program.manifest["outputs"])
    expected = expected_bert_tensors(model, x, names, program.schedule.spec.config)
    x = np.asarray(x)
    got = execute(program, {"x": x.view(np.int8) if x.dtype == np.int16 else x.astype(np.int8)})
    as_stored = {}
    for name, want in expected.items():
        want = np.asarray(want)
        value = got[name]
        if want.dtype != np.int8:
            value = np.ascontiguousarray(value).view(want.dtype)
        as_stored[name] = value
    return first_mismatch(as_stored, expected)
