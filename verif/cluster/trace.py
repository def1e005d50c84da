"""Timelines of cluster runs (``TRACE=1``): spans on tracks, in cycles, as Chrome trace events.

The cocotb cluster testbench (``verif/cluster/tb_cluster.py``) samples the cluster's own
signals once per clock cycle while a program runs and feeds what it sees to a
:class:`Recorder`; at the end the recorder writes ``trace.json`` in the Chrome trace-event
format, which Perfetto (ui.perfetto.dev) and chrome://tracing open. Nothing here comes from
the compiler's estimates: every span begins and ends on a sampled signal edge.

Tracks (one thread each, grouped in processes; ``docs/trace.md`` explains them):

* ``cluster / run``: one span from the first cycle out of reset to the end of the run (the
  RESULT line's ``cycles``).
* ``ITA / engine``: a span per HWPE job (its control's ``busy``, trigger to finish) with the
  engine's steps nested inside (the controller's ``step`` while it is ``running``).
* ``DMA / slot <n>``: a span per transfer from the START write the DMA accepted to its
  completion event (bytes, source, destination and core in its arguments), with a nested
  ``copy`` span from the cycle the DMA took it off its queue. A transfer takes the lowest
  free slot, so overlapping transfers never share a track.
* ``core <n> / code``: the function of the ELF that holds the core's PC (``pc_id``), one span
  per run of cycles in the same function.
* ``core <n> / event unit``: the cycles the core sleeps in the event unit, a load from
  BARRIER or EVT_WAIT held and not granted (``barrier``, or ``wait`` and the awaited lines).

``ts`` and ``dur`` are clock cycles, not microseconds (``otherData`` says so): a viewer's
"1 us" reads as one cycle. :func:`check` validates a file and sums the busy cycles per
track; the tests and ``bench`` use it.
"""

from __future__ import annotations

import bisect
import json
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cluster_integration import memory_map
from cluster_integration.registers import region_window_bits
from ita.cluster_config import DEFAULT, ClusterConfig
from ita.rtl.layouts import Step

__all__ = ["FILE_NAME", "TIME_UNIT", "TraceError", "Symbols", "Timeline", "Recorder",
           "Track", "check", "summary", "wait_name", "memory_of"]

#: The timeline's name in the run directory, next to ``sim.log`` and ``outcome.json``.
FILE_NAME = "trace.json"
#: What ``ts`` and ``dur`` count.
TIME_UNIT = "cycle"

_CLUSTER, _ITA, _DMA = "cluster", "ITA", "DMA"
_REGISTERS = {r.name: r for r in memory_map.EVENT_UNIT}
_EU_WORD_MASK = (1 << region_window_bits(memory_map.region("EVENT_UNIT").size)) - 1
_LINE_NAMES = {bit: name for name, bit in memory_map.EVENT_LINES.items()}


class TraceError(ValueError):
    """A trace file that is not a well-formed timeline (the message says where)."""


@dataclass(frozen=True)
class Track:
    """One row of the viewer: ``thread`` inside ``process``."""

    process: str
    thread: str

    def __str__(self):
        return f"{self.process} / {self.thread}"


@dataclass
class _Span:
    track: Track
    name: str
    start: int
    end: int
    args: dict = field(default_factory=dict)


class Timeline:
    """Spans on tracks; tracks keep the order in which they were declared."""

    def __init__(self):
        self.tracks: list[Track] = []
        self.spans: list[_Span] = []

    def track(self, process: str, thread: str) -> Track:
        track = Track(process, thread)
        if track not in self.tracks:
            self.tracks.append(track)
        return track

    def add(self, track: Track, name: str, start: int, end: int, **args) -> None:
        if end < start:
            raise ValueError(f"span {name!r} on {track} ends ({end}) before it starts ({start})")
        self.spans.append(_Span(track, name, start, end, args))

    def events(self) -> list[dict]:
        """Chrome trace events: names of processes and threads, then complete ("X") events,
        per track by start (the enclosing span first)."""
        pids = {p: i + 1 for i, p in enumerate(dict.fromkeys(t.process for t in self.tracks))}
        tids = {t: i + 1 for i, t in enumerate(self.tracks)}
        events = []
        for process, pid in pids.items():
            events.append({"ph": "M", "name": "process_name", "pid": pid, "tid": 0,
                           "args": {"name": process}})
            events.append({"ph": "M", "name": "process_sort_index", "pid": pid, "tid": 0,
                           "args": {"sort_index": pid}})
        for track, tid in tids.items():
            pid = pids[track.process]
            events.append({"ph": "M", "name": "thread_name", "pid": pid, "tid": tid,
                           "args": {"name": track.thread}})
            events.append({"ph": "M", "name": "thread_sort_index", "pid": pid, "tid": tid,
                           "args": {"sort_index": tid}})
        order = sorted(self.spans, key=lambda s: (tids[s.track], s.start, -(s.end - s.start)))
        for span in order:
            events.append({"ph": "X", "name": span.name, "cat": span.track.process,
                           "ts": span.start, "dur": span.end - span.start,
                           "pid": pids[span.track.process], "tid": tids[span.track],
                           "args": span.args})
        return events

    def write(self, path: str | Path, other: Mapping[str, object]) -> Path:
        path = Path(path)
        data = {"traceEvents": self.events(),
                "otherData": {"time_unit": TIME_UNIT,
                              "note": "ts and dur count clock cycles: a viewer's 1 us is 1 cycle",
                              **other}}
        path.write_text(json.dumps(data, separators=(",", ":")) + "\n")
        return path


class _State:
    """A track whose value is sampled: one span per run of equal values (None: no span)."""

    def __init__(self, timeline: Timeline, track: Track):
        self._timeline, self._track = timeline, track
        self.value, self._since, self._args = None, 0, {}

    def update(self, cycle: int, value, **args) -> None:
        if value == self.value:
            return
        self.close(cycle)
        self.value, self._since, self._args = value, cycle, args

    def close(self, cycle: int) -> None:
        if self.value is not None and cycle > self._since:
            self._timeline.add(self._track, str(self.value), self._since, cycle, **self._args)
        self.value = None


class Symbols:
    """The functions of a program: their start addresses and sizes, from ``nm`` (binutils,
    which the Verilator build needs anyway; it reads a RISC-V ELF's symbol table too)."""

    def __init__(self, functions: Iterable[tuple[int, int, str]]):
        self._functions = sorted(functions)
        self._starts = [start for start, _, _ in self._functions]
        self._cache: dict[int, str] = {}

    @classmethod
    def from_elf(cls, elf: str | Path) -> Symbols:
        nm = shutil.which("nm")
        if nm is None:
            raise TraceError("TRACE=1 needs nm (binutils) to name the cores' functions")
        text = subprocess.run([nm, "-S", "-P", "--defined-only", str(elf)], check=True,
                              capture_output=True, text=True).stdout
        functions = []
        for line in text.splitlines():
            parts = line.split()
            if len(parts) == 4 and parts[1] in "TtWw" and not parts[0].startswith((".", "$")):
                size = int(parts[3], 16)
                if size:
                    functions.append((int(parts[2], 16), size, parts[0]))
        return cls(functions)

    def name(self, pc: int) -> str:
        """The function holding ``pc``, or the address when no function does."""
        name = self._cache.get(pc)
        if name is None:
            index = bisect.bisect_right(self._starts, pc) - 1
            name = f"{pc:#010x}"
            if index >= 0:
                start, size, function = self._functions[index]
                if pc < start + size:
                    name = function
            self._cache[pc] = name
        return name


def wait_name(address: int, mask: int) -> str | None:
    """What a core held at the event unit's ``address`` waits for (None: not a waiting
    load); ``mask`` is its EVT_MASK."""
    word = (address >> 2) & _EU_WORD_MASK
    if word == _REGISTERS["BARRIER"].word:
        return "barrier"
    if word == _REGISTERS["EVT_WAIT"].word:
        lines = [_LINE_NAMES.get(bit, f"line {bit}") for bit in range(16) if mask >> bit & 1]
        return "wait " + (" ".join(lines) or "nothing")
    return None


def memory_of(address: int, cluster: ClusterConfig = DEFAULT) -> str:
    """The name of the region holding ``address`` (the DMA's ends are in L1, L2 or L3)."""
    for region in cluster.regions:
        if region.base <= address < region.end:
            return region.name
    return f"{address:#010x}"


@dataclass
class _Transfer:
    slot: int
    accepted: int
    args: dict
    loaded: int | None = None


class Recorder:
    """What the testbench saw, cycle by cycle, turned into a :class:`Timeline`.

    The testbench calls the ``*_at`` methods with the current cycle whenever a sampled value
    may have changed, and :meth:`finish` with the cycle the run ended in.
    """

    def __init__(self, symbols: Symbols, cluster: ClusterConfig = DEFAULT):
        self.timeline = timeline = Timeline()
        self._cluster = cluster
        self._symbols = symbols
        self._run = timeline.track(_CLUSTER, "run")
        engine = timeline.track(_ITA, "engine")
        self._job = _State(timeline, engine)
        self._step = _State(timeline, engine)
        self._jobs = 0
        self._slots = [timeline.track(_DMA, f"slot {n}")
                       for n in range(cluster.dma_queue_depth + 1)]
        self._free = list(range(len(self._slots)))
        self._queued: list[_Transfer] = []   # accepted, in queue order (the DMA is FIFO)
        self._code = [_State(timeline, timeline.track(f"core {c}", "code"))
                      for c in range(cluster.cores)]
        self._waits = [_State(timeline, timeline.track(f"core {c}", "event unit"))
                       for c in range(cluster.cores)]

    # --- engine ---------------------------------------------------------------------------

    def job_at(self, cycle: int, busy: bool) -> None:
        """The HWPE's ``busy``: a job runs from trigger to finish."""
        if busy and self._job.value is None:
            self._job.update(cycle, f"job {self._jobs}", job=self._jobs)
            self._jobs += 1
        elif not busy and self._job.value is not None:
            self._step.close(cycle)
            self._job.close(cycle)

    def step_at(self, cycle: int, step: int | None) -> None:
        """The engine's step (None: not running)."""
        self._step.update(cycle, None if step is None else Step(step).name)

    # --- DMA ------------------------------------------------------------------------------

    def dma_accept_at(self, cycle: int, *, src: int, dst: int, length: int, rows: int,
                      core: int) -> None:
        """A START write the DMA took: the programmed transfer enters its queue."""
        if not self._free:
            raise TraceError(f"cycle {cycle}: more DMA transfers in flight than slots")
        row_bytes = length & ~3  # the DMA ignores the low bits of LENGTH
        args = {"bytes": row_bytes * rows, "src": f"{src:#010x}", "dst": f"{dst:#010x}",
                "rows": rows, "core": core}
        name = f"{memory_of(src, self._cluster)}->{memory_of(dst, self._cluster)} " \
               f"{row_bytes * rows} B"
        args["name"] = name
        self._queued.append(_Transfer(self._free.pop(0), cycle, args))

    def dma_load_at(self, cycle: int) -> None:
        """The DMA took the oldest queued transfer and starts copying it."""
        pending = [t for t in self._queued if t.loaded is None]
        if pending:
            pending[0].loaded = cycle

    def dma_complete_at(self, cycle: int) -> None:
        """The completion event of the oldest transfer (the DMA runs them in order)."""
        if not self._queued:
            raise TraceError(f"cycle {cycle}: a DMA completion without a transfer")
        self._end_transfer(self._queued.pop(0), cycle)

    def _end_transfer(self, transfer: _Transfer, cycle: int, **extra) -> None:
        track = self._slots[transfer.slot]
        args = {k: v for k, v in transfer.args.items() if k != "name"}
        self.timeline.add(track, transfer.args["name"], transfer.accepted, cycle, **args,
                          **extra)
        if transfer.loaded is not None:
            self.timeline.add(track, "copy", transfer.loaded, cycle)
        bisect.insort(self._free, transfer.slot)

    # --- cores ----------------------------------------------------------------------------

    def pc_at(self, cycle: int, core: int, pc: int) -> None:
        self._code[core].update(cycle, self._symbols.name(pc))

    def wait_at(self, cycle: int, core: int, what: str | None) -> None:
        """What the core sleeps on in the event unit (None: awake)."""
        self._waits[core].update(cycle, what)

    # --- end ------------------------------------------------------------------------------

    def finish(self, cycle: int, path: str | Path, other: Mapping[str, object]) -> Path:
        """Close every open span at ``cycle`` (the run's end) and write the file."""
        self.timeline.add(self._run, "program", 0, cycle)
        self._step.close(cycle)
        self._job.close(cycle)
        for transfer in self._queued:
            self._end_transfer(transfer, cycle, unfinished=True)
        self._queued = []
        for state in (*self._code, *self._waits):
            state.close(cycle)
        return self.timeline.write(path, {"cycles": cycle, "cores": self._cluster.cores,
                                          **other})


# --- reading a trace back ---------------------------------------------------------------------

_REQUIRED = {"X": ("name", "ph", "ts", "dur", "pid", "tid"), "M": ("name", "ph", "pid", "args")}


def check(path: str | Path) -> dict[str, dict]:
    """Validate a trace file; return {"process / thread": {"spans", "busy", "names"}} where
    ``busy`` sums the durations of the outermost spans and ``names`` counts spans by name.

    Checks: JSON with a ``traceEvents`` list; every event has its phase's required fields,
    integer cycles ``ts``, ``dur`` >= 0; per track, start times never decrease and every
    span ends inside the span that encloses it. Raises :class:`TraceError` naming the first
    offending event.
    """
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise TraceError(f"{path}: not a readable JSON file ({exc})") from None
    events = data.get("traceEvents") if isinstance(data, dict) else None
    if not isinstance(events, list):
        raise TraceError(f"{path}: no traceEvents list")
    if (data.get("otherData") or {}).get("time_unit") != TIME_UNIT:
        raise TraceError(f"{path}: otherData.time_unit is not {TIME_UNIT!r}")
    names: dict[tuple[int, int], str] = {}
    processes: dict[int, str] = {}
    spans: dict[tuple[int, int], list[dict]] = {}
    for index, event in enumerate(events):
        where = f"{path}: event {index}"
        if not isinstance(event, dict) or event.get("ph") not in _REQUIRED:
            raise TraceError(f"{where}: not an X or M event: {event!r:.80}")
        missing = [k for k in _REQUIRED[event["ph"]] if k not in event]
        if missing:
            raise TraceError(f"{where}: lacks {', '.join(missing)}")
        if event["ph"] == "M":
            if event["name"] == "process_name":
                processes[event["pid"]] = event["args"]["name"]
            elif event["name"] == "thread_name":
                names[(event["pid"], event["tid"])] = event["args"]["name"]
            continue
        if not all(isinstance(event[k], int) and event[k] >= 0 for k in ("ts", "dur")):
            raise TraceError(f"{where}: ts and dur must be cycles (integers >= 0)")
        spans.setdefault((event["pid"], event["tid"]), []).append(event)
    out = {}
    for key, track_spans in spans.items():
        label = f"{processes.get(key[0], key[0])} / {names.get(key, key[1])}"
        stack: list[int] = []  # ends of the enclosing spans
        busy, last, counts = 0, -1, {}
        for event in track_spans:
            start, end = event["ts"], event["ts"] + event["dur"]
            if start < last:
                raise TraceError(f"{path}: {label}: {event['name']!r} starts at {start}, "
                                 f"before the span before it ({last})")
            last = start
            while stack and stack[-1] <= start:
                stack.pop()
            if stack and end > stack[-1]:
                raise TraceError(f"{path}: {label}: {event['name']!r} ({start}..{end}) "
                                 f"overlaps the end of its enclosing span ({stack[-1]})")
            if not stack:
                busy += end - start
            stack.append(end)
            counts[event["name"]] = counts.get(event["name"], 0) + 1
        out[label] = {"spans": len(track_spans), "busy": busy, "names": counts,
                      "events": track_spans}
    return out


def summary(path: str | Path) -> dict[str, object]:
    """The headline figures of a valid trace file (:func:`check`): run cycles, engine jobs
    and busy cycles, DMA transfers and bytes, and the cores' cycles asleep in the event unit
    as a share of all core cycles."""
    tracks = check(path)
    cycles = tracks.get(f"{_CLUSTER} / run", {}).get("busy", 0)
    engine = tracks.get(f"{_ITA} / engine", {"busy": 0, "names": {}})
    transfers = [e for label, t in tracks.items() if label.startswith(f"{_DMA} / ")
                 for e in t["events"] if "bytes" in e.get("args", {})]
    asleep = sum(t["busy"] for label, t in tracks.items() if label.endswith(" / event unit"))
    cores = json.loads(Path(path).read_text())["otherData"].get("cores") or 0
    return {"cycles": cycles, "ita_jobs": sum(n for name, n in engine["names"].items()
                                              if name.startswith("job ")),
            "ita_busy": engine["busy"], "dma_transfers": len(transfers),
            "dma_bytes": sum(e["args"]["bytes"] for e in transfers),
            "asleep_pct": round(100 * asleep / (cycles * cores), 1) if cycles and cores else 0.0}
