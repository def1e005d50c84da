"""Random encoder shapes and memory sizes through the deploy compiler: a plan or a CompileError.

A model that does not fit the cluster must be refused with one line saying what does not
fit, never an internal exception. A plan that is returned must keep its simultaneously live
buffers apart inside the L1 arena (checked from the plan's own buffer table) and must
compute the integer model's bytes: it is run in numpy (:mod:`verif.deploy.execute`: the
transfers, engine jobs and kernels on L1 and L2 images, each phase in every order the
program allows) and every output it stores is compared with ``ita.golden``. Two fuzzed shapes
also run on the simulated cluster (``test_fuzzed_shapes_pass_on_the_cluster``).
"""

import random
import re

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from ita.deploy import ClusterSpec, CompileError, IntegerModel, RandomEncoder, compile_model
from ita.deploy.allocate import TRANSIENT_ROLES
from ita.golden.encoder import EncoderShape
from verif.deploy.execute import check_plan

SPEC = ClusterSpec()
M = SPEC.config.M
#: What a refusal names: a tensor or buffer, a size, or a shape parameter.
NAMED = re.compile(r"\btensor\b|\d+ B\b|\b[SEPHF]=|multiple of|\bL[12]\b")
#: A refusal of a two-block model also says which block (when it is one block's fault).
BLOCK = re.compile(r"^block [01] \(encoder_layer\): ")


def _shape(s, e, p, h, f):
    shape = EncoderShape(S=M * s, E=M * e, P=p, H=h, F=M * f)
    try:
        shape.validate(SPEC.config)
    except ValueError:
        shape = EncoderShape(M, M, M, 1, M)
    return shape


_P = (M // 2, M, 2 * M)


@st.composite
def _shapes(draw):
    return _shape(draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.sampled_from(_P)),
                  draw(st.integers(1, 4)), draw(st.integers(1, 4)))


_specs = st.builds(
    lambda l1, l2: ClusterSpec(l1_size=SPEC.l1_reserved + l1 * 1024,
                               l2_size=SPEC.l2_data_offset + l2 * 1024),
    # mostly room for a plan, sometimes too little of one memory or the other
    st.sampled_from([16, 48, 96, 160, 250, 250, 250]),
    st.sampled_from([64, 512, 3840, 3840, 3840]))


def _live_together(a, b):
    return a.first <= b.last and b.first <= a.last


def _check_plan(schedule):
    spec = schedule.spec
    roots = [b for b in schedule.buffers.values() if not b.parent]
    for b in roots:
        assert b.offset >= 0 and b.offset % spec.align == 0, b.name
        assert b.offset + max(b.size, b.reach) <= spec.arena_bytes, b.name
    for lane in (b for b in schedule.buffers.values() if b.parent):
        parent = schedule.buffers[lane.parent]
        assert parent.offset <= lane.offset
        assert lane.offset + lane.reach <= parent.offset + parent.reach, lane.name
    for i, a in enumerate(roots):
        for b in roots[i + 1:]:
            if _live_together(a, b):
                assert a.offset + a.size <= b.offset or b.offset + b.size <= a.offset, \
                    f"{a.name} and {b.name} overlap while both are live"
    # L2 (and L3) tensors apart, except spill areas and activations whose transfers never
    # overlap in time: those share L2 (allocate.layout_l2)
    spans = {}
    for ph in schedule.phases:
        for d in ph.loads + ph.stores:
            spans.setdefault(d.l2, set()).add(ph.index)
    tensors = list(schedule.l2.values())
    for i, a in enumerate(tensors):
        for b in tensors[i + 1:]:
            if a.memory != b.memory:
                continue
            transient = {a.role, b.role} <= set(TRANSIENT_ROLES)
            if transient and max(spans[a.name]) < min(spans[b.name]) or \
                    transient and max(spans[b.name]) < min(spans[a.name]):
                continue
            assert a.offset + a.size <= b.offset or b.offset + b.size <= a.offset, \
                f"{a.memory} tensors {a.name} and {b.name} overlap"
    assert spec.l2_data_base + schedule.l2_bytes <= spec.l2_base + spec.l2_size


@settings(derandomize=True, max_examples=25, deadline=None)
@given(_shapes(), _specs, st.integers(0, 3))
def test_compiler_gives_a_golden_plan_or_a_one_line_compile_error(shape, spec, seed):
    """Whatever the shape and memory sizes, compile_model either returns a program whose
    buffers fit and whose outputs equal the integer model's, or raises a CompileError that
    says, on one line, what does not fit."""
    model, x = RandomEncoder(shape, seed).draw()
    try:
        program = compile_model(model, spec, probes=("attn", "out"))
    except CompileError as exc:
        message = str(exc)
        assert message and "\n" not in message, message
        assert NAMED.search(message), message
        event("CompileError")
        return
    event("plan")
    _check_plan(program.schedule)
    assert len(program.image) <= spec.l2_size - spec.l2_data_offset
    mismatch = check_plan(program, model, x)
    assert mismatch is None, f"{shape} on {spec}: {mismatch}"


@st.composite
def _two_blocks(draw):
    """Two chainable shapes: the same S and E, P, H and F drawn for each block."""
    s, e = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    return [_shape(s, e, draw(st.sampled_from(_P)), draw(st.integers(1, 3)),
                   draw(st.integers(1, 3))) for _ in range(2)]


@settings(derandomize=True, max_examples=15, deadline=None)
@given(_two_blocks(), _specs, st.integers(0, 3), st.sampled_from(["auto", "l2"]),
       st.sampled_from(["l2", "l3"]))
def test_two_block_models_give_a_golden_plan_or_a_one_line_compile_error(
        shapes, spec, seed, chain, weights):
    """Two encoder blocks chained in one program: a plan whose buffers fit and whose final
    and intermediate outputs equal the chained integer model's, or one line naming what
    does not fit (and, for L1, which block)."""
    if shapes[0].S != shapes[1].S or shapes[0].E != shapes[1].E:
        shapes[1] = shapes[0]  # a shape that did not validate fell back to the smallest
    spec = type(spec)(**{**spec.__dict__, "weights": weights})
    first, x = RandomEncoder(shapes[0], seed).draw()
    second = RandomEncoder(shapes[1], seed + 1).integer_model()
    model = IntegerModel(first.blocks + second.blocks)
    try:
        program = compile_model(model, spec, probes=("b0_out", "out"), chain=chain)
    except CompileError as exc:
        message = str(exc)
        assert message and "\n" not in message, message
        assert NAMED.search(message), message
        if "L1 arena" in message or "cannot place" in message:
            assert BLOCK.search(message), message
        event("CompileError")
        return
    event(f"plan, chain {program.schedule.choices['chain'][0]}")
    _check_plan(program.schedule)
    mismatch = check_plan(program, model, x)
    assert mismatch is None, f"{shapes} on {spec}: {mismatch}"


def fuzzed_cluster_shapes(count=2, seed=19):
    """``count`` shapes drawn (with ``seed``) from the fuzz test's space, each small enough
    for a cluster run of well under a minute (at most 2 M tokens and 2 heads)."""
    rng = random.Random(seed)
    return [_shape(rng.randint(1, 2), rng.randint(1, 2), rng.choice(_P), rng.randint(1, 2),
                   rng.randint(1, 3)) for _ in range(count)]


@pytest.mark.verilator
@pytest.mark.parametrize("shape", fuzzed_cluster_shapes(), ids=str)
def test_fuzzed_shapes_pass_on_the_cluster(shape, tmp_path):
    """A fuzzed shape compiled for the simulated cluster, run self-checking there."""
    from verif.cluster.encoder import run_layer

    sizes = {k: getattr(shape, k) for k in ("S", "E", "P", "H", "F")}
    status, result, output, _, _ = run_layer(tmp_path, model="tiny", seed=3, sizes=sizes)
    assert status == "PASS", output[-2000:]
    assert "mismatch:" not in output and "check: tensor=out elements=" in output
    assert re.search(r"check: tensor=out elements=\d+ mismatches=0\b", output), output[-2000:]
