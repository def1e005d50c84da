"""Chips on a ring in the multi-chip harness (one Verilator build shared with ``make run``):
the ring step and the all-reduce bit-exact against numpy with and without random link stalls
(the stalls change the timing only), the refused link descriptors (checked by the program on
every chip), and the watchdog naming a chip that never answers."""

import numpy as np
import pytest

from sw.build import build_app
from verif.cluster.multichip import prepare, run_multichip
from verif.console import SUMMARY_FIELD
from verif.harness.multichip import link_config_header, parse_report, run_chips
from verif.harness.run import merged_l2_image
from verif.sim import main as sim_main

pytestmark = pytest.mark.verilator

N = 512


@pytest.fixture(scope="module")
def runs():
    return {}


def _run(runs, stall, **kwargs):
    key = (stall, tuple(sorted(kwargs.items())))
    if key not in runs:
        runs[key] = run_multichip(model="allreduce", chips=2, n=N, seed=3, link_stall=stall,
                                  max_cycles=2_000_000, watchdog=50_000, stream=False, **kwargs)
    return runs[key]


@pytest.mark.parametrize("stall", [0, 30])
def test_two_chip_allreduce_is_bit_exact(runs, stall):
    status, fields, run = _run(runs, stall)
    assert status == "PASS", (fields, run.report, run.outputs)
    assert fields["mismatches"] == 0 and fields["chips"] == 2
    # Ring block, then one reduce-scatter and one all-gather chunk per chip, both directions
    # of the ring used by nobody else: every byte is counted once.
    assert fields["link_bytes"] == 2 * (4 * 256 + 2 * 4 * N // 2)
    assert fields["allreduce_cycles"] > 0


def test_stalls_change_timing_only(runs):
    _, calm, _ = _run(runs, 0)
    _, stalled, _ = _run(runs, 30)
    assert stalled["link_bytes"] == calm["link_bytes"]
    assert stalled["ring_cycles"] > calm["ring_cycles"]
    assert stalled["allreduce_cycles"] > calm["allreduce_cycles"]


@pytest.mark.parametrize("chips", [1, 4])
def test_one_and_four_chips_with_stalls(chips):
    """One chip talks to itself over its looped-back links; four chips run three steps of
    each phase. Every byte a chip sends is counted once by the harness."""
    status, fields, run = run_multichip(model="allreduce", chips=chips, n=N, seed=5,
                                        link_stall=30, max_cycles=2_000_000, watchdog=50_000,
                                        stream=False)
    assert status == "PASS", (fields, run.report, run.outputs)
    per_chip = 4 * 256 + 2 * (chips - 1) * 4 * N // chips
    assert fields["link_bytes"] == chips * per_chip and fields["mismatches"] == 0


def test_a_chip_that_never_answers_is_named(runs):
    status, fields, run = _run(runs, 0, halt_chip=1)
    assert status == "FAIL"
    assert fields["end"] == "watchdog" and fields["silent_chip"] == 1
    assert any("chip 1 never answered" in line for line in run.report)
    assert any(line.startswith("multichip: chip 0 core 0 at pc 0x") for line in run.report)
    # Chip 0 waits for chip 1's ring block: its core 0's PC is named by the phase's function.
    assert any("chip 0 core 0 at pc" in line and line.endswith("(wait_ring)")
               for line in fields[SUMMARY_FIELD]), fields[SUMMARY_FIELD]


def test_the_program_checks_what_it_received(tmp_path):
    """One element of chip 1's expected sum changed: the run fails with a mismatch line
    naming the tensor, the chip and the element (the check can fail)."""
    include, data, xs, total = prepare(tmp_path, model="allreduce", chips=2, n=N, seed=3)
    assert (xs.astype("uint32").sum(axis=0, dtype="uint32") == total).all()
    with np.load(data[1]) as blocks:
        changed = {k: blocks[k].copy() for k in blocks.files}
    expect = sorted(changed)[1]   # addresses: X, then the expected sum, then the ring block
    changed[expect][4 * 7] ^= 1
    np.savez(data[1], **changed)
    app = build_app("multichip", out_dir=tmp_path, include_dirs=(include,))
    images = [merged_l2_image(app.hex, npz, tmp_path / f"chip{i}.l2.hex")
              for i, npz in enumerate(data)]
    run = run_chips(images, max_cycles=2_000_000, watchdog=50_000, stream=False)
    assert run.returncode == 1 and run.summary["end"] == "fail"
    assert run.summary["failed_chip"] == 1
    assert "mismatch: allreduce chip 1 element 7:" in run.outputs[1], run.outputs[1]
    assert "mismatch:" not in run.outputs[0]


def test_report_parser():
    lines = ["[chip 1] stats: allreduce_cycles=5\n", "multichip: chip=1 end=exit cycles=9 "
             "exit_code=0\n", "multichip: link=1.0 to=0 beats=2 bytes=32\n",
             "multichip: summary end=exit chips=2 cycles=9 link_bytes=32\n"]
    summary, chips, links, outputs, _ = parse_report(lines, 2)
    assert summary["link_bytes"] == 32 and chips[0]["exit_code"] == 0
    assert links[0]["bytes"] == 32 and outputs[1] == "stats: allreduce_cycles=5\n"
    assert "#define LINK_LATENCY" in link_config_header()


@pytest.mark.parametrize("words, message", [
    (["TEST=multichip", "CHIPS=0"], "CHIPS"),
    (["TEST=multichip", "CHIPS=3", "N=1000"], "multiple of CHIPS"),
    (["TEST=multichip", "CHIPS=2", "HALT_CHIP=2"], "HALT_CHIP"),
    (["TEST=multichip", "MODEL=tree"], "MODEL"),
])
def test_usage_errors(capsys, words, message):
    assert sim_main(words) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
