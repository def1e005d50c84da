"""An encoder layer split over two chips (make sim TEST=multichip MODEL=encoder), small shape:
every chip's output bit-exact with the one-chip golden model while the links stall at random,
the figures of the RESULT line, and a corrupted expected byte reported with its chip, tensor,
row and column."""

import pytest

from ita.deploy import RandomEncoder
from ita.deploy.partition import partition
from verif.cluster.encoder import cluster_spec
from verif.cluster.multichip_encoder import encoder_shape, run_encoder
from verif.console import SUMMARY_FIELD
from verif.sim import main as sim_main

pytestmark = pytest.mark.verilator

#: Four heads, two per chip; S=16 keeps the run short (the engine pads rows to 64 anyway).
SIZES = dict(S=16, E=128, H=4, F=256)


def _run(**kwargs):
    return run_encoder(chips=2, seed=2, max_cycles=3_000_000, watchdog=500_000, stream=False,
                       **SIZES, **kwargs)


def test_two_chips_bit_exact_with_stalls():
    status, fields, run = _run(link_stall=30)
    assert status == "PASS", (fields, run.report, run.outputs)
    assert fields["mismatches"] == 0 and fields["chips"] == 2
    for out in run.outputs:   # every chip checked the whole output
        assert "check: tensor=out elements=2048 mismatches=0" in out
    layer = RandomEncoder(encoder_shape(**SIZES), 2).draw()[0]
    sent = partition(layer, 2, cluster_spec()).link_bytes()
    # Both chips send the collectives' bytes, plus 16 B of handshake for each of the five.
    assert fields["link_bytes"] == 2 * (sent + 5 * 16)
    assert 0 < fields["allreduce_cycles"] < fields["cycles"]
    assert fields["baseline_cycles"] > fields["cycles"]
    assert float(fields["speedup"]) > 1 and 0 < float(fields["efficiency"]) <= 1


def test_a_wrong_byte_is_named():
    status, fields, run = _run(corrupt=(1, 3, 5), references=False)
    assert status == "FAIL" and fields["mismatches"] == 1 and fields["error"] == "mismatch"
    assert any(line.startswith("check          chip 1: mismatch: tensor=out row=3 col=5 ")
               for line in fields[SUMMARY_FIELD]), fields[SUMMARY_FIELD]


@pytest.mark.parametrize("words, message", [
    (["MODEL=encoder", "CHIPS=5"], "sim: error: H=12 cannot be split evenly over 5 chips"),
    (["MODEL=encoder", "CHIPS=2", "S=9"], "sim: error: S=9 cannot be split evenly over 2"),
])
def test_usage_errors(capsys, words, message):
    assert sim_main(["TEST=multichip", *words]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1


def test_a_silent_chip_is_named_with_what_the_others_wait_for():
    status, fields, run = run_encoder(chips=2, seed=2, max_cycles=3_000_000, watchdog=30_000,
                                      stream=False, halt_chip=1, references=False, **SIZES)
    assert status == "FAIL" and fields["error"] == "watchdog_chip_1_never_answered"
    report = fields[SUMMARY_FIELD]
    assert any("chip 1 never answered" in line for line in report), report
    # Chip 0 reached the first exchange and waits for chip 1's handshake.
    assert any("chip 0 core 0 at pc" in line and line.endswith("(wait_handshake)")
               for line in report), report
