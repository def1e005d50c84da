"""Reference lines of the benchmark plots: the ideal engine and the memory-port bound of the
public ITA design (pulp-platform/ITA, ``src/hwpe``).

The reference HWPE has one 1024-bit (128-byte) TCDM port shared by its input, weight, bias and
output streams, and runs one job per M x M output tile and inner tile. Per job the engine
computes M*M*M / (N*M) = M*M/N cycles (256 at N=16, M=64), while the port has to carry:

* input: the M x M int8 tile once per slab of N output columns, M/N times:
  (M*M / 128) * (M/N) accesses (128 at N=16, M=64);
* weight: the M x M tile once: M*M / 128 accesses (32);
* bias: M int24 values as two 96-byte accesses (2), unless the step has no bias (QK, AV);
* output, on the last inner tile of an output tile only: N lanes of two rows per strobed
  write, M*M / (2*N) accesses (128).

At most one access completes per cycle, so a job that emits output takes at least
max(M*M/N, input + weight + bias + output) cycles (290 > 256 at N=16, M=64: at most 88 % of
peak), and an inner job max(M*M/N, input + weight + bias) = 256 cycles. Summed over the tiles
of every step this is the bound drawn in the plots; bank conflicts and job programming, which
the reference also pays, are left out, so the real reference is at or below the line.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import ceil

from ita.config import DEFAULT_CONFIG, ITAConfig

__all__ = ["PORT_BYTES", "BIAS_ACCESSES", "StepTiles", "attention_macs", "ffn_macs", "steps",
           "tile_accesses", "port_bound_cycles", "port_bound_utilization", "encoder_ops"]

#: The reference design's TCDM port: 1024 bits.
PORT_BYTES = 128
#: Bias reads per job in the reference streamer (two 96-byte accesses for 64 int24 values).
BIAS_ACCESSES = 2


@dataclass(frozen=True)
class StepTiles:
    """One step of the reference schedule: output tiles rows x cols, inner tiles, bias use."""

    name: str
    rows: int
    cols: int
    inner: int
    bias: bool


def attention_macs(S: int, E: int, P: int) -> int:
    """Q, K, V, OW projections (4*S*E*P) plus QK and AV (2*S*S*P)."""
    return 4 * S * E * P + 2 * S * S * P


def ffn_macs(S: int, E: int, F: int) -> int:
    return 2 * S * E * F


def encoder_ops(S: int, E: int, P: int, H: int, F: int) -> int:
    """Operations (2 per MAC) of the matrix products of one encoder layer: H attention heads
    and the feed-forward block; the element-wise work on the cores is not counted."""
    return 2 * (H * attention_macs(S, E, P) + ffn_macs(S, E, F))


def steps(mode: str, *, S: int, E: int = 0, P: int = 0, F: int = 0,
          config: ITAConfig = DEFAULT_CONFIG) -> list[StepTiles]:
    """The steps of ``mode`` in M x M tiles (shapes padded up to whole tiles)."""
    def t(n):
        return ceil(n / config.M)
    if mode == "attention":
        return [StepTiles("Q", t(S), t(P), t(E), True), StepTiles("K", t(S), t(P), t(E), True),
                StepTiles("V", t(P), t(S), t(E), True), StepTiles("QK", t(S), t(S), t(P), False),
                StepTiles("AV", t(S), t(P), t(S), False), StepTiles("OW", t(S), t(E), t(P), True)]
    if mode == "ffn":
        return [StepTiles("F1", t(S), t(F), t(E), True), StepTiles("F2", t(S), t(E), t(F), True)]
    if mode == "linear":
        return [StepTiles("MATMUL", t(S), t(P), t(E), True)]
    raise ValueError(f"no reference schedule for mode {mode!r}")


def tile_accesses(config: ITAConfig = DEFAULT_CONFIG) -> dict[str, int]:
    """Port accesses per job of the reference streamers, by stream."""
    m, n = config.M, config.N
    return {"input": m * m // PORT_BYTES * (m // n), "weight": m * m // PORT_BYTES,
            "bias": BIAS_ACCESSES, "output": m * m // (2 * n)}


def port_bound_cycles(mode: str, *, S: int, E: int = 0, P: int = 0, F: int = 0,
                      config: ITAConfig = DEFAULT_CONFIG) -> int:
    """Fewest cycles the reference's single port allows for the job (see the module doc)."""
    acc = tile_accesses(config)
    compute = config.M * config.M // config.N
    total = 0
    for step in steps(mode, S=S, E=E, P=P, F=F, config=config):
        bias = acc["bias"] if step.bias else 0
        inner_job = max(compute, acc["input"] + acc["weight"] + bias)
        last_job = max(compute, acc["input"] + acc["weight"] + bias + acc["output"])
        outputs = step.rows * step.cols
        total += outputs * ((step.inner - 1) * inner_job + last_job)
    return total


def port_bound_utilization(mode: str, ideal_cycles: float, **dims) -> float:
    """Best utilisation (percent of N*M MACs per cycle) the reference port allows:
    ``ideal_cycles`` (natural MACs / (N*M), as the RESULT line has it) over the bound."""
    config = dims.pop("config", DEFAULT_CONFIG)
    return 100.0 * ideal_cycles / port_bound_cycles(mode, config=config, **dims)
