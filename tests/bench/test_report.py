"""The report machinery of make bench on made-up measurements: tables, breakdown, figures,
JSON, and the command line's usage errors. No simulation runs here."""

import json
import subprocess
import sys

import pytest

from bench import plots, report
from bench.__main__ import UsageError, parse_args
from bench.suite import FULL, QUICK, Bench, _summarise_speed
from hw import toolchain

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _row(command, status="PASS", **result):
    return {"command": command, "status": status, "result": {"status": status, **result},
            "wall_s": 2.0, "cpu_s": 1.5, "returncode": 0 if status == "PASS" else 1}


def _results():
    engine = []
    for n, cycles in ((64, 1566), (128, 12318)):
        ideal = (4 * n ** 3 + 2 * n ** 3) // 1024
        engine.append({"mode": "attention", "sweep": "diagonal", "S": n, "E": n, "P": n,
                       "port_bound_utilization": 88.5, "port_bound_cycles": 1736,
                       **_row(f"make sim TEST=ita_attention S={n} E={n} P={n} STALLS=0 SEED=1",
                              cycles=cycles, ideal_cycles=ideal,
                              utilization=round(100 * ideal / cycles, 1))})
    engine.append({"mode": "ffn", "sweep": "F", "S": 128, "E": 128, "F": 256,
                   "port_bound_utilization": 80.0,
                   **_row("make sim TEST=ita_ffn S=128 E=128 F=256 STALLS=0 SEED=1",
                          cycles=8222, ideal_cycles=8192, utilization=99.6)})
    hwpe = [{"mode": "attention", "S": 64, "E": 64, "P": 64, "H": 1,
             **_row("make sim TEST=ita_hwpe MODE=attention S=64 E=64 P=64 H=1 STALLS=0 SEED=1",
                    cycles=1696, ideal_cycles=1536, utilization=90.6, tcdm_accesses=1168)}]
    cluster = [{"S": 64, "E": 64, "P": 64, "H": 1,
                **_row("make sim TEST=attention_head S=64 E=64 P=64 H=1 SEED=1", cycles=18065,
                       ideal_cycles=1536, total_cycles=16867, ita_cycles=2176)},
               {"S": 64, "E": 64, "P": 64, "H": 2,
                **_row("make sim TEST=attention_head S=64 E=64 P=64 H=2 SEED=1", "FAIL")}]
    gemm = [{"M": 16, "K": 16, "N": 16,
             **_row("make sim TEST=gemm M=16 K=16 N=16 SEED=1", cycles=575, ideal_cycles=128,
                    macs_per_cycle="7.12", utilization=22.3, total_cycles=4258)}]
    speed = {}
    for design, cycles in (("engine", 1566), ("cluster", 7734)):
        out = {"config": {"S": 64}, "cocotb_command": f"make sim {design}",
               "cpp_command": f"cpp {design}", "cpp_build": {"status": "PASS", "rebuilt": False,
                                                             "wall_s": 0.1, "cpu_s": 0.0},
               "cocotb": [dict(_row("c", cycles=cycles, total_cycles=cycles), wall_s=w,
                               sim_real_s=w / 2, sim_cycles=cycles + 5) for w in (3.0, 1.0, 2.0)],
               "cpp": [dict(_row("p", cycles=cycles, sim_cycles_per_s=r, cpu_cycles_per_s=2 * r),
                            wall_s=0.5) for r in (100_000, 300_000, 200_000)]}
        speed[design] = _summarise_speed(out, cycles_key="total_cycles")
    speed["profiles"] = [
        {"profile": name, "about": f"change {name}", "cocotb_command": f"SIM_PROFILE={name} x",
         "cpp_command": "y", "cocotb": dict(_row("c", cycles=7734), cpu_s=cpu,
                                            loop_cycles_per_s=loop),
         "cpp_build": {"status": "PASS", "rebuilt": False, "wall_s": 0.1, "cpu_s": 0.0,
                       "digest": "abc"},
         "cpp": _row("p", cycles=7734, sim_cycles_per_s=90_000, cpu_cycles_per_s=100_000)}
        for name, cpu, loop in (("baseline", 40.0, 3_000), ("fast", 6.0, 45_000))]
    return {"engine": engine, "hwpe": hwpe, "cluster": cluster, "gemm": gemm,
            "kernels": None, "encoder": [], "speed": speed}


def test_cluster_breakdown_adds_up_to_the_run():
    rows = report.cluster_rows(_results())
    assert len(rows) == 1  # the failed H=2 run has no breakdown
    row = rows[0]
    assert row["parts"]["engine overhead"] == 1566 - 1536
    assert row["parts"]["HWPE overhead"] == 1696 - 1566
    assert row["parts"]["programming (core 0)"] == 2176 - 1696
    assert row["parts"]["DMA, head sum, barriers"] == 16867 - 2176
    assert sum(row["parts"].values()) == 18065


def test_speed_summary_takes_medians_and_compares_cycles():
    summary = _results()["speed"]["engine"]["summary"]
    assert summary["cpp"]["loop_cycles_per_s"] == 200_000
    assert summary["cpp"]["loop_cpu_cycles_per_s"] == 400_000
    assert summary["cocotb"]["wall_s"] == 2.0
    assert summary["cocotb"]["loop_cycles_per_s"] == pytest.approx((1566 + 5) / 1.0)
    assert summary["cycles_agree"] is True


def test_report_names_every_command_and_figure(tmp_path):
    results = _results()
    rows = report.cluster_rows(results)
    figures = plots.write_all(results, tmp_path, seed=1, cluster_rows=rows)
    assert set(figures) == {"engine_utilization", "cluster_breakdown", "gemm", "sim_speed"}
    for name in figures.values():
        assert (tmp_path / name).read_bytes()[:8] == PNG_MAGIC
    meta = {"command": "make bench", "seed": 1, "wall_s": 100.0, "cpu_s": 80.0, "cpus": 2,
            "load_before": "1.0", "load_after": "2.0"}
    failures = [{"command": results["cluster"][1]["command"], "log_tail": "x"}]
    notes = ["encoder: `make sim TEST=encoder_layer` is not registered in this tree"]
    text = report.write_markdown(tmp_path / "report.md", results, meta, figures, rows, notes,
                                 failures).read_text()
    for section in ("engine", "hwpe", "cluster", "gemm"):
        for row in results[section]:
            assert f"`{row['command']}`" in text
    for name in figures.values():
        assert f"]({name})" in text
    assert "| S=64 E=64 P=64 H=1 | 1,536 | 1,566 | 1,696 | 2,176 | 16,867 | 18,065 |" in text
    assert "**Failures:**" in text and "H=2 SEED=1`" in text
    assert "Note: encoder:" in text
    assert "memory-port bound" in text and "290 cycles" in text
    assert "both flows simulated the same job for the same number of cycles: yes" in text
    assert "### Simulator speed by build profile" in text
    assert ("| baseline | change baseline | PASS | 3,000 | 40.0 | PASS | 90,000 | 100,000 | "
            "30.0x |") in text
    assert "| fast | change fast | PASS | 45,000 | 6.0 | PASS | 90,000 | 100,000 | 2.0x |" in text
    path = report.write_json(tmp_path / "results.json", {"meta": meta, **results})
    assert json.loads(path.read_text())["engine"][1]["result"]["cycles"] == 12318


def test_plan_steps_are_counted_before_running():
    bench = Bench(QUICK)
    registry = {"kernels", "encoder_layer"}
    profiles = 3 * 3  # per SIM_PROFILE: C++ build, C++ run, cocotb run
    assert bench.count_steps(registry) == 3 + 1 + 1 + 2 + 1 + (2 + 4) + profiles
    assert Bench(QUICK).count_steps(set()) == 3 + 1 + 1 + 1 + (2 + 4) + profiles
    full = Bench(FULL)
    points = full.attention_points()
    # every HWPE and cluster shape has its engine run, for the breakdown
    for S, E, P, H in (*FULL.hwpe_attention, *FULL.cluster):
        want = {"S": S, "E": E, "P": P, **({"H": H} if H > 1 else {})}
        assert want in [k for _sweep, k in points]


@pytest.mark.parametrize("args, message", [
    (["QUICK=2"], "bad value '2' for key QUICK (expected 0 or 1)"),
    (["ONLY=engine,fpga"], "bad value 'engine,fpga' for key ONLY (expected a comma-separated"),
    (["REPEATS=0"], "bad value '0' for key REPEATS (expected an integer >= 1)"),
    (["SPEED"], "expected KEY=VALUE, got 'SPEED'"),
    (["QUICK=1", "QUICK=0"], "key QUICK given twice"),
])
def test_usage_errors(args, message):
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_args(args)


def test_command_line_usage_error_is_one_line_and_exit_2():
    proc = subprocess.run([sys.executable, "-m", "bench", "ONLY=nothing"], capture_output=True,
                          text=True, cwd=toolchain.ROOT, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith("bench: error: bad value 'nothing' for key ONLY")
    assert len(proc.stderr.strip().splitlines()) == 1


def _minilm_results():
    runs = []
    for text, tokens, blocks in (("A longer sentence.", 15, (1_100_000, 1_000_000, 1_000_000,
                                                             1_000_000, 990_000, 985_000)),
                                 ("Hi.", 5, (1_000_000, 970_000, 970_000, 970_000, 955_000,
                                             950_000))):
        res = {"tokens": tokens, "cycles": sum(blocks), "ops_per_cycle": "30.1",
               "peak_pct": "1.5", "ita_busy_pct": "20.0", "dma_bytes": 11_066_368,
               "mismatches": 0, "cos": "0.9900", "block_cycles": ",".join(map(str, blocks))}
        runs.append({"text": text, **_row(f"make sim TEST=minilm TEXT='{text}'", **res),
                     "blocks": list(blocks),
                     "lines": ["layer total  123", "phases: 1 2 3"]})
    runs.append({"text": "x", **_row("make sim TEST=minilm TEXT=x", "FAIL"), "blocks": [],
                 "lines": []})
    accuracy = _row("python -m ita.quant.minilm", cos_mean=0.9927, cos_min=0.9541,
                    spearman_pairs=0.993, spearman_all=0.989, pairs=24, sentences=64,
                    tokens=832)
    return {**_results(), "minilm": {"runs": runs, "accuracy": accuracy}}


def test_minilm_section_tables_and_plot(tmp_path):
    from bench.suite import block_cycles

    assert block_cycles({"block_cycles": "3,4,5"}) == [3, 4, 5]
    assert block_cycles({}) == [] and block_cycles({"block_cycles": "3,x"}) == []
    results = _minilm_results()
    rows = report.minilm_rows(results)
    assert [r["tokens"] for r in rows] == [5, 15]  # sorted, the failed run left out
    assert rows[0]["latency_ms"] == pytest.approx(5_815_000 / 500e3)
    figures = plots.write_all(results, tmp_path, seed=1, cluster_rows=[], minilm_rows=rows)
    assert (tmp_path / figures["minilm_cycles"]).read_bytes()[:8] == PNG_MAGIC
    meta = {"command": "make bench", "seed": 1, "wall_s": 1.0, "cpu_s": 1.0, "cpus": 2,
            "load_before": "1.0", "load_after": "1.0"}
    text = report.write_markdown(tmp_path / "report.md", results, meta, figures, [], [],
                                 []).read_text()
    assert "## Real model: all-MiniLM-L6-v2 on the cluster" in text
    assert "](minilm_cycles.png)" in text
    assert ("| 5 | 5,815,000 | 11.63 | 30.1 | 1.5 | 20.0 | 11,066,368 | 0 | 0.9900 | "
            "`make sim TEST=minilm TEXT='Hi.'` |") in text
    assert "| block | 5 tokens | 15 tokens |" in text
    assert "| layer 0 | 1,000,000 | 1,100,000 |" in text
    assert "| sum | 5,815,000 | 6,075,000 |" in text
    assert "FAILED: `make sim TEST=minilm TEXT=x`" in text
    assert "longest sentence (15 tokens)" in text and "layer total  123" in text
    assert "phases: 1 2 3" not in text
    assert "| 0.9927 | 0.9541 | 0.993 | 0.989 |" in text and "64 held sentences" in text


def test_minilm_section_in_the_plans():
    registry = {"minilm"}
    assert len(FULL.minilm_texts) == 3 and FULL.minilm_accuracy
    assert not QUICK.minilm_texts and not QUICK.minilm_accuracy
    full = Bench(FULL, sections=("minilm",))
    assert full.count_steps(registry) == 4
    assert full.count_steps(set()) == 1  # no cluster runs without the test, the accuracy flow


def _decoder_results():
    runs = []
    for prompt, tokens, prefill, step in (("Once upon a time", 4, 12_278_555, 2_391_793),
                                          ("Once upon", 2, 3_936_370, 2_061_080)):
        res = {"prompt_tokens": tokens, "tokens": 2, "layers": 1, "mismatches": 0,
               "prefill_cycles": prefill, "decode_cycles": step, "bound_cycles": 1_964_059,
               "bound_pct": f"{100 * 1_964_059 / step:.1f}", "prefill_peak_pct": "0.1",
               "tokens_per_s": f"{500e6 / step:.2f}"}
        runs.append({"prompt": prompt, **_row(f"make sim TEST=generate PROMPT='{prompt}' "
                                              "TOKENS=2 LAYERS=1", **res)})
    runs.append({"prompt": "x", **_row("make sim TEST=generate PROMPT=x", "FAIL")})
    quality = _row("python -m ita.quant.llama", positions=512, top1_agreement="0.8720",
                   top5="0.9980", ppl_float="28.190", ppl_integer="29.550", kl="0.0580")
    return {**_results(), "decoder": {"runs": runs, "quality": quality}}


def test_decoder_section_tables_and_plot(tmp_path):
    results = _decoder_results()
    rows = report.decoder_rows(results)
    assert [r["prompt_tokens"] for r in rows] == [2, 4]  # sorted, the failed run left out
    figures = plots.write_all(results, tmp_path, seed=1, cluster_rows=[], decoder_rows=rows)
    assert (tmp_path / figures["decoder_cycles"]).read_bytes()[:8] == PNG_MAGIC
    meta = {"command": "make bench", "seed": 1, "wall_s": 1.0, "cpu_s": 1.0, "cpus": 2,
            "load_before": "1.0", "load_after": "1.0"}
    text = report.write_markdown(tmp_path / "report.md", results, meta, figures, [], [],
                                 []).read_text()
    assert "## Real model: SmolLM2-135M generates on the cluster" in text
    assert "](decoder_cycles.png)" in text
    assert ("| 2 | 1 | 3,936,370 | 0.1 | 2,061,080 | 1,964,059 | 95.3 | 242.59 | 0 | "
            "`make sim TEST=generate PROMPT='Once upon' TOKENS=2 LAYERS=1` |") in text
    assert "FAILED: `make sim TEST=generate PROMPT=x`" in text
    assert "| 0.8720 | 0.9980 | 28.190 | 29.550 | 0.0580 |" in text and "512 positions" in text


def test_decoder_section_in_the_plans():
    assert len(FULL.decoder_prompts) == 3 and FULL.decoder_quality
    assert not QUICK.decoder_prompts and not QUICK.decoder_quality
    full = Bench(FULL, sections=("decoder",))
    assert full.count_steps({"generate"}) == 4
    assert full.count_steps(set()) == 1  # no cluster runs without the test, the quality flow


def test_an_eval_line_is_the_quality_flows_result():
    from bench.runner import Measurement
    from bench.suite import eval_line_result

    m = Measurement("python -m ita.quant.llama", "FAIL", {}, 1.0, 1.0, 0, "no RESULT line")
    eval_line_result(m, "quantising\nEVAL model=smollm2 positions=3 top5=1.0000\nMACS x=1\n")
    assert (m.status, m.result, m.log_tail) == ("PASS", {"model": "smollm2", "positions": "3",
                                                         "top5": "1.0000"}, "")
    failed = Measurement("python -m ita.quant.llama", "FAIL", {}, 1.0, 1.0, 2, "error: ...")
    eval_line_result(failed, "error: the checkpoint is missing\n")
    assert failed.status == "FAIL" and failed.result == {}


def _multichip_results():
    runs = []
    for chips, cycles, speedup, eff, link in ((4, 332_854, "3.10", "0.36", 663_872),
                                              (1, 485_322, "2.13", "1.00", 0),
                                              (2, 374_593, "2.76", "0.65", 221_344)):
        res = {"chips": chips, "cycles": cycles, "baseline_cycles": 1_032_597,
               "resident_cycles": 485_322, "speedup": speedup, "efficiency": eff,
               "link_bytes": link, "allreduce_cycles": link // 4, "mismatches": 0, "S": 64}
        runs.append({"chips": chips, **_row(f"make sim TEST=multichip MODEL=encoder "
                                            f"CHIPS={chips} S=64 SEED=1", **res)})
    runs.append({"chips": 8, **_row("make sim TEST=multichip MODEL=encoder CHIPS=8", "FAIL")})
    return {**_results(), "multichip": runs}


def test_multichip_section_tables_and_plot(tmp_path):
    results = _multichip_results()
    rows = report.multichip_rows(results)
    assert [r["chips"] for r in rows] == [1, 2, 4]  # sorted, the failed run left out
    figures = plots.write_all(results, tmp_path, seed=1, cluster_rows=[], multichip_rows=rows)
    assert (tmp_path / figures["multichip_scaling"]).read_bytes()[:8] == PNG_MAGIC
    meta = {"command": "make bench", "seed": 1, "wall_s": 1.0, "cpu_s": 1.0, "cpus": 2,
            "load_before": "1.0", "load_after": "1.0"}
    text = report.write_markdown(tmp_path / "report.md", results, meta, figures, [], [],
                                 []).read_text()
    assert "## Several chips: an encoder layer split over a ring" in text
    assert "](multichip_scaling.png)" in text
    assert ("| 2 | 64 | 374,593 | 1,032,597 | 485,322 | 2.76 | 0.65 | 221,344 | 55,336 | 0 | "
            "`make sim TEST=multichip MODEL=encoder CHIPS=2 S=64 SEED=1` |") in text
    assert "FAILED: `make sim TEST=multichip MODEL=encoder CHIPS=8`" in text


def test_multichip_section_in_the_plans():
    assert FULL.multichip_chips == (1, 2, 4) and not QUICK.multichip_chips
    assert Bench(FULL, sections=("multichip",)).count_steps({"multichip"}) == 3
    assert Bench(FULL, sections=("multichip",)).count_steps(set()) == 0
