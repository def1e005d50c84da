"""The reusable pyuvm agents: stall profiles (pure Python) and their self-tests on Verilator."""

import random

import pytest

from verif.uvm import SELFTESTS, run_selftest
from verif.uvm.stall import PROFILES, make_profile
from verif.uvm.tcdm_agent import SparseMemory


@pytest.mark.parametrize("name, low, high", [("none", 0.0, 0.0), ("random", 0.2, 0.3),
                                             ("bursty", 0.3, 0.5), ("long", 0.05, 0.6)])
def test_stall_profile_duty(name, low, high):
    profile = make_profile(name, random.Random(3))
    stalls = [profile.stall() for _ in range(50_000)]
    duty = sum(stalls) / len(stalls)
    assert low <= duty <= high, f"{name}: stalled {duty:.3f} of the cycles"
    if name in ("bursty", "long"):  # runs, not isolated cycles
        runs = sum(1 for a, b in zip(stalls, stalls[1:], strict=False) if b and not a)
        assert sum(stalls) / max(runs, 1) > 5


def test_stall_profiles_are_reproducible_and_named():
    for name in PROFILES:
        a = make_profile(name, random.Random(9))
        b = make_profile(name, random.Random(9))
        assert [a.stall() for _ in range(500)] == [b.stall() for _ in range(500)]
    with pytest.raises(ValueError, match="unknown stall profile"):
        make_profile("sometimes")


def test_sparse_memory_byte_enables():
    mem = SparseMemory()
    mem.write(8, 0x11223344, 0xF)
    mem.write(8, 0xAABBCCDD, 0b0101)
    assert mem.read(8) == 0x11BB33DD
    assert mem.read(12) == 0


@pytest.mark.verilator
@pytest.mark.parametrize("case", sorted(SELFTESTS))
def test_agent_selftest(case):
    """Stream, TCDM and register agents against the loopback design; the *_bites cases pass
    only if the protocol checkers caught the design's deliberate violations."""
    outcome = run_selftest(case, seed=1)
    assert outcome.status == "PASS", outcome.message
