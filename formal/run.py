"""Run properties and summarise them: the verdicts ``make formal`` and the tests share."""

from __future__ import annotations

import time
from dataclasses import dataclass

from formal.properties import Property
from formal.solver import Mode, check

__all__ = ["Verdict", "run", "summary_table", "summary_line", "passed"]


@dataclass(frozen=True)
class Verdict:
    """One property's results: ``result`` is proved (k-induction closed at ``induction``),
    bounded (no counterexample within ``depth``) or failed (``counterexample`` is its
    step)."""

    name: str
    result: str
    depth: int
    induction: int | None
    counterexample: int | None
    cover_step: int | None
    broken_step: int | None
    seconds: float

    @property
    def cover_hit(self):
        return self.cover_step is not None

    @property
    def broken_rejected(self):
        return self.broken_step is not None


def run(prop: Property, depth: int | None = None) -> Verdict:
    """BMC, k-induction (where configured), cover on the block; BMC on its broken variant."""
    depth = depth or prop.depth
    start = time.monotonic()
    runs = [(Mode.BMC, depth), (Mode.COVER, depth)]
    if prop.induction:
        runs.append((Mode.INDUCTION, prop.induction))
    bmc, cover, *induction = check(prop.harness(None), runs)
    (broken,) = check(prop.harness(prop.broken), [(Mode.BMC, depth)])
    if not bmc.passed:
        result = "failed"
    elif induction and induction[0].passed:
        result = "proved"
    else:
        result = "bounded"
    k = prop.induction - induction[0].step if result == "proved" else None
    return Verdict(prop.name, result, depth, k,
                   None if bmc.passed else bmc.step,
                   cover.step if cover.passed else None,
                   None if broken.passed else broken.step,
                   time.monotonic() - start)


def summary_table(verdicts) -> str:
    """A Markdown table: property, result, depth, time, cover, broken variant."""
    rows = [("property", "result", "depth", "time", "cover", "broken variant")]
    for v in verdicts:
        result = v.result + (f" (k={v.induction})" if v.induction is not None else "")
        if v.counterexample is not None:
            result += f" at step {v.counterexample}"
        rows.append((v.name, result, str(v.depth), f"{v.seconds:.1f} s",
                     f"hit at step {v.cover_step}" if v.cover_hit else "NOT HIT",
                     f"rejected at step {v.broken_step}" if v.broken_rejected
                     else "NOT REJECTED"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"
             for row in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def summary_line(verdicts) -> str:
    """The line scripts parse (names are a contract)."""
    verdicts = list(verdicts)
    count = {r: sum(v.result == r for v in verdicts) for r in ("proved", "bounded", "failed")}
    n = len(verdicts)
    return (f"FORMAL properties={n} proved={count['proved']} bounded={count['bounded']} "
            f"failed={count['failed']} covers={sum(v.cover_hit for v in verdicts)}/{n} "
            f"broken_rejected={sum(v.broken_rejected for v in verdicts)}/{n}")


def passed(verdicts) -> bool:
    """No property failed, every cover was hit, every broken variant was rejected."""
    return all(v.result != "failed" and v.cover_hit and v.broken_rejected for v in verdicts)
