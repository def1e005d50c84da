"""Random Llama decoder shapes through the deploy compiler: a plan or a CompileError.

As ``test_compile_fuzz.py`` for the encoder: a decoder layer drawn and quantised at a random
shape (``ita.deploy.frontend.RandomLlama``) either compiles, and then its plan, run in numpy
(:func:`verif.deploy.execute.check_decoder_plan`), stores the integer Llama's bytes (the
residual ``out`` and the caches), or is refused with one line naming what does not fit.
"""

import re

from hypothesis import event, given, settings
from hypothesis import strategies as st

from ita.deploy import CompileError, compile_model
from ita.deploy.frontend import RandomLlama
from verif.cluster.encoder import cluster_spec
from verif.deploy.execute import check_decoder_plan

SPEC = cluster_spec()
NAMED = re.compile(r"\btensor\b|\d+ B\b|\b[SEPHF]=|multiple of|\bL[12]\b|head dimension|"
                   r"query heads|exceed")


@st.composite
def _llamas(draw):
    kv = draw(st.sampled_from([1, 2]))
    return RandomLlama(E=draw(st.sampled_from([32, 64, 96])),
                       heads=kv * draw(st.sampled_from([1, 2])), kv_heads=kv,
                       head_dim=draw(st.sampled_from([16, 32, 64, 96])),
                       F=draw(st.sampled_from([64, 128, 200])),
                       S=draw(st.sampled_from([8, 16, 48])), seed=draw(st.integers(1, 3)))


@settings(derandomize=True, max_examples=30, deadline=None)
@given(_llamas())
def test_decoder_compiles_to_a_golden_plan_or_a_one_line_compile_error(frontend):
    model, x = frontend.draw()
    try:
        program = compile_model(model, SPEC, probes=("out", "k_cache0", "v_cache0"))
    except CompileError as exc:
        message = str(exc)
        assert message and "\n" not in message, message
        assert NAMED.search(message), message
        event("CompileError")
        return
    event("plan")
    mismatch = check_decoder_plan(program, model, x)
    assert mismatch is None, f"{frontend}: {mismatch}"
