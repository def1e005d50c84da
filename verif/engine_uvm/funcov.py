"""Functional coverage of the engine (cocotb-coverage), sampled once per finished job.

The main cross is the one the verification plan asks for:

    mode x activation x shape class x stall profile x saturation seen x mask kind

Activation only exists for FFN and linear jobs and masks only for attention and single
attention, so the cross carries ``n/a`` for the other modes and ignores the impossible
combinations: 2 x 96 (attention, qkav: 3 shapes x 4 stalls x 2 saturation x 4 masks) +
2 x 72 (ffn, linear: 3 x 4 x 2 x 3 activations) = 336 bins.

Further points: the individual axes, requantization corners (shift 0, shifts >= 24, mult 0
and 255, add -128 / 127 / non-zero), data kinds, saturation side, dimension corners, bias, and
the reliability scenarios (back-to-back, clear mid-job and when idle, every illegal
configuration, a correct job after a clear and after an error) and every illegal
configuration kind in every mode (the engine checks them per mode).

Each simulation exports its database to YAML (:func:`export`); ``verif.coverage`` merges the
files of a regression and writes the report.
"""

from __future__ import annotations

from cocotb_coverage.coverage import CoverCross, CoverPoint, coverage_db

from .stimulus import (
    ACTIVATIONS,
    DATA_KINDS,
    ILLEGAL_KINDS,
    MASK_KINDS,
    MODES,
    NOT_APPLICABLE,
    SHAPE_CLASSES,
    STALL_PROFILES,
    activation_bin,
    mask_kind,
    shape_class,
)

__all__ = ["sample_job", "sample_scenario", "sample_illegal", "export", "SCENARIOS", "ROOT",
           "CROSS"]

ROOT = "engine"
CROSS = "engine.job.cross"
REQUANT_CORNERS = ("shift0", "shift_ge_24", "mult0", "mult255", "add_nonzero", "add_min",
                   "add_max")
DIM_CORNERS = ("dim_1", "dim_below_N", "dim_ragged_multi_tile", "dim_2M")
SCENARIOS = ("back_to_back", "idle_gap", "clear_mid_job", "clear_idle", "job_after_clear",
             "job_after_error", *(f"illegal_{kind}" for kind in ILLEGAL_KINDS))

_AXES = ("mode", "activation", "shape", "stall", "saturation", "mask")
_IGNORE = []
for _mode in ("attention", "qkav"):
    _IGNORE += [(_mode, a, None, None, None, None) for a in ACTIVATIONS]
    _IGNORE.append((_mode, None, None, None, None, NOT_APPLICABLE))
for _mode in ("ffn", "linear"):
    _IGNORE.append((_mode, NOT_APPLICABLE, None, None, None, None))
    _IGNORE += [(_mode, None, None, None, None, k) for k in MASK_KINDS]


def _member(got, bin_):
    return bin_ in got


@CoverPoint("engine.job.mode", xf=lambda s: s["mode"], bins=list(MODES))
@CoverPoint("engine.job.activation", xf=lambda s: s["activation"],
            bins=[*ACTIVATIONS, NOT_APPLICABLE])
@CoverPoint("engine.job.shape", xf=lambda s: s["shape"], bins=list(SHAPE_CLASSES))
@CoverPoint("engine.job.stall", xf=lambda s: s["stall"], bins=list(STALL_PROFILES))
@CoverPoint("engine.job.saturation", xf=lambda s: s["saturation"],
            bins=["saturated", "in_range"])
@CoverPoint("engine.job.mask", xf=lambda s: s["mask"], bins=[*MASK_KINDS, NOT_APPLICABLE])
@CoverCross(CROSS, items=[f"engine.job.{axis}" for axis in _AXES], ign_bins=_IGNORE)
@CoverPoint("engine.job.requant_corner", xf=lambda s: s["corners"], rel=_member,
            bins=list(REQUANT_CORNERS), inj=False)
@CoverPoint("engine.job.data", xf=lambda s: s["data"], bins=list(DATA_KINDS))
@CoverPoint("engine.job.saturation_side", xf=lambda s: s["sides"], rel=_member,
            bins=["low", "high"], inj=False)
@CoverPoint("engine.job.dim_corner", xf=lambda s: s["dim_corners"], rel=_member,
            bins=list(DIM_CORNERS), inj=False)
@CoverPoint("engine.job.bias", xf=lambda s: s["bias"], bins=["with_bias", "without_bias"])
def _sample(sample):
    pass


@CoverPoint("engine.scenario", xf=lambda name: name, bins=list(SCENARIOS))
def _sample_scenario(name):
    pass


@CoverPoint("engine.illegal", xf=lambda mode, kind: f"{mode}:{kind}",
            bins=[f"{mode}:{kind}" for mode in MODES for kind in ILLEGAL_KINDS])
def _sample_illegal(mode, kind):
    pass


def sample_illegal(mode: str, kind: str) -> None:
    """An illegal configuration of ``mode`` was refused with the right code."""
    _sample_illegal(mode, kind)


def _requant_corners(spec) -> set:
    from .stimulus import MODE_SETS

    corners = set()
    sets = [spec.requant[i] for i in MODE_SETS[spec.mode]]
    if spec.activation in ("gelu", "relu"):
        sets.append(spec.act_requant)
    for mult, shift, add in sets:
        if shift == 0:
            corners.add("shift0")
        if shift >= 24:
            corners.add("shift_ge_24")
        if mult == 0:
            corners.add("mult0")
        if mult == 255:
            corners.add("mult255")
        if add:
            corners.add("add_nonzero")
        if add == -128:
            corners.add("add_min")
        if add == 127:
            corners.add("add_max")
    return corners


def _dim_corners(spec, config) -> set:
    corners = set()
    for d in spec.dims.values():
        if d == 1:
            corners.add("dim_1")
        if 1 < d < config.N:
            corners.add("dim_below_N")
        if d > config.M and d % config.M:
            corners.add("dim_ragged_multi_tile")
        if d == 2 * config.M:
            corners.add("dim_2M")
    return corners


def sample_job(item, config) -> None:
    """Sample a job that ran to completion (legal configuration, not aborted)."""
    spec = item.spec
    sides = {side for side, seen in (("low", item.sat_low), ("high", item.sat_high)) if seen}
    _sample({
        "mode": spec.mode,
        "activation": activation_bin(spec),
        "shape": shape_class(spec, config),
        "stall": spec.stall,
        "saturation": "saturated" if sides else "in_range",
        "mask": mask_kind(spec),
        "corners": _requant_corners(spec),
        "data": spec.data,
        "sides": sides,
        "dim_corners": _dim_corners(spec, config),
        "bias": NOT_APPLICABLE if spec.mode == "qkav" else
                ("with_bias" if spec.bias else "without_bias"),
    })


def sample_scenario(name: str) -> None:
    if name not in SCENARIOS:
        raise ValueError(f"unknown coverage scenario {name!r}")
    _sample_scenario(name)


def export(path) -> None:
    """Write this simulation's coverage database as YAML."""
    coverage_db.export_to_yaml(str(path))


def summary() -> tuple[int, int]:
    """(bins hit, bins) of the whole engine model in this simulation."""
    root = coverage_db[ROOT]
    return root.coverage, root.size
