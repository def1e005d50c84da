"""``TRACE=1`` timelines of cluster runs (verif/cluster/trace.py, docs/trace.md).

Host-side: the validator accepts nested spans and rejects overlaps, disorder and missing
fields; functions are named from the ELF. Simulation: ``make sim TEST=attention_head
SHAPE=small TRACE=1`` writes a valid Chrome trace whose busy times match its RESULT line, and
the same run with TRACE off leaves no trace file behind.
"""

import json

import pytest

from hw import toolchain
from verif.cluster.trace import (
    FILE_NAME,
    Recorder,
    Symbols,
    TraceError,
    check,
    summary,
    wait_name,
)
from verif.sim import REGISTRY, load_tests

#: Core 0's cycles in ``ita_cycles`` outside the HWPE's busy span, per job: filling the job
#: description in C (``ita_job_t``, cleared with memset), writing it to the registers and the
#: trigger (``ita_run``), and after the completion event the wake-up and the return.
#: Measured: 482 cycles for the small shape's one job (206 + 66 + 177 + 21, docs/trace.md).
PROGRAMMING_BOUND = 600
#: Cycles from the engine's finish to core 0 leaving its wait for the ITA event.
WAKE_BOUND = 32


def _run(test, **options):
    load_tests()
    entry = REGISTRY[test]
    values = {key.name: key.default for key in entry.keys}
    values.update(options)
    return entry.run(values)


def _write(tmp_path, events, time_unit="cycle"):
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"traceEvents": events, "otherData": {"time_unit": time_unit}}))
    return path


def _x(name, ts, dur, tid=1):
    return {"ph": "X", "name": name, "ts": ts, "dur": dur, "pid": 1, "tid": tid}


# --- host-side -------------------------------------------------------------------------------


def test_check_sums_outermost_spans_and_accepts_nesting(tmp_path):
    path = _write(tmp_path, [_x("job", 10, 90), _x("Q", 12, 8), _x("K", 20, 80),
                             _x("job", 100, 5), _x("other", 0, 7, tid=2)])
    tracks = check(path)
    assert tracks["1 / 1"]["busy"] == 95 and tracks["1 / 1"]["spans"] == 4
    assert tracks["1 / 2"]["busy"] == 7


@pytest.mark.parametrize("events, message", [
    ([_x("a", 10, 10), _x("b", 15, 10)], "overlaps the end"),
    ([_x("a", 10, 10), _x("b", 5, 1)], "before the span before it"),
    ([{"ph": "X", "name": "a", "ts": 1, "pid": 1, "tid": 1}], "lacks dur"),
    ([_x("a", 1.5, 2)], "integers"),
    ([{"ph": "B", "name": "a", "ts": 1, "pid": 1, "tid": 1}], "not an X or M event"),
])
def test_check_rejects_bad_timelines(tmp_path, events, message):
    with pytest.raises(TraceError, match=message):
        check(_write(tmp_path, events))


def test_check_rejects_other_time_units_and_non_json(tmp_path):
    with pytest.raises(TraceError, match="time_unit"):
        check(_write(tmp_path, [], time_unit="us"))
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(TraceError, match="not a readable JSON"):
        check(bad)


def test_recorder_keeps_overlapping_transfers_on_separate_slots(tmp_path):
    from ita.cluster_config import DEFAULT
    l1, l2 = DEFAULT.region("L1").base, DEFAULT.region("L2").base + 0x10000
    rec = Recorder(Symbols([(0x100, 0x10, "f"), (0x110, 0x20, "g")]))
    rec.dma_accept_at(5, src=l2, dst=l1, length=4099, rows=2, core=0)
    rec.dma_accept_at(6, src=l1, dst=l2, length=64, rows=1, core=3)
    rec.dma_load_at(6)
    rec.dma_complete_at(40)
    rec.dma_load_at(41)
    rec.dma_complete_at(50)
    rec.job_at(10, True)
    rec.step_at(11, 1)
    rec.step_at(30, None)
    rec.job_at(31, False)
    rec.pc_at(0, 0, 0x104)
    rec.pc_at(20, 0, 0x118)
    rec.pc_at(25, 0, 0x200)  # in no function: named by its address
    path = rec.finish(60, tmp_path / FILE_NAME, {"test": "unit"})
    tracks = check(path)
    slot0, slot1 = tracks["DMA / slot 0"], tracks["DMA / slot 1"]
    assert slot0["names"] == {"L2->L1 8192 B": 1, "copy": 1} and slot0["busy"] == 35
    assert slot1["names"] == {"L1->L2 64 B": 1, "copy": 1} and slot1["busy"] == 44
    assert tracks["ITA / engine"]["names"] == {"job 0": 1, "Q": 1}
    assert tracks["core 0 / code"]["names"] == {"f": 1, "g": 1, "0x00000200": 1}
    assert tracks["cluster / run"]["busy"] == 60
    assert summary(path)["dma_bytes"] == 8192 + 64


def test_wait_names_follow_the_event_unit_map():
    from cluster_integration.memory_map import EVENT_LINES, region
    base = region("EVENT_UNIT").base
    assert wait_name(base + 0x04, 0) == "barrier"
    mask = 1 << EVENT_LINES["ITA"] | 1 << EVENT_LINES["DMA"]
    assert wait_name(base + 0x10, mask) == "wait ITA DMA"
    assert wait_name(base + 0x00, 0) is None


def test_symbols_name_the_functions_of_a_built_program():
    from sw.build import build_app
    app = build_app("hello")
    symbols = Symbols.from_elf(app.elf)
    assert symbols.name(app.symbols["main"]) == "main"
    assert symbols.name(app.symbols["main"] + 2) == "main"
    assert symbols.name(app.entry) == "_start"


def test_bench_lists_long_workloads_untraced_and_links_traces(tmp_path):
    from bench import trace_links
    results = {"cluster": [{"command": "make sim TEST=attention_head S=64 SEED=1",
                            "status": "PASS", "result": {"cycles": 10 ** 9}}],
               "encoder": [{"command": "make sim TEST=encoder_layer MODEL=tiny",
                            "status": "FAIL", "result": {}}]}
    rows = trace_links.record(results, tmp_path, log=lambda text: None)  # nothing runs
    assert len(rows) == 1 and "not traced" in rows[0]["note"]
    assert rows[0]["command"] == "make sim TEST=attention_head S=64 SEED=1 TRACE=1"
    assert not (tmp_path / "traces").exists()
    lines = trace_links.section([{**rows[0], "note": ""}, {
        "command": "make sim TEST=hello TRACE=1", "trace": "traces/hello.json", "cycles": 4902,
        "ita_jobs": 0, "ita_busy": 0, "dma_transfers": 0, "dma_bytes": 0, "asleep_pct": 72.3}])
    assert lines[0] == "## Timelines"
    assert "| [hello.json](traces/hello.json) | 4,902 | 0 | 0 | 0 | 0 | 72.3 % |" in lines[-2]
    assert trace_links._slug("make sim TEST=attention_head S=64 H=1 SEED=1") == \
        "attention_head_S64_H1"
    assert trace_links.section([]) == []


# --- simulation --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def traced():
    status, fields = _run("attention_head", SHAPE="small", TRACE=True)
    assert status == "PASS", fields
    return fields


@pytest.mark.verilator
def test_attention_head_trace_matches_its_result_line(traced):
    path = toolchain.ROOT / traced["trace"]
    assert path.name == FILE_NAME and (path.parent / "outcome.json").is_file()
    tracks = check(path)  # JSON, fields, per-track order, nesting
    info = json.loads(path.read_text())["otherData"]
    assert info["time_unit"] == "cycle" and info["cycles"] == traced["cycles"]
    # The whole run: from the first cycle out of reset to the end the RESULT line counts.
    assert tracks["cluster / run"]["busy"] == traced["cycles"]
    # The engine: one job (H=1) with every attention step; core 0's ita_cycles hold it plus
    # the programming and the wake-up.
    engine = tracks["ITA / engine"]
    assert engine["names"]["job 0"] == 1 and "job 1" not in engine["names"]
    assert {"Q", "K", "V", "QK", "AV", "OW"} <= set(engine["names"])
    overhead = traced["ita_cycles"] - engine["busy"]
    assert 0 < overhead <= PROGRAMMING_BOUND, (traced["ita_cycles"], engine["busy"])
    (job,) = [e for e in engine["events"] if e["name"] == "job 0"]
    job_end = job["ts"] + job["dur"]
    # Core 0 submits the job (ita_submit, ita.h) and sleeps in ita_wait_job until it ends.
    code = tracks["core 0 / code"]["events"]
    submits = [e for e in code if e["name"] == "ita_submit"]
    waits = [e for e in code if e["name"] == "ita_wait_job"]
    assert submits and waits, tracks["core 0 / code"]["names"]
    assert submits[0]["ts"] < job["ts"] and job_end < waits[-1]["ts"] + waits[-1]["dur"]
    (wait,) = [e for e in tracks["core 0 / event unit"]["events"] if e["name"] == "wait ITA"]
    assert job["ts"] <= wait["ts"] and job_end <= wait["ts"] + wait["dur"] <= job_end + \
        WAKE_BOUND, (job, wait)
    # The DMA, sw/apps/attention_head/main.c: q_in and kv_in in, the head's weight block in
    # (all but the share the cores copy beside it), the head's output and the requantized
    # sum out (S, E, P are whole tiles here, so nothing is padded).
    from ita.cluster_config import DEFAULT
    from verif.cluster.sim import ATTENTION_SHAPES
    s, e, p = (ATTENTION_SHAPES["small"][k] for k in "SEP")
    events = json.loads(path.read_text())["traceEvents"]
    moved = [(x["name"].split()[0], x["args"]["bytes"]) for x in events
             if "bytes" in x.get("args", {})]
    stores = sorted(b for kind, b in moved if kind == "L1->L2")
    loads = sorted(b for kind, b in moved if kind == "L2->L1")
    assert stores == [s * e, s * e], moved
    weight_block = 4 * p * e + 3 * 4 * p + 4 * e
    assert loads[:2] == [s * e, s * e] and len(loads) == 3, moved
    assert weight_block // 2 < loads[2] <= weight_block, moved
    assert summary(path)["dma_transfers"] == len(moved)
    assert summary(path)["dma_bytes"] == sum(b for _, b in moved)
    # Every core's code track covers the run; the others sleep in barriers while core 0
    # programs the engine.
    for core in range(DEFAULT.cores):
        assert tracks[f"core {core} / code"]["busy"] == traced["cycles"]
    for core in range(1, DEFAULT.cores):
        waits = tracks[f"core {core} / event unit"]
        assert waits["names"].get("barrier", 0) >= 3, waits["names"]
        assert waits["busy"] > engine["busy"]
    assert "main" in tracks["core 1 / code"]["names"]


@pytest.mark.verilator
def test_trace_off_leaves_no_trace_file(traced):
    path = toolchain.ROOT / traced["trace"]
    status, fields = _run("attention_head", SHAPE="small", TRACE=False)
    assert status == "PASS", fields
    assert "trace" not in fields
    assert not path.exists()  # the same run directory: the earlier trace was removed
    assert fields["cycles"] == traced["cycles"]
