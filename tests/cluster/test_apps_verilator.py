"""Kernel programs on the whole cluster: ``barrier``, ``dma``, ``gemm`` (sw/apps/).

The same entry points as ``make sim TEST=barrier``, ``TEST=dma`` and ``TEST=gemm``
(registered in verif/cluster/sim.py; data, headers and parsing in verif/cluster/kernels.py).
Every case shares the cluster's Verilator model with the other cluster tests.
"""

import numpy as np
import pytest

from ita.cluster_config import DEFAULT
from verif.sim import REGISTRY, load_tests

pytestmark = pytest.mark.verilator


def run(test, **options):
    load_tests()
    entry = REGISTRY[test]
    values = {key.name: key.default for key in entry.keys}
    values.update(options)
    return entry.run(values)


# --- host-side pieces (no simulation) ----------------------------------------------------------


def test_program_fields_parses_the_last_summary_line():
    from verif.cluster.kernels import program_fields
    text = ("error: something\n"
            "gemm: M=1 kernel_cycles=10 macs_per_cycle=1.50 note=x\n"
            "gemm: M=2 kernel_cycles=20 macs_per_cycle=2.25\n")
    assert program_fields(text, "gemm") == {"M": 2, "kernel_cycles": 20, "macs_per_cycle": 2.25}
    assert program_fields(text, "dma") == {}


def test_gemm_golden_matches_numpy_and_ita_linear():
    from ita.golden.arith import requant
    from verif.cluster.kernels import draw_gemm
    case = draw_gemm(9, 13, 7, seed=4)
    acc = case.a.astype(np.int64) @ case.b.astype(np.int64) + case.bias
    assert np.array_equal(case.c, requant(acc, *case.rq))
    assert np.unique(case.c).size > 20  # the constants spread the outputs


def test_gemm_layout_in_l2(tmp_path):
    """B is stored transposed, rows padded to 4 bytes with junk the program must ignore."""
    from verif.cluster.kernels import prepare_gemm
    _, data, check, case = prepare_gemm(tmp_path, M=3, K=5, N=2, seed=7, rq=(100, 10, 0))
    with np.load(data) as d:
        blobs = [d[k] for k in sorted(d.files)]
    a, bt = blobs[0].reshape(3, 8), blobs[1].reshape(2, 8)
    assert np.array_equal(a[:, :5].view(np.int8), case.a)
    assert np.array_equal(bt[:, :5].view(np.int8), case.b.T)
    assert (a[:, 5:] != 0).all() and (bt[:, 5:] != 0).all()
    with np.load(check) as c:
        (expected,) = [c[k] for k in c.files]
    assert np.array_equal(expected[:6].view(np.int8), case.c.ravel())
    header = (tmp_path / "gemm_data.h").read_text()
    assert "#define GEMM_KP 8u" in header and "#define GEMM_RQ_32BIT 1u" in header


def test_gemm_refuses_shapes_that_do_not_fit_l1(tmp_path):
    from verif.cluster.kernels import prepare_gemm
    with pytest.raises(ValueError, match="L1"):
        prepare_gemm(tmp_path, M=512, K=256, N=256)


# --- barrier -----------------------------------------------------------------------------------


def test_barrier_rounds_checked_and_timed():
    status, fields = run("barrier")
    assert status == "PASS", fields
    assert fields["outcome"] == "exit:0"
    # the last core to arrive is let through within a few cycles; back to back ~1 cycle
    assert 0 < fields["barrier_cycles"] <= 20, fields
    assert 0 < fields["barrier_b2b"] <= 10, fields
    assert fields["barrier_wait"] > fields["barrier_cycles"]  # the work is unequal


def test_barrier_check_catches_an_early_release():
    """BARRIER_COUNT = 7 of 8 cores: the C check must see a core leave early and exit 1."""
    from verif.cluster.kernels import run_barrier
    status, fields, result = run_barrier(rounds=8, count_override=7, max_cycles=100_000)
    assert status == "PASS", fields  # i.e. the run ended with the expected exit code 1
    assert result.outcome["exit_code"] == 1
    assert "error: core" in result.outcome["output"]


# --- dma ---------------------------------------------------------------------------------------


def test_dma_copies_checked_and_timed():
    status, fields = run("dma")
    assert status == "PASS", fields
    assert fields["outcome"] == "exit:0"
    # one beat per cycle at best; the sustained copies come close (the memory system's
    # targets: >= 14 B/cycle on 64 KiB 1-D copies, >= 12 on 2-D copies of 64-byte rows)
    beat = DEFAULT.dma_width // 8
    for key in ("l2_l1_1d", "l1_l2_1d"):
        assert 0.6 * beat < fields[key] <= beat, fields
    for key in ("l2_l1_2d", "l1_l2_2d", "all_cores"):
        assert 0.4 * beat < fields[key] <= beat, fields
    assert 14 <= fields["l2_l1_64k"] <= beat and 12 <= fields["l2_l1_2d_64b"] <= beat, fields
    assert 0.8 * DEFAULT.l3_bytes_per_cycle < fields["l3_l1"] <= DEFAULT.l3_bytes_per_cycle


def test_dma_refused_descriptors_from_a_core():
    """Step 10 of sw/apps/dma alone (DMA_ERRORS_ONLY=1): core 0 queues descriptors the DMA
    cannot do through the HAL; each ends with its DMA event, writes nothing and reads back
    through dma_error() with its cause, then a legal copy lands (the C checks count)."""
    from hw import toolchain
    from sw.build import build_app
    from verif.cluster.kernels import prepare_dma, program_fields
    from verif.cluster.model import run_program
    work = toolchain.BUILD_ROOT / "sw" / "dma" / "errors_only"
    include, data, _ = prepare_dma(work)
    app = build_app("dma", {"DMA_ERRORS_ONLY": 1}, out_dir=work, include_dirs=(include,))
    run = run_program(app, test_name="dma-errors-only", data=data, max_cycles=200_000)
    output = run.outcome["output"] if run.outcome else ""
    assert run.status == "PASS", (run.fields, output)
    assert program_fields(output, "dma_errors") == {"refused": 7, "failures": 0}, output


# --- gemm --------------------------------------------------------------------------------------


def test_gemm_default_shape_bit_exact_and_fast():
    status, fields = run("gemm")
    assert status == "PASS", fields
    assert (fields["M"], fields["K"], fields["N"]) == (64, 64, 64)
    assert fields["ideal_cycles"] == 64 * 64 * 64 // 32
    assert float(fields["macs_per_cycle"]) > 12.0, fields  # measured 15.0


@pytest.mark.parametrize("options", [
    {"M": 50, "K": 37, "N": 30, "SEED": 3},   # K % 4 = 1, 2-3 tail rows per core, N % 4 = 2
    {"M": 63, "K": 20, "N": 9, "SEED": 4},    # 4 tail rows on most cores, N % 4 = 1
    {"M": 7, "K": 6, "N": 3, "SEED": 5},      # fewer rows than cores, no 4-column block
], ids=["50x37x30", "63x20x9", "7x6x3"])
def test_gemm_odd_shapes_bit_exact(options):
    status, fields = run("gemm", **options)
    assert status == "PASS", fields


@pytest.mark.parametrize("shape, amplitude, rq", [
    ((32, 5, 10), 4, (3, 2, -1)),      # many ties (x.5) on both signs, 32-bit path
    ((8, 8, 8), 4, (2, 0, 5)),         # shift 0: no rounding
    ((32, 700, 8), 128, (255, 20, 3)),  # |mult * acc| beyond 2^31: the 64-bit path; and
                                        # K > 680: C blocks instead of the assembly one
], ids=["ties", "shift0", "wide"])
def test_gemm_requantization_paths_bit_exact(shape, amplitude, rq):
    from verif.cluster.kernels import run_gemm
    M, K, N = shape
    status, fields, _ = run_gemm(M=M, K=K, N=N, seed=11, amplitude=amplitude, rq=rq)
    assert status == "PASS", fields
